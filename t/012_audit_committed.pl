
# Copyright (c) 2026, pg_lambdaguard developers

# No signal without a committed history row.  The rows of one scan's
# decisions are committed together, in a short transaction of the worker's
# own, before the first signal, so whatever happens after a signal cannot
# take its row away, and a failure before the commit signals nobody:
#
# - autovacuum's statistics see the worker's inserts while it runs (it
#   reports them after its commits)
# - an ERROR in the middle of writing a scan's rows (a trigger on
#   lambdaguard.history that fails on the second of three orphans): no row
#   is committed and no orphan is terminated; the worker counts the error
#   and starts again; once the trigger is gone, all three are terminated
#   with one row each
# - SIGTERM to the worker in the middle of writing them (the trigger sleeps
#   on the second orphan's row): the same
# - the re-check comes after the commit: an orphan that commits while its
#   row is being written is not signalled; the row says skipped
# - scan(false) inside a transaction block that is rolled back: the orphan
#   is terminated and its row survives the ROLLBACK; scan(false) keeps the
#   caller's rights (pg_terminate_backend's rules), never signals the calling
#   session, and refuses to run in a database other than lambdaguard.database
#
# The trigger functions are created by the superuser; the worker writes
# history as the table's owner, so they run in the worker.

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
	'audit', conf => q{
lambdaguard.idle_in_transaction_timeout = 1000
lambdaguard.blocking_timeout = 0
lambdaguard.aborted_transaction_timeout = 0
});

my $terminate_rows = q{
SELECT count(*) FROM lambdaguard.history WHERE pid = %d AND action = 'terminate'};

# An orphan of the watched role app: a transaction left open
sub orphan
{
	my ($name) = @_;
	my $s = lg_session($node, appname => $name);
	my (undef, $err) = $s->query('BEGIN; SELECT 1;');
	die "could not open a transaction: $err" if $err ne '';
	return $s;
}

# For a list of pids: which are gone from pg_stat_activity, which have a
# history row with action terminate
sub gone_and_recorded
{
	my (@pids) = @_;
	my $list = join(',', @pids);
	my $out = lg_sql(
		$node, qq{
SELECT coalesce(string_agg(p::text, ',' ORDER BY p)
                  FILTER (WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = p)), ''),
       coalesce(string_agg(p::text, ',' ORDER BY p)
                  FILTER (WHERE EXISTS (SELECT 1 FROM lambdaguard.history h
                                         WHERE h.pid = p AND h.action = 'terminate')), '')
  FROM unnest(ARRAY[$list]) p}) // '|';
	my ($gone, $recorded) = split /\|/, $out, -1;
	return ($gone // '', $recorded // '');
}

# ---------------------------------------------------------------------------
# autovacuum's statistics see the worker's inserts while it runs
# (before anything else writes history: only the worker has inserted)
# ---------------------------------------------------------------------------
# The statistics system flushes a backend's counts at most once a second
# unless forced: a worker that only asks at its commits leaves the counts of
# the last commit of a burst pending until its next write (the purge, every
# minute).  One orphan first; then two orphans a moment apart, each falling
# due more than a second after the first one's row: the first of the two
# flushes, the second commits within the second after it.  All three inserts
# must show within a few seconds.
{
	my $w0 = lg_worker($node);
	my $first = orphan('lg_stats_0');
	ok( lg_wait($node,
			"SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = ${\ $first->pid} AND action = 'terminate'", 10),
		'statistics: the worker terminated and recorded an orphan');
	my @s = map { orphan("lg_stats_$_") } 1 .. 2;
	my $list = join(',', map { $_->pid } @s);
	ok( lg_wait($node,
			"SELECT count(*) = 2 FROM lambdaguard.history WHERE pid IN ($list) AND action = 'terminate'", 10),
		'statistics: then two more orphans a moment apart');
	ok( lg_wait(
			$node, q{
SELECT coalesce((SELECT n_tup_ins >= 3 FROM pg_stat_user_tables
                  WHERE schemaname = 'lambdaguard' AND relname = 'history'), false)}, 5),
		'statistics: pg_stat_user_tables shows all three of the worker\'s inserts into history within 5 s');
	is(lg_worker($node)->{pid}, $w0->{pid},
		'statistics: seen while the same worker still runs');
	$_->close foreach ($first, @s);
}

