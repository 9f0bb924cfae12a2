
# Copyright (c) 2026, pg_lambdaguard developers

# The worker under faults:
#
# - its history table renamed, dropped, or missing a column while an orphan
#   falls due: a LOG line or an ERROR (and no signal without its history
#   row), never a crash-restart of the cluster; after an ERROR the postmaster
#   starts it again no faster than every 10 s; it acts and records again
#   once the table is repaired
# - lambdaguard.database names a database that does not exist: one FATAL
#   line per 10 s restart interval, no tight loop
# - the worker terminated with pg_terminate_backend(): it comes back
# - a reload storm: 50 reloads with changing settings, the worker lives on
# - a streaming standby: the worker runs during recovery and records in the
#   standby history, the views work; after promotion the same worker goes on
# - fast and smart shutdown while the worker scans every 10 ms
#
# The worker's ERROR exit is logged by the postmaster as 'background worker
# "pg_lambdaguard" (PID n) exited with exit code 1': that one is expected;
# every other "exited with exit code", "terminated by signal" or
# "terminating any other active server processes" is a crash.

use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use LgTest;
use LgFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $worker_exit =
  qr/background worker "pg_lambdaguard[^"]*" \(PID (\d+)\) exited with exit code 1/;
my $worker_started = qr/pg_lambdaguard: worker started in database "postgres"/;
my $not_created =
  qr/pg_lambdaguard: the extension is not created in database "postgres"/;
my $history_missing =
  qr/pg_lambdaguard: table lambdaguard.history is missing in database "postgres"/;
my $now_exists =
  qr/pg_lambdaguard: the extension now exists in database "postgres"/;

my $node = lg_node(
	'faults',
	conf => q{
wal_level = replica
max_wal_senders = 4
lambdaguard.idle_in_transaction_timeout = 1000
lambdaguard.blocking_timeout = 0
lambdaguard.aborted_transaction_timeout = 0
});

# ---------------------------------------------------------------------------
# a second node whose lambdaguard.database does not exist (a copy of the
# first, cheaper than initdb): started now, its log is read after about
# 25 s, while the other tests run
# ---------------------------------------------------------------------------
$node->backup('b0');
my $nodb = PostgreSQL::Test::Cluster->new('nodb');
$nodb->init_from_backup($node, 'b0');
$nodb->append_conf('postgresql.conf', "lambdaguard.database = 'nosuchdb'\n");
$nodb->start;
my $nodb_t0 = time();

