
# Copyright (c) 2026, pg_lambdaguard developers

# Soak: pgbench traffic from the watched role (short transactions: BEGIN;
# UPDATE a random row; COMMIT, and single SELECTs) while orphans are
# injected at random intervals: sessions of the same role, each with its own
# application_name orphan_N, that BEGIN, run one statement and stay idle in
# transaction (some UPDATE a row that pgbench also updates, so they block it;
# some fail a statement and stay aborted).  At the end:
#
#   orphans injected, orphans terminated (history rows whose
#   application_name is an orphan's), non-orphans terminated (terminate or
#   cancel rows for any other application)
#
# and the goal: 100% caught, 0 wrong.  60 s by default; SOAK_SECONDS
# overrides (tools/soak.sh runs it for 600 s).

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

my $secs = $ENV{SOAK_SECONDS} // 60;
$secs =~ /^\d+$/ && $secs >= 5 or die "SOAK_SECONDS must be a number of seconds >= 5";
my $rows = 200;

my $node = lg_node(
	'soak',
	conf => q{
max_connections = 100
lambdaguard.naptime = 1000
lambdaguard.idle_in_transaction_timeout = 1000
lambdaguard.blocking_timeout = 400
lambdaguard.aborted_transaction_timeout = 1500
lambdaguard.max_terminations = 10
});
$node->safe_psql(
	'postgres', qq{
CREATE TABLE public.soak (id int PRIMARY KEY, v bigint NOT NULL);
INSERT INTO public.soak SELECT g, 0 FROM generate_series(1, $rows) g;
GRANT SELECT, UPDATE ON public.soak TO app;
});

my $tmp = PostgreSQL::Test::Utils::tempdir;
PostgreSQL::Test::Utils::append_to_file("$tmp/update.sql", qq{
\\set id random(1, $rows)
BEGIN;
UPDATE soak SET v = v + 1 WHERE id = :id;
COMMIT;
});
PostgreSQL::Test::Utils::append_to_file("$tmp/select.sql", qq{
\\set id random(1, $rows)
SELECT v FROM soak WHERE id = :id;
});

# the traffic: 8 clients, at most 200 transactions a second in all
my $bench;
{
	local $ENV{PGAPPNAME} = 'pgbench_soak';
	$bench = IPC::Run::start(
		[
			'pgbench', '-n', '-c', '8', '-j', '2', '-R', '200',
			'-T', $secs, '-f', "$tmp/update.sql\@3", '-f', "$tmp/select.sql\@1",
			'-h', $node->host, '-p', $node->port, '-U', 'app', 'postgres'
		],
		'>', "$tmp/pgbench.out", '2>', "$tmp/pgbench.err");
}
my $t_start = time();
my $t_end = $t_start + $secs;

# What an orphan does before it goes quiet; the kinds take turns
my @kinds = (
	[ 'idle', 'BEGIN; SELECT 1;' ],
	[ 'update', 'BEGIN; UPDATE soak SET v = v + 1 WHERE id = %d;' ],
	[ 'update', 'BEGIN; UPDATE soak SET v = v + 1 WHERE id = %d;' ],
	[ 'aborted', 'BEGIN; SELECT 1/0;' ],);

my %live;     # name => session
my %pid_of;   # name => pid
my $injected = 0;
my $next_inject = time() + 0.5;
my $next_reap = time() + 1;
my $view_reads = 0;

# Close the orphans whose backend is gone; read the views while at it
sub reap
{
	my ($force) = @_;
	my $out = lg_sql($node, q{
SELECT string_agg(pid::text, ',') FROM lambdaguard.sessions
 WHERE application_name LIKE 'orphan\_%'}) // '';
	my %alive = map { $_ => 1 } split /,/, $out;
	lg_sql($node, 'SELECT count(*) FROM lambdaguard.orphans; SELECT count(*) FROM lambdaguard.metrics');
	$view_reads++;
	foreach my $name (keys %live)
	{
		next if $alive{ $pid_of{$name} } && !$force;
		$live{$name}->close;
		delete $live{$name};
	}
	return scalar(keys %alive);
}

while (time() < $t_end - 1)
{
	if (time() >= $next_inject)
	{
		$injected++;
		my $name = "orphan_$injected";
		my ($kind, $sql) = @{ $kinds[ $injected % @kinds ] };
		my $s = lg_session($node, appname => $name, tcp => $injected % 2);
		$s->send(sprintf($sql, 1 + int(rand($rows))));
		$live{$name} = $s;
		$pid_of{$name} = $s->pid;
		# a new orphan every 0.2 to 1.4 s
		$next_inject = time() + 0.2 + rand(1.2);
	}
	if (time() >= $next_reap)
	{
		reap(0);
		$next_reap = time() + 1;
	}
	usleep(20_000);
}

