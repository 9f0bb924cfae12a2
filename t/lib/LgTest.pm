
# Copyright (c) 2026, pg_lambdaguard developers

# Helpers shared by the TAP tests of pg_lambdaguard (t/*.pl load them with
# use lib "$FindBin::RealBin/lib"):
#
# LgTest::lg_node()       a started, preloaded node with the roles the tests use
# LgTest::Session         a psql client kept open in the background, on the
#                         Unix socket or on TCP 127.0.0.1, as any role, with
#                         any application_name; it notices when the server
#                         ends its connection
# lg_wait()               bounded polling of a boolean query
# lg_history()            lambdaguard.history rows of one pid, as hashes
# lg_reload()             ALTER SYSTEM + reload, returns once the worker has
#                         gone round its loop with the new values
# lg_assert_untouched()   a session outlives its timeout plus 700 ms, with
#                         no history row
#
# Nothing here sleeps for a fixed time: every wait polls a condition with a
# deadline (lg_assert_untouched waits for the session's own state age).

package LgTest;

use strict;
use warnings;

use Exporter 'import';
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

our @EXPORT = qw(lg_node lg_session lg_wait lg_history lg_worker lg_reload
  lg_sql lg_log_offset lg_log_slice lg_alive lg_gone lg_wait_idle_for
  lg_assert_untouched lg_state lg_extension_facts);