# ---------------------------------------------------------------------------
# an ERROR after the first of several signals
# ---------------------------------------------------------------------------
$node->safe_psql(
	'postgres', q{
CREATE TABLE public.lg_fault_pids (pid int PRIMARY KEY);
-- On the first row of the second orphan listed in lg_fault_pids (its own
-- pid has no row yet, another listed pid has one): fails ('error') or
-- sleeps 3 s ('sleep'), as the trigger's argument says
CREATE FUNCTION public.lg_fault() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.lg_fault_pids f WHERE f.pid = NEW.pid)
       AND NOT EXISTS (SELECT 1 FROM lambdaguard.history h WHERE h.pid = NEW.pid)
       AND EXISTS (SELECT 1 FROM lambdaguard.history h
                     JOIN public.lg_fault_pids f ON f.pid = h.pid
                    WHERE h.pid OPERATOR(pg_catalog.<>) NEW.pid)
    THEN
        IF TG_ARGV[0] = 'sleep' THEN
            PERFORM pg_catalog.pg_sleep(3);
        ELSE
            RAISE EXCEPTION 'lg_fault: injected failure for pid %', NEW.pid;
        END IF;
    END IF;
    RETURN NEW;
END
$$;
});

# Three orphans that fall due in the same scan: opened while the worker is
# switched off, it is switched on once all three are past their timeout
sub three_orphans
{
	my ($name) = @_;
	lg_reload($node, enabled => 'off');
	my @s = map { orphan("${name}_$_") } 1 .. 3;
	my @pids = map { $_->pid } @s;
	$node->safe_psql('postgres',
		'TRUNCATE public.lg_fault_pids; INSERT INTO public.lg_fault_pids VALUES ('
		  . join('), (', @pids) . ')');
	lg_wait_idle_for($node, $_, 1200, 10) or die "no orphan" foreach @pids;
	return @s;
}

{
	my $log = lg_log_offset($node);
	$node->safe_psql('postgres', q{
CREATE TRIGGER lg_fault BEFORE INSERT ON lambdaguard.history
    FOR EACH ROW EXECUTE FUNCTION public.lg_fault('error')});
	my @s = three_orphans('lg_error');
	my @pids = map { $_->pid } @s;
	my $w0 = lg_worker($node);
	lg_reload($node, enabled => 'on', -nowait => 1);

	ok(lg_wait($node, "SELECT errors > $w0->{errors} FROM lambdaguard.worker", 15),
		'error mid-scan: lambdaguard.worker.errors increments');
	like(lg_worker($node)->{last_error} // '', qr/lg_fault: injected failure/,
		'error mid-scan: last_error is the injected failure');
	# the restarted worker fails the same way: give it a few rounds
	ok(lg_wait($node, "SELECT errors > $w0->{errors} + 1 FROM lambdaguard.worker", 15),
		'error mid-scan: the restarted worker fails again, on the same row');
	my ($gone, $recorded) = gone_and_recorded(@pids);
	is("$gone|$recorded", '|',
		'error mid-scan: no orphan terminated and no row committed (the scan\'s rows commit together, and did not)');
	my @alive = grep { lg_alive($node, $_) } @pids;
	is(scalar(@alive), 3, 'error mid-scan: all three orphans are still there');
	foreach my $pid (@alive)
	{
		is(lg_state($node, $pid), 'idle in transaction',
			"error mid-scan: orphan $pid is untouched");
		is(lg_sql($node, sprintf($terminate_rows, $pid)), '0',
			"error mid-scan: orphan $pid has no terminate row");
	}

	# repaired: the restarted worker terminates the other two, each with
	# exactly one row
	$node->safe_psql('postgres', 'DROP TRIGGER lg_fault ON lambdaguard.history');
	ok( lg_wait(
			$node, qq{
SELECT bool_and(NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = p)
                AND (SELECT count(*) FROM lambdaguard.history h
                      WHERE h.pid = p AND h.action = 'terminate') = 1)
  FROM unnest(ARRAY[${\ join(',', @pids)}]) p}, 30),
		'error mid-scan: after the restart all three orphans are terminated, one terminate row each');
	isnt(lg_worker($node)->{pid}, $w0->{pid}, 'error mid-scan: the worker was restarted');
	my $slice = lg_log_slice($node, $log);
	like($slice, qr/ERROR:[^\n]*lg_fault: injected failure/, 'error mid-scan: the ERROR is logged');
	is(join("\n", lg_crash_lines($slice)), '', 'error mid-scan: no crash');
	$_->close foreach @s;
}

