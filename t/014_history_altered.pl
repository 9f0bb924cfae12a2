
# Copyright (c) 2026, pg_lambdaguard developers

# scan() returns lambdaguard.history rows and writes them: if the table was
# altered (a column added, a column's type changed), scan(true) and
# scan(false) refuse with an ERROR that names lambdaguard.history, never a
# crash or a garbage row, and scan(false) signals nobody (no row, no
# signal).  Once the table is put back, scan() works again.
#
# The worker is switched off, so that only scan() acts.

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
	'altered', conf => q{
lambdaguard.enabled = off
lambdaguard.idle_in_transaction_timeout = 1000
lambdaguard.blocking_timeout = 0
lambdaguard.aborted_transaction_timeout = 0
});

my $s = lg_session($node, appname => 'lg_altered');
my $pid = $s->pid;
$s->query('BEGIN; UPDATE t SET v = v + 1 WHERE id = 1;');
lg_wait_idle_for($node, $pid, 1200, 10) or die 'no orphan';
is( lg_sql($node, "SELECT action || ' ' || verdict || ' ' || locks_held FROM lambdaguard.scan(true) WHERE pid = $pid"),
	'dry_run orphan ' . lg_sql($node, "SELECT count(*) FROM pg_locks WHERE pid = $pid AND granted"),
	'unaltered: scan(true) previews the orphan, with its locks');

my @alterations = (
	[
		'a column added',
		'ALTER TABLE lambdaguard.history ADD COLUMN extra int',
		'ALTER TABLE lambdaguard.history DROP COLUMN extra'
	],
	[
		'a column\'s type changed',
		'ALTER TABLE lambdaguard.history ALTER COLUMN locks_held TYPE bigint',
		'ALTER TABLE lambdaguard.history ALTER COLUMN locks_held TYPE int'
	],
	[
		'a column dropped',
		'ALTER TABLE lambdaguard.history DROP COLUMN detail',
		'ALTER TABLE lambdaguard.history ADD COLUMN detail text'
	]);

foreach my $case (@alterations)
{
	my ($what, $alter, $repair) = @$case;
	$node->safe_psql('postgres', $alter);
	foreach my $dry ('true', 'false')
	{
		my ($ret, $out, $err) = $node->psql('postgres',
			"SELECT * FROM lambdaguard.scan($dry) WHERE pid = $pid");
		isnt($ret, 0, "$what: scan($dry) refuses");
		like($err, qr/ERROR:[^\n]*lambdaguard\.history/,
			"$what: scan($dry)'s ERROR names lambdaguard.history");
		note "$what: scan($dry) says: $err";
		is($out, '', "$what: scan($dry) returns no row");
	}
	is(lg_state($node, $pid), 'idle in transaction', "$what: the orphan is not signalled");
	is(lg_sql($node, "SELECT count(*) FROM lambdaguard.history WHERE pid = $pid"), '0',
		"$what: nothing recorded");
	is(lg_sql($node, 'SELECT 1'), '1', "$what: the server still answers");
	is(lg_sql($node, 'SELECT count(*) FROM lambdaguard.standby_history'), '0',
		"$what: lambdaguard.standby_history, built on no table, still reads");
	$node->safe_psql('postgres', $repair);
}

# put back (with a dropped column left in the table, as ALTER TABLE leaves
# it): scan() works again
is(lg_sql($node, "SELECT action FROM lambdaguard.scan(true) WHERE pid = $pid"),
	'dry_run', 'put back: scan(true) previews the orphan');
is(lg_sql($node, "SELECT action || ' ' || verdict FROM lambdaguard.scan(false) WHERE pid = $pid"),
	'terminate orphan', 'put back: scan(false) terminates the orphan');
ok(lg_gone($node, $pid), 'put back: the orphan is gone');
is( lg_sql($node,
		"SELECT action || ' ' || verdict || ' ' || (detail IS NULL) FROM lambdaguard.history WHERE pid = $pid"),
	'terminate orphan true', 'put back: its row is recorded');

$s->close;
is(join("\n", lg_crash_lines(lg_log_slice($node, 0))), '', 'no backend or worker crashed');
$node->stop;
done_testing();
