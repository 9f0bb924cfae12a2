
# Copyright (c) 2026, pg_lambdaguard developers

# ALTER EXTENSION pg_lambdaguard UPDATE from 1.0 to 1.1, on a database in
# use:
#
# - version 1.0 installed, the worker terminates an orphan (a history row),
#   a session makes pinning events, a row with every column filled is added
# - after the update: extversion is 1.1; the old history rows are intact
#   (same ids, same values); the worker writes new rows after them; every
#   view works, the old pinning events are still there; lambdaguard.worker
#   has brake_since; a role with only SELECT on a view reads it
# - the updated schema equals a fresh 1.1 install (CREATE EXTENSION in
#   another database), compared through the catalogs: extension members,
#   relations, columns (in order), view definitions, function definitions,
#   indexes, constraints, triggers, comments, privileges, the reasons table's
#   rows, the dump configuration

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
	'upgrade',
	no_extension => 1,
	conf => q{
lambdaguard.idle_in_transaction_timeout = 1000
lambdaguard.blocking_timeout = 0
lambdaguard.aborted_transaction_timeout = 0
});

is(lg_sql($node, "SELECT string_agg(version, ',' ORDER BY version) FROM pg_available_extension_versions WHERE name = 'pg_lambdaguard' AND version IN ('1.0', '1.1')"),
	'1.0,1.1', 'versions 1.0 and 1.1 are available');

$node->safe_psql('postgres', "CREATE EXTENSION pg_lambdaguard VERSION '1.0'");
is(lg_sql($node, "SELECT extversion FROM pg_extension WHERE extname = 'pg_lambdaguard'"),
	'1.0', 'version 1.0 installed');

# ---------------------------------------------------------------------------
# 1.0 in use
# ---------------------------------------------------------------------------
my $pinner = lg_session($node, appname => 'lg_pinner');
$pinner->query(q{SET work_mem = '8MB'});
$pinner->query(q{PREPARE lg_before AS SELECT 1});

my $o1 = lg_session($node, appname => 'lg_before_update');
my $pid1 = $o1->pid;
$o1->query('BEGIN; UPDATE t SET v = v + 1 WHERE id = 1;');
ok(lg_wait($node, "SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $pid1 AND action = 'terminate'", 15),
	'1.0: the worker terminated an orphan and recorded it');
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

my $history_sql = q{SELECT coalesce(json_agg(h ORDER BY id), '[]') FROM lambdaguard.history h};
my $before = lg_sql($node, $history_sql);
my $max_id = lg_sql($node, 'SELECT max(id) FROM lambdaguard.history');
is(lg_sql($node, 'SELECT count(*) FROM lambdaguard.history'), '2', '1.0: two history rows');
my $events_before = lg_sql($node,
	"SELECT count(*) FROM lambdaguard.pinning_events WHERE pid = ${\ $pinner->pid}");
cmp_ok($events_before, '>=', 2, '1.0: the pinning events of the SET and the PREPARE');

# ---------------------------------------------------------------------------
# the update
# ---------------------------------------------------------------------------
my ($ret, $out, $err) = $node->psql('postgres', "ALTER EXTENSION pg_lambdaguard UPDATE TO '1.1'",
	on_error_stop => 1);
is($ret, 0, 'ALTER EXTENSION pg_lambdaguard UPDATE succeeds') or diag $err;
is(lg_sql($node, "SELECT extversion FROM pg_extension WHERE extname = 'pg_lambdaguard'"),
	'1.1', 'extversion is 1.1');

is(lg_sql($node, $history_sql), $before, 'the old history rows are intact: same ids, same values');
is( lg_sql($node,
		"SELECT count(*) FROM pg_attribute WHERE attrelid = 'lambdaguard.worker'::regclass AND attname = 'brake_since' AND NOT attisdropped"),
	'1', 'lambdaguard.worker has the column brake_since');
is(lg_sql($node, 'SELECT pg_typeof(brake_since) FROM lambdaguard.worker'),
	'timestamp with time zone', 'brake_since is a timestamptz');

foreach my $v (qw(sessions orphans pinning_events pinning_stats worker metrics history reasons))
{
	my ($r, $o, $e) = $node->psql('postgres', "SELECT count(*) >= 0 FROM lambdaguard.$v");
	ok($r == 0 && $o eq 't', "after the update: lambdaguard.$v works") or diag $e;
}
is( lg_sql($node,
		"SELECT count(*) FROM lambdaguard.pinning_events WHERE pid = ${\ $pinner->pid}"),
	$events_before, 'after the update: the pinning events from before are still there');
is( lg_sql($node,
		"SELECT array(SELECT unnest(pin_reasons) ORDER BY 1)::text FROM lambdaguard.sessions WHERE pid = ${\ $pinner->pid}"),
	'{prepared_statement,set}', 'after the update: the session\'s pin_reasons are still there');

# the worker records after the update, after the old rows
{
	my $o2 = lg_session($node, appname => 'lg_after_update');
	my $pid2 = $o2->pid;
	$o2->query(q{SET work_mem = '8MB'; BEGIN; SELECT 1;});
	ok(lg_wait($node, "SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $pid2 AND action = 'terminate'", 15),
		'after the update: the worker terminates and records an orphan');
	is(lg_sql($node, "SELECT id > $max_id FROM lambdaguard.history WHERE pid = $pid2"),
		't', 'after the update: the new row comes after the old ones');
	is(lg_sql($node, "SELECT pin_reasons::text FROM lambdaguard.history WHERE pid = $pid2"),
		'{set}', 'after the update: the new row has its pin_reasons');
	$o2->close;
}

# ---------------------------------------------------------------------------
# the updated schema equals a fresh 1.1 install
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', 'CREATE DATABASE lg_fresh');
$node->safe_psql('lg_fresh', "CREATE EXTENSION pg_lambdaguard VERSION '1.1'");
is($node->safe_psql('lg_fresh', "SELECT extversion FROM pg_extension WHERE extname = 'pg_lambdaguard'"),
	'1.1', 'a fresh install in another database is version 1.1');


my $upgraded = lg_extension_facts($node, 'postgres');
my $fresh = lg_extension_facts($node, 'lg_fresh');
my %in_fresh = map { $_ => 1 } split /\n/, $fresh;
my %in_upgraded = map { $_ => 1 } split /\n/, $upgraded;
my @only_upgraded = grep { !$in_fresh{$_} } split /\n/, $upgraded;
my @only_fresh = grep { !$in_upgraded{$_} } split /\n/, $fresh;
cmp_ok(scalar(keys %in_fresh), '>', 100, 'the description of a fresh install has many facts')
  or diag $fresh;
is(join("\n", @only_upgraded), '', 'updated installation: nothing that a fresh 1.1 install lacks');
is(join("\n", @only_fresh), '', 'updated installation: nothing missing that a fresh 1.1 install has');

# the 1.1 privilege rule holds on the updated installation
$node->safe_psql('postgres', q{
CREATE ROLE lg_reader LOGIN;
GRANT USAGE ON SCHEMA lambdaguard TO lg_reader;
GRANT SELECT ON lambdaguard.sessions TO lg_reader;
});
($ret, $out, $err) = lg_psql_as($node, 'lg_reader', 'SELECT count(*) > 0 FROM lambdaguard.sessions');
ok($ret == 0 && $out eq 't', 'after the update: SELECT on lambdaguard.sessions is enough')
  or diag $err;

$pinner->close;
is(join("\n", lg_crash_lines(lg_log_slice($node, 0))), '', 'no backend or worker crashed');
$node->stop;
done_testing();