# ---------------------------------------------------------------------------
# SIGTERM to the worker while it writes the second orphan's row
# ---------------------------------------------------------------------------
{
	my $log = lg_log_offset($node);
	$node->safe_psql('postgres', q{
CREATE TRIGGER lg_fault BEFORE INSERT ON lambdaguard.history
    FOR EACH ROW EXECUTE FUNCTION public.lg_fault('sleep')});
	my @s = three_orphans('lg_sigterm');
	my @pids = map { $_->pid } @s;
	my $w0 = lg_worker($node);
	lg_reload($node, enabled => 'on', -nowait => 1);

	ok( lg_wait(
			$node, q{
SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                WHERE backend_type = 'pg_lambdaguard' AND wait_event = 'PgSleep')}, 10),
		'SIGTERM mid-scan: the worker sleeps in the trigger of the second orphan\'s row');
	is( lg_sql(
			$node, q{
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE backend_type = 'pg_lambdaguard'}), 't',
		'SIGTERM mid-scan: the worker is sent SIGTERM');
	ok( lg_wait(
			$node, "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $w0->{pid})",
			10),
		'SIGTERM mid-scan: the worker exited');
	my ($gone, $recorded) = gone_and_recorded(@pids);
	is("$gone|$recorded", '|',
		'SIGTERM mid-scan: no orphan terminated and no row committed');
	foreach my $pid (@pids)
	{
		is(lg_state($node, $pid), 'idle in transaction',
			"SIGTERM mid-scan: orphan $pid is untouched");
	}

	$node->safe_psql('postgres', 'DROP TRIGGER lg_fault ON lambdaguard.history');
	ok( lg_wait(
			$node, qq{
SELECT bool_and(NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = p)
                AND (SELECT count(*) FROM lambdaguard.history h
                      WHERE h.pid = p AND h.action = 'terminate') = 1)
  FROM unnest(ARRAY[${\ join(',', @pids)}]) p}, 30),
		'SIGTERM mid-scan: after the restart all three orphans are terminated, one terminate row each');
	is(join("\n", lg_crash_lines(lg_log_slice($node, $log))), '', 'SIGTERM mid-scan: no crash');
	$_->close foreach @s;
}

# ---------------------------------------------------------------------------
# the re-check comes after the commit, immediately before the signal: the
# orphan commits while its row is being written; the worker then records
# "skipped" instead of terminating it
# ---------------------------------------------------------------------------
{
	$node->safe_psql(
		'postgres', q{
CREATE FUNCTION public.lg_fault_sleep_first() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.lg_fault_pids f WHERE f.pid = NEW.pid)
       AND NOT EXISTS (SELECT 1 FROM lambdaguard.history h WHERE h.pid = NEW.pid)
    THEN
        PERFORM pg_catalog.pg_sleep(2);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER lg_fault BEFORE INSERT ON lambdaguard.history
    FOR EACH ROW EXECUTE FUNCTION public.lg_fault_sleep_first();
});
	my $s = lg_session($node, appname => 'lg_recheck');
	my $pid = $s->pid;
	$node->safe_psql('postgres',
		"TRUNCATE public.lg_fault_pids; INSERT INTO public.lg_fault_pids VALUES ($pid)");
	$s->query('BEGIN; SELECT 1;');
	ok( lg_wait(
			$node, q{
SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                WHERE backend_type = 'pg_lambdaguard' AND wait_event = 'PgSleep')}, 10),
		're-check: the worker is writing the orphan\'s row');
	my ($out, $err, $done) = $s->query('COMMIT;', 10);
	ok($done && $err eq '', 're-check: meanwhile the orphan commits')
	  or diag $err;
	ok(lg_wait($node, "SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $pid AND action = 'skipped'", 10),
		're-check: the decision is recorded as skipped');
	$node->safe_psql('postgres', 'DROP TRIGGER lg_fault ON lambdaguard.history');
	is(lg_sql($node, "SELECT count(*) FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'"),
		'0', 're-check: no terminate row');
	is(lg_state($node, $pid), 'idle', 're-check: the session was not signalled');
	ok($s->ping, 're-check: the session still answers');
	$s->close;
}

# ---------------------------------------------------------------------------
# scan(false): the worker is switched off, so that only scan(false) acts
# ---------------------------------------------------------------------------
lg_reload($node, enabled => 'off');
$node->safe_psql(
	'postgres', q{
CREATE ROLE lg_scanner LOGIN;
CREATE ROLE lg_member LOGIN IN ROLE app;
GRANT USAGE ON SCHEMA lambdaguard TO lg_scanner, lg_member, app;
GRANT EXECUTE ON FUNCTION lambdaguard.scan(boolean) TO lg_scanner, lg_member, app;
});

sub due_orphan
{
	my ($name) = @_;
	my $s = orphan($name);
	lg_wait_idle_for($node, $s->pid, 1200, 10) or die "no orphan";
	return $s;
}

