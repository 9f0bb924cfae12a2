
# Copyright (c) 2026, pg_lambdaguard developers

# A driver's statements inside a transaction block (node-postgres: the
# extended protocol, whose portal is finished only at the next message or
# the commit): what a SELECT changed shows in lambdaguard.sessions while the
# session sits idle in the transaction, as PostgreSQL itself shows it
# (pg_settings, read by the session afterwards), and a ROLLBACK takes it
# away again; advisory locks taken and released in a transaction block show
# at the statement's end (pg_locks), unless transaction-level ones may be
# held beside them.  The same with pg_stat_statements and auto_explain
# (whose ExecutorFinish hooks come first) preloaded before it.

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

# set_config in a transaction block: rolled back, then committed
sub set_config_in_transaction
{
	my ($label) = @_;
	my $r = $js->query({ text => 'BEGIN' });
	ok(!$r->{error}, "$label: BEGIN");
	$r = $js->query({ text => 'SELECT set_config($1, $2, false)', values => [ 'work_mem', '5MB' ] });
	is_deeply($r->{rows}, [ ['5MB'] ],
		"$label: set_config(\$1, \$2, false) by the extended protocol, in the transaction");
	is(seen(), 'idle in transaction {set_config}',
		"$label: idle in the transaction: dirty_reasons {set_config} at once");
	is(session_param(), 1, "$label: oracle: pg_settings shows work_mem set for the session");

	$r = $js->query({ text => 'ROLLBACK' });
	ok(!$r->{error}, "$label: ROLLBACK");
	is(seen(), 'idle {}', "$label: after ROLLBACK: dirty_reasons {} (the parameter is back)");
	is(session_param(), 0,
		"$label: oracle: pg_settings no longer shows work_mem set for the session");

	# the same parameter set, then the transaction committed: it stays
	$js->query({ text => 'BEGIN' });
	$js->query({ text => 'SELECT set_config($1, $2, false)', values => [ 'work_mem', '6MB' ] });
	is(seen(), 'idle in transaction {set_config}',
		"$label: again in a transaction: {set_config} at once");
	$js->query({ text => 'COMMIT' });
	is(seen(), 'idle {set_config}', "$label: after COMMIT: {set_config} stays");
	is(session_param(), 1, "$label: oracle: pg_settings shows work_mem set after the commit");
	$js->query({ text => 'RESET work_mem' });
}

set_config_in_transaction('alone');
my $r;

# advisory locks in a transaction block: counted at the statement's end,
# with pg_locks (read from another session) as the oracle
sub locks_held
{
	return lg_sql($node,
		"SELECT count(*) FROM pg_locks WHERE pid = $pid AND locktype = 'advisory' AND granted");
}
$js->query({ text => 'BEGIN' });
$r = $js->query({ text => 'SELECT pg_advisory_lock($1)', values => [71] });
ok(!$r->{error}, 'pg_advisory_lock($1) in a transaction');
is(locks_held(), 1, 'oracle: pg_locks shows the advisory lock');
is(seen(), 'idle in transaction {advisory_lock}',
	'idle in the transaction: dirty_reasons {advisory_lock} at once');
$r = $js->query({ text => 'SELECT pg_advisory_unlock($1)', values => [71] });
ok($r->{rows} && $r->{rows}[0][0], 'pg_advisory_unlock($1) in the same transaction');
is(locks_held(), 0, 'oracle: pg_locks shows no advisory lock');
is(seen(), 'idle in transaction {}', 'after the unlock: dirty_reasons {} at once');
$r = $js->query({ text => 'SELECT pg_try_advisory_lock($1)', values => [72] });
ok($r->{rows} && $r->{rows}[0][0], 'pg_try_advisory_lock($1) in the same transaction');
$js->query({ text => 'ROLLBACK' });
is(locks_held(), 1, 'oracle: a session-level lock outlives the ROLLBACK');
is(seen(), 'idle {advisory_lock}', 'after ROLLBACK: {advisory_lock} stays');

# a transaction-level lock, which pg_locks shows as it shows the session's:
# not counted as session state
$js->query({ text => 'BEGIN' });
$js->query({ text => 'SELECT pg_advisory_unlock_all()' });
is(seen(), 'idle in transaction {}', 'pg_advisory_unlock_all() in a transaction: {} at once');
$js->query({ text => 'SELECT pg_advisory_xact_lock($1)', values => [73] });
$r = $js->query({ text => 'SELECT pg_advisory_unlock($1)', values => [999] });
ok($r->{rows} && !$r->{rows}[0][0], 'pg_advisory_unlock of a lock not held: false');
is(locks_held(), 1, 'oracle: pg_locks shows the transaction-level lock');
is(seen(), 'idle in transaction {}',
	'the transaction-level lock is not taken for the session\'s');
$js->query({ text => 'COMMIT' });
is(locks_held(), 0, 'oracle: no advisory lock after the COMMIT');
is(seen(), 'idle {}', 'after COMMIT: dirty_reasons {}');

$js->close;
is(join("\n", lg_crash_lines(lg_log_slice($node, 0))), '', 'no backend or worker crashed');
$node->stop;

# the same with libraries whose ExecutorFinish hooks come before ours
my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
SKIP:
{
	my @missing = grep { !-f "$pkglibdir/$_.so" } qw(pg_stat_statements auto_explain);
	if (@missing)
	{
		note "not installed: @missing: the order with them skipped";
		skip "not installed: @missing", 1;
	}
	$node = lg_node(
		'extended_xact_hooks', conf => q{
shared_preload_libraries = 'pg_stat_statements, auto_explain, pg_lambdaguard'
lambdaguard.idle_in_transaction_timeout = 0
lambdaguard.blocking_timeout = 0
lambdaguard.aborted_transaction_timeout = 0
lambdaguard.pinned_idle_timeout = 0
});
	$js = lg_node_client($node, appname => 'lg_extended_xact_hooks');
	$pid = $js->pid;
	set_config_in_transaction('after pg_stat_statements and auto_explain');
	$js->close;
	is(join("\n", lg_crash_lines(lg_log_slice($node, 0))), '',
		'with pg_stat_statements and auto_explain: no backend or worker crashed');
	$node->stop;
}
done_testing();