# the traffic ends; every orphan must be gone within a few timeouts
my $bench_ok = eval { $bench->finish; 1 };
my $bench_rc = $bench_ok ? $bench->full_result(0) >> 8 : -1;
my $all_gone = lg_wait($node,
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name LIKE 'orphan\\_%'", 15);
reap(1);

my $caught = lg_sql($node, q{
SELECT count(DISTINCT application_name) FROM lambdaguard.history
 WHERE application_name LIKE 'orphan\_%' AND action = 'terminate'});
my $twice = lg_sql($node, q{
SELECT count(*) FROM (SELECT application_name FROM lambdaguard.history
 WHERE application_name LIKE 'orphan\_%' AND action = 'terminate'
 GROUP BY 1 HAVING count(*) > 1) x});
my $wrong = lg_sql($node, q{
SELECT count(*) FROM lambdaguard.history
 WHERE action IN ('terminate', 'cancel')
   AND application_name NOT LIKE 'orphan\_%'});
my $wrong_rows = lg_sql($node, q{
SELECT string_agg(format('%s pid %s %s %s after %s: %s', application_name, pid, verdict, action,
                         at - state_since, query), E'\n')
  FROM lambdaguard.history
 WHERE action IN ('terminate', 'cancel') AND application_name NOT LIKE 'orphan\_%'});
my $other_actions = lg_sql($node, q{
SELECT coalesce(string_agg(format('%s %s x%s', verdict, action, n), ', '), 'none')
  FROM (SELECT verdict, action, count(*) n FROM lambdaguard.history
         WHERE action NOT IN ('terminate') GROUP BY 1, 2 ORDER BY 1, 2) x});
my $verdicts = lg_sql($node, q{
SELECT string_agg(format('%s x%s', verdict, n), ', ')
  FROM (SELECT verdict, count(*) n FROM lambdaguard.history
         WHERE application_name LIKE 'orphan\_%' AND action = 'terminate'
         GROUP BY 1 ORDER BY 1) x});
my $lateness = lg_sql($node, q{
SELECT format('%s ms median, %s ms max',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY late)::numeric, 1),
              round(max(late)::numeric, 1))
  FROM (SELECT extract(epoch FROM at - state_since) * 1000
               - CASE verdict WHEN 'orphan' THEN 1000 WHEN 'orphan_aborted' THEN 1500
                              WHEN 'orphan_blocking' THEN 400 END AS late
          FROM lambdaguard.history
         WHERE application_name LIKE 'orphan\_%' AND action = 'terminate') x});
my $missed = lg_sql($node, q{
SELECT string_agg(n, ', ') FROM (
  SELECT 'orphan_' || g AS n FROM generate_series(1, } . $injected . q{) g
  EXCEPT SELECT application_name FROM lambdaguard.history WHERE action = 'terminate'
  ORDER BY 1) x});
my $w = lg_worker($node);
my $tps = '';
my $pgbench_out = slurp_file("$tmp/pgbench.out");
$tps = $1 if $pgbench_out =~ /^tps = ([\d.]+)/m;
my ($txns) = $pgbench_out =~ /number of transactions actually processed: (\d+)/;

my $summary = sprintf(
	"soak: %d s, pgbench %s transactions (%s tps), %d view reads\n"
	  . "soak: orphans injected: %d\n"
	  . "soak: orphans terminated: %s (%s)\n"
	  . "soak: non-orphans terminated: %s\n"
	  . "soak: termination after the timeout: %s\n"
	  . "soak: other decisions: %s\n"
	  . "soak: worker: %s scans, %s terminated, %s errors",
	$secs, $txns // '?', $tps, $view_reads, $injected, $caught,
	$verdicts // '', $wrong, $lateness // '', $other_actions,
	$w->{scans}, $w->{terminated}, $w->{errors});
diag $summary;

cmp_ok($injected, '>=', $secs / 4, 'orphans were injected');
is($caught, $injected, '100% of the orphans caught') or diag "missed: " . ($missed // '');
is($missed // '', '', 'no orphan missed');
ok($all_gone, 'every orphan backend is gone');
is($twice, '0', 'no orphan terminated twice');
is($wrong, '0', 'no other session terminated or cancelled') or diag $wrong_rows;
is($bench_rc, 0, 'pgbench finished without a failed client')
  or diag slurp_file("$tmp/pgbench.err");
is($w->{errors}, '0', 'the worker had no error');
my @crash = lg_crash_lines(lg_log_slice($node, 0));
is(scalar(@crash), 0, 'no crash') or diag join("\n", @crash);

$node->stop;
done_testing();