sub orphan
{
	my ($name, $n) = @_;
	my $s = lg_session($n // $node, appname => $name);
	$s->query('BEGIN; SELECT 1;');
	return $s;
}

sub history_count
{
	my ($pid, $where) = @_;
	$where = defined $where ? "AND $where" : '';
	return lg_sql($node,
		"SELECT count(*) FROM lambdaguard.history WHERE pid = $pid $where");
}

# ---------------------------------------------------------------------------
# history renamed while an orphan falls due: the worker says the history is
# missing, acts on nobody, and acts and records again once it is back
# ---------------------------------------------------------------------------
{
	my $log = lg_log_offset($node);
	my $w0 = lg_worker($node);
	$node->safe_psql('postgres',
		'ALTER TABLE lambdaguard.history RENAME TO history_moved');
	my $s = orphan('lg_renamed');
	my $pid = $s->pid;
	ok(lg_wait_log($node, $history_missing, $log, 5),
		'history renamed: the worker logs that the history table is missing');
	# 1 s timeout + margin: the worker would have acted by now
	ok(lg_wait_idle_for($node, $pid, 2000, 10), 'history renamed: orphan idle for 2 s');
	is(lg_state($node, $pid), 'idle in transaction',
		'history renamed: the orphan is left alone');

	$node->safe_psql('postgres',
		'ALTER TABLE lambdaguard.history_moved RENAME TO history');
	ok(lg_wait($node,
			"SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'", 10),
		'history renamed back: the orphan is terminated and recorded');
	ok(lg_wait_log($node, $now_exists, $log, 5),
		'history renamed back: the worker says it records again');
	my $w1 = lg_worker($node);
	is($w1->{pid}, $w0->{pid}, 'history renamed: the worker did not restart');
	is($w1->{errors}, $w0->{errors}, 'history renamed: no error counted');
	$s->close;
}

# ---------------------------------------------------------------------------
# history dropped (it is an extension member: detached first).  CASCADE
# reaches lambdaguard.scan(), which returns SETOF lambdaguard.history, and
# with it, a member, the whole extension: PostgreSQL's rule for members.
# Repaired by creating the extension again.
# ---------------------------------------------------------------------------
{
	my $log = lg_log_offset($node);
	my $w0 = lg_worker($node);
	my ($ret, $out, $err) = $node->psql(
		'postgres', q{
ALTER EXTENSION pg_lambdaguard DROP TABLE lambdaguard.history;
ALTER EXTENSION pg_lambdaguard DROP SEQUENCE lambdaguard.history_id_seq;
DROP TABLE lambdaguard.history CASCADE;
}, on_error_stop => 1);
	is($ret, 0, 'history dropped') or diag $err;
	note "DROP TABLE lambdaguard.history CASCADE said: $err";
	my $s = orphan('lg_dropped');
	my $pid = $s->pid;
	ok(lg_wait_log($node, $not_created, $log, 5),
		'history dropped: the worker logs that it cannot record');
	ok(lg_wait_idle_for($node, $pid, 2000, 10), 'history dropped: orphan idle for 2 s');
	is(lg_state($node, $pid), 'idle in transaction',
		'history dropped: the orphan is left alone');

	$node->safe_psql('postgres',
		'DROP EXTENSION IF EXISTS pg_lambdaguard; CREATE EXTENSION pg_lambdaguard;');
	ok(lg_wait($node,
			"SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'", 10),
		'extension re-created: the orphan is terminated and recorded');
	ok(lg_wait_log($node, $now_exists, $log, 5),
		'extension re-created: the worker says it records again');
	is(lg_worker($node)->{pid}, $w0->{pid}, 'history dropped: the worker did not restart');
	my @crash = lg_crash_lines(lg_log_slice($node, $log));
	is(scalar(@crash), 0, 'history dropped: no crash') or diag join("\n", @crash);
	$s->close;
}

# ---------------------------------------------------------------------------
# history missing a column (renamed) while orphans fall due: the INSERT of
# the history row fails, and since the row is written before the signal, the
# worker ERRORs and exits without signalling anybody; the postmaster starts
# it again after 10 s, it fails again; once the table is repaired, the next
# worker terminates and records both orphans
# ---------------------------------------------------------------------------
{
	my $log = lg_log_offset($node);
	my $w0 = lg_worker($node);
	$node->safe_psql('postgres',
		'ALTER TABLE lambdaguard.history RENAME COLUMN detail TO detail_gone');

	my $c = orphan('lg_col_1');
	my $cpid = $c->pid;
	ok(lg_wait($node, "SELECT errors > $w0->{errors} FROM lambdaguard.worker", 10),
		'column renamed: the worker counts an error');
	my $w1 = lg_worker($node);
	like($w1->{last_error} // '', qr/detail/, 'column renamed: last_error says why')
	  or diag explain $w1;
	ok(lg_wait_log($node, qr/background worker "pg_lambdaguard[^"]*" \(PID $w0->{pid}\) exited with exit code 1/, $log, 5),
		'column renamed: the worker exited with code 1');
	is(lg_state($node, $cpid), 'idle in transaction',
		'column renamed: no signal without its history row, the orphan is still there');

	# while the worker is down, another orphan falls due; the next worker
	# (10 s later) fails again
	my $d = orphan('lg_col_2');
	my $dpid = $d->pid;
	ok(lg_wait($node, "SELECT errors > $w1->{errors} FROM lambdaguard.worker", 20),
		'column still renamed: the restarted worker fails again');
	my $w2 = lg_worker($node);
	is(lg_state($node, $cpid) . '/' . lg_state($node, $dpid),
		'idle in transaction/idle in transaction',
		'column still renamed: both orphans still there');
	unlike(lg_log_slice($node, $log), qr/pg_lambdaguard: terminated pid ($cpid|$dpid) /,
		'column still renamed: no termination logged');

	$node->safe_psql('postgres',
		'ALTER TABLE lambdaguard.history RENAME COLUMN detail_gone TO detail');
	ok(lg_wait($node,
			"SELECT count(*) = 2 FROM lambdaguard.history WHERE pid IN ($cpid, $dpid) AND action = 'terminate'", 25),
		'column repaired: the restarted worker terminates and records both orphans');
	ok(lg_gone($node, $cpid, 5) && lg_gone($node, $dpid, 5),
		'column repaired: both orphans are gone');
	my $w3 = lg_worker($node);
	is($w3->{errors}, $w2->{errors}, 'column repaired: no more errors');
	# (lambdaguard.worker shows no pid while no worker runs)
	ok($w3->{started_at} ne $w2->{started_at} && $w2->{started_at} ne $w1->{started_at},
		'column renamed: a new worker process each time')
	  or diag explain [ $w1, $w2, $w3 ];

	my $slice = lg_log_slice($node, $log);
	like($slice, qr/(ERROR|FATAL):[^\n]*column "detail" of relation "history" does not exist/,
		'column renamed: the ERROR is logged');

	# restart interval: every exit is followed by a start 10 s later, never
	# sooner
	my @exits = lg_log_times($slice, $worker_exit);
	my @starts = lg_log_times($slice, $worker_started);
	is(scalar(@exits), 2, 'column renamed: two error exits');
	is(scalar(@starts), 2, 'column renamed: two restarts');
	for my $i (0 .. $#exits)
	{
		my ($next) = grep { $_ >= $exits[$i] } @starts;
		ok(defined $next && $next - $exits[$i] >= 9.5,
			"column renamed: restart $i came no sooner than 10 s after the exit")
		  or diag sprintf('exit at %.3f, next start %s', $exits[$i],
			defined $next ? sprintf('%.3f s later', $next - $exits[$i]) : 'none');
	}
	my @crash = lg_crash_lines($slice);
	is(scalar(@crash), 0, 'column renamed: no crash-restart') or diag join("\n", @crash);
	unlike($slice, qr/terminating any other active server processes/,
		'column renamed: no backend was reset');
	$_->close for ($c, $d);
}

# ---------------------------------------------------------------------------
# lambdaguard.database names a missing database: one FATAL per restart
# interval (bgw_restart_time = 10 s), no tight loop
# ---------------------------------------------------------------------------
{
	# the tests above take longer than 25 s; wait out the rest if not
	my $left = $nodb_t0 + 26 - time();
	usleep(int($left * 1_000_000)) if $left > 0;
	my $slice = lg_log_slice($nodb, 0);
	my $fatal = qr/FATAL:\s+database "nosuchdb" does not exist/;
	my @fatal = lg_log_times($slice, $fatal);
	my $elapsed = time() - $nodb_t0;
	ok(@fatal >= 2, sprintf('missing database: FATAL repeated (%d lines in %.0f s)',
		scalar(@fatal), $elapsed));
	my @first25 = grep { $_ <= $fatal[0] + 25 } @fatal;
	cmp_ok(scalar(@first25), '<=', 4, 'missing database: at most 4 lines in 25 s');
	my $min = 1e9;
	$min = ($fatal[$_] - $fatal[ $_ - 1 ] < $min ? $fatal[$_] - $fatal[ $_ - 1 ] : $min)
	  for 1 .. $#fatal;
	cmp_ok($min, '>=', 9.5, 'missing database: at least 10 s between two attempts');
	is(lg_sql($nodb, 'SELECT 1'), '1', 'missing database: the server works');
	my @crash = lg_crash_lines($slice);
	is(scalar(@crash), 0, 'missing database: no crash-restart') or diag join("\n", @crash);
	$nodb->stop;
}

# ---------------------------------------------------------------------------
# reload storm: 50 reloads in a row, naptime and roles changing each time
# ---------------------------------------------------------------------------
{
	my $log = lg_log_offset($node);
	my $w0 = lg_worker($node);
	my @roles = ('app', 'app, other', '*', 'app, "NoSuchRole"', 'other,app', '');
	my $sql = '';
	for my $i (1 .. 50)
	{
		my $nap = 10 + ($i * 397) % 3000;
		my $r = $roles[ $i % @roles ];
		$r =~ s/'/''/g;
		$sql .= "ALTER SYSTEM SET lambdaguard.naptime = $nap;\n"
		  . "ALTER SYSTEM SET lambdaguard.roles = '$r';\n"
		  . "SELECT pg_reload_conf();\n";
	}
	my ($ret, $out, $err) = $node->psql('postgres', $sql, on_error_stop => 1);
	is($ret, 0, 'reload storm: 50 reloads') or diag $err;
	lg_reload($node, naptime => 100, roles => 'app');
	my $w1 = lg_worker($node);
	is($w1->{pid}, $w0->{pid}, 'reload storm: the same worker lives on');
	cmp_ok($w1->{scans}, '>', $w0->{scans}, 'reload storm: the worker scans');
	is($w1->{errors}, $w0->{errors}, 'reload storm: no error counted');
	my $slice = lg_log_slice($node, $log);
	my @bad = ($slice =~ /^.*(?:ERROR|FATAL|PANIC|WARNING):.*$/mg);
	is(scalar(@bad), 0, 'reload storm: no error in the log') or diag join("\n", @bad);
	my @crash = lg_crash_lines($slice);
	is(scalar(@crash), 0, 'reload storm: no crash') or diag join("\n", @crash);

	my $s = orphan('lg_after_storm');
	my $pid = $s->pid;
	ok(lg_wait($node,
			"SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'", 10),
		'reload storm: the worker still acts');
	$s->close;
}

# ---------------------------------------------------------------------------
# the worker terminated by a superuser: it comes back (bgw_restart_time,
# 10 s).  Started before the standby tests and checked after them, so that
# the wait overlaps.
# ---------------------------------------------------------------------------
sub terminate_worker
{
	my %t = (log => lg_log_offset($node), old => lg_worker_backend($node));
	ok($t{old} =~ /^\d+$/, 'terminate worker: the worker runs');
	is($node->safe_psql('postgres', "SELECT pg_terminate_backend($t{old})"),
		't', 'terminate worker: pg_terminate_backend() succeeds');
	$t{t0} = time();
	return \%t;
}

sub worker_came_back
{
	my ($t) = @_;
	my $left = 15 - (time() - $t->{t0});
	ok(lg_wait($node, qq{
SELECT count(*) = 1 FROM pg_stat_activity
 WHERE backend_type = 'pg_lambdaguard' AND pid <> $t->{old}}, $left > 5 ? $left : 5),
		'terminate worker: a new worker within 15 s');
	# the restart interval, from the log: the old worker's last words to the
	# new worker's first
	my $text = lg_log_slice($node, $t->{log});
	my ($stop) = lg_log_times($text,
		qr/terminating background worker "pg_lambdaguard[^"]*" due to administrator command/);
	my ($start) = lg_log_times($text, $worker_started);
	my $took = defined $stop && defined $start ? $start - $stop : -1;
	ok($took >= 9.5 && $took <= 15,
		sprintf('terminate worker: restarted %.1f s later (bgw_restart_time 10 s)', $took));
	ok(lg_wait($node, qq{
SELECT w.pid = a.pid FROM lambdaguard.worker w, pg_stat_activity a
 WHERE a.backend_type = 'pg_lambdaguard'}, 5),
		'terminate worker: lambdaguard.worker shows the new pid');
	my $slice = lg_log_slice($node, $t->{log});
	like($slice, qr/terminating background worker "pg_lambdaguard[^"]*" due to administrator command/,
		'terminate worker: the worker said why it stopped');
	my @crash = lg_crash_lines($slice);
	is(scalar(@crash), 0, 'terminate worker: no crash-restart') or diag join("\n", @crash);

	my $s = orphan('lg_after_terminate');
	my $pid = $s->pid;
	ok(lg_wait($node,
			"SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'", 10),
		'terminate worker: the new worker acts');
	$s->close;
	return;
}

# ---------------------------------------------------------------------------
# a streaming standby: the worker runs during recovery and records in the
# standby history, the views work; after promotion the same worker goes on
# (t/110_standby.pl tests the standby in depth)
# ---------------------------------------------------------------------------
{
	$node->backup('b1');
	my $standby = PostgreSQL::Test::Cluster->new('standby');
	$standby->init_from_backup($node, 'b1', has_streaming => 1);
	$standby->start;
	# something to replicate: a history row written after the backup
	my $p = orphan('lg_before_standby');
	ok(lg_wait($node, "SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = " . $p->pid, 10),
		'standby: an orphan recorded on the primary');
	$p->close;
	$node->wait_for_catchup($standby);
	my $term = terminate_worker();

	is(lg_sql($standby, 'SELECT pg_is_in_recovery()'), 't', 'standby: in recovery');
	is(lg_sql($standby,
			"SELECT count(*) FROM lambdaguard.history WHERE application_name = 'lg_before_standby'"),
		'1', 'standby: history replicated and readable');
	ok(lg_wait($standby, "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_lambdaguard'", 15),
		'standby: the worker runs during recovery');
	my $worker_pid = lg_sql($standby, 'SELECT pid FROM lambdaguard.worker');

	my $idle = lg_session($standby, appname => 'lg_idle_on_standby');
	my $ipid = $idle->pid;
	$idle->query(q{SET work_mem = '9MB';});
	is(lg_sql($standby, "SELECT watched, verdict, state FROM lambdaguard.sessions WHERE pid = $ipid"),
		't|ok|idle', 'standby: lambdaguard.sessions works');
	is(lg_sql($standby, "SELECT string_agg(reason, ',') FROM lambdaguard.pinning_events WHERE pid = $ipid"),
		'set', 'standby: lambdaguard.pinning_events works');
	is(lg_sql($standby, "SELECT sum(events) FROM lambdaguard.pinning_stats WHERE usename = 'app'"),
		'1', 'standby: lambdaguard.pinning_stats works');
	is(lg_sql($standby, 'SELECT count(*) > 10 FROM lambdaguard.reasons'),
		't', 'standby: lambdaguard.reasons works');
	is(lg_sql($standby, "SELECT value FROM lambdaguard.metrics WHERE metric = 'lambdaguard_in_recovery'"),
		'1', 'standby: lambdaguard.metrics says it is in recovery');

	my $s = orphan('lg_on_standby', $standby);
	my $pid = $s->pid;
	ok(lg_wait($standby,
			"SELECT count(*) = 1 FROM lambdaguard.standby_history WHERE pid = $pid AND action = 'terminate'", 10),
		'standby: the worker terminates an orphan and records it in lambdaguard.standby_history');
	ok(lg_gone($standby, $pid), 'standby: the orphan is gone');
	is(lg_sql($standby, "SELECT count(*) FROM lambdaguard.history WHERE pid = $pid"),
		'0', 'standby: lambdaguard.history (the primary\'s) has no row of it');
	my ($ret, $out, $err) = $standby->psql('postgres', 'SELECT count(*) FROM lambdaguard.scan(false)');
	is($ret, 0, 'standby: scan(false) is carried out by the worker') or diag $err;
	is(lg_sql($standby, 'SELECT count(*) FROM lambdaguard.scan(true)'), '0', 'standby: scan(true) previews');

	worker_came_back($term);

	my $log = lg_log_offset($standby);
	$standby->promote;
	ok(lg_wait($standby, 'SELECT NOT pg_is_in_recovery()', 15), 'promoted');
	ok(lg_wait($standby,
			"SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'", 10),
		'promoted: the standby\'s record is imported into lambdaguard.history');
	is(lg_sql($standby, 'SELECT pid FROM lambdaguard.worker'), $worker_pid,
		'promoted: the same worker goes on, no restart');
	my $s2 = orphan('lg_after_promotion', $standby);
	ok(lg_wait($standby,
			"SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = ${\ $s2->pid} AND action = 'terminate'", 10),
		'promoted: the worker terminates and records an orphan in lambdaguard.history');
	my @crash = lg_crash_lines(lg_log_slice($standby, 0));
	is(scalar(@crash), 0, 'standby: no crash') or diag join("\n", @crash);
	$s->close;
	$s2->close;
	$idle->close;
	$standby->stop;
}

# ---------------------------------------------------------------------------
# fast and smart shutdown while the worker scans every 10 ms, with 30
# watched sessions from pgbench going active, idle in transaction and idle
# ---------------------------------------------------------------------------
my $tmp = PostgreSQL::Test::Utils::tempdir;
PostgreSQL::Test::Utils::append_to_file("$tmp/crowd.sql", q{
BEGIN;
SELECT pg_sleep(0.02);
\sleep 20 ms
SELECT 1;
COMMIT;
\sleep 10 ms
});

# pgbench in the background: 30 clients of the watched role
sub crowd
{
	local $ENV{PGAPPNAME} = 'lg_crowd';
	my $bench = IPC::Run::start(
		[
			'pgbench', '-n', '-c', '30', '-j', '2', '-T', '120',
			'-f', "$tmp/crowd.sql", '-h', $node->host, '-p', $node->port,
			'-U', 'app', 'postgres'
		],
		'>', "$tmp/pgbench.out", '2>', "$tmp/pgbench.err");
	ok( lg_wait($node,
			"SELECT count(*) = 30 FROM lambdaguard.sessions WHERE watched AND application_name = 'lg_crowd'", 30),
		'crowd: 30 watched pgbench sessions');
	return $bench;
}

sub scanning_fast
{
	my ($what) = @_;
	my $w0 = lg_worker($node);
	ok(lg_wait($node, "SELECT scans >= $w0->{scans} + 50 FROM lambdaguard.worker", 5),
		"$what: the worker scans every 10 ms");
}

{
	lg_reload($node, naptime => 10, idle_in_transaction_timeout => 60000);
	my $bench = crowd();
	scanning_fast('fast shutdown');

	my $log = lg_log_offset($node);
	my $t0 = time();
	ok($node->stop('fast', fail_ok => 1), 'fast shutdown: pg_ctl stop -m fast succeeds');
	my $t = time() - $t0;
	cmp_ok($t, '<', 10, sprintf('fast shutdown: done in %.1f s', $t));
	my $slice = lg_log_slice($node, $log);
	like($slice, qr/database system is shut down/, 'fast shutdown: clean shutdown');
	my @crash = lg_crash_lines($slice);
	is(scalar(@crash), 0, 'fast shutdown: no crash') or diag join("\n", @crash);
	eval { $bench->kill_kill; };
}

{
	$node->start;
	my $bench = crowd();
	scanning_fast('smart shutdown');

	my $log = lg_log_offset($node);
	my ($out, $err) = ('', '');
	my $pgctl = IPC::Run::start(
		[ 'pg_ctl', '-D', $node->data_dir, '-m', 'smart', '-t', '60', 'stop' ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(90));
	ok(lg_wait_log($node, qr/received smart shutdown request/, $log, 5),
		'smart shutdown: requested');
	# the server waits for its clients (a short wait: it must NOT stop yet)
	usleep(1_000_000);
	ok($pgctl->pumpable, 'smart shutdown: waits while clients are connected');
	ok(kill(0, $node->{_pid}), 'smart shutdown: the postmaster is still there');

	# the clients leave
	my $t0 = time();
	eval { $bench->kill_kill; };
	my $ok = eval { $pgctl->finish; 1 };
	my $t = time() - $t0;
	ok($ok && $pgctl->full_result(0) == 0, 'smart shutdown: pg_ctl stop -m smart succeeds')
	  or diag "pg_ctl: $out $err " . ($@ // '');
	cmp_ok($t, '<', 15, sprintf('smart shutdown: done %.1f s after the clients left', $t));
	$node->_update_pid(0);
	my $slice = lg_log_slice($node, $log);
	like($slice, qr/database system is shut down/, 'smart shutdown: clean shutdown');
	my @crash = lg_crash_lines($slice);
	is(scalar(@crash), 0, 'smart shutdown: no crash') or diag join("\n", @crash);
}

my @crash = lg_crash_lines(lg_log_slice($node, 0));
is(scalar(@crash), 0, 'no crash-restart in the whole run') or diag join("\n", @crash);

done_testing();
