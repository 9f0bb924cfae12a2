
# Copyright (c) 2026, pg_lambdaguard developers

# Whom the background worker must leave alone, and its brakes: superusers and
# unwatched roles, application_names and client_addresses filters, dry_run,
# enabled = off, max_terminations, and a session that keeps working.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/lib";

use LgTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = lg_node(
	'safety', conf => q{
lambdaguard.idle_in_transaction_timeout = 1000
lambdaguard.aborted_transaction_timeout = 1000
lambdaguard.blocking_timeout = 0
lambdaguard.pinned_idle_timeout = 0
lambdaguard.active_timeout = 0
});

# Open a transaction in a new session, idle in transaction from now
sub orphan
{
	my (%o) = @_;
	my $s = lg_session($node, %o);
	my ($out, $err) = $s->query('BEGIN; SELECT 1;');
	die "could not open a transaction: $err" if $err ne '';
	return $s;
}

# Wait for the worker to terminate a session; check the row and the client
sub expect_terminated
{
	my ($s, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $pid = $s->pid;
	my $ok = lg_wait($node,
		"SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'", 10);
	ok($ok, "$name: terminated by the worker");
	return $ok;
}

# ---------------------------------------------------------------------------
# superusers and unwatched roles are never touched
# ---------------------------------------------------------------------------
{
	lg_reload($node, roles => 'app, postgres');
	my $su = orphan(user => 'postgres', appname => 'lg_su');
	my $other = orphan(user => 'other', appname => 'lg_other');
	my $app = orphan(user => 'app', appname => 'lg_app');
	expect_terminated($app, 'roles = app, postgres: app');
	lg_assert_untouched($node, $su, 1000, 'roles = app, postgres: superuser named in roles');
	lg_assert_untouched($node, $other, 1000, 'roles = app, postgres: role other (not listed)');

	is(lg_sql($node, "SELECT watched FROM lambdaguard.sessions WHERE pid = " . $other->pid),
		'f', 'sessions view: other is not watched');

	# '*' watches every non-superuser role, still never a superuser
	lg_reload($node, roles => '*');
	expect_terminated($other, "roles = '*': role other");
	lg_assert_untouched($node, $su, 1000, "roles = '*': superuser");
	is(lg_sql($node, "SELECT watched FROM lambdaguard.sessions WHERE pid = " . $su->pid),
		'f', "sessions view: superuser not watched under '*'");
	$_->close for ($su, $other, $app);

	# an empty list watches nobody
	lg_reload($node, roles => '');
	my $none = orphan(user => 'app', appname => 'lg_nobody');
	lg_assert_untouched($node, $none, 1000, "roles = '': app");
	$none->close;
	lg_reload($node, roles => 'app');
}

# ---------------------------------------------------------------------------
# a superuser made NOSUPERUSER while idle in transaction: the worker's scans
# of sessions it cannot watch start no transaction, and remember those roles
# for at most 10 s, so the change is seen within that time
# ---------------------------------------------------------------------------
{
	lg_reload($node, roles => '*');
	$node->safe_psql('postgres', 'CREATE ROLE demoted SUPERUSER LOGIN');
	my $s = orphan(user => 'demoted', appname => 'lg_demoted');
	lg_assert_untouched($node, $s, 1500, 'superuser demoted: untouched while superuser');
	$node->safe_psql('postgres', 'ALTER ROLE demoted NOSUPERUSER');
	my $pid = $s->pid;
	ok(lg_wait($node,
			"SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $pid AND action = 'terminate'", 20),
		'superuser demoted: terminated once no longer a superuser (within 10 s and the timeout)');
	$s->close;

	# scan(false) right after the change: the caller's committed change counts
	$node->safe_psql('postgres', 'CREATE ROLE demoted2 SUPERUSER LOGIN');
	my $s2 = orphan(user => 'demoted2', appname => 'lg_demoted2');
	lg_assert_untouched($node, $s2, 1500, 'superuser demoted2: untouched while superuser');
	my $pid2 = $s2->pid;
	# idle in transaction past the timeout again (the check above pinged it)
	ok(lg_wait_idle_for($node, $pid2, 1200, 10), 'superuser demoted2: idle in transaction past the timeout');
	is( $node->safe_psql('postgres', qq{
ALTER ROLE demoted2 NOSUPERUSER;
SELECT count(*) FROM lambdaguard.scan(false) WHERE pid = $pid2 AND action = 'terminate';
}),
		'1', 'superuser demoted2: scan(false) right after ALTER ROLE ... NOSUPERUSER acts on it');
	$s2->close;
	lg_reload($node, roles => 'app');
}

# ---------------------------------------------------------------------------
# a role named before it exists is watched once created (quoted: case kept);
# sessions in any database are watched, not only lambdaguard.database
# ---------------------------------------------------------------------------
{
	lg_reload($node, roles => 'app, "Later"');
	$node->safe_psql('postgres', q{
CREATE ROLE "Later" LOGIN;
CREATE ROLE later LOGIN;
CREATE DATABASE appdb;
});
	my $later = orphan(user => 'Later', appname => 'lg_later');
	my $lower = orphan(user => 'later', appname => 'lg_later_lower');
	my $otherdb = orphan(user => 'app', dbname => 'appdb', appname => 'lg_appdb');
	expect_terminated($later, 'role "Later" created after it was listed');
	lg_assert_untouched($node, $lower, 1000, 'role later (other case than the quoted "Later")');
	expect_terminated($otherdb, 'app session in database appdb');
	my $h = lg_history($node, $otherdb->pid)->[0] // {};
	is($h->{datname}, 'appdb', 'history row of the appdb session has datname appdb');
	$_->close for ($later, $lower, $otherdb);
	lg_reload($node, roles => 'app');
}

# ---------------------------------------------------------------------------
# application_names: LIKE patterns
# ---------------------------------------------------------------------------
{
	lg_reload($node, application_names => 'lambda-%, job_');
	my %s;
	$s{$_} = orphan(appname => $_) for qw(lambda-7 job1 job12 web-1);
	expect_terminated($s{'lambda-7'}, "application_names: 'lambda-7' matches 'lambda-%'");
	expect_terminated($s{job1}, "application_names: 'job1' matches 'job_'");
	lg_assert_untouched($node, $s{job12}, 1000, "application_names: 'job12' matches no pattern");
	lg_assert_untouched($node, $s{'web-1'}, 1000, "application_names: 'web-1' matches no pattern");
	$_->close for values %s;
	lg_reload($node, application_names => '');
}

# ---------------------------------------------------------------------------
# client_addresses: CIDRs, and 'local' for the Unix socket
# ---------------------------------------------------------------------------
{
	lg_reload($node, client_addresses => 'local');
	my $unix = orphan(appname => 'lg_unix');
	my $tcp = orphan(appname => 'lg_tcp', tcp => 1);
	expect_terminated($unix, "client_addresses = local: Unix-socket session");
	lg_assert_untouched($node, $tcp, 1000, 'client_addresses = local: TCP session');

	my $unix2 = orphan(appname => 'lg_unix2');
	lg_reload($node, client_addresses => '10.0.0.0/8, 127.0.0.0/8');
	expect_terminated($tcp, 'client_addresses = 127.0.0.0/8: TCP session from 127.0.0.1');
	my $h = lg_history($node, $tcp->pid)->[0] // {};
	is($h->{addr}, '127.0.0.1', 'client_addresses: the row has client_addr 127.0.0.1');
	lg_assert_untouched($node, $unix2, 1000, 'client_addresses = 127.0.0.0/8: Unix-socket session');

	lg_reload($node, client_addresses => '10.0.0.0/8, ::1/128');
	my $tcp2 = orphan(appname => 'lg_tcp2', tcp => 1);
	lg_assert_untouched($node, $tcp2, 1000, 'client_addresses = 10.0.0.0/8, ::1/128: TCP session from 127.0.0.1');
	lg_assert_untouched($node, $unix2, 1000, 'client_addresses = 10.0.0.0/8, ::1/128: Unix-socket session');
	$_->close for ($unix, $tcp, $unix2, $tcp2);
	lg_reload($node, client_addresses => '');
}

# ---------------------------------------------------------------------------
# dry_run: one row with action dry_run, one LOG line, the session survives
# ---------------------------------------------------------------------------
{
	lg_reload($node, dry_run => 'on');
	my $w0 = lg_worker($node);
	my $log = lg_log_offset($node);
	my $s = lg_session($node, appname => 'lg_dry');
	my $pid = $s->pid;
	$s->query('BEGIN; UPDATE t SET v = v + 1 WHERE id = 3;');
	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid", 10),
		'dry_run: history row written');
	# let the worker scan a few more times: no second row for the same episode
	my $scans = lg_worker($node)->{scans};
	lg_wait($node, "SELECT scans >= $scans + 5 FROM lambdaguard.worker", 10);
	my $rows = lg_history($node, $pid);
	is_deeply([ map { "$_->{verdict}/$_->{action}" } @$rows ], ['orphan/dry_run'],
		'dry_run: exactly one row, verdict orphan, action dry_run');
	cmp_ok($rows->[0]{locks_held} // 0, '>', 0, 'dry_run: locks_held recorded');
	is(lg_state($node, $pid), 'idle in transaction', 'dry_run: session still idle in transaction');
	my ($out, $err) = $s->query('SELECT v FROM t WHERE id = 3; COMMIT;');
	is($err, '', 'dry_run: the session can go on and commit');
	is($out, '1', 'dry_run: the transaction was not rolled back');
	like(lg_log_slice($node, $log),
		qr/pg_lambdaguard: would signal \(dry run\) pid $pid \(role app, database postgres, application "lg_dry", client local\): verdict orphan,/,
		'dry_run: LOG line');
	my $w1 = lg_worker($node);
	is($w1->{dry_run_hits} - $w0->{dry_run_hits}, 1, 'dry_run: worker.dry_run_hits + 1');
	is($w1->{terminated} - $w0->{terminated}, 0, 'dry_run: worker.terminated unchanged');
	$s->close;

	# an orphan reported in dry run is terminated once dry_run is switched off
	my $d = orphan(appname => 'lg_dry_then_real');
	my $dpid = $d->pid;
	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $dpid AND action = 'dry_run'", 10),
		'dry_run then off: dry_run row written');
	lg_reload($node, dry_run => 'off');
	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $dpid AND action = 'terminate'", 3),
		'dry_run then off: the same orphan is terminated once dry_run is off');
	ok(lg_gone($node, $dpid, 1), 'dry_run then off: its backend is gone');
	$d->close;
}

