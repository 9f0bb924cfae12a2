
# Copyright (c) 2026, pg_lambdaguard developers

# ALTER EXTENSION pg_lambdaguard UPDATE from 1.1 to 1.2, on a database in
# use:
#
# - version 1.1 installed: the library fills its 20-column sessions rows
#   (no xmin_age) and its metrics; the worker terminates an orphan (a
#   history row); a row with every column filled is added by hand
# - after the update: extversion is 1.2; the old history rows are intact
#   (same ids, same values); lambdaguard.sessions has xmin_age as its last
#   column (set for a REPEATABLE READ transaction, NULL without a snapshot);
#   lambdaguard.standby_history and standby_imports exist (empty on a
#   primary); the metrics hold lambdaguard_in_recovery; the worker writes new
#   rows after the old ones; pg_monitor reads the new views
# - the updated schema equals a fresh 1.2 install (CREATE EXTENSION in
#   another database), compared through the catalogs (lg_extension_facts)

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
	'upgrade12',
	no_extension => 1,
	conf => q{
lambdaguard.idle_in_transaction_timeout = 1000
lambdaguard.blocking_timeout = 0
lambdaguard.aborted_transaction_timeout = 0
});

is(lg_sql($node, "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_lambdaguard'"),
	'1.2', 'the default version is 1.2');
is(lg_sql($node, "SELECT string_agg(version, ',' ORDER BY version) FROM pg_available_extension_versions WHERE name = 'pg_lambdaguard'"),
	'1.0,1.1,1.2', 'versions 1.0, 1.1 and 1.2 are available');

$node->safe_psql('postgres', "CREATE EXTENSION pg_lambdaguard VERSION '1.1'");
is(lg_sql($node, "SELECT extversion FROM pg_extension WHERE extname = 'pg_lambdaguard'"),
	'1.1', 'version 1.1 installed');

# ---------------------------------------------------------------------------
# 1.1 in use, with this library
# ---------------------------------------------------------------------------
is(lg_sql($node, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'lambdaguard.sessions'::regclass AND attnum > 0"),
	'20', '1.1: lambdaguard.sessions has 20 columns');
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) >= 0 FROM lambdaguard.sessions');
is("$ret|$out", '0|t', '1.1: this library fills 1.1\'s sessions rows') or diag $err;

my $o1 = lg_session($node, appname => 'lg_before_update');
my $pid1 = $o1->pid;
# with a comment: 1.1's history has no client_context, and the row is written
$o1->query("BEGIN; UPDATE t SET v = v + 1 WHERE id = 1 /*request_id='before-update'*/;");
ok(lg_wait($node, "SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $pid1 AND action = 'terminate'", 15),
	'1.1: the worker terminated an orphan and recorded it (a commented one: 1.1 keeps no context)');
$o1->close;
$node->safe_psql(
	'postgres', q{
INSERT INTO lambdaguard.history
    (at, pid, usename, datname, application_name, client_addr, backend_start,
     xact_start, state, state_since, verdict, action, locks_held, blocked_pids,
     pin_reasons, query, detail)
VALUES ('2026-11-30 12:00:00+00', 4711, 'app', 'postgres', 'lg_manual', '10.1.2.3',
        '2026-11-30 11:00:00+00', '2026-11-30 11:59:00+00', 'idle in transaction',
        '2026-11-30 11:59:30+00', 'orphan_blocking', 'dry_run', 3, '{101,102}',
        '{set,listen}', 'UPDATE t SET v = 0', 'written by hand')});

# the rows as 1.1 has them (1.2 adds client_context, NULL for old rows)
my $history_sql = q{SELECT coalesce(json_agg(to_jsonb(h) - 'client_context' ORDER BY id), '[]') FROM lambdaguard.history h};
my $before = lg_sql($node, $history_sql);
my $max_id = lg_sql($node, 'SELECT max(id) FROM lambdaguard.history');
is(lg_sql($node, 'SELECT count(*) FROM lambdaguard.history'), '2', '1.1: two history rows');

# ---------------------------------------------------------------------------
# the update
# ---------------------------------------------------------------------------
($ret, $out, $err) = $node->psql('postgres', 'ALTER EXTENSION pg_lambdaguard UPDATE',
	on_error_stop => 1);
is($ret, 0, 'ALTER EXTENSION pg_lambdaguard UPDATE succeeds') or diag $err;
is(lg_sql($node, "SELECT extversion FROM pg_extension WHERE extname = 'pg_lambdaguard'"),
	'1.2', 'extversion is 1.2');
is(lg_sql($node, $history_sql), $before, 'the old history rows are intact: same ids, same values');
is(lg_sql($node, "SELECT count(*) FROM lambdaguard.history WHERE client_context IS NULL"), '2',
	'the old history rows have no client_context');
