
# Copyright (c) 2026, pg_lambdaguard developers

# Privileges and hostile input, as the unprivileged roles that meet them:
#
# - a plain login role reads no view; a pg_monitor member reads them all;
#   another role's query text is '<insufficient privilege>' for a role that
#   was granted SELECT on lambdaguard.sessions but is not pg_read_all_stats
# - lambdaguard.scan(false) granted to a role without pg_signal_backend: the
#   orphan of a watched role survives and the decision is recorded as
#   'failed' with the reason; with pg_signal_backend: the orphan is
#   terminated
# - scan(false) and reset() without a grant: permission denied
# - a hostile search_path (a schema "evil" whose functions, operators and
#   table are named like pg_catalog's and the extension's, each raising an
#   exception when called): scan(false) and every view give the same
#   results, nothing of "evil" runs; and the worker, whose search_path comes
#   from the database's settings, runs nothing of "evil" either
#
# The worker is switched off (lambdaguard.enabled = off) while scan() is
# tested, so that it does not act first: since "scan() works while the
# worker is switched off", scan() still judges with the same timeouts.
#
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/lib";

use LgTest;
use LgFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = lg_node(
	'security',
	conf => q{
lambdaguard.enabled = off
lambdaguard.idle_in_transaction_timeout = 1000
lambdaguard.blocking_timeout = 0
lambdaguard.aborted_transaction_timeout = 0
});

$node->safe_psql(
	'postgres', q{
CREATE ROLE lg_plain LOGIN;
CREATE ROLE lg_mon LOGIN IN ROLE pg_monitor;
CREATE ROLE lg_granted LOGIN;
CREATE ROLE lg_scanner LOGIN;
CREATE ROLE lg_killer LOGIN IN ROLE pg_signal_backend;
CREATE ROLE lg_sig LOGIN IN ROLE pg_signal_backend;
GRANT USAGE ON SCHEMA lambdaguard TO lg_granted, lg_scanner, lg_killer;
GRANT SELECT ON lambdaguard.sessions, lambdaguard.pinning_events TO lg_granted;
GRANT EXECUTE ON FUNCTION lambdaguard.session_rows(), lambdaguard.event_rows() TO lg_granted;
GRANT EXECUTE ON FUNCTION lambdaguard.scan(boolean) TO lg_scanner, lg_killer;
});

my @views = qw(sessions orphans pinning_events pinning_stats worker metrics
  history reasons);

# ---------------------------------------------------------------------------
# reading: nothing for a plain role, everything for pg_monitor
# ---------------------------------------------------------------------------
foreach my $v (@views)
{
	my ($ret, $out, $err) =
	  lg_psql_as($node, 'lg_plain', "SELECT count(*) FROM lambdaguard.$v");
	ok($ret != 0 && $err =~ /permission denied/,
		"plain role: lambdaguard.$v is refused")
	  or diag "ret $ret, out '$out', err: $err";
	note "plain role reading lambdaguard.$v gets: $err";
}
foreach my $v (@views)
{
	my ($ret, $out, $err) =
	  lg_psql_as($node, 'lg_mon', "SELECT count(*) >= 0 FROM lambdaguard.$v");
	ok($ret == 0 && $out eq 't', "pg_monitor member: lambdaguard.$v is readable")
	  or diag "ret $ret, out '$out', err: $err";
}

# ---------------------------------------------------------------------------
# query text of another role's session
# ---------------------------------------------------------------------------
{
	my $app = lg_session($node, appname => 'lg_secret_app');
	my $pid = $app->pid;
	$app->query(q{SET work_mem = '8MB'});
	$app->query(q{SELECT 'secret_app_query' AS x});

	my $q = "SELECT query, pinned_by FROM lambdaguard.sessions WHERE pid = $pid";
	my ($ret, $out, $err) = lg_psql_as($node, 'lg_granted', $q);
	is($out, '<insufficient privilege>|<insufficient privilege>',
		'granted SELECT only: another role\'s query and pinned_by are hidden')
	  or diag "ret $ret, err: $err";
	($ret, $out, $err) = lg_psql_as($node, 'lg_granted',
		"SELECT DISTINCT statement FROM lambdaguard.pinning_events WHERE pid = $pid");
	is($out, '<insufficient privilege>',
		'granted SELECT only: another role\'s pinning statement is hidden')
	  or diag "ret $ret, err: $err";

	($ret, $out, $err) = lg_psql_as($node, 'lg_mon', $q);
	like($out, qr/^SELECT 'secret_app_query' AS x;?\|SET work_mem = '8MB';?$/,
		'pg_monitor member: another role\'s query and pinned_by are visible')
	  or diag "ret $ret, err: $err";
	($ret, $out, $err) = lg_psql_as($node, 'lg_mon',
		"SELECT DISTINCT statement FROM lambdaguard.pinning_events WHERE pid = $pid");
	like($out, qr/^SET work_mem = '8MB';?$/,
		'pg_monitor member: another role\'s pinning statement is visible')
	  or diag "ret $ret, err: $err";

	# the own session's text is visible to the role itself
	my $own = lg_session($node, user => 'lg_granted', appname => 'lg_own');
	my ($o) = $own->query(
		'SELECT query FROM lambdaguard.sessions WHERE pid = pg_backend_pid()');
	like($o, qr/^SELECT query FROM lambdaguard\.sessions/,
		'granted SELECT only: the role sees its own query text');
	$own->close;
	$app->close;
}

