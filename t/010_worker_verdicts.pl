
# Copyright (c) 2026, pg_lambdaguard developers

# The background worker's verdicts, each with its own timeout: orphan,
# orphan_aborted, orphan_blocking, pinned_idle, overdue_query (cancel, then
# terminate); what the client sees; the history rows and LOG lines; and the
# worker's timing whatever naptime is.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/lib";

use LgTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = lg_node(
	'verdicts', conf => q{
lambdaguard.idle_in_transaction_timeout = 1500
lambdaguard.aborted_transaction_timeout = 1000
lambdaguard.blocking_timeout = 1000
lambdaguard.pinned_idle_timeout = 0
lambdaguard.active_timeout = 0
});

my $terminated_re = qr/FATAL:\s+57P01: terminating connection due to administrator command/;

# The worker runs, as a pg_lambdaguard background worker, in database postgres
ok( lg_wait(
		$node, q{
SELECT w.pid = a.pid
  FROM lambdaguard.worker w
  JOIN pg_stat_activity a ON a.pid = w.pid
 WHERE a.backend_type = 'pg_lambdaguard' AND a.datname = 'postgres'}, 15),
	'worker is running in database postgres');

# ---------------------------------------------------------------------------
# orphan: idle in transaction >= idle_in_transaction_timeout, over TCP
# ---------------------------------------------------------------------------
{
	my $w0 = lg_worker($node);
	my $log = lg_log_offset($node);
	my $s = lg_session($node, tcp => 1, appname => 'lg_orphan');
	my $pid = $s->pid;
	my ($out, $err) = $s->query('BEGIN; UPDATE t SET v = v + 1 WHERE id = 1;');
	is($err, '', 'orphan: transaction opened and a row updated');
	is( lg_sql($node, "SELECT verdict || ' ' || (action_at - state_change)::text FROM lambdaguard.sessions WHERE pid = $pid AND watched"),
		'ok 00:00:01.5',
		'orphan: before the timeout the sessions view says ok, action_at = state_change + 1.5 s');

	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid", 10),
		'orphan: history row written');
	my $rows = lg_history($node, $pid);
	is(scalar(@$rows), 1, 'orphan: exactly one history row');
	my $h = $rows->[0] // {};
	is($h->{verdict}, 'orphan', 'orphan: verdict');
	is($h->{action}, 'terminate', 'orphan: action');
	is($h->{usename}, 'app', 'orphan: usename');
	is($h->{datname}, 'postgres', 'orphan: datname');
	is($h->{application_name}, 'lg_orphan', 'orphan: application_name');
	is($h->{addr}, '127.0.0.1', 'orphan: client_addr is the TCP client');
	is($h->{state}, 'idle in transaction', 'orphan: state');
	like($h->{query} // '', qr/UPDATE t SET v = v \+ 1 WHERE id = 1/, 'orphan: last statement recorded');
	ok(defined $h->{xact_start} && defined $h->{backend_start},
		'orphan: xact_start and backend_start recorded');
	cmp_ok($h->{locks_held} // 0, '>', 0, 'orphan: locks_held > 0 after an UPDATE');
	is_deeply($h->{blocked_pids} // [], [], 'orphan: nobody blocked');
	cmp_ok($h->{elapsed} // 0, '>=', 1.5, 'orphan: acted after idle_in_transaction_timeout');
	cmp_ok($h->{elapsed} // 99, '<', 2.5, 'orphan: acted promptly after the timeout');

	my ($cerr, $exited) = $s->client_view;
	like($cerr, $terminated_re, 'orphan: client gets 57P01 terminating connection');
	ok($exited, 'orphan: client connection is closed');
	ok(lg_gone($node, $pid), 'orphan: backend is gone');
	is(lg_sql($node, 'SELECT v FROM t WHERE id = 1'), '0', 'orphan: its update was rolled back');

	like(
		lg_log_slice($node, $log),
		qr/LOG:\s+pg_lambdaguard: terminated pid $pid \(role app, database postgres, application "lg_orphan", client 127\.0\.0\.1\): verdict orphan,[^\n]*[1-9]\d* locks held[^\n]*0 sessions blocked/,
		'orphan: LOG line names pid, role, database, application, client, verdict, locks, blocked');

	my $w1 = lg_worker($node);
	is($w1->{terminated} - $w0->{terminated}, 1, 'orphan: worker.terminated + 1');
	is($w1->{orphans_found} - $w0->{orphans_found}, 1, 'orphan: worker.orphans_found + 1');
	$s->close;
}

# ---------------------------------------------------------------------------
# orphan_aborted: idle in transaction (aborted) >= aborted_transaction_timeout
# (1000 ms, shorter than the 1500 ms idle_in_transaction_timeout), Unix socket
# ---------------------------------------------------------------------------
{
	my $log = lg_log_offset($node);
	my $s = lg_session($node, appname => 'lg_aborted');
	my $pid = $s->pid;
	my ($out, $err) = $s->query('BEGIN; SELECT 1/0;');
	like($err, qr/22012/, 'orphan_aborted: the transaction failed');
	is(lg_state($node, $pid), 'idle in transaction (aborted)', 'orphan_aborted: state');

	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid", 10),
		'orphan_aborted: history row written');
	my $h = lg_history($node, $pid)->[0] // {};
	is($h->{verdict}, 'orphan_aborted', 'orphan_aborted: verdict');
	is($h->{action}, 'terminate', 'orphan_aborted: action');
	is($h->{state}, 'idle in transaction (aborted)', 'orphan_aborted: state recorded');
	is($h->{addr}, undef, 'orphan_aborted: client_addr is NULL on the Unix socket');
	cmp_ok($h->{elapsed} // 0, '>=', 1.0, 'orphan_aborted: acted after aborted_transaction_timeout');
	cmp_ok($h->{elapsed} // 99, '<', 1.45,
		'orphan_aborted: acted before idle_in_transaction_timeout would have');

	my ($cerr, $exited) = $s->client_view;
	like($cerr, $terminated_re, 'orphan_aborted: client gets 57P01');
	like(
		lg_log_slice($node, $log),
		qr/pg_lambdaguard: terminated pid $pid \(role app, database postgres, application "lg_aborted", client local\): verdict orphan_aborted,/,
		'orphan_aborted: LOG line with client local');
	$s->close;
}

# ---------------------------------------------------------------------------
# orphan_blocking: idle in transaction, another session waits on its lock,
# >= blocking_timeout (1000 ms) while idle_in_transaction_timeout is 20 s
# ---------------------------------------------------------------------------
{
	lg_reload($node, idle_in_transaction_timeout => 20000);
	my $log = lg_log_offset($node);
	my $s = lg_session($node, appname => 'lg_blocker');
	my $pid = $s->pid;
	my $v0 = lg_sql($node, 'SELECT v FROM t WHERE id = 2');
	my ($out, $err) = $s->query('BEGIN; UPDATE t SET v = v + 1 WHERE id = 2;');
	is($err, '', 'orphan_blocking: row locked');

	# the waiter is a superuser session: never watched
	my $waiter = lg_session($node, user => 'postgres', appname => 'lg_waiter');
	my $wpid = $waiter->pid;
	$waiter->send('UPDATE t SET v = v + 10 WHERE id = 2');
	ok(lg_wait($node,
		"SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $wpid", 5),
		'orphan_blocking: the waiter waits on the lock');

	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid", 10),
		'orphan_blocking: history row written');
	my $h = lg_history($node, $pid)->[0] // {};
	is($h->{verdict}, 'orphan_blocking', 'orphan_blocking: verdict');
	is($h->{action}, 'terminate', 'orphan_blocking: action');
	ok((grep { $_ == $wpid } @{ $h->{blocked_pids} // [] }),
		'orphan_blocking: blocked_pids contains the waiter')
	  or diag explain $h;
	cmp_ok($h->{locks_held} // 0, '>', 0, 'orphan_blocking: locks_held > 0');
	cmp_ok($h->{elapsed} // 0, '>=', 1.0, 'orphan_blocking: acted after blocking_timeout');
	cmp_ok($h->{elapsed} // 99, '<', 3.0,
		'orphan_blocking: acted long before idle_in_transaction_timeout');

	my ($wout, $werr, $wdone) = $waiter->result(10);
	ok($wdone && $werr eq '', 'orphan_blocking: the waiter got its lock and finished');
	is(lg_sql($node, 'SELECT v FROM t WHERE id = 2'), $v0 + 10,
		'orphan_blocking: only the waiter\'s update is committed');
	my ($cerr) = $s->client_view;
	like($cerr, $terminated_re, 'orphan_blocking: client gets 57P01');
	like(
		lg_log_slice($node, $log),
		qr/pg_lambdaguard: terminated pid $pid \(role app, database postgres, application "lg_blocker", client local\): verdict orphan_blocking,[^\n]*1 sessions? blocked/,
		'orphan_blocking: LOG line counts one blocked session');
	$s->close;
	$waiter->close;

	# a waiter that comes after the orphan has been idle past blocking_timeout:
	# the orphan is terminated as soon as someone waits on it
	my $late = lg_session($node, appname => 'lg_late_blocker');
	my $lpid = $late->pid;
	$late->query('BEGIN; UPDATE t SET v = v + 1 WHERE id = 4;');
	ok(lg_wait_idle_for($node, $lpid, 1500, 10), 'late waiter: orphan idle past blocking_timeout');
	is(scalar(@{ lg_history($node, $lpid) }), 0, 'late waiter: nobody waits yet, nothing done');
	my $waiter2 = lg_session($node, user => 'postgres', appname => 'lg_waiter2');
	my $w2pid = $waiter2->pid;
	$waiter2->send('UPDATE t SET v = v + 10 WHERE id = 4');
	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $lpid", 5),
		'late waiter: orphan terminated once someone waits on it');
	my $lh = lg_history($node, $lpid)->[0] // {};
	is($lh->{verdict}, 'orphan_blocking', 'late waiter: verdict orphan_blocking');
	ok((grep { $_ == $w2pid } @{ $lh->{blocked_pids} // [] }), 'late waiter: blocked_pids has the waiter');
	my (undef, $w2err, $w2done) = $waiter2->result(10);
	ok($w2done && $w2err eq '', 'late waiter: the waiter finished');
	$late->close;
	$waiter2->close;
	lg_reload($node, idle_in_transaction_timeout => 1500);
}

# ---------------------------------------------------------------------------
# pinned_idle: idle after SET (set) or PREPARE (prepared_statement), >= 1000 ms;
# an idle session that is not pinned stays
# ---------------------------------------------------------------------------
{
	lg_reload($node, pinned_idle_timeout => 1000);
	my $log = lg_log_offset($node);
	my $plain = lg_session($node, appname => 'lg_plain');
	$plain->query('SELECT 1');
	my $p_set = lg_session($node, appname => 'lg_pin_set');
	my (undef, $e1) = $p_set->query('SET search_path = public;');
	my $p_prep = lg_session($node, appname => 'lg_pin_prepare');
	my (undef, $e2) = $p_prep->query('PREPARE q AS SELECT 1;');
	is($e1 . $e2, '', 'pinned_idle: SET and PREPARE ran');

	foreach my $case ([ $p_set, 'set' ], [ $p_prep, 'prepared_statement' ])
	{
		my ($s, $reason) = @$case;
		my $pid = $s->pid;
		ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid", 10),
			"pinned_idle ($reason): history row written");
		my $h = lg_history($node, $pid)->[0] // {};
		is($h->{verdict}, 'pinned_idle', "pinned_idle ($reason): verdict");
		is($h->{action}, 'terminate', "pinned_idle ($reason): action");
		is($h->{state}, 'idle', "pinned_idle ($reason): state");
		ok((grep { $_ eq $reason } @{ $h->{pin_reasons} // [] }),
			"pinned_idle ($reason): pin_reasons has $reason")
		  or diag explain $h;
		cmp_ok($h->{elapsed} // 0, '>=', 1.0, "pinned_idle ($reason): after pinned_idle_timeout");
		cmp_ok($h->{elapsed} // 99, '<', 2.0, "pinned_idle ($reason): promptly");
		my ($cerr) = $s->client_view;
		like($cerr, $terminated_re, "pinned_idle ($reason): client gets 57P01");
		$s->close;
	}
	like(
		lg_log_slice($node, $log),
		qr/pg_lambdaguard: terminated pid ${\ $p_set->pid} \(role app, database postgres, application "lg_pin_set", client local\): verdict pinned_idle,/,
		'pinned_idle: LOG line');
	lg_assert_untouched($node, $plain, 1000, 'pinned_idle: unpinned idle session');
	$plain->close;
	lg_reload($node, pinned_idle_timeout => 0);
}

# ---------------------------------------------------------------------------
# overdue_query: active >= active_timeout (1000 ms) is cancelled (57014) and
# the session stays; a statement that survives the cancel is terminated one
# more active_timeout later
# ---------------------------------------------------------------------------
{
	lg_reload($node, active_timeout => 1000);
	my $w0 = lg_worker($node);
	my $log = lg_log_offset($node);

	my $s = lg_session($node, appname => 'lg_slow');
	my $pid = $s->pid;
	my ($out, $err, $done) = $s->query('SELECT pg_sleep(30)', 15);
	ok($done, 'overdue_query: pg_sleep(30) returned early');
	like($err, qr/ERROR:\s+57014: canceling statement due to user request/,
		'overdue_query: client gets 57014');
	my $h = lg_history($node, $pid)->[0] // {};
	is($h->{verdict}, 'overdue_query', 'overdue_query: verdict');
	is($h->{action}, 'cancel', 'overdue_query: action cancel');
	is($h->{state}, 'active', 'overdue_query: state active');
	like($h->{query} // '', qr/pg_sleep\(30\)/, 'overdue_query: query text recorded');
	cmp_ok($h->{elapsed} // 0, '>=', 1.0, 'overdue_query: cancelled after active_timeout');
	cmp_ok($h->{elapsed} // 99, '<', 2.0, 'overdue_query: cancelled before twice active_timeout');
	ok($s->ping, 'overdue_query: the session survives a cancel');
	is(scalar(@{ lg_history($node, $pid) }), 1, 'overdue_query: one row for one cancel');
	like(
		lg_log_slice($node, $log),
		qr/pg_lambdaguard: cancelled the statement of pid $pid \(role app, database postgres, application "lg_slow", client local\): verdict overdue_query,/,
		'overdue_query: LOG line for the cancel');
	is(lg_worker($node)->{cancelled} - $w0->{cancelled}, 1, 'overdue_query: worker.cancelled + 1');
	$s->close;

	# a statement that catches the cancel and keeps going
	$log = lg_log_offset($node);
	my $t = lg_session($node, appname => 'lg_stubborn');
	my $tpid = $t->pid;
	$t->send(q{DO $$
BEGIN
  LOOP
    BEGIN
      PERFORM pg_sleep(30);
    EXCEPTION WHEN query_canceled THEN
      RAISE NOTICE 'survived a cancel';
    END;
  END LOOP;
END
$$;});
	my ($tout, $terr, $tdone) = $t->result(15);
	like($terr, qr/survived a cancel/, 'overdue_query: the statement survived the cancel');
	like($terr, $terminated_re, 'overdue_query: then its client gets 57P01');
	my $rows = lg_history($node, $tpid);
	is_deeply([ map { "$_->{verdict}/$_->{action}" } @$rows ],
		[ 'overdue_query/cancel', 'overdue_query/terminate' ],
		'overdue_query: history has the cancel, then the terminate');
	my $term = $rows->[1] // {};
	cmp_ok($term->{elapsed} // 0, '>=', 2.0, 'overdue_query: terminated after twice active_timeout');
	cmp_ok($term->{elapsed} // 99, '<', 3.0, 'overdue_query: terminated promptly');
	ok(lg_gone($node, $tpid), 'overdue_query: backend is gone');
	like(
		lg_log_slice($node, $log),
		qr/pg_lambdaguard: terminated pid $tpid \([^\n]*\): verdict overdue_query,/,
		'overdue_query: LOG line for the terminate');
	$t->close;
	lg_reload($node, active_timeout => 0);
}

# ---------------------------------------------------------------------------
# timing: with naptime 10 s, an orphan is terminated within
# idle_in_transaction_timeout + 100 ms of going idle in transaction, even if
# it starts just after a scan
# ---------------------------------------------------------------------------
{
	lg_reload($node, naptime => 10000, -nowait => 1);
	# the reload wakes the worker, which scans and then sleeps: once no scan
	# has happened for 250 ms (at naptime 100 ms it scanned every 100 ms),
	# it is in a long sleep; open the orphan in the middle of it
	ok(lg_wait($node, "SELECT clock_timestamp() - last_scan_at > interval '250 ms' FROM lambdaguard.worker", 5),
		'timing: the worker sleeps longer than the old naptime');
	my $s = lg_session($node, appname => 'lg_precise');
	my $pid = $s->pid;
	$s->query('BEGIN; SELECT 1;');
	lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid", 15);
	my $h = lg_history($node, $pid)->[0] // {};
	is($h->{verdict}, 'orphan', 'timing: orphan found with naptime 10 s');
	ok(defined $h->{elapsed} && $h->{elapsed} >= 1.5 && $h->{elapsed} <= 1.6,
		'timing: at - state_since between 1.5 s and 1.6 s with naptime 10 s')
	  or diag 'at - state_since = ' . ($h->{elapsed} // 'none');
	$s->close;
	lg_reload($node, naptime => 100);
}

# the server never crash-restarted
my $all = lg_log_slice($node, 0);
unlike($all, qr/terminated by signal|was terminated|terminating any other active server processes/,
	'no backend or worker crashed');

$node->stop;
done_testing();