is( lg_sql($node,
		"SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid IN ('lambdaguard.sessions'::regclass, 'lambdaguard.pinning_events'::regclass, 'lambdaguard.history'::regclass) AND attname IN ('client_context', 'deadline')"),
	'client_context jsonb,client_context jsonb,client_context jsonb,deadline timestamp with time zone',
	'history, pinning_events and sessions gained client_context (sessions also deadline)')
  or diag lg_sql($node, "SELECT attrelid::regclass, attname, attnum FROM pg_attribute WHERE attname IN ('client_context', 'deadline')");

is( lg_sql($node,
		"SELECT attnum, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'lambdaguard.sessions'::regclass AND attname = 'xmin_age'"),
	'21|integer', 'lambdaguard.sessions has xmin_age int as its last column');
{
	my $rr = lg_session($node, appname => 'lg_rr', user => 'other');
	$rr->query('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t;');
	my $idle = lg_session($node, appname => 'lg_idle', user => 'other');
	is( lg_sql($node,
			"SELECT string_agg(application_name || ':' || (xmin_age IS NOT NULL)::text, ',' ORDER BY application_name) FROM lambdaguard.sessions WHERE application_name IN ('lg_rr', 'lg_idle')"),
		'lg_idle:false,lg_rr:true',
		'xmin_age: set for a session holding a snapshot, NULL without one');
	is( lg_sql($node,
			"SELECT s.xmin_age = age(a.backend_xmin) FROM lambdaguard.sessions s JOIN pg_stat_activity a USING (pid) WHERE s.application_name = 'lg_rr'"),
		't', 'xmin_age is age(backend_xmin)');
	$rr->close;
	$idle->close;
}

foreach my $v (qw(sessions orphans pinning_events pinning_stats worker metrics history reasons
	standby_history standby_imports))
{
	my ($r, $o, $e) = $node->psql('postgres', "SELECT count(*) >= 0 FROM lambdaguard.$v");
	ok($r == 0 && $o eq 't', "after the update: lambdaguard.$v works") or diag $e;
}
is(lg_sql($node, 'SELECT count(*) FROM lambdaguard.standby_history'), '0',
	'after the update: no standby history on a primary');
is(lg_sql($node, "SELECT value FROM lambdaguard.metrics WHERE metric = 'lambdaguard_in_recovery'"),
	'0', 'after the update: lambdaguard_in_recovery is 0 on a primary');

$node->safe_psql('postgres', 'CREATE ROLE mon LOGIN IN ROLE pg_monitor');
foreach my $v (qw(sessions standby_history metrics))
{
	($ret, $out, $err) = lg_psql_as($node, 'mon', "SELECT count(*) >= 0 FROM lambdaguard.$v");
	is("$ret|$out", '0|t', "after the update: a pg_monitor role reads lambdaguard.$v") or diag $err;
}

{
	my $o2 = lg_session($node, appname => 'lg_after_update');
	my $pid2 = $o2->pid;
	$o2->query("BEGIN; SELECT 1 /*request_id='after-update'*/;");
	ok(lg_wait($node, "SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $pid2 AND action = 'terminate'", 15),
		'after the update: the worker terminates and records an orphan');
	is(lg_sql($node, "SELECT client_context->>'request_id' FROM lambdaguard.history WHERE pid = $pid2"),
		'after-update', 'after the update: its row holds the invocation context');
	is(lg_sql($node, "SELECT id > $max_id FROM lambdaguard.history WHERE pid = $pid2"),
		't', 'after the update: the new row comes after the old ones');
	$o2->close;
}

# ---------------------------------------------------------------------------
# the updated schema equals a fresh 1.2 install
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE lg_fresh');
$node->safe_psql('lg_fresh', 'CREATE EXTENSION pg_lambdaguard');
is($node->safe_psql('lg_fresh', "SELECT extversion FROM pg_extension WHERE extname = 'pg_lambdaguard'"),
	'1.2', 'a fresh install in another database is version 1.2');

my $upgraded = lg_extension_facts($node, 'postgres');
my $fresh = lg_extension_facts($node, 'lg_fresh');
my %in_fresh = map { $_ => 1 } split /\n/, $fresh;
my %in_upgraded = map { $_ => 1 } split /\n/, $upgraded;
my @only_upgraded = grep { !$in_fresh{$_} } split /\n/, $upgraded;
my @only_fresh = grep { !$in_upgraded{$_} } split /\n/, $fresh;
cmp_ok(scalar(keys %in_fresh), '>', 100, 'the description of a fresh install has many facts');
like($fresh, qr/^relation standby_imports kind r/m, 'the description names the new table');
is(join("\n", @only_upgraded), '', 'updated installation: nothing that a fresh 1.2 install lacks');
is(join("\n", @only_fresh), '', 'updated installation: nothing missing that a fresh 1.2 install has');

is(join("\n", lg_crash_lines(lg_log_slice($node, 0))), '', 'no backend or worker crashed');
$node->stop;
done_testing();