# ---------------------------------------------------------------------------
# no grant: scan() and reset() are refused
# ---------------------------------------------------------------------------
foreach my $case (
	[ 'lg_plain', 'SELECT count(*) FROM lambdaguard.scan(false)' ],
	[ 'lg_plain', 'SELECT count(*) FROM lambdaguard.scan(true)' ],
	[ 'lg_plain', 'SELECT lambdaguard.reset()' ],
	[ 'lg_mon', 'SELECT count(*) FROM lambdaguard.scan(false)' ],
	[ 'lg_mon', 'SELECT lambdaguard.reset()' ],
	[ 'lg_sig', 'SELECT count(*) FROM lambdaguard.scan(false)' ],
	[ 'lg_scanner', 'SELECT lambdaguard.reset()' ])
{
	my ($role, $sql) = @$case;
	my ($ret, $out, $err) = lg_psql_as($node, $role, $sql);
	ok($ret != 0 && $err =~ /permission denied/, "no grant: $role: $sql is refused")
	  or diag "ret $ret, out '$out', err: $err";
	note "$role running $sql gets: $err";
}

# ---------------------------------------------------------------------------
# scan(false) with the caller's rights
# ---------------------------------------------------------------------------

# An orphan of the watched role "app", idle in transaction past the 1 s
# timeout (the worker is off, so it stays)
sub orphan
{
	my ($name) = @_;
	my $s = lg_session($node, appname => $name);
	$s->query('BEGIN; UPDATE t SET v = v + 1 WHERE id = 1;');
	lg_wait_idle_for($node, $s->pid, 1200, 10) or die "no orphan";
	return $s;
}

my $scan_sql =
  "SELECT action, verdict, coalesce(detail, ''), coalesce(query, '') FROM lambdaguard.scan(false) WHERE pid = %d";

# EXECUTE on scan() (and USAGE on the schema) is the explicit GRANT the
# contract asks for, and it suffices: the history row is written as the
# table's owner, and the caller gets no right on the table itself.
{
	my $s = orphan('lg_orphan_probe');
	my $pid = $s->pid;

	my ($ret, $out, $err) =
	  lg_psql_as($node, 'lg_scanner', sprintf($scan_sql, $pid));
	is($ret, 0,
		'EXECUTE granted, no pg_signal_backend: scan(false) runs and records its decision')
	  or diag "got: $err";
	is(lg_state($node, $pid), 'idle in transaction',
		'EXECUTE granted, no pg_signal_backend: the orphan survives');

	my ($ret2, $out2, $err2) =
	  lg_psql_as($node, 'lg_killer', sprintf($scan_sql, $pid));
	is($ret2, 0,
		'EXECUTE granted, pg_signal_backend: scan(false) runs and records its decision')
	  or diag "got: $err2";
	# the history row is written before the signal: either both or neither
	if ($ret2 == 0)
	{
		ok(lg_gone($node, $pid, 10),
			'EXECUTE granted, pg_signal_backend: the orphan is terminated');
		is( lg_sql(
				$node,
				"SELECT count(*) FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'"
			),
			'1',
			'EXECUTE granted, pg_signal_backend: the termination is in lambdaguard.history');
	}
	else
	{
		is(lg_state($node, $pid), 'idle in transaction',
			'EXECUTE granted, pg_signal_backend: its row could not be written, so no signal');
		is(lg_sql($node, "SELECT count(*) FROM lambdaguard.history WHERE pid = $pid"),
			'0', 'EXECUTE granted, pg_signal_backend: and no row');
	}
	$s->close;

}

