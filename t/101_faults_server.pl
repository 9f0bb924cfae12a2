
# Copyright (c) 2026, pg_lambdaguard developers

# The background worker while the server around it changes:
#
# - a reload brings bad values: a LOG line names each setting and its bad
#   part, the old values stay, the worker keeps working with them
# - a reload storm: 50 reloads with changing settings, the worker lives on
# - the worker terminated with pg_terminate_backend(): it comes back
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
use lib "$FindBin::RealBin/lib";

use IPC::Run;
use LgTest;
use LgFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $worker_started = qr/pg_lambdaguard: worker started in database "postgres"/;

my $node = lg_node(
	'faults_server',
	conf => q{
wal_level = replica
max_wal_senders = 4
lambdaguard.idle_in_transaction_timeout = 1000
lambdaguard.blocking_timeout = 0
lambdaguard.aborted_transaction_timeout = 0
});

# An orphan of the watched role app (on $node unless another node is given):
# a transaction left open
sub orphan
{
	my ($name, $n) = @_;
	my $s = lg_session($n // $node, appname => $name);
	$s->query('BEGIN; SELECT 1;');
	return $s;
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
	my $s = orphan('lg_after_bad_reload');
	my $pid = $s->pid;
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
# (t/102_standby.pl tests the standby in depth)
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
