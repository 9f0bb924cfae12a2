
# Copyright (c) 2026, pg_lambdaguard developers

# deadline_passed: a client declares in a sqlcommenter comment when it will
# be gone (lambdaguard_deadline); its transaction still open at deadline +
# lambdaguard.deadline_grace has lost its caller.  Idle in transaction:
# terminated; a running statement: cancelled, then terminated if it is still
# in that transaction one more grace later.  The worker wakes for the
# deadline although its naptime is long, and the configured timeouts (60 s
# here) still hold for everyone else.  Sessions that end their transaction
# in time, that are not watched, or whose only comment came with a named
# statement prepared by an earlier invocation are never touched.  A
# pinned_idle row names the invocation that pinned the session first.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/lib";

use LgTest;
use LgNodeClient;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = lg_node(
	'deadline', conf => q{
lambdaguard.naptime = 10000
lambdaguard.idle_in_transaction_timeout = 60000
lambdaguard.aborted_transaction_timeout = 60000
lambdaguard.blocking_timeout = 0
lambdaguard.deadline_grace = 1000
});

ok(lg_wait($node, 'SELECT pid IS NOT NULL AND scans > 0 FROM lambdaguard.worker', 30),
	'the worker runs (naptime 10 s)');

# The server's clock, in epoch milliseconds, plus $ms
sub server_ms
{
	my ($ms) = @_;
	return lg_sql($node,
		"SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $ms");
}

my $tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

# ---------------------------------------------------------------------------
# idle in transaction past its deadline: terminated at deadline + grace
# ---------------------------------------------------------------------------
{
	my $s = lg_session($node, tcp => 1, appname => 'lg_deadline_idle');
	my $pid = $s->pid;
	my $d = server_ms(2000);
	my (undef, $err) = $s->query(
		"BEGIN; UPDATE t SET v = v + 1 WHERE id = 1 /*lambdaguard_deadline='$d',request_id='req-idle',traceparent='$tp'*/;");
	is($err, '', 'idle: the commented statement ran');
	is( lg_sql($node,
			"SELECT deadline = to_timestamp($d / 1000.0) AND action_at = deadline + interval '1 s' FROM lambdaguard.sessions WHERE pid = $pid"),
		't', 'idle: sessions shows the deadline, and action_at = deadline + grace');
	is(lg_sql($node, "SELECT client_context->>'request_id' FROM lambdaguard.sessions WHERE pid = $pid"),
		'req-idle', 'idle: sessions shows the request id of its transaction');
	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid", 10),
		'idle: a history row is written');
	ok(lg_gone($node, $pid), 'idle: the session is gone');
	my $h = lg_history($node, $pid)->[0] // {};
	is($h->{verdict}, 'deadline_passed', 'idle: verdict deadline_passed');
	is($h->{action}, 'terminate', 'idle: action terminate');
	my $late = lg_sql($node,
		"SELECT extract(epoch FROM at - to_timestamp($d / 1000.0) - interval '1 s') * 1000 FROM lambdaguard.history WHERE pid = $pid");
	note "idle: acted ${late} ms after deadline + grace (naptime 10 s)";
	ok($late >= 0 && $late < 2000,
		'idle: acted after deadline + grace, long before naptime or the 60 s timeout');
	is( lg_sql($node,
			"SELECT client_context->>'request_id' || ' ' || (client_context->>'traceparent') FROM lambdaguard.history WHERE pid = $pid"),
		"req-idle $tp",
		'idle: the history row names the request id and the trace');
}