# ---------------------------------------------------------------------------
# a session that keeps running statements just under the timeout is never
# terminated; once it stops, it is
# ---------------------------------------------------------------------------
{
	my $s = orphan(appname => 'lg_busy');
	my $pid = $s->pid;
	my $alive = 1;
	for (1 .. 8)
	{
		usleep(400_000);
		my ($out, $err, $done) = $s->query('SELECT 1');
		$alive &&= $done && $out eq '1';
	}
	ok($alive, 'busy session: 8 statements about 400 ms apart (timeout 1000 ms) all ran');
	is(scalar(@{ lg_history($node, $pid) }), 0, 'busy session: no history row');
	is(lg_state($node, $pid), 'idle in transaction', 'busy session: still in its transaction');
	expect_terminated($s, 'busy session, once it stops working');
	$s->close;
}

# ---------------------------------------------------------------------------
# enabled = off records nothing; max_terminations = 10 with 25 orphans: no
# scan signals more than 10, all 25 are terminated within three scans
# ---------------------------------------------------------------------------
{
	lg_reload($node, enabled => 'off', max_terminations => 10, naptime => 1000);
	my @s = map { orphan(appname => "lg_storm_$_") } 1 .. 25;
	my $pids = join(',', map { $_->pid } @s);
	ok(lg_wait($node, qq{
SELECT count(*) = 25 FROM pg_stat_activity
 WHERE pid IN ($pids) AND state = 'idle in transaction'
   AND now() - state_change > interval '1500 ms'}, 20),
		'storm: 25 sessions idle in transaction for 1.5 s (timeout 1 s)');
	is(lg_sql($node, "SELECT count(*) FROM lambdaguard.history WHERE pid IN ($pids)"), '0',
		'enabled = off: nothing recorded');
	is(lg_sql($node, "SELECT count(*) FROM pg_stat_activity WHERE pid IN ($pids)"), '25',
		'enabled = off: nobody terminated');
	# README: with enabled = off, verdicts still show, action_at is NULL
	is(lg_sql($node, "SELECT count(*) FILTER (WHERE verdict = 'orphan') || ' ' || count(action_at) FROM lambdaguard.sessions WHERE pid IN ($pids)"),
		'25 0', 'enabled = off: the sessions view shows the verdicts, action_at NULL (the worker will not act)');

	lg_reload($node, enabled => 'on', -nowait => 1);
	ok(lg_wait($node, "SELECT count(*) = 25 FROM lambdaguard.history WHERE pid IN ($pids)", 20),
		'storm: all 25 orphans recorded');
	my $out = lg_sql($node, qq{
SELECT string_agg(extract(epoch FROM at)::text || ' ' || action, ',' ORDER BY at)
  FROM lambdaguard.history WHERE pid IN ($pids)}) // '';
	my @rows = map { [ split / / ] } split /,/, $out;
	is(scalar(grep { $_->[1] eq 'terminate' } @rows), 25, 'storm: 25 terminate rows');

	# rows of one scan are milliseconds apart, scans a naptime (1 s) apart
	my @scans;
	my $prev;
	foreach my $r (@rows)
	{
		push @scans, 0 if !defined $prev || $r->[0] - $prev > 0.5;
		$scans[-1]++;
		$prev = $r->[0];
	}
	is_deeply(\@scans, [ 10, 10, 5 ], 'storm: signals per scan are 10, 10, 5')
	  or diag "rows: $out";
	ok(lg_wait($node, "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid IN ($pids)", 10),
		'storm: all 25 backends gone');
	$_->close for @s;
	lg_reload($node, naptime => 100);
}

my $all = lg_log_slice($node, 0);
unlike($all, qr/terminated by signal|was terminated|terminating any other active server processes/,
	'no backend or worker crashed');

$node->stop;
done_testing();