{
	my $s = orphan('lg_orphan_1');
	my $pid = $s->pid;
	my ($ret, $out, $err) =
	  lg_psql_as($node, 'lg_scanner', sprintf($scan_sql, $pid));
	is($ret, 0, 'without pg_signal_backend: scan(false) runs') or diag $err;
	my ($action, $verdict, $detail, $query) = split /\|/, $out, 4;
	is($action, 'failed', 'without pg_signal_backend: the decision is "failed"');
	is($verdict, 'orphan', 'without pg_signal_backend: verdict orphan');
	like($detail, qr/permission denied/,
		'without pg_signal_backend: the detail gives the permission reason');
	note "detail: $detail";
	is($query, '<insufficient privilege>',
		'without pg_read_all_stats: scan() does not return another role\'s query text');
	# (not $s->ping: a statement would start a new episode)
	is(lg_state($node, $pid), 'idle in transaction',
		'without pg_signal_backend: the orphan survives');
	is( lg_sql(
			$node,
			"SELECT string_agg(action || '/' || verdict, ',') FROM lambdaguard.history WHERE pid = $pid"
		),
		'failed/orphan',
		'without pg_signal_backend: one "failed" row in lambdaguard.history');

	($ret, $out, $err) =
	  lg_psql_as($node, 'lg_killer', sprintf($scan_sql, $pid));
	is($ret, 0, 'with pg_signal_backend: scan(false) runs') or diag $err;
	my ($action2, $verdict2, $detail2) = split /\|/, $out, 4;
	is($action2, 'terminate', 'with pg_signal_backend: the decision is "terminate"');
	is($detail2, '', 'with pg_signal_backend: no detail');
	ok(lg_gone($node, $pid, 10), 'with pg_signal_backend: the orphan is terminated');
	my ($cerr) = $s->client_view;
	like($cerr, qr/57P01|terminating connection due to administrator command/,
		'with pg_signal_backend: the client sees 57P01');
	is( lg_sql(
			$node,
			"SELECT string_agg(action, ',' ORDER BY id) FROM lambdaguard.history WHERE pid = $pid"
		),
		'failed,terminate',
		'with pg_signal_backend: the "terminate" row is recorded after the "failed" one');
	$s->close;

	# the worker never acts while switched off
	is(lg_sql($node, 'SELECT terminated FROM lambdaguard.worker'),
		'0', 'the switched-off worker terminated nobody');
}

# ---------------------------------------------------------------------------
# hostile search_path
# ---------------------------------------------------------------------------
$node->safe_psql(
	'postgres', q{
CREATE ROLE mallory LOGIN IN ROLE pg_monitor, pg_signal_backend;
GRANT EXECUTE ON FUNCTION lambdaguard.scan(boolean), lambdaguard.reset() TO mallory;
CREATE SCHEMA evil AUTHORIZATION mallory;
});

