
# Copyright (c) 2026, pg_lambdaguard developers

# The storm brake bounds the rate: at most lambdaguard.max_terminations
# signals within any naptime interval, however often the worker wakes.
#
# 25 orphans fall due a few milliseconds after one another, with
# max_terminations = 10 and naptime = 1 s; while they wait, the
# configuration is reloaded every 100 ms (each reload wakes the worker).
# All 25 are terminated in the end; sorted by lambdaguard.history.at, any
# 11 consecutive terminations span at least one naptime.  While the brake
# holds, lambdaguard.worker.brake_since says since when; it is NULL again
# once no orphan waits.

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

my $n = 25;
my $max = 10;
my $naptime_ms = 1000;
# timestamps are microseconds; allow for the clock's granularity only
my $tolerance_ms = 5;

my $node = lg_node(
	'brake', conf => qq{
lambdaguard.naptime = $naptime_ms
lambdaguard.max_terminations = $max
lambdaguard.idle_in_transaction_timeout = 1000
lambdaguard.blocking_timeout = 0
lambdaguard.aborted_transaction_timeout = 0
});

is(lg_sql($node, 'SELECT brake_since IS NULL FROM lambdaguard.worker'), 't',
	'lambdaguard.worker.brake_since exists and is NULL while nothing waits');

my $w0 = lg_worker($node);
my @s = map { lg_session($node, appname => "lg_storm_$_") } 1 .. $n;
my @pids = map { $_->pid } @s;
my $pid_list = join(',', @pids);

# the 25 go idle in transaction one after the other, a few milliseconds
# apart: the worker, which wakes when the next session falls due, meets them
# over many wake-ups rather than in one scan
foreach my $s (@s)
{
	$s->send('BEGIN; SELECT 1;');
	usleep(8_000);
}
foreach my $s (@s)
{
	my (undef, $err, $done) = $s->result(10);
	die "could not open a transaction: $err" unless $done && $err eq '';
}
my $spread = lg_sql($node,
	"SELECT extract(epoch FROM max(state_change) - min(state_change)) * 1000 FROM pg_stat_activity WHERE pid IN ($pid_list)");
note "the $n orphans went idle in transaction within $spread ms";

# while they wait: wake the worker often, and watch brake_since
my $brake_since;
my $deadline = time() + 15;
while (time() < $deadline)
{
	my $out = lg_sql(
		$node, qq{
SELECT coalesce((SELECT extract(epoch FROM brake_since)::text FROM lambdaguard.worker), ''),
       (SELECT count(*) FROM lambdaguard.history WHERE pid IN ($pid_list) AND action = 'terminate'),
       pg_reload_conf()}) // '';
	my ($since, $done) = split /\|/, $out;
	$brake_since //= $since if defined $since && $since ne '';
	last if defined $done && $done >= $n;
	usleep(100_000);
}

ok( lg_wait(
		$node, qq{
SELECT count(*) = $n AND count(DISTINCT pid) = $n FROM lambdaguard.history
 WHERE pid IN ($pid_list) AND action = 'terminate'}, 20),
	"all $n orphans are terminated in the end, one terminate row each");
ok(lg_wait($node, "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid IN ($pid_list))", 10),
	"all $n orphans are gone");

my @at = split /\n/,
  (lg_sql($node,
	"SELECT extract(epoch FROM at) FROM lambdaguard.history WHERE pid IN ($pid_list) AND action = 'terminate' ORDER BY at")
	  // '');
my @bad;
my $min_span;
for (my $i = 0; $i + $max < @at; $i++)
{
	my $span = ($at[ $i + $max ] - $at[$i]) * 1000;
	$min_span = $span if !defined $min_span || $span < $min_span;
	push @bad, sprintf('terminations %d..%d within %.1f ms', $i + 1, $i + $max + 1, $span)
	  if $span < $naptime_ms - $tolerance_ms;
}
ok(@at == $n && !@bad,
	"no $max + 1 terminations within one naptime ($naptime_ms ms)")
  or diag join("\n", @bad) . "\nterminations at (s after the first): "
  . join(' ', map { sprintf('%.3f', $_ - $at[0]) } @at);
note sprintf('shortest span of %d consecutive terminations: %.1f ms', $max + 1, $min_span // -1);
my @first = grep { $_ - $at[0] < $naptime_ms / 1000.0 } @at;
is(scalar(@first), $max, "the first naptime saw exactly max_terminations ($max) terminations");

ok(defined $brake_since, 'worker.brake_since was set while orphans waited for the brake');
ok( defined $brake_since
	  && @at > $max
	  && $brake_since >= $at[0] - 0.05
	  && $brake_since <= $at[$max],
	'worker.brake_since lies between the first termination and the first one held back')
  or diag "brake_since " . ($brake_since // 'never set') . ", first at "
  . ($at[0] // '-') . ", terminations at " . join(' ', @at);
ok(lg_wait($node, 'SELECT brake_since IS NULL FROM lambdaguard.worker', 5),
	'worker.brake_since is NULL again once no orphan waits');

is(lg_worker($node)->{terminated} - $w0->{terminated}, $n, "worker.terminated + $n");
is(lg_sql($node, "SELECT count(*) FROM lambdaguard.history WHERE pid IN ($pid_list) AND action <> 'terminate'"),
	'0', 'no skipped or failed decision for the orphans held back');

$_->close foreach @s;
is(join("\n", lg_crash_lines(lg_log_slice($node, 0))), '', 'no backend or worker crashed');
$node->stop;
done_testing();
