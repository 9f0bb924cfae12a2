
# Copyright (c) 2026, pg_lambdaguard developers

# A driver's statements inside a transaction block (node-postgres: the
# extended protocol, whose portal is finished only at the next message or
# the commit): what a SELECT changed shows in lambdaguard.sessions while the
# session sits idle in the transaction, as PostgreSQL itself shows it
# (pg_settings, read by the session afterwards), and a ROLLBACK takes it
# away again.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/lib";

use LgTest;
use LgFaults;
use LgNodeClient;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = lg_node(
	'extended_xact', conf => q{
lambdaguard.idle_in_transaction_timeout = 0
lambdaguard.blocking_timeout = 0
lambdaguard.aborted_transaction_timeout = 0
lambdaguard.pinned_idle_timeout = 0
});

my $js = lg_node_client($node, appname => 'lg_extended_xact');
my $pid = $js->pid;

sub seen
{
	return lg_sql($node,
		"SELECT state || ' ' || dirty_reasons::text FROM lambdaguard.sessions WHERE pid = $pid");
}

# the session's own answer: is work_mem set for the session?
sub session_param
{
	my $r = $js->query(
		{ text => q{SELECT count(*)::int FROM pg_settings WHERE name = $1 AND source = 'session'},
		  values => ['work_mem'] });
	return $r->{rows} ? $r->{rows}[0][0] : "error: $r->{error}";
}

my $r = $js->query({ text => 'BEGIN' });
ok(!$r->{error}, 'BEGIN');
$r = $js->query({ text => 'SELECT set_config($1, $2, false)', values => [ 'work_mem', '5MB' ] });
is_deeply($r->{rows}, [ ['5MB'] ], 'set_config($1, $2, false) by the extended protocol, in the transaction');
is(seen(), 'idle in transaction {set_config}',
	'idle in the transaction: dirty_reasons {set_config} at once');
is(session_param(), 1, 'oracle: pg_settings shows work_mem set for the session');

$r = $js->query({ text => 'ROLLBACK' });
ok(!$r->{error}, 'ROLLBACK');
is(seen(), 'idle {}', 'after ROLLBACK: dirty_reasons {} (the parameter is back)');
is(session_param(), 0, 'oracle: pg_settings no longer shows work_mem set for the session');

# the same parameter set, then the transaction committed: it stays
$js->query({ text => 'BEGIN' });
$js->query({ text => 'SELECT set_config($1, $2, false)', values => [ 'work_mem', '6MB' ] });
is(seen(), 'idle in transaction {set_config}', 'again in a transaction: {set_config} at once');
$js->query({ text => 'COMMIT' });
is(seen(), 'idle {set_config}', 'after COMMIT: {set_config} stays');
is(session_param(), 1, 'oracle: pg_settings shows work_mem set after the commit');

$js->close;
is(join("\n", lg_crash_lines(lg_log_slice($node, 0))), '', 'no backend or worker crashed');
$node->stop;
done_testing();