# Everything that evil defines raises an exception naming itself and the
# role that ran it.
my $evil_sql = q{
SET ROLE mallory;
CREATE FUNCTION evil.boom(what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'evil % ran as %', what, current_user;
END $$;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.boom('now()'); RETURN NULL; END $$;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.boom('clock_timestamp()'); RETURN NULL; END $$;
CREATE FUNCTION evil.make_interval(years int DEFAULT 0, months int DEFAULT 0,
    weeks int DEFAULT 0, days int DEFAULT 0, hours int DEFAULT 0,
    mins int DEFAULT 0, secs double precision DEFAULT 0.0)
  RETURNS interval LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.boom('make_interval()'); RETURN NULL; END $$;
CREATE FUNCTION evil.pg_backend_pid() RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.boom('pg_backend_pid()'); RETURN NULL; END $$;
CREATE FUNCTION evil.pg_terminate_backend(int, bigint DEFAULT 0) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.boom('pg_terminate_backend()'); RETURN NULL; END $$;
CREATE FUNCTION evil.pg_cancel_backend(int) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.boom('pg_cancel_backend()'); RETURN NULL; END $$;
CREATE FUNCTION evil.current_setting(text) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.boom('current_setting()'); RETURN NULL; END $$;
CREATE FUNCTION evil.cardinality(anyarray) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.boom('cardinality()'); RETURN NULL; END $$;
CREATE FUNCTION evil.jsonb_build_object(text, text, text, text) RETURNS jsonb LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.boom('jsonb_build_object()'); RETURN NULL; END $$;
CREATE FUNCTION evil.jsonb_build_object(text, text) RETURNS jsonb LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.boom('jsonb_build_object()'); RETURN NULL; END $$;
CREATE FUNCTION evil.nextval(regclass) RETURNS bigint LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.boom('nextval()'); RETURN NULL; END $$;
CREATE FUNCTION evil.int4eq(int, int) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN RETURN evil.boom('= (int, int)'); END $$;
CREATE FUNCTION evil.int8eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN RETURN evil.boom('= (bigint, bigint)'); END $$;
CREATE FUNCTION evil.texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN RETURN evil.boom('= (text, text)'); END $$;
CREATE FUNCTION evil.textne(text, text) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN RETURN evil.boom('<> (text, text)'); END $$;
CREATE FUNCTION evil.tslt(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN RETURN evil.boom('< (timestamptz, timestamptz)'); END $$;
CREATE FUNCTION evil.tsge(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN RETURN evil.boom('>= (timestamptz, timestamptz)'); END $$;
CREATE FUNCTION evil.tsmi(timestamptz, interval) RETURNS timestamptz LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.boom('- (timestamptz, interval)'); RETURN NULL; END $$;
CREATE FUNCTION evil.tstsmi(timestamptz, timestamptz) RETURNS interval LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.boom('- (timestamptz, timestamptz)'); RETURN NULL; END $$;
CREATE OPERATOR evil.= (LEFTARG = int, RIGHTARG = int, FUNCTION = evil.int4eq);
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int8eq);
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
CREATE OPERATOR evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.textne);
CREATE OPERATOR evil.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.tslt);
CREATE OPERATOR evil.>= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.tsge);
CREATE OPERATOR evil.- (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = evil.tsmi);
CREATE OPERATOR evil.- (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = evil.tstsmi);
-- tables and views named like the extension's
CREATE TABLE evil.history (LIKE lambdaguard.history);
CREATE FUNCTION evil.history_trap() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM evil.boom('a write to evil.history'); RETURN NULL; END $$;
CREATE TRIGGER trap BEFORE INSERT OR UPDATE OR DELETE ON evil.history
  FOR EACH ROW EXECUTE FUNCTION evil.history_trap();
CREATE VIEW evil.sessions AS SELECT evil.boom('evil.sessions') AS pid;
CREATE VIEW evil.reasons AS SELECT evil.boom('evil.reasons') AS reason;
RESET ROLE;
};
$node->safe_psql('postgres', $evil_sql);

# the evil objects do fire when a query resolves to them
{
	my ($ret, $out, $err) = lg_psql_as($node, 'mallory',
		q{SET search_path = evil, pg_catalog, public; SELECT now();});
	like($err, qr/evil now\(\) ran as mallory/,
		'hostile search_path: the trap works (now() resolves to evil.now())');
	($ret, $out, $err) = lg_psql_as($node, 'mallory',
		q{SET search_path = evil, pg_catalog, public; SELECT 1 = 1;});
	like($err, qr/evil = \(int, int\) ran as mallory/,
		'hostile search_path: the trap works (= resolves to evil.=)');
}

# What every view gives, read with a given search_path; only operators from
# pg_catalog, named explicitly, in the query itself
sub read_views
{
	my ($path) = @_;
	# SET LOCAL: a SET would be a pinning event, and change the figures
	my $sql = qq{
BEGIN;
SET LOCAL search_path = $path;
SELECT 'sessions_self', count(*) FROM lambdaguard.sessions
 WHERE pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid();
SELECT 'sessions_cols', count(*) > 0 FROM (SELECT * FROM lambdaguard.sessions) s;
SELECT 'orphans', count(*) FROM lambdaguard.orphans;
SELECT 'events', count(*) FROM (SELECT * FROM lambdaguard.pinning_events) e;
SELECT 'stats', count(*) FROM (SELECT * FROM lambdaguard.pinning_stats) e;
SELECT 'worker', count(*) FROM (SELECT * FROM lambdaguard.worker) w;
SELECT 'metrics', metric, labels FROM lambdaguard.metrics ORDER BY metric, labels::text;
SELECT 'history', id, action, verdict FROM lambdaguard.history ORDER BY id;
SELECT 'reasons', reason, pins_rds_proxy, breaks_pgbouncer_transaction_mode FROM lambdaguard.reasons ORDER BY reason;
SELECT 'preview', count(*) FROM lambdaguard.scan(true);
COMMIT;
};
	return lg_psql_as($node, 'mallory', $sql);
}