# BEGIN; scan(false); ROLLBACK as the superuser
{
	my $s = due_orphan('lg_rollback');
	my $pid = $s->pid;
	my ($ret, $out, $err) = lg_psql_as(
		$node, 'postgres', qq{
BEGIN;
SELECT action FROM lambdaguard.scan(false) WHERE pid = $pid;
ROLLBACK;
});
	is($ret, 0, 'scan(false) in a transaction block: runs') or diag $err;
	is($out, 'terminate', 'scan(false) in a transaction block: returns the terminate row');
	ok(lg_gone($node, $pid, 10), 'scan(false) in a transaction block: the orphan is terminated');
	is(lg_sql($node, sprintf($terminate_rows, $pid)), '1',
		'scan(false) in a transaction block: its history row survives the ROLLBACK');
	$s->close;
}

# the caller's rights: without pg_signal_backend or membership, "failed"
{
	my $s = due_orphan('lg_rights');
	my $pid = $s->pid;
	my $q = "SELECT action FROM lambdaguard.scan(false) WHERE pid = $pid";
	my ($ret, $out, $err) = lg_psql_as($node, 'lg_scanner', $q);
	is($ret, 0, 'scan(false) without rights on the target: runs') or diag $err;
	is($out, 'failed', 'scan(false) without rights on the target: action failed');
	is(lg_state($node, $pid), 'idle in transaction',
		'scan(false) without rights on the target: the orphan is not signalled');
	is( lg_sql($node,
			"SELECT string_agg(action, ',' ORDER BY id) FROM lambdaguard.history WHERE pid = $pid"),
		'failed', 'scan(false) without rights on the target: one failed row');

	($ret, $out, $err) = lg_psql_as($node, 'lg_member', $q);
	is($ret, 0, 'scan(false) by a member of the target\'s role: runs') or diag $err;
	is($out, 'terminate', 'scan(false) by a member of the target\'s role: action terminate');
	ok(lg_gone($node, $pid, 10),
		'scan(false) by a member of the target\'s role: the orphan is terminated');
	is( lg_sql($node,
			"SELECT string_agg(action, ',' ORDER BY id) FROM lambdaguard.history WHERE pid = $pid"),
		'failed,terminate', 'scan(false) by a member of the target\'s role: rows failed, terminate');
	$s->close;
}

# never the calling session: a watched caller whose own statement is overdue
{
	lg_reload($node, active_timeout => 1000);
	my $caller = lg_session($node, appname => 'lg_caller');
	my $cpid = $caller->pid;
	$caller->send(q{DO $$
BEGIN
    PERFORM pg_catalog.pg_sleep(3);
    CREATE TEMP TABLE lg_self AS SELECT * FROM lambdaguard.scan(false);
END
$$;});
	ok( lg_wait($node,
			"SELECT verdict = 'overdue_query' FROM lambdaguard.sessions WHERE pid = $cpid", 5),
		'scan(false) by an overdue session: the caller itself has verdict overdue_query');
	my ($out, $err, $done) = $caller->result(15);
	ok($done && $err eq '', 'scan(false) by an overdue session: its statement completes')
	  or diag $err;
	my ($n) = $caller->query('SELECT count(*) FROM lg_self WHERE pid = pg_backend_pid()');
	is($n, '0', 'scan(false) by an overdue session: no row for the caller itself');
	is(lg_sql($node, "SELECT count(*) FROM lambdaguard.history WHERE pid = $cpid"), '0',
		'scan(false) by an overdue session: no history row for the caller');
	ok($caller->ping, 'scan(false) by an overdue session: the caller is still connected');
	$caller->close;
	lg_reload($node, active_timeout => 0);
}

# in a database other than lambdaguard.database
{
	$node->safe_psql('postgres', 'CREATE DATABASE lg_other');
	$node->safe_psql('lg_other', 'CREATE EXTENSION pg_lambdaguard');
	my $s = due_orphan('lg_other_db');
	my $pid = $s->pid;
	my ($ret, $out, $err) = lg_psql_as($node, 'postgres',
		'SELECT count(*) FROM lambdaguard.scan(false)', dbname => 'lg_other');
	isnt($ret, 0, 'scan(false) in another database: refused');
	like($err, qr/ERROR:[^\n]*\bpostgres\b/,
		'scan(false) in another database: the error names lambdaguard.database (postgres)');
	note "scan(false) in database lg_other: $err";
	is(lg_state($node, $pid), 'idle in transaction',
		'scan(false) in another database: the orphan is not signalled');
	is(lg_sql($node, "SELECT count(*) FROM lambdaguard.history WHERE pid = $pid"), '0',
		'scan(false) in another database: nothing recorded in lambdaguard.database');
	$s->close;
}

is(join("\n", lg_crash_lines(lg_log_slice($node, 0))), '', 'no backend or worker crashed');

$node->stop;
done_testing();
