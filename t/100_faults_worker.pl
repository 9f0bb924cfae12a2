
# Copyright (c) 2026, pg_lambdaguard developers

# The background worker when what it writes into is missing or broken:
#
# - the extension is not created yet: one LOG line, nobody touched; after
#   CREATE EXTENSION it acts and records
# - lambdaguard.history renamed while an orphan falls due: a LOG line, the
#   orphan left alone, no error and no restart; it acts and records again
#   once the table is back
# - DROP EXTENSION while the worker runs: it says once that the extension is
#   not created, acts on nobody, does not fail, and acts again after CREATE
#   EXTENSION
# - the history row cannot be written (the table locked past the worker's
#   lock_timeout, then a column missing): an ERROR, counted in
#   lambdaguard.worker and kept in last_error, and no signal without its
#   history row; the postmaster starts the worker again no sooner than 10 s
#   after each exit, never with a crash-restart of the cluster; once the
#   table is repaired the new worker purges rows older than
#   history_retention and terminates and records every orphan exactly once
# - lambdaguard.database names a database that does not exist: one FATAL
#   line per 10 s restart interval, no tight loop
#
# The worker's ERROR exit is logged by the postmaster as 'background worker
# "pg_lambdaguard" (PID n) exited with exit code 1': that one is expected;
# every other "exited with exit code", "terminated by signal" or
# "terminating any other active server processes" is a crash.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/lib";

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
	'faults_worker',
	no_extension => 1,
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

# An orphan of the watched role app: a transaction left open
sub orphan
{
	my ($name) = @_;
	my $s = lg_session($node, appname => $name);
	$s->query('BEGIN; SELECT 1;');
	return $s;
}

# Wait (at most $secs) until the log from $offset on has at least $n lines
# matching $re; returns their times
sub wait_log_lines
{
	my ($re, $n, $offset, $secs) = @_;
	my $deadline = time() + $secs;
	while (1)
	{
		my @times = lg_log_times(lg_log_slice($node, $offset), $re);
		return @times if @times >= $n || time() >= $deadline;
		usleep(100_000);
	}
}