# ---------------------------------------------------------------------------
# a running statement: cancelled at deadline + grace, then terminated one
# grace later because it is still in that transaction (aborted)
# ---------------------------------------------------------------------------
{
	my $s = lg_session($node, tcp => 1, appname => 'lg_deadline_running');
	my $pid = $s->pid;
	my $d = server_ms(1000);
	$s->send("BEGIN; SELECT pg_sleep(30) /*lambdaguard_deadline='$d',request_id='req-run'*/;\n");
	ok(lg_wait($node, "SELECT count(*) >= 2 FROM lambdaguard.history WHERE pid = $pid", 15),
		'running: two history rows');
	my $rows = lg_history($node, $pid);
	is(join(',', map { "$_->{verdict}/$_->{action}" } @$rows),
		'deadline_passed/cancel,deadline_passed/terminate',
		'running: cancelled, then terminated');
	is($rows->[0]{state}, 'active', 'running: the cancel was of a running statement');
	is($rows->[1]{state}, 'idle in transaction (aborted)',
		'running: the terminate was of its still-open, aborted transaction');
	my $gap = lg_sql($node,
		"SELECT extract(epoch FROM max(at) - min(at)) * 1000 FROM lambdaguard.history WHERE pid = $pid");
	note "running: terminated ${gap} ms after the cancel";
	ok($gap >= 900, 'running: terminated one grace after the cancel, not at once');
	ok(lg_gone($node, $pid), 'running: the session is gone');
}

# ---------------------------------------------------------------------------
# autocommit: the statement is cancelled; then no transaction is open, so
# the session stays
# ---------------------------------------------------------------------------
{
	my $s = lg_session($node, tcp => 1, appname => 'lg_deadline_autocommit');
	my $pid = $s->pid;
	my $d = server_ms(500);
	my (undef, $err) = $s->query("SELECT pg_sleep(30) /*lambdaguard_deadline='$d'*/;", 20);
	like($err, qr/57014/, 'autocommit: the statement was cancelled (57014)');
	usleep(1_500_000);
	ok(lg_alive($node, $pid), 'autocommit: the session is still connected');
	is(lg_sql($node, "SELECT string_agg(action, ',') FROM lambdaguard.history WHERE pid = $pid"),
		'cancel', 'autocommit: one row, the cancel');
}

# ---------------------------------------------------------------------------
# in time, or not watched: never touched
# ---------------------------------------------------------------------------
{
	my $s = lg_session($node, tcp => 1, appname => 'lg_deadline_in_time');
	my $pid = $s->pid;
	my $d = server_ms(1000);
	my (undef, $err) = $s->query(
		"BEGIN; UPDATE t SET v = v + 1 WHERE id = 2 /*lambdaguard_deadline='$d'*/; COMMIT;");
	is($err, '', 'in time: committed before its deadline');
	my $o = lg_session($node, tcp => 1, user => 'other', appname => 'lg_deadline_unwatched');
	my $opid = $o->pid;
	$o->query("BEGIN; SELECT 1 /*lambdaguard_deadline='$d'*/;");
	usleep(3_000_000);
	ok(lg_alive($node, $pid), 'in time: the session is still connected');
	is(lg_state($node, $opid), 'idle in transaction', 'not watched: still in its transaction');
	is(lg_sql($node, "SELECT count(*) FROM lambdaguard.history WHERE pid IN ($pid, $opid)"),
		'0', 'in time, not watched: no history row');
	$o->query('ROLLBACK;');
}

# ---------------------------------------------------------------------------
# a later statement without a comment keeps the earliest deadline; a later
# deadline does not extend it
# ---------------------------------------------------------------------------
{
	my $s = lg_session($node, tcp => 1, appname => 'lg_deadline_earliest');
	my $pid = $s->pid;
	my $d1 = server_ms(1500);
	my $d2 = server_ms(600000);
	$s->query("BEGIN; SELECT 1 /*lambdaguard_deadline='$d1'*/;");
	$s->query("SELECT 2 /*lambdaguard_deadline='$d2'*/;");
	$s->query('SELECT 3;');
	is(lg_sql($node, "SELECT deadline = to_timestamp($d1 / 1000.0) FROM lambdaguard.sessions WHERE pid = $pid"),
		't', 'earliest: the first, earlier deadline holds');
	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid", 10),
		'earliest: ended at the earliest deadline');
}