{
	my ($ret0, $base, $err0) = read_views('"$user", public');
	is($ret0, 0, 'normal search_path: every view reads') or diag $err0;

	foreach my $path ('evil, public', 'evil, pg_catalog, public',
		'pg_temp, evil, pg_catalog')
	{
		my ($ret, $out, $err) = read_views($path);
		is($ret, 0, "search_path $path: every view reads") or diag $err;
		unlike($err, qr/evil/, "search_path $path: nothing of evil ran");
		is($out, $base, "search_path $path: the same results");
	}

	# scan(false) and reset() under the most hostile path
	my $s = orphan('lg_orphan_evil');
	my $pid = $s->pid;
	my ($ret, $out, $err) = lg_psql_as(
		$node, 'mallory', qq{
SET search_path = evil, pg_catalog, public;
CREATE TEMP TABLE history (LIKE lambdaguard.history);
SET search_path = pg_temp, evil, pg_catalog, public;
SELECT action, verdict FROM lambdaguard.scan(false);
SELECT lambdaguard.reset();
SELECT 'temp history', count(*) FROM history;
});
	is($ret, 0, 'hostile search_path: scan(false) and reset() run') or diag $err;
	unlike($err, qr/evil/, 'hostile search_path: nothing of evil ran in scan(false)');
	like($out, qr/^terminate\|orphan$/m, 'hostile search_path: scan(false) terminated the orphan');
	like($out, qr/^temp history\|0$/m, 'hostile search_path: nothing written to a temp "history"');
	ok(lg_gone($node, $pid, 10), 'hostile search_path: the orphan is gone');
	is(lg_sql($node,
			"SELECT count(*) FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'"),
		'1', 'hostile search_path: the row went to lambdaguard.history');
	is(lg_sql($node, 'SELECT count(*) FROM evil.history'),
		'0', 'hostile search_path: evil.history is empty');
	$s->close;
}

# ---------------------------------------------------------------------------
# the worker: its search_path comes from the database's settings, which the
# database owner may set.  Give the database to mallory, let her set a
# hostile search_path, restart the worker: its history purge (run at its
# first scan) and its history rows must not run anything of evil.
# ---------------------------------------------------------------------------
{
	# the test's own connections keep a safe search_path (a client option
	# outranks the database's setting); the worker's do not
	local $ENV{PGOPTIONS} = '-c search_path=pg_catalog,public';
	my $log = lg_log_offset($node);
	$node->safe_psql('postgres', 'ALTER DATABASE postgres OWNER TO mallory');
	my ($r, $o, $e) = lg_psql_as($node, 'mallory',
		'ALTER DATABASE postgres SET search_path = evil, pg_catalog, public');
	is($r, 0, 'the database owner sets a hostile search_path for the database')
	  or diag $e;
	lg_reload($node, enabled => 'on', -nowait => 1);
	my $w0 = lg_worker($node);
	$node->safe_psql('postgres',
		"SELECT pg_terminate_backend($w0->{pid})");
	# the postmaster starts the worker again 10 s later; its first scan purges
	ok( lg_wait(
			$node, qq{
SELECT (w.pid <> $w0->{pid} AND w.scans >= $w0->{scans} + 3) OR w.errors > $w0->{errors}
  FROM lambdaguard.worker w}, 25),
		'worker with a hostile database search_path: restarted and scanned (or failed)');

	# and an orphan, so that it writes a history row too
	my $s = lg_session($node, appname => 'lg_orphan_worker');
	my $pid = $s->pid;
	$s->query('BEGIN; SELECT 1;');
	my $caught = lg_wait($node,
		"SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'", 10);
	my $w1 = lg_worker($node);
	my $slice = lg_log_slice($node, $log);
	my @evil = ($slice =~ /^.*evil.*ran as.*$/mg);
	is(scalar(@evil), 0,
		'worker with a hostile database search_path: nothing of evil ran')
	  or diag join("\n", @evil[0 .. ($#evil < 3 ? $#evil : 3)]);
	is($w1->{errors}, $w0->{errors}, 'worker with a hostile database search_path: no error')
	  or diag "last_error: " . ($w1->{last_error} // '');
	ok($caught, 'worker with a hostile database search_path: the orphan is caught and recorded');
	$s->close;
	$node->safe_psql('postgres', q{
ALTER DATABASE postgres RESET search_path;
ALTER DATABASE postgres OWNER TO postgres;
});
}

my @crash = lg_crash_lines(lg_log_slice($node, 0));
is(scalar(@crash), 0, 'no crash') or diag join("\n", @crash);

$node->stop;
done_testing();
