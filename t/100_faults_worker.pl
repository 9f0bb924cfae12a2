
# Copyright (c) 2026, pg_lambdaguard developers

# The background worker when things go wrong: the extension is not created
# yet, a reload brings bad values, the history table is locked so that the
# worker errors out (it must restart, not crash the server).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/lib";

use LgTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = lg_node(
	'faults',
	no_extension => 1,
	conf => q{
lambdaguard.idle_in_transaction_timeout = 1000
lambdaguard.blocking_timeout = 0
});

my $not_created =
  qr/pg_lambdaguard: the extension is not created in database "postgres"/;

# ---------------------------------------------------------------------------
# extension not created: one LOG line, nobody touched, nothing recorded; after
# CREATE EXTENSION the worker acts and records
# ---------------------------------------------------------------------------
{
	ok(lg_wait($node, q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_lambdaguard'}, 10),
		'no extension: the worker runs');
	my $s = lg_session($node, appname => 'lg_early');
	my $pid = $s->pid;
	$s->query('BEGIN; SELECT 1;');
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
	like($slice, qr/pg_lambdaguard: the extension now exists in database "postgres"/,
		'after CREATE EXTENSION: the worker says it starts recording');
	unlike($slice, $not_created, 'after CREATE EXTENSION: no more "not created" lines');
	ok(lg_gone($node, $pid), 'after CREATE EXTENSION: orphan backend gone');
	$s->close;
}

# ---------------------------------------------------------------------------
# reload with bad values: a LOG line names the setting, the old value stays
# ---------------------------------------------------------------------------
{
	$node->append_conf('postgresql.conf',
		"lambdaguard.client_addresses = '127.0.0.1/32, local'\nlambdaguard.naptime = 200\n");
	$node->reload;
	ok(lg_wait($node, q{SELECT current_setting('lambdaguard.client_addresses') = '127.0.0.1/32, local' AND current_setting('lambdaguard.naptime') = '200ms'}, 10),
		'good values reloaded');

	my $log = lg_log_offset($node);
	$node->append_conf('postgresql.conf',
		"lambdaguard.client_addresses = '127.0.0.1/32, 10.1.2.0/33'\nlambdaguard.naptime = 5\nlambdaguard.roles = 'app,'\n");
	$node->reload;
	my $ok = 0;
	eval {
		$node->wait_for_log(qr/lambdaguard\.naptime/, $log);
		$ok = 1;
	};
	my $slice = lg_log_slice($node, $log);
	ok($ok, 'bad values: reload logged');
	like($slice, qr/LOG:[^\n]*"lambdaguard\.client_addresses"[^\n]*10\.1\.2\.0\/33/,
		'bad values: LOG line names client_addresses and the bad CIDR');
	like($slice, qr/LOG:[^\n]*5[^\n]*"lambdaguard\.naptime"|LOG:[^\n]*"lambdaguard\.naptime"[^\n]*5/,
		'bad values: LOG line names naptime and its bad value');
	like($slice, qr/LOG:[^\n]*"lambdaguard\.roles"/,
		'bad values: LOG line names roles (empty element)');
	is(lg_sql($node, 'SHOW lambdaguard.client_addresses'), '127.0.0.1/32, local',
		'bad values: client_addresses keeps its old value');
	is(lg_sql($node, 'SHOW lambdaguard.naptime'), '200ms', 'bad values: naptime keeps its old value');
	is(lg_sql($node, 'SHOW lambdaguard.roles'), 'app', 'bad values: roles keeps its old value');

	# the worker still acts with the old values: a Unix-socket orphan matches 'local'
	my $s = lg_session($node, appname => 'lg_after_bad_reload');
	my $pid = $s->pid;
	$s->query('BEGIN; SELECT 1;');
	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'", 10),
		'bad values: the worker keeps working with the old values');
	$s->close;

	$node->append_conf('postgresql.conf',
		"lambdaguard.client_addresses = ''\nlambdaguard.naptime = 100\nlambdaguard.roles = 'app'\n");
	$node->reload;
	ok(lg_wait($node, q{SELECT current_setting('lambdaguard.naptime') = '100ms'}, 10),
		'good values restored');
}

