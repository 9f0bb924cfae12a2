# Without shared_preload_libraries: CREATE EXTENSION works, and every view or
# function that needs shared memory raises 55000 with the contract's message.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('not_preloaded');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION pg_lambdaguard');
is($node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'pg_lambdaguard'"),
	'1.2', 'CREATE EXTENSION works without preloading');

foreach my $query (
	'SELECT * FROM lambdaguard.sessions',
	'SELECT * FROM lambdaguard.orphans',
	'SELECT * FROM lambdaguard.pinning_events',
	'SELECT * FROM lambdaguard.pinning_stats',
	'SELECT * FROM lambdaguard.worker',
	'SELECT * FROM lambdaguard.metrics',
	'SELECT * FROM lambdaguard.scan(true)',
	'SELECT * FROM lambdaguard.scan(false)',
	'SELECT lambdaguard.reset()')
{
	my ($ret, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\n$query");
	isnt($ret, 0, "fails: $query");
	like($err, qr/ERROR:\s+55000: pg_lambdaguard must be loaded via shared_preload_libraries/,
		"SQLSTATE 55000 and the message: $query");
}

# the tables shipped with the extension are readable all the same
is($node->safe_psql('postgres', 'SELECT count(*) > 10 FROM lambdaguard.reasons'),
	't', 'the reasons table is there');
is($node->safe_psql('postgres', 'SELECT count(*) FROM lambdaguard.history'),
	'0', 'the history table is there');
# the standby history is a file under the data directory, no shared memory
is($node->safe_psql('postgres', 'SELECT count(*) FROM lambdaguard.standby_history'),
	'0', 'lambdaguard.standby_history reads without preloading (a file, no shared memory)');

# and statements run normally: the hooks are not installed
$node->safe_psql('postgres', "SET work_mem = '8MB'; PREPARE p AS SELECT 1; EXECUTE p;");
ok(!$node->log_contains('pg_lambdaguard: worker started'), 'no worker without preloading');

$node->stop;
done_testing();