# A node with pg_lambdaguard preloaded, listening on the Unix socket and on
# 127.0.0.1, with a non-superuser role "app" (the proxy's login role), a
# second non-superuser role "other", and a table public.t (id 1..5) that both
# may update.  $opts{conf} is appended to postgresql.conf; without
# $opts{no_extension} the extension is created in database postgres;
# $opts{init} is passed to init (allows_streaming => 1 for a primary).
sub lg_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $opts{init} // {} });
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'pg_lambdaguard'
listen_addresses = '127.0.0.1'
max_connections = 50
log_statement = 'none'
lambdaguard.naptime = 100
lambdaguard.roles = 'app'
} . ($opts{conf} // ''));
	$node->append_conf('pg_hba.conf', "host all all 127.0.0.1/32 trust");
	$node->start;
	$node->safe_psql(
		'postgres', q{
CREATE ROLE app LOGIN;
CREATE ROLE other LOGIN;
CREATE TABLE public.t (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO public.t SELECT g, 0 FROM generate_series(1, 5) g;
GRANT SELECT, UPDATE ON public.t TO app, other;
});
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_lambdaguard')
	  unless $opts{no_extension};
	return $node;
}

sub lg_session
{
	return LgTest::Session->new(@_);
}

# One query as the superuser over the Unix socket; returns its output, or
# undef (with a diag) if it failed.
sub lg_sql
{
	my ($node, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql);
	if ($ret != 0)
	{
		diag "query failed: $sql\n$err";
		return undef;
	}
	return $out;
}

# Poll $sql (a boolean query) until it returns t, for at most $secs seconds.
sub lg_wait
{
	my ($node, $sql, $secs) = @_;
	my $deadline = time() + ($secs // 30);
	my ($out, $err) = ('', '');
	while (time() < $deadline)
	{
		my $ret;
		($ret, $out, $err) = $node->psql('postgres', $sql);
		return 1 if $ret == 0 && $out eq 't';
		usleep(50_000);
	}
	diag "gave up after ${secs}s waiting for: $sql\nlast output: $out\n$err";
	return 0;
}

# The lambdaguard.history rows of one pid, oldest first, as hashes with the
# table's columns plus: addr (host(client_addr), undef for NULL) and elapsed
# (seconds from state_since to at).
sub lg_history
{
	my ($node, $pid, $where) = @_;
	$where = defined $where ? "AND ($where)" : '';
	my $out = lg_sql(
		$node, qq{
SELECT coalesce(json_agg(x ORDER BY x.id), '[]')
  FROM (SELECT h.*, host(h.client_addr) AS addr,
               extract(epoch FROM h.at - h.state_since)::float8 AS elapsed
          FROM lambdaguard.history h
         WHERE h.pid = $pid $where) x});
	return [] unless defined $out && $out ne '';
	return decode_json($out);
}

# The one row of lambdaguard.worker, as a hash
sub lg_worker
{
	my ($node) = @_;
	my $out = lg_sql($node, 'SELECT row_to_json(w) FROM lambdaguard.worker w');
	return {} unless defined $out && $out ne '';
	return decode_json($out);
}

# pg_stat_activity.state of a pid, or '' if the backend is gone
sub lg_state
{
	my ($node, $pid) = @_;
	return lg_sql($node,
		"SELECT coalesce((SELECT state FROM pg_stat_activity WHERE pid = $pid), '')"
	) // '';
}

# Set lambdaguard settings with ALTER SYSTEM, reload, wait until a new
# session sees them, then until the worker has gone round its loop twice (so
# it has processed the reload and scanned with the new values).  Values are
# given as pg_settings.setting shows them (ms as plain numbers, on/off).
# With -nowait => 1, return as soon as a new session sees the values.
sub lg_reload
{
	my ($node, %set) = @_;
	my $nowait = delete $set{-nowait};
	my (@sql, @checks);
	foreach my $k (sort keys %set)
	{
		my $v = $set{$k};
		$v =~ s/'/''/g;
		push @sql, "ALTER SYSTEM SET lambdaguard.$k = '$v';";
		push @checks,
		  "(SELECT setting = '$v' FROM pg_settings WHERE name = 'lambdaguard.$k')";
	}
	# one psql run: each statement is sent on its own (ALTER SYSTEM cannot
	# run in a transaction block)
	my $scans = $node->safe_psql('postgres',
		join("\n", @sql,
			'SELECT scans FROM lambdaguard.worker;',
			'SELECT pg_reload_conf() \\g /dev/null'));
	$scans = 0 unless $scans =~ /^\d+$/;
	my $want = $scans + 2;
	# the worker scans only while enabled
	push @checks, "(current_setting('lambdaguard.enabled') = 'off' OR "
	  . "(SELECT scans >= $want FROM lambdaguard.worker))"
	  unless $nowait;
	lg_wait($node, 'SELECT ' . join(' AND ', @checks), 15)
	  or die "reload of " . join(', ', sort keys %set) . " not seen";
	return;
}

sub lg_log_offset
{
	my ($node) = @_;
	return -s $node->logfile;
}

sub lg_log_slice
{
	my ($node, $offset) = @_;
	return slurp_file($node->logfile, $offset // 0);
}

# Is the backend still there (pg_stat_activity)?
sub lg_alive
{
	my ($node, $pid) = @_;
	return lg_state($node, $pid) ne '';
}

# Wait (bounded) until the backend is gone from pg_stat_activity
sub lg_gone
{
	my ($node, $pid, $secs) = @_;
	return lg_wait($node,
		"SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid)",
		$secs // 10);
}

# Wait until the backend has been in its current state for at least $ms
sub lg_wait_idle_for
{
	my ($node, $pid, $ms, $secs) = @_;
	return lg_wait(
		$node, qq{
SELECT coalesce((SELECT now() - state_change >= interval '$ms ms'
                   FROM pg_stat_activity WHERE pid = $pid), false)},
		$secs // 30);
}

# Assert that a session kept its state for $ms past the point where a watched
# session would have been acted on, is still connected, still in that state,
# and has no history rows.  $ms should be the relevant timeout; a margin of
# 700 ms (many scans at the tests' naptime) is added.
sub lg_assert_untouched
{
	my ($node, $sess, $ms, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $pid = $sess->pid;
	my $state = lg_state($node, $pid);
	my $waited = lg_wait_idle_for($node, $pid, $ms + 700, 10);
	my $rows = lg_history($node, $pid);
	my $ok = $waited
	  && lg_state($node, $pid) eq $state
	  && @$rows == 0
	  && $sess->ping;
	ok($ok, "$name: untouched after " . ($ms + 700) . " ms in state '$state'")
	  or diag explain { waited => $waited, state_now => lg_state($node, $pid), history => $rows };
	return $ok;
}

# The installed extension as one line per fact, sorted: extension members,
# relations, columns (in order), view definitions, function definitions,
# indexes, constraints, triggers, comments, privileges, the reasons table's
# rows, the dump configuration.  Objects are named, never by oid; ACLs
# sorted.  Two databases' facts are equal when their installations are.
sub lg_extension_facts
{
	my ($node, $dbname) = @_;
	my $describe = q{
	WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'pg_lambdaguard'),
	     ns AS (SELECT oid FROM pg_namespace WHERE nspname = 'lambdaguard'),
	     rel AS (SELECT c.* FROM pg_class c, ns WHERE c.relnamespace = ns.oid),
	     fn AS (SELECT p.* FROM pg_proc p, ns WHERE p.pronamespace = ns.oid)
	SELECT line FROM (
	  SELECT 'extension ' || e.extname || ' ' || e.extversion || ' relocatable ' || e.extrelocatable
	         || ' config ' || coalesce(e.extconfig::regclass[]::text, '') || ' ' || coalesce(e.extcondition::text, '') AS line
	    FROM pg_extension e, ext WHERE e.oid = ext.oid
	  UNION ALL
	  SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
	    FROM pg_depend d, ext
	   WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
	  UNION ALL
	  SELECT 'schema lambdaguard owner ' || n.nspowner::regrole || ' acl '
	         || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(n.nspacl) a), '')
	    FROM pg_namespace n, ns WHERE n.oid = ns.oid
	  UNION ALL
	  SELECT 'relation ' || relname || ' kind ' || relkind::text || ' persistence ' || relpersistence::text
	         || ' owner ' || relowner::regrole || ' acl '
	         || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(relacl) a), '')
	         || ' comment ' || coalesce(obj_description(oid, 'pg_class'), '')
	    FROM rel
	  UNION ALL
	  SELECT 'column ' || r.relname || ' #' || row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum)
	         || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
	         || ' notnull ' || a.attnotnull || ' identity ' || a.attidentity::text
	         || ' default ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')
	         || ' acl ' || coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(a.attacl) x), '')
	         || ' comment ' || coalesce(col_description(r.oid, a.attnum), '')
	    FROM rel r
	    JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
	    LEFT JOIN pg_attrdef ad ON ad.adrelid = r.oid AND ad.adnum = a.attnum
	   WHERE r.relkind IN ('r', 'v', 'm', 'p', 'f')
	  UNION ALL
	  SELECT 'view ' || relname || ' ' || replace(pg_get_viewdef(oid, true), E'\n', ' ')
	    FROM rel WHERE relkind IN ('v', 'm')
	  UNION ALL
	  SELECT 'index ' || pg_get_indexdef(i.indexrelid)
	    FROM pg_index i JOIN rel r ON r.oid = i.indrelid
	  UNION ALL
	  SELECT 'constraint ' || r.relname || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid)
	    FROM pg_constraint c JOIN rel r ON r.oid = c.conrelid
	  UNION ALL
	  SELECT 'trigger ' || pg_get_triggerdef(t.oid)
	    FROM pg_trigger t JOIN rel r ON r.oid = t.tgrelid WHERE NOT t.tgisinternal
	  UNION ALL
	  SELECT 'sequence ' || r.relname || ' ' || format_type(s.seqtypid, NULL) || ' ' || s.seqstart
	         || ' ' || s.seqincrement || ' ' || s.seqmax || ' ' || s.seqmin || ' ' || s.seqcache || ' ' || s.seqcycle
	    FROM pg_sequence s JOIN rel r ON r.oid = s.seqrelid
	  UNION ALL
	  SELECT 'function ' || replace(pg_get_functiondef(p.oid), E'\n', ' ')
	         || ' owner ' || p.proowner::regrole || ' acl '
	         || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(p.proacl) a), '<default>')
	         || ' comment ' || coalesce(obj_description(p.oid, 'pg_proc'), '')
	    FROM fn p
	  UNION ALL
	  SELECT 'reasons ' || row_to_json(x)::text FROM lambdaguard.reasons x
	  UNION ALL
	  SELECT 'type ' || t.typname || ' ' || t.typtype::text
	    FROM pg_type t, ns WHERE t.typnamespace = ns.oid
	) lines
	ORDER BY line};
	return $node->safe_psql($dbname, $describe);
}