# ---------------------------------------------------------------------------
# an ERROR in the worker: the history table is locked while an orphan falls
# due; the worker hits its lock_timeout, counts the error, exits, and the
# postmaster starts it again (no crash-restart); it records again once the
# lock is gone
# ---------------------------------------------------------------------------
{
	my $log = lg_log_offset($node);
	my $w0 = lg_worker($node);
	my $locker = lg_session($node, user => 'postgres', appname => 'lg_locker');
	my (undef, $lerr) = $locker->query('BEGIN; LOCK TABLE lambdaguard.history IN ACCESS EXCLUSIVE MODE;');
	is($lerr, '', 'worker error: history locked by a superuser session');

	my $s = lg_session($node, appname => 'lg_during_lock');
	my $pid = $s->pid;
	$s->query('BEGIN; SELECT 1;');

	# 1 s to fall due, then 5 s of lock_timeout
	ok(lg_wait($node, "SELECT errors > $w0->{errors} FROM lambdaguard.worker", 15),
		'worker error: lambdaguard.worker.errors increments');
	my $w1 = lg_worker($node);
	like($w1->{last_error} // '', qr/lock timeout/, 'worker error: last_error says why')
	  or diag explain $w1;
	is(lg_sql($node, "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid"), '1',
		'worker error: no signal without its row: the orphan is not signalled while history is locked');
	$locker->query('COMMIT;');

	# before the worker restarts: one row past history_retention (7 days by
	# default), one within it; the new worker purges at its first scan
	$node->safe_psql('postgres', q{
INSERT INTO lambdaguard.history (at, pid, verdict, action)
VALUES (now() - interval '8 days', -8, 'orphan', 'terminate'),
       (now() - interval '6 days', -6, 'orphan', 'terminate')});

	# restart after about 10 s, with a new pid
	ok(lg_wait($node, qq{
SELECT w.pid <> $w0->{pid} FROM lambdaguard.worker w
  JOIN pg_stat_activity a ON a.pid = w.pid AND a.backend_type = 'pg_lambdaguard'}, 25),
		'worker error: the worker runs again with a new pid');
	my $w2 = lg_worker($node);
	cmp_ok($w2->{errors}, '>=', $w1->{errors}, 'worker error: the error count survives the restart');

	ok(lg_wait($node, 'SELECT NOT EXISTS (SELECT 1 FROM lambdaguard.history WHERE pid = -8)', 10),
		'history_retention: the restarted worker deletes rows older than 7 days');
	is(lg_sql($node, 'SELECT count(*) FROM lambdaguard.history WHERE pid = -6'), '1',
		'history_retention: a 6-day-old row stays');

	# the row is written before the signal: while it could not be written,
	# the orphan was not signalled; the restarted worker signals and records it
	ok(lg_wait($node, "SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'", 15),
		'worker error: no signal went unrecorded: the orphan has exactly one terminate row');
	ok(lg_gone($node, $pid, 5), 'worker error: the orphan is gone once it is recorded');

	my $s2 = lg_session($node, appname => 'lg_after_lock');
	my $pid2 = $s2->pid;
	$s2->query('BEGIN; SELECT 1;');
	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid2 AND action = 'terminate'", 10),
		'worker error: the restarted worker records again');

	my $slice = lg_log_slice($node, $log);
	like($slice, qr/ERROR:[^\n]*lock timeout/, 'worker error: the ERROR is logged');
	like($slice, qr/background worker "pg_lambdaguard[^"]*" \(PID $w0->{pid}\) exited with exit code 1/,
		'worker error: the worker exited with code 1');
	like($slice, qr/pg_lambdaguard: worker started in database "postgres"/,
		'worker error: the worker started again');
	unlike($slice, qr/terminated by signal|was terminated|terminating any other active server processes/,
		'worker error: no crash-restart of the server');
	is(lg_sql($node, 'SELECT 1'), '1', 'worker error: the server still answers');
	$s->close;
	$s2->close;
	$locker->close;
}

# ---------------------------------------------------------------------------
# DROP EXTENSION while the worker runs: it says so once more, acts on nobody,
# and starts again after CREATE EXTENSION
# ---------------------------------------------------------------------------
{
	my $log = lg_log_offset($node);
	$node->safe_psql('postgres', 'DROP EXTENSION pg_lambdaguard');
	my $s = lg_session($node, appname => 'lg_dropped');
	my $pid = $s->pid;
	$s->query('BEGIN; SELECT 1;');
	ok(lg_wait_idle_for($node, $pid, 2000, 10), 'dropped: orphan idle in transaction for 2 s');
	is(lg_state($node, $pid), 'idle in transaction', 'dropped: the orphan is not terminated');
	my @said = (lg_log_slice($node, $log) =~ /$not_created/g);
	is(scalar(@said), 1, 'dropped: the worker says once that the extension is not created');
	unlike(lg_log_slice($node, $log), qr/ERROR|exited with exit code/, 'dropped: the worker did not fail');
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_lambdaguard');
	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'", 10),
		'dropped, created again: the orphan is terminated and recorded');
	$s->close;
}

my $all = lg_log_slice($node, 0);
unlike($all, qr/terminated by signal|was terminated|terminating any other active server processes/,
	'no backend or worker crashed');

$node->stop;
done_testing();
