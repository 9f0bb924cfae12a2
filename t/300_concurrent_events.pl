# Several sessions produce pinning events at once while another reads the
# views: every row read is whole (its statement, reason and application
# name belong together), the counts add up, and named prepared statements of
# the extended protocol (pgbench -M prepared) are reported once per name.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('concurrent');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_lambdaguard'
lambdaguard.max_events = 500
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_lambdaguard');

# four kinds of writer, each with its own application_name and statement
my %scripts = (
	'w_set' => "SET work_mem = '1MB';\n",
	'w_cfg' => "SELECT set_config('statement_timeout', '0', false);\n",
	'w_adv' => "SELECT pg_advisory_lock(:client_id); SELECT pg_advisory_unlock_all();\n",
	'w_tmp' => "CREATE TEMP TABLE IF NOT EXISTS t_concurrent (x int);\n",);
my %reason_of = (
	'w_set' => 'set',
	'w_cfg' => 'set_config',
	'w_adv' => 'advisory_lock',
	'w_tmp' => 'temp_table',);
my %statement_like = (
	'w_set' => qr/^SET work_mem/,
	'w_cfg' => qr/^SELECT set_config/,
	'w_adv' => qr/^SELECT pg_advisory_lock/,
	'w_tmp' => qr/^CREATE TEMP TABLE/,);

my $transactions = 1500;
my @writers;
foreach my $app (sort keys %scripts)
{
	my $file = $node->basedir . "/$app.sql";
	PostgreSQL::Test::Utils::append_to_file($file, $scripts{$app});
	local $ENV{PGAPPNAME} = $app;
	push @writers, IPC::Run::start(
		[ 'pgbench', '-n', '-c', '2', '-t', $transactions, '-f', $file,
		  '-h', $node->host, '-p', $node->port, 'postgres' ],
		'>', \my $out, '2>', \my $err);
}

# read while they write
my $reads = 0;
my $bad = 0;
my $deadline = time() + 60;
while (grep { $_->pumpable } @writers)
{
	my $rows = $node->safe_psql('postgres',
		"SELECT application_name, reason, statement FROM lambdaguard.pinning_events
		  WHERE application_name LIKE 'w\\_%'");
	foreach my $line (split /\n/, $rows)
	{
		my ($app, $reason, $statement) = split /\|/, $line, 3;
		next unless defined $statement && exists $reason_of{$app};
		if ($reason ne $reason_of{$app} || $statement !~ $statement_like{$app})
		{
			$bad++;
			diag("mixed row: $line");
		}
	}
	$reads++;
	last if time() > $deadline;
	foreach my $h (@writers) { $h->pump_nb if $h->pumpable; }
}
$_->finish for @writers;
ok($reads > 0, "read the ring $reads times while four kinds of session wrote");
is($bad, 0, 'no torn or mixed rows: each statement has its own reason and application');

# the statistics add up: 2 clients x $transactions transactions per writer
my $stats = $node->safe_psql('postgres',
	"SELECT reason, events FROM lambdaguard.pinning_stats
	  WHERE reason IN ('set', 'set_config', 'advisory_lock', 'temp_table')
	  ORDER BY reason");
my $n = 2 * $transactions;
is($stats, "advisory_lock|$n\nset|$n\nset_config|$n\ntemp_table|$n",
	'every event was counted once');

# the ring holds exactly max_events rows, oldest first
is($node->safe_psql('postgres', 'SELECT count(*) FROM lambdaguard.pinning_events'),
	'500', 'the ring holds max_events events');
is($node->safe_psql('postgres',
		'SELECT bool_and(event_time >= prev) FROM (SELECT event_time, lag(event_time) OVER () AS prev FROM lambdaguard.pinning_events) e'),
	't', 'events come oldest first');

# named protocol-level statements: pgbench -M prepared names each statement
$node->safe_psql('postgres', 'SELECT lambdaguard.reset()');
my $file = $node->basedir . '/prepared.sql';
PostgreSQL::Test::Utils::append_to_file($file, "SELECT 1;\nSELECT 2;\n");
{
	local $ENV{PGAPPNAME} = 'w_prepared';
	$node->command_ok(
		[ 'pgbench', '-n', '-M', 'prepared', '-c', '1', '-t', '50', '-f', $file,
		  '-h', $node->host, '-p', $node->port, 'postgres' ],
		'pgbench -M prepared runs');
}
is($node->safe_psql('postgres',
		"SELECT reason, count(*) FROM lambdaguard.pinning_events
		  WHERE application_name = 'w_prepared' GROUP BY reason"),
	'protocol_prepared_statement|2',
	'each named statement is reported once, not once per execution');
{
	local $ENV{PGAPPNAME} = 'w_simple';
	$node->command_ok(
		[ 'pgbench', '-n', '-M', 'extended', '-c', '1', '-t', '50', '-f', $file,
		  '-h', $node->host, '-p', $node->port, 'postgres' ],
		'pgbench -M extended (unnamed statements) runs');
}
is($node->safe_psql('postgres',
		"SELECT count(*) FROM lambdaguard.pinning_events WHERE application_name = 'w_simple'"),
	'0', 'unnamed extended-protocol statements are not a reason');

$node->stop;
done_testing();