package LgTest::Session;

use strict;
use warnings;

use IPC::Run;
use Test::More;

# A psql client in the background.  Options: user (app), tcp (0: Unix
# socket, 1: 127.0.0.1), appname, dbname (postgres).  ON_ERROR_STOP is off, so
# the session survives an ERROR; psql exits when the server ends the
# connection.  VERBOSITY is verbose, so errors show their SQLSTATE.
sub new
{
	my ($class, $node, %o) = @_;
	my $user = $o{user} // 'app';
	my $appname = $o{appname} // 'lg_test';
	my $host = $o{tcp} ? '127.0.0.1' : $node->host;
	my $dbname = $o{dbname} // 'postgres';
	my $conn =
	    "host='$host' port=" . $node->port
	  . " dbname='$dbname' user='$user' application_name='$appname'";
	my $self = bless {
		node => $node,
		user => $user,
		appname => $appname,
		stdin => '',
		stdout => '',
		stderr => '',
		n => 0,
		dead => 0,
	}, $class;
	$self->{timer} = IPC::Run::timer(60);
	$self->{run} = IPC::Run::start(
		[
			$node->installed_command('psql'), '-XAtq',
			'-v', 'VERBOSITY=verbose', '-d', $conn, '-f', '-'
		],
		'<', \$self->{stdin},
		'>', \$self->{stdout},
		'2>', \$self->{stderr},
		$self->{timer});
	my ($pid, $err) = $self->query('SELECT pg_backend_pid()');
	die "could not start a session as $user ($appname): $err"
	  unless defined $pid && $pid =~ /^\d+$/;
	$self->{pid} = $pid;
	return $self;
}