# ---------------------------------------------------------------------------
# extension not created: one LOG line, nobody touched, nothing recorded; after
# CREATE EXTENSION the worker acts and records
# ---------------------------------------------------------------------------
{
	ok(lg_wait($node, q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_lambdaguard'}, 10),
		'no extension: the worker runs');
	my $s = orphan('lg_early');
	my $pid = $s->pid;
	# 2 s at naptime 100 ms: about 20 scans
	ok(lg_wait_idle_for($node, $pid, 2000, 10), 'no extension: orphan idle in transaction for 2 s');
	is(lg_state($node, $pid), 'idle in transaction', 'no extension: the orphan is not terminated');
	my @said = (lg_log_slice($node, 0) =~ /$not_created/g);
	is(scalar(@said), 1, 'no extension: the worker said so exactly once');
	unlike(lg_log_slice($node, 0), qr/pg_lambdaguard: terminated pid/,
		'no extension: no action logged');

	my $log = lg_log_offset($node);
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_lambdaguard');
	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid AND verdict = 'orphan' AND action = 'terminate'", 10),
		'after CREATE EXTENSION: the waiting orphan is terminated and recorded');
	my $slice = lg_log_slice($node, $log);
	like($slice, $now_exists, 'after CREATE EXTENSION: the worker says it starts recording');
	unlike($slice, $not_created, 'after CREATE EXTENSION: no more "not created" lines');
	ok(lg_gone($node, $pid), 'after CREATE EXTENSION: orphan backend gone');
	$s->close;
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
# DROP EXTENSION while the worker runs (DROP TABLE lambdaguard.history
# CASCADE is the same case: it reaches scan(), which returns SETOF
# lambdaguard.history, and with it the extension): the worker says so once,
# acts on nobody, does not fail, and records again after CREATE EXTENSION
# ---------------------------------------------------------------------------
{
	my $log = lg_log_offset($node);
	my $w0 = lg_worker($node);
	$node->safe_psql('postgres', 'DROP EXTENSION pg_lambdaguard');
	my $s = orphan('lg_dropped');
	my $pid = $s->pid;
	ok(lg_wait_idle_for($node, $pid, 2000, 10), 'dropped: orphan idle in transaction for 2 s');
	is(lg_state($node, $pid), 'idle in transaction', 'dropped: the orphan is not terminated');
	my @said = (lg_log_slice($node, $log) =~ /$not_created/g);
	is(scalar(@said), 1, 'dropped: the worker says once that the extension is not created');
	unlike(lg_log_slice($node, $log), qr/ERROR|exited with exit code/, 'dropped: the worker did not fail');
	is(lg_worker_backend($node), $w0->{pid}, 'dropped: the same worker runs on');

	$node->safe_psql('postgres', 'CREATE EXTENSION pg_lambdaguard');
	ok(lg_wait($node, "SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'", 10),
		'dropped, created again: the orphan is terminated and recorded');
	ok(lg_wait_log($node, $now_exists, $log, 5),
		'dropped, created again: the worker says it records again');
	is(lg_worker($node)->{pid}, $w0->{pid}, 'dropped, created again: the worker did not restart');
	my @crash = lg_crash_lines(lg_log_slice($node, $log));
	is(scalar(@crash), 0, 'dropped: no crash') or diag join("\n", @crash);
	$s->close;
}

# ---------------------------------------------------------------------------
# the history row cannot be written.  First the table is locked while an
# orphan falls due: the worker's INSERT waits for its lock_timeout (5 s),
# the worker ERRORs and exits.  While it is down, the locking transaction
# renames a column and commits, and a second orphan falls due: the next
# worker (10 s later) ERRORs on the missing column.  While that one is down,
# the column is put back and two rows are added, one past history_retention
# (7 days by default) and one within it.  The third worker purges the old
# row at its first scan and terminates and records both orphans.  Since the
# row is written before the signal, neither orphan is signalled before.
# ---------------------------------------------------------------------------
{
	my $log = lg_log_offset($node);
	my $w0 = lg_worker($node);
	my $locker = lg_session($node, user => 'postgres', appname => 'lg_locker');
	my (undef, $lerr) = $locker->query('BEGIN; LOCK TABLE lambdaguard.history IN ACCESS EXCLUSIVE MODE;');
	is($lerr, '', 'history locked by a superuser session');

	my $c = orphan('lg_during_lock');
	my $cpid = $c->pid;
	# 1 s to fall due, then 5 s of lock_timeout
	ok(lg_wait($node, "SELECT errors > $w0->{errors} FROM lambdaguard.worker", 15),
		'history locked: lambdaguard.worker.errors increments');
	my $w1 = lg_worker($node);
	like($w1->{last_error} // '', qr/lock timeout/, 'history locked: last_error says why')
	  or diag explain $w1;
	my @exits = wait_log_lines($worker_exit, 1, $log, 5);
	is(scalar(@exits), 1, 'history locked: the worker exited');
	like(lg_log_slice($node, $log),
		qr/background worker "pg_lambdaguard[^"]*" \(PID $w0->{pid}\) exited with exit code 1/,
		'history locked: the worker exited with code 1');
	is(lg_state($node, $cpid), 'idle in transaction',
		'history locked: no signal without its row, the orphan is still there');

	my (undef, $rerr) = $locker->query(
		'ALTER TABLE lambdaguard.history RENAME COLUMN detail TO detail_gone; COMMIT;');
	is($rerr, '', 'while the worker is down: a history column renamed, the lock released');
	my $d = orphan('lg_while_down');
	my $dpid = $d->pid;

	ok(lg_wait($node, "SELECT errors > $w1->{errors} FROM lambdaguard.worker", 20),
		'column renamed: the restarted worker fails in turn, the error count goes on from before the restart');
	my $w2 = lg_worker($node);
	like($w2->{last_error} // '', qr/detail/, 'column renamed: last_error says why')
	  or diag explain $w2;
	@exits = wait_log_lines($worker_exit, 2, $log, 5);
	is(scalar(@exits), 2, 'column renamed: the restarted worker exited');
	is(lg_state($node, $cpid) . '/' . lg_state($node, $dpid),
		'idle in transaction/idle in transaction',
		'column renamed: both orphans still there');
	unlike(lg_log_slice($node, $log), qr/pg_lambdaguard: terminated pid ($cpid|$dpid) /,
		'column renamed: no termination logged');

	$node->safe_psql('postgres', q{
ALTER TABLE lambdaguard.history RENAME COLUMN detail_gone TO detail;
INSERT INTO lambdaguard.history (at, pid, verdict, action)
VALUES (now() - interval '8 days', -8, 'orphan', 'terminate'),
       (now() - interval '6 days', -6, 'orphan', 'terminate')});
	ok(lg_wait($node,
			"SELECT count(*) = 2 FROM lambdaguard.history WHERE pid IN ($cpid, $dpid) AND action = 'terminate'", 25),
		'repaired: the restarted worker terminates and records both orphans');
	is(lg_sql($node, "SELECT count(*) FROM lambdaguard.history WHERE pid IN ($cpid, $dpid)"), '2',
		'repaired: no signal went unrecorded, one terminate row per orphan');
	ok(lg_gone($node, $cpid, 5) && lg_gone($node, $dpid, 5),
		'repaired: both orphans are gone');
	ok(lg_wait($node, 'SELECT NOT EXISTS (SELECT 1 FROM lambdaguard.history WHERE pid = -8)', 10),
		'history_retention: the restarted worker deletes rows older than 7 days');
	is(lg_sql($node, 'SELECT count(*) FROM lambdaguard.history WHERE pid = -6'), '1',
		'history_retention: a 6-day-old row stays');

	ok(lg_wait($node, qq{
SELECT w.pid <> $w0->{pid} FROM lambdaguard.worker w
  JOIN pg_stat_activity a ON a.pid = w.pid AND a.backend_type = 'pg_lambdaguard'}, 5),
		'repaired: lambdaguard.worker shows the running worker, with a new pid');
	my $w3 = lg_worker($node);
	is($w3->{errors}, $w2->{errors}, 'repaired: no more errors');
	# (lambdaguard.worker shows no pid while no worker runs)
	ok($w3->{started_at} ne $w2->{started_at} && $w2->{started_at} ne $w1->{started_at},
		'a new worker process after each error')
	  or diag explain [ $w1, $w2, $w3 ];

	my $slice = lg_log_slice($node, $log);
	like($slice, qr/ERROR:[^\n]*lock timeout/, 'history locked: the ERROR is logged');
	like($slice, qr/(ERROR|FATAL):[^\n]*column "detail" of relation "history" does not exist/,
		'column renamed: the ERROR is logged');

	# restart interval: every exit is followed by a start 10 s later, never
	# sooner
	@exits = lg_log_times($slice, $worker_exit);
	my @starts = lg_log_times($slice, $worker_started);
	is(scalar(@exits), 2, 'two error exits');
	is(scalar(@starts), 2, 'two restarts');
	for my $i (0 .. $#exits)
	{
		my ($next) = grep { $_ >= $exits[$i] } @starts;
		ok(defined $next && $next - $exits[$i] >= 9.5,
			"restart $i came no sooner than 10 s after the exit")
		  or diag sprintf('exit at %.3f, next start %s', $exits[$i],
			defined $next ? sprintf('%.3f s later', $next - $exits[$i]) : 'none');
	}
	my @crash = lg_crash_lines($slice);
	is(scalar(@crash), 0, 'worker errors: no crash-restart') or diag join("\n", @crash);
	unlike($slice, qr/terminating any other active server processes/,
		'worker errors: no backend was reset');
	is(lg_sql($node, 'SELECT 1'), '1', 'worker errors: the server still answers');
	$_->close for ($c, $d, $locker);
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

my @crash = lg_crash_lines(lg_log_slice($node, 0));
is(scalar(@crash), 0, 'no crash-restart in the whole run') or diag join("\n", @crash);

$node->stop;
done_testing();