# ---------------------------------------------------------------------------
# the extended protocol: an unnamed statement's comment counts; a named
# statement prepared by an earlier invocation carries its comment but it
# does not count
# ---------------------------------------------------------------------------
SKIP:
{
	my $modules = lg_node_modules();
	skip 'no node-postgres (npm) for the extended protocol', 4 unless $modules;
	my $js = lg_node_client($node, appname => 'lg_deadline_named');
	my $pid = $js->pid;
	my $old = server_ms(-60000);
	# an earlier invocation prepared it, with its (long past) deadline
	my $r = $js->query({ name => 'lookup', text => "SELECT \$1::int /*lambdaguard_deadline='$old',request_id='earlier'*/", values => [1] });
	is($r->{error}, undef, 'named: prepared by an earlier invocation');
	$js->query({ text => 'BEGIN' });
	$r = $js->query({ name => 'lookup', text => "SELECT \$1::int /*lambdaguard_deadline='$old',request_id='earlier'*/", values => [2] });
	is(lg_sql($node, "SELECT coalesce(client_context::text, 'none') || ' ' || coalesce(deadline::text, 'none') FROM lambdaguard.sessions WHERE pid = $pid"),
		'none none', 'named: its comment gives the transaction no context and no deadline');
	my $d = server_ms(1000);
	$r = $js->query({ text => "SELECT \$1::int /*lambdaguard_deadline='$d',request_id='now'*/", values => [3] });
	is(lg_sql($node, "SELECT client_context->>'request_id' FROM lambdaguard.sessions WHERE pid = $pid"),
		'now', 'unnamed: its comment counts (extended protocol)');
	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid AND verdict = 'deadline_passed' AND client_context->>'request_id' = 'now'", 10),
		'unnamed: its deadline ends the transaction, recorded with its context');
}

# ---------------------------------------------------------------------------
# dry run: recorded, nobody signalled
# ---------------------------------------------------------------------------
{
	lg_reload($node, dry_run => 'on');
	my $s = lg_session($node, tcp => 1, appname => 'lg_deadline_dry');
	my $pid = $s->pid;
	my $d = server_ms(300);
	$s->query("BEGIN; SELECT 1 /*lambdaguard_deadline='$d'*/;");
	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid", 10),
		'dry run: recorded');
	is(lg_sql($node, "SELECT verdict || '/' || action FROM lambdaguard.history WHERE pid = $pid"),
		'deadline_passed/dry_run', 'dry run: the verdict, as dry_run');
	is(lg_state($node, $pid), 'idle in transaction', 'dry run: not signalled');
	lg_reload($node, dry_run => 'off');
}

# ---------------------------------------------------------------------------
# pinned_idle: the history row carries the context of the statement that
# pinned the session first, not of a later one
# ---------------------------------------------------------------------------
{
	lg_reload($node, pinned_idle_timeout => '1000');
	my $s = lg_session($node, tcp => 1, appname => 'lg_deadline_pinned');
	my $pid = $s->pid;
	$s->query("SET work_mem = '8MB' /*request_id='first-pin'*/;");
	$s->query("SET work_mem = '9MB' /*request_id='second'*/;");
	is(lg_sql($node, "SELECT pinned_by FROM lambdaguard.sessions WHERE pid = $pid"),
		"SET work_mem = '8MB' /*request_id='first-pin'*/",
		'pinned_idle: pinned_by is the first pinning statement');
	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid", 10),
		'pinned_idle: the idle pinned session is terminated');
	is( lg_sql($node,
			"SELECT verdict || ' ' || (client_context->>'request_id') FROM lambdaguard.history WHERE pid = $pid"),
		'pinned_idle first-pin',
		'pinned_idle: its history row names the invocation that pinned it first');
	lg_reload($node, pinned_idle_timeout => '0');
}

# the LOG line names the verdict
like(slurp_file($node->logfile), qr/pg_lambdaguard: terminated pid \d+ .*verdict deadline_passed/,
	'a LOG line names verdict deadline_passed');

$node->stop;
done_testing();