sub pid { return $_[0]->{pid}; }

# Send SQL without waiting for its result
sub send
{
	my ($self, $sql) = @_;
	my $n = ++$self->{n};
	my $banner = "LG_QUERY_DONE_$n";
	$self->{banner} = $banner;
	$sql =~ s/\s+$//;
	$sql .= ';' unless $sql =~ /;$/;
	$self->{stdin} .= "$sql\n\\echo '$banner'\n\\warn '$banner'\n";
	$self->{run}->pump_nb if $self->{run}->pumpable;
	return;
}

# Wait (at most $secs) for the result of the last send().  Returns (stdout,
# stderr, done): done is false if psql ended or the wait timed out.
sub result
{
	my ($self, $secs) = @_;
	my $banner = $self->{banner};
	my $re = qr/$banner\r?\n/;
	$self->{timer}->start($secs // 30);
	my $done = 0;
	while (1)
	{
		if ($self->{stdout} =~ $re && $self->{stderr} =~ $re)
		{
			$done = 1;
			last;
		}
		last if $self->{timer}->is_expired;
		if (!$self->{run}->pumpable)
		{
			$self->{dead} = 1;
			last;
		}
		eval { $self->{run}->pump; };
	}
	my $out = $self->{stdout};
	my $err = $self->{stderr};
	$out =~ s/\r?\n?$re//;
	$err =~ s/\r?\n?$re//;
	$self->{stdout} = '';
	$self->{stderr} = '';
	chomp $out;
	if ($self->{dead})
	{
		eval { $self->{run}->finish; };
	}
	return wantarray ? ($out, $err, $done) : $out;
}

sub query
{
	my ($self, $sql, $secs) = @_;
	$self->send($sql);
	return $self->result($secs);
}

# Does the connection still answer?
sub ping
{
	my ($self) = @_;
	return 0 if $self->{dead};
	my ($out, $err, $done) = $self->query('SELECT 4711', 10);
	return $done && $out eq '4711';
}

# Send a statement on a session the server should have terminated, and return
# what the client saw: (stderr, psql_exited)
sub client_view
{
	my ($self) = @_;
	my ($out, $err, $done) = $self->query('SELECT 1', 10);
	return ($err, $self->{dead});
}

sub close
{
	my ($self) = @_;
	return if $self->{closed};
	$self->{closed} = 1;
	if (!$self->{dead} && $self->{run}->pumpable)
	{
		$self->{stdin} .= "\\q\n";
		$self->{timer}->start(3);
		while ($self->{run}->pumpable && !$self->{timer}->is_expired)
		{
			eval { $self->{run}->pump; };
		}
	}
	eval { $self->{run}->kill_kill; } if $self->{run}->pumpable;
	eval { $self->{run}->finish; };
	return;
}

sub DESTROY
{
	my ($self) = @_;
	$self->close if $self->{run};
}

1;
