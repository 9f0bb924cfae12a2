
# Copyright (c) 2026, pg_lambdaguard developers

# A database whose extension stays at version 1.0 (never updated), with the
# current library preloaded, reads every view and function of 1.0 right.
# The 1.0 objects call the same C functions as the current version with the row types of
# 1.0, which for lambdaguard.worker and lambdaguard.pinning_stats are
# shorter.
#
# lambdaguard.database names the 1.0 database, so the worker writes its
# history there; a second database of the same cluster has the current version.  Real data
# first: an orphan (after a SET) that blocks another session is terminated
# by the worker, a watched session makes pinning events with a SET and a
# PREPARE, two orphans are recorded under dry_run, one waits while the
# worker is switched off.  Then, for each view and function of 1.0:
#
# - its columns in the catalog (pg_attribute of the view, the OUT arguments
#   of the function) are those of 1.0, and a row read has as many
# - its values agree with what PostgreSQL itself shows: pg_stat_activity
#   for the sessions' pids, roles, databases, applications, addresses,
#   states and times, pg_blocking_pids() and pg_locks for blocking and
#   locks held, pg_settings and pg_prepared_statements for the pinning
#   session's state, the statements that were sent (and their query_id)
#   for the events, the background worker's row of pg_stat_activity for
#   lambdaguard.worker, the history table for the action counts
# - the current version's database reads the same values, column for column, in every
#   column the two versions share
#
# The worker's figures are compared while it is switched off (enabled =
# off), so that they do not move between two readings.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/lib";

use JSON::PP;
use LgTest;
use LgFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $old_db = 'postgres';      # lambdaguard.database: 1.0
my $new_db = 'lg_current';    # the current version

my $node = lg_node(
	'old_reads',
	no_extension => 1,
	conf => q{
compute_query_id = on
lambdaguard.idle_in_transaction_timeout = 5000
lambdaguard.blocking_timeout = 0
lambdaguard.aborted_transaction_timeout = 0
});

$node->safe_psql($old_db, "CREATE EXTENSION pg_lambdaguard VERSION '1.0'");
$node->safe_psql('postgres', "CREATE DATABASE $new_db");
$node->safe_psql($new_db, 'CREATE EXTENSION pg_lambdaguard');

my $version_sql = "SELECT extversion FROM pg_extension WHERE extname = 'pg_lambdaguard'";
is($node->safe_psql($old_db, $version_sql), '1.0', "$old_db has version 1.0");
my $default_version = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'pg_lambdaguard'");
is($node->safe_psql($new_db, $version_sql), $default_version,
	"$new_db has the current version ($default_version)");
is(lg_sql($node, 'SHOW lambdaguard.database'), $old_db,
	"lambdaguard.database names $old_db, the 1.0 database");

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

# One query in a database, its one-line output decoded as JSON
sub json_in
{
	my ($db, $sql) = @_;
	my $out = $node->safe_psql($db, $sql);
	return decode_json($out eq '' ? 'null' : $out);
}

# The rows of a query as a JSON array, in the given order
sub rows_in
{
	my ($db, $sql, $order) = @_;
	return json_in($db,
		"SELECT coalesce(json_agg(x ORDER BY $order), '[]') FROM ($sql) x");
}

my $json = JSON::PP->new->canonical;

sub show { return defined $_[0] ? $json->allow_nonref->encode($_[0]) : 'NULL'; }

# Compare $got->{col} with $want->{col} for each listed column, one test
# per column, so that a column holding another column's value is named
sub same_columns
{
	my ($what, $got, $want, @cols) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	foreach my $c (@cols)
	{
		is(show($got->{$c}), show($want->{$c}), "$what: $c");
	}
}

# ---------------------------------------------------------------------------
# the shapes of 1.0, as pg_lambdaguard--1.0.sql creates them
# ---------------------------------------------------------------------------
my $tz = 'timestamp with time zone';
my @sessions_1_0 = (
	[ pid => 'integer' ], [ usename => 'name' ], [ datname => 'name' ],
	[ application_name => 'text' ], [ client_addr => 'inet' ],
	[ backend_start => $tz ], [ xact_start => $tz ], [ state => 'text' ],
	[ state_change => $tz ], [ state_duration => 'interval' ],
	[ watched => 'boolean' ], [ pinned => 'boolean' ],
	[ pin_reasons => 'text[]' ], [ pinned_since => $tz ],
	[ pinned_by => 'text' ], [ dirty_reasons => 'text[]' ],
	[ blocking => 'integer' ], [ verdict => 'text' ], [ action_at => $tz ],
	[ query => 'text' ]);
my @events_1_0 = (
	[ event_time => $tz ], [ pid => 'integer' ], [ usename => 'name' ],
	[ datname => 'name' ], [ application_name => 'text' ],
	[ client_addr => 'inet' ], [ reason => 'text' ], [ hidden => 'boolean' ],
	[ statement => 'text' ], [ queryid => 'bigint' ]);
my @stats_1_0 = (
	[ usename => 'name' ], [ datname => 'name' ], [ reason => 'text' ],
	[ events => 'bigint' ], [ sessions => 'bigint' ], [ last_seen => $tz ]);
my @worker_1_0 = (
	[ pid => 'integer' ], [ started_at => $tz ], [ last_scan_at => $tz ],
	[ scans => 'bigint' ], [ sessions_seen => 'integer' ],
	[ last_scan_us => 'bigint' ], [ orphans_found => 'bigint' ],
	[ terminated => 'bigint' ], [ cancelled => 'bigint' ],
	[ dry_run_hits => 'bigint' ], [ errors => 'bigint' ],
	[ last_error => 'text' ]);
my @metrics_1_0 =
  ([ metric => 'text' ], [ labels => 'jsonb' ], [ value => 'double precision' ]);
my @history_1_0 = (
	[ id => 'bigint' ], [ at => $tz ], [ pid => 'integer' ],
	[ usename => 'name' ], [ datname => 'name' ],
	[ application_name => 'text' ], [ client_addr => 'inet' ],
	[ backend_start => $tz ], [ xact_start => $tz ], [ state => 'text' ],
	[ state_since => $tz ], [ verdict => 'text' ], [ action => 'text' ],
	[ locks_held => 'integer' ], [ blocked_pids => 'integer[]' ],
	[ pin_reasons => 'text[]' ], [ query => 'text' ], [ detail => 'text' ]);
my @reasons_1_0 = (
	[ reason => 'text' ], [ description => 'text' ],
	[ pins_rds_proxy => 'boolean' ],
	[ breaks_pgbouncer_transaction_mode => 'boolean' ],
	[ cleared_by => 'text' ], [ hint => 'text' ]);
my @action_counts_1_0 =
  ([ verdict => 'text' ], [ action => 'text' ], [ count => 'bigint' ]);
my @reasons_emitted_1_0 = ([ reason => 'text' ]);

sub names { return map { $_->[0] } @_; }
sub shape { return join(', ', map { "$_->[0] $_->[1]" } @_); }

# relation => its 1.0 columns; function => its 1.0 OUT arguments
my %relations = (
	sessions => \@sessions_1_0,
	orphans => \@sessions_1_0,
	pinning_events => \@events_1_0,
	pinning_stats => \@stats_1_0,
	worker => \@worker_1_0,
	metrics => \@metrics_1_0,
	history => \@history_1_0,
	reasons => \@reasons_1_0);
my %functions = (
	session_rows => \@sessions_1_0,
	event_rows => \@events_1_0,
	stat_rows => \@stats_1_0,
	worker_row => \@worker_1_0,
	action_counts => \@action_counts_1_0,
	reasons_emitted => \@reasons_emitted_1_0);

foreach my $r (sort keys %relations)
{
	is( $node->safe_psql(
			$old_db, qq{
SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
  FROM pg_attribute
 WHERE attrelid = 'lambdaguard.$r'::regclass AND attnum > 0 AND NOT attisdropped}),
		shape(@{ $relations{$r} }),
		"1.0 catalog: lambdaguard.$r has the columns of 1.0");
}
foreach my $f (sort keys %functions)
{
	is( $node->safe_psql(
			$old_db, qq{
SELECT string_agg(a.n || ' ' || format_type(a.t, NULL), ', ' ORDER BY a.o)
  FROM pg_proc p,
       unnest(p.proargnames, p.proallargtypes, p.proargmodes) WITH ORDINALITY AS a(n, t, m, o)
 WHERE p.oid = 'lambdaguard.$f'::regproc AND a.m IN ('o', 't')}),
		shape(@{ $functions{$f} }),
		"1.0 catalog: lambdaguard.$f() has the OUT arguments of 1.0");
}
is( $node->safe_psql($old_db,
		"SELECT pg_get_function_result('lambdaguard.scan(boolean)'::regprocedure)"),
	'SETOF lambdaguard.history', '1.0 catalog: scan() returns SETOF lambdaguard.history');
is( $node->safe_psql($old_db,
		"SELECT pg_get_function_result('lambdaguard.reset()'::regprocedure)"),
	'void', '1.0 catalog: reset() returns void');

# ---------------------------------------------------------------------------
# real data
# ---------------------------------------------------------------------------

# The clock before a statement is sent; after it, the clock and the
# statement's query_id, as pg_stat_activity shows it once it is done
sub clock { return lg_sql($node, 'SELECT clock_timestamp()'); }

sub clock_and_query_id
{
	my ($pid) = @_;
	return split /\|/,
	  lg_sql($node,
		"SELECT clock_timestamp(), coalesce(query_id::text, 'NULL') FROM pg_stat_activity WHERE pid = $pid");
}

# a watched session that pins: a SET, then a PREPARE
my $pinner = lg_session($node, tcp => 1, appname => 'lg_pinner');
my $ppid = $pinner->pid;
my $set_sql = q{SET work_mem = '8MB'};
my $prepare_sql = q{PREPARE lg_q AS SELECT 1};
my $t_set = clock();
$pinner->query($set_sql);
my ($t_prepare, $qid_set) = clock_and_query_id($ppid);
$pinner->query($prepare_sql);
my ($t_prepared, $qid_prepare) = clock_and_query_id($ppid);
# the state they leave, as PostgreSQL shows it in the session itself
is( $pinner->query(
		q{SELECT (SELECT source FROM pg_settings WHERE name = 'work_mem') || ' '
         || (SELECT string_agg(name, ',') FROM pg_prepared_statements)}),
	'session lg_q', 'pinner: work_mem set in the session, lg_q prepared');

# an orphan of the watched role (after a SET), and a session of the
# unwatched role "other" that waits on its row lock
my $orphan = lg_session($node, tcp => 1, appname => 'lg_orphan');
my $opid = $orphan->pid;
my $orphan_set = q{SET work_mem = '7MB'};
my $t_orphan_set = clock();
$orphan->query($orphan_set);
my ($t_orphan_done, $qid_orphan_set) = clock_and_query_id($opid);
$orphan->query('BEGIN');
$orphan->query('UPDATE t SET v = v + 1 WHERE id = 1');
my $waiter = lg_session($node, user => 'other', appname => 'lg_waiter');
my $wpid = $waiter->pid;
$waiter->send('UPDATE t SET v = v + 10 WHERE id = 1');
ok(lg_wait($node, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $wpid", 5),
	'the waiter waits on the orphan\'s lock');

# pg_stat_activity (the oracle) and lambdaguard.sessions in one statement,
# while the orphan is not yet due; then the same from the current database
my $activity_cols =
  'pid, usename, datname, application_name, client_addr, backend_start, xact_start, state, state_change, query';
my $pids = "$ppid, $opid, $wpid";
my $read_sessions = qq{
SELECT json_build_object(
         'activity', (SELECT json_object_agg(pid, row_to_json(a))
                        FROM (SELECT $activity_cols FROM pg_stat_activity WHERE pid IN ($pids)) a),
         'sessions', (SELECT json_object_agg(pid, row_to_json(s))
                        FROM lambdaguard.sessions s WHERE pid IN ($pids)),
         'blocking_pids', (SELECT json_object_agg(p, pg_blocking_pids(p)) FROM unnest(ARRAY[$pids]) p),
         'locks', (SELECT count(*) FROM (SELECT DISTINCT locktype, database, relation, page, tuple,
                                                virtualxid, transactionid, classid, objid, objsubid
                                           FROM pg_locks WHERE pid = $opid AND granted) l),
         'row_width', (SELECT count(*) FROM lambdaguard.sessions s, json_object_keys(row_to_json(s))
                        WHERE pid = $opid),
         'now', clock_timestamp())};
my $old = json_in($old_db, $read_sessions);
my $new = json_in($new_db, $read_sessions);
my $act = $old->{activity};

is($old->{row_width}, scalar(@sessions_1_0), '1.0 sessions: a row has the 20 columns of 1.0');
is(scalar(keys %{ $old->{sessions} }), 3, '1.0 sessions: a row for each of the three sessions');

# the columns pg_stat_activity has too
foreach my $p ($ppid, $opid, $wpid)
{
	same_columns("1.0 sessions, pid $p vs pg_stat_activity",
		$old->{sessions}{$p}, $act->{$p}, split(/, /, $activity_cols));
}
# the rest, from what the sessions did
{
	my $o = $old->{sessions}{$opid};
	my $p = $old->{sessions}{$ppid};
	my $w = $old->{sessions}{$wpid};
	is(show([ map { $_->{watched} } $o, $p, $w ]), '[true,true,false]',
		'1.0 sessions: watched is true for role app (lambdaguard.roles), false for other');
	is(show([ map { $_->{blocking} } $o, $p, $w ]), '[1,0,0]',
		'1.0 sessions: blocking counts the sessions waiting on its locks');
	is(show($old->{blocking_pids}{$wpid}), "[$opid]",
		'pg_blocking_pids: the waiter waits on the orphan');
	is(show([ map { $_->{verdict} } $o, $p, $w ]), '["ok","ok","ok"]',
		'1.0 sessions: no verdict before the timeout');
	my $due = $node->safe_psql($old_db,
		"SELECT '$act->{$opid}{state_change}'::timestamptz + interval '5000 ms' = '$o->{action_at}'::timestamptz");
	is($due, 't', '1.0 sessions: the orphan\'s action_at is state_change + idle_in_transaction_timeout');
	is(show([ $p->{action_at}, $w->{action_at} ]), '[null,null]',
		'1.0 sessions: no action_at for the others');
	is(show($o->{pin_reasons}), '["set"]', '1.0 sessions: the orphan\'s pin_reasons');
	is(show($o->{dirty_reasons}), '["set"]', '1.0 sessions: the orphan\'s dirty_reasons');
	is($o->{pinned_by}, $orphan_set, '1.0 sessions: the orphan\'s pinned_by is its SET');
	is(show($p->{pin_reasons}), '["set","prepared_statement"]',
		'1.0 sessions: the pinner\'s pin_reasons');
	is(show($p->{dirty_reasons}), '["set","prepared_statement"]',
		'1.0 sessions: the pinner\'s dirty_reasons (pg_settings and pg_prepared_statements)');
	is($p->{pinned_by}, $set_sql, '1.0 sessions: the pinner\'s pinned_by is its first SET');
	is(show([ map { $_->{pinned} } $o, $p, $w ]), '[true,true,false]',
		'1.0 sessions: pinned');
	is($w->{pinned_since}, undef, '1.0 sessions: no pinned_since for a session that is not pinned');
	is(show([ $w->{pin_reasons}, $w->{dirty_reasons} ]), '[[],[]]',
		'1.0 sessions: empty pin_reasons and dirty_reasons for a session without state');
	foreach my $s ($o, $p, $w)
	{
		my $ok = $node->safe_psql($old_db, qq{
SELECT '$s->{state_duration}'::interval BETWEEN interval '0'
       AND '$old->{now}'::timestamptz - '$s->{state_change}'::timestamptz});
		is($ok, 't', "1.0 sessions, pid $s->{pid}: state_duration is the time since state_change");
	}
}
# the current database: every column the same, but state_duration (read later)
foreach my $p ($ppid, $opid, $wpid)
{
	same_columns("current sessions, pid $p vs 1.0",
		$new->{sessions}{$p}, $old->{sessions}{$p},
		grep { $_ ne 'state_duration' } names(@sessions_1_0));
}

# the orphan falls due: the worker terminates it and writes history in the
# 1.0 database; the waiter's UPDATE goes through
ok(lg_wait($node, "SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $opid AND action = 'terminate'", 15),
	'the worker terminated the orphan and recorded it in the 1.0 history');
my (undef, $werr, $wdone) = $waiter->result(10);
ok($wdone && $werr eq '', 'the waiter\'s UPDATE went through') or diag $werr;
ok(lg_gone($node, $opid), 'the orphan is gone');

{
	my $h = rows_in($old_db, "SELECT * FROM lambdaguard.history WHERE pid = $opid", 'x.id')->[0];
	my $a = $act->{$opid};
	is(scalar(keys %$h), scalar(@history_1_0), '1.0 history: a row has the 18 columns of 1.0');
	same_columns('1.0 history vs pg_stat_activity', $h, $a,
		qw(pid usename datname application_name client_addr backend_start xact_start state query));
	is($h->{state_since}, $a->{state_change}, '1.0 history: state_since is pg_stat_activity.state_change');
	is($h->{verdict} . '/' . $h->{action}, 'orphan/terminate', '1.0 history: verdict and action');
	is($h->{locks_held}, $old->{locks}, '1.0 history: locks_held is the number of locks pg_locks showed');
	is(show($h->{blocked_pids}), "[$wpid]", '1.0 history: blocked_pids is the waiter (pg_blocking_pids)');
	is(show($h->{pin_reasons}), '["set"]', '1.0 history: pin_reasons');
	is($h->{detail}, undef, '1.0 history: no detail for a plain termination');
	is( $node->safe_psql($old_db,
			"SELECT at - '$a->{state_change}'::timestamptz >= interval '5000 ms' FROM lambdaguard.history WHERE pid = $opid"),
		't', '1.0 history: at is after the timeout');
	is($node->safe_psql($new_db, 'SELECT count(*) FROM lambdaguard.history'), '0',
		'current database: its history is empty (the worker writes into lambdaguard.database)');
}

# two orphans recorded under dry_run, then the worker switched off
lg_reload($node, dry_run => 'on');
my @dry = map { lg_session($node, appname => "lg_dry_$_") } (1, 2);
$_->query('BEGIN; SELECT 1;') for @dry;
my $dry_pids = join(',', map { $_->pid } @dry);
ok(lg_wait($node, "SELECT count(*) = 2 FROM lambdaguard.history WHERE pid IN ($dry_pids) AND action = 'dry_run'", 15),
	'dry_run: two orphans recorded, not signalled');
$_->close for @dry;
lg_reload($node, enabled => 'off', dry_run => 'off');

# an orphan that waits while the worker is off
my $waiting = lg_session($node, appname => 'lg_waiting');
my $gpid = $waiting->pid;
$waiting->query('BEGIN');
$waiting->query('SELECT 1');
ok(lg_wait_idle_for($node, $gpid, 5500, 15), 'an orphan idle in transaction past its timeout');

# ---------------------------------------------------------------------------
# orphans and scan(true)
# ---------------------------------------------------------------------------
{
	my $sql = qq{
SELECT json_build_object(
         'activity', (SELECT row_to_json(a) FROM (SELECT $activity_cols FROM pg_stat_activity WHERE pid = $gpid) a),
         'orphans', (SELECT coalesce(json_agg(o ORDER BY pid), '[]') FROM lambdaguard.orphans o),
         'scan', (SELECT coalesce(json_agg(h ORDER BY pid), '[]') FROM lambdaguard.scan(true) h))};
	my $o0 = json_in($old_db, $sql);
	my $o1 = json_in($new_db, $sql);
	my $a = $o0->{activity};
	is(show([ map { $_->{pid} } @{ $o0->{orphans} } ]), "[$gpid]",
		'1.0 orphans: exactly the waiting orphan');
	my $o = $o0->{orphans}[0];
	is(scalar(keys %$o), scalar(@sessions_1_0), '1.0 orphans: a row has the 20 columns of 1.0');
	same_columns('1.0 orphans vs pg_stat_activity', $o, $a, split(/, /, $activity_cols));
	is($o->{verdict}, 'orphan', '1.0 orphans: verdict');
	is($o->{action_at}, undef, '1.0 orphans: no action_at while the worker is off');
	same_columns('current orphans vs 1.0', $o1->{orphans}[0], $o,
		grep { $_ ne 'state_duration' } names(@sessions_1_0));

	is(show([ map { $_->{pid} } @{ $o0->{scan} } ]), "[$gpid]",
		'1.0 scan(true): previews the waiting orphan');
	my $h = $o0->{scan}[0];
	is(scalar(keys %$h), scalar(@history_1_0), '1.0 scan(true): a row has the 18 columns of 1.0 history');
	same_columns('1.0 scan(true) vs pg_stat_activity', $h, $a,
		qw(pid usename datname application_name client_addr backend_start xact_start state query));
	is($h->{state_since}, $a->{state_change}, '1.0 scan(true): state_since is pg_stat_activity.state_change');
	is($h->{verdict} . '/' . $h->{action}, 'orphan/dry_run', '1.0 scan(true): verdict and action');
	same_columns('current scan(true) vs 1.0', $o1->{scan}[0], $h,
		grep { $_ ne 'id' && $_ ne 'at' } names(@history_1_0));
	is($node->safe_psql($old_db, "SELECT count(*) FROM lambdaguard.history WHERE pid = $gpid"), '0',
		'1.0 scan(true): writes nothing');
}

# ---------------------------------------------------------------------------
# the worker, its counts and the metrics, frozen while it is off: read in
# 1.0, in the current version, and in 1.0 again; the two 1.0 readings must agree
# ---------------------------------------------------------------------------
my $frozen_sql = qq{
SELECT json_build_object(
         'worker', (SELECT row_to_json(w) FROM lambdaguard.worker w),
         'worker_row', (SELECT row_to_json(w) FROM lambdaguard.worker_row() w),
         'bgworker', (SELECT row_to_json(a) FROM (SELECT pid, backend_start FROM pg_stat_activity
                                                   WHERE backend_type = 'pg_lambdaguard') a),
         'action_counts', (SELECT json_agg(c ORDER BY verdict, action) FROM lambdaguard.action_counts() c),
         'metrics', (SELECT json_object_agg(metric || labels::text, value) FROM lambdaguard.metrics),
         'stats', (SELECT json_agg(s ORDER BY usename, datname, reason) FROM lambdaguard.pinning_stats s),
         'events', (SELECT json_agg(e ORDER BY event_time, pid, reason) FROM lambdaguard.pinning_events e),
         'event_rows', (SELECT json_agg(e ORDER BY event_time, pid, reason) FROM lambdaguard.event_rows() e),
         'emitted', (SELECT json_agg(reason ORDER BY reason) FROM lambdaguard.reasons_emitted() reason),
         'reasons', (SELECT json_agg(r ORDER BY reason) FROM lambdaguard.reasons r))};
my ($f0, $f1, $f2);
foreach my $try (1 .. 20)
{
	$f0 = json_in($old_db, $frozen_sql);
	$f1 = json_in($new_db, $frozen_sql);
	$f2 = json_in($old_db, $frozen_sql);
	last if $json->encode($f0) eq $json->encode($f2);
}
is($json->encode($f2), $json->encode($f0), 'the worker is switched off: two readings in 1.0 agree');
# stat_rows() only in 1.0: from 1.1 on no view is built on it (pinning_stats reads
# pinning_stat_rows()), so it refuses every caller
my $stat_rows = json_in($old_db,
	'SELECT json_agg(s ORDER BY usename, datname, reason) FROM lambdaguard.stat_rows() s');

# lambdaguard.worker
{
	my $w = $f0->{worker};
	is(scalar(keys %$w), scalar(@worker_1_0), '1.0 worker: a row has the 12 columns of 1.0');
	is(show($f0->{worker_row}), show($w), '1.0 worker_row(): the same row');
	is($w->{pid}, $f0->{bgworker}{pid}, '1.0 worker: pid is the background worker\'s in pg_stat_activity');
	my $hist = json_in($old_db, q{
SELECT json_build_object(
         'found', count(*) FILTER (WHERE pid > 0),
         'terminated', count(*) FILTER (WHERE action = 'terminate'),
         'cancelled', count(*) FILTER (WHERE action = 'cancel'),
         'dry_run', count(*) FILTER (WHERE action = 'dry_run'))
  FROM lambdaguard.history});
	is($w->{orphans_found}, $hist->{found}, '1.0 worker: orphans_found is the number of history rows (3)');
	is($w->{terminated}, $hist->{terminated}, '1.0 worker: terminated is the number of terminate rows (1)');
	is($w->{cancelled}, $hist->{cancelled}, '1.0 worker: cancelled is the number of cancel rows (0)');
	is($w->{dry_run_hits}, $hist->{dry_run}, '1.0 worker: dry_run_hits is the number of dry_run rows (2)');
	is(show([ $w->{errors}, $w->{last_error} ]), '[0,null]', '1.0 worker: no error');
	my $times = $node->safe_psql($old_db, qq{
SELECT '$w->{started_at}'::timestamptz BETWEEN '$f0->{bgworker}{backend_start}'::timestamptz
                                           AND '$f0->{bgworker}{backend_start}'::timestamptz + interval '10 s',
       '$w->{last_scan_at}'::timestamptz BETWEEN '$w->{started_at}'::timestamptz AND now()});
	is($times, 't|t', '1.0 worker: started_at just after the worker\'s backend_start, last_scan_at after it');
	cmp_ok($w->{scans}, '>', 10, '1.0 worker: it scanned');
	cmp_ok($w->{sessions_seen}, '>=', 2, '1.0 worker: it saw the client sessions');
	cmp_ok($w->{last_scan_us}, '>', 0, '1.0 worker: last_scan_us');
	same_columns('current worker vs 1.0', $f1->{worker}, $w, names(@worker_1_0));
}

# action counts, from the history table
{
	my %want = map { ("$_->{verdict}/$_->{action}" => $_->{n}) } @{ rows_in($old_db,
		'SELECT verdict, action, count(*) AS n FROM lambdaguard.history GROUP BY 1, 2',
		'x.verdict, x.action') };
	my %got = map { ("$_->{verdict}/$_->{action}" => $_->{count}) }
	  grep { $_->{count} > 0 } @{ $f0->{action_counts} };
	is(show(\%got), show(\%want), '1.0 action_counts(): the history\'s counts');
	is(show($f1->{action_counts}), show($f0->{action_counts}), 'current action_counts() vs 1.0');
}

# pinning events: the statements sent, in order
{
	my @e = @{ $f0->{events} };
	is(show($f0->{event_rows}), show(\@e), '1.0 event_rows(): the same rows');
	is(scalar(keys %{ $e[0] }), scalar(@events_1_0), '1.0 pinning_events: a row has the 10 columns of 1.0');
	is( show([ map { [ $_->{pid}, $_->{reason}, $_->{statement}, $_->{hidden}, $_->{queryid} ] } @e ]),
		show([
			[ $ppid + 0, 'set', $set_sql, JSON::PP::false, $qid_set + 0 ],
			[ $ppid + 0, 'prepared_statement', $prepare_sql, JSON::PP::false, $qid_prepare + 0 ],
			[ $opid + 0, 'set', $orphan_set, JSON::PP::false, $qid_orphan_set + 0 ],
		]),
		'1.0 pinning_events: the SET and PREPARE of the pinner, the SET of the orphan, with their query_id'
	);
	# each event's time lies between the clock read before its statement
	# was sent and the clock read after it was done
	my @sent = ([ $t_set, $t_prepare ], [ $t_prepare, $t_prepared ], [ $t_orphan_set, $t_orphan_done ]);
	foreach my $i (0 .. $#e)
	{
		my $ev = $e[$i];
		my $what = "1.0 pinning_events, pid $ev->{pid} $ev->{reason}";
		same_columns("$what vs pg_stat_activity",
			$ev, $act->{ $ev->{pid} }, qw(usename datname application_name client_addr));
		my ($from, $to) = @{ $sent[$i] // [ 'infinity', '-infinity' ] };
		is( $node->safe_psql($old_db,
				"SELECT '$ev->{event_time}'::timestamptz BETWEEN '$from' AND '$to'"),
			't', "$what: event_time while its statement ran");
	}
	# pinned_since: when the first reason came, with its statement
	foreach my $c ([ $ppid, @{ $sent[0] } ], [ $opid, @{ $sent[2] } ])
	{
		my ($pid, $from, $to) = @$c;
		is( $node->safe_psql($old_db,
				"SELECT '$old->{sessions}{$pid}{pinned_since}'::timestamptz BETWEEN '$from' AND '$to'"),
			't', "1.0 sessions, pid $pid: pinned_since while its first SET ran");
	}
	is(scalar(@{ $f1->{events} }), scalar(@e), 'current pinning_events: as many rows as 1.0');
	for my $i (0 .. $#e)
	{
		same_columns("current pinning_events row $i vs 1.0", $f1->{events}[$i], $e[$i], names(@events_1_0));
	}
}

# pinning stats: from the events above
{
	my @s = @{ $f0->{stats} };
	is(show($stat_rows), show(\@s), '1.0 stat_rows(): the same rows');
	is(scalar(keys %{ $s[0] }), scalar(@stats_1_0), '1.0 pinning_stats: a row has the 6 columns of 1.0');
	my @ev = @{ $f0->{events} };
	my ($last_set) = map { $_->{event_time} } grep { $_->{reason} eq 'set' } reverse @ev;
	my ($last_prep) = map { $_->{event_time} } grep { $_->{reason} eq 'prepared_statement' } reverse @ev;
	is( show([ map { [ @$_{qw(usename datname reason events sessions last_seen)} ] } @s ]),
		show([
			[ 'app', $old_db, 'prepared_statement', 1, 1, $last_prep ],
			[ 'app', $old_db, 'set', 2, 2, $last_set ],
		]),
		'1.0 pinning_stats: per reason, the events and sessions, last_seen the last event\'s time');
	is(scalar(@{ $f1->{stats} }), scalar(@s), 'current pinning_stats: as many rows as 1.0');
	for my $i (0 .. $#s)
	{
		same_columns("current pinning_stats row $i vs 1.0", $f1->{stats}[$i], $s[$i], names(@stats_1_0));
	}
}

# reasons: the table shipped with 1.0 holds every reason the hooks emit,
# and reads the same in the current version
{
	my %in_table = map { $_->{reason} => 1 } @{ $f0->{reasons} };
	is(join(',', grep { !$in_table{$_} } @{ $f0->{emitted} }), '',
		'1.0 reasons: every reason of reasons_emitted() is in the table');
	is(show($f1->{emitted}), show($f0->{emitted}), 'current reasons_emitted() vs 1.0');
	is(show($f1->{reasons}), show($f0->{reasons}), 'current reasons vs 1.0');
	my ($ret, $out, $err) = $node->psql($old_db,
		q{INSERT INTO lambdaguard.reasons VALUES ('x', 'x', false, false, NULL, 'x')});
	like($err, qr/lambdaguard\.reasons is read-only/, '1.0 reasons: read-only');
}

# metrics: from the views and the history
{
	my $m = $f0->{metrics};
	my $w = $f0->{worker};
	my %want = (
		'lambdaguard_sessions_watched{}' => lg_sql($node,
			"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename = 'app'"),
		'lambdaguard_sessions_pinned{}' => 1,
		'lambdaguard_sessions_dirty{}' => 1,
		'lambdaguard_orphans{}' => 1,
		'lambdaguard_actions_total{"action": "terminate", "verdict": "orphan"}' => 1,
		'lambdaguard_actions_total{"action": "dry_run", "verdict": "orphan"}' => 2,
		'lambdaguard_actions_total{"action": "cancel", "verdict": "overdue_query"}' => 0,
		'lambdaguard_pinning_events_total{"reason": "set"}' => 2,
		'lambdaguard_pinning_events_total{"reason": "prepared_statement"}' => 1,
		'lambdaguard_pinning_events_total{"reason": "listen"}' => 0,
		'lambdaguard_worker_scans_total{}' => $w->{scans},
		'lambdaguard_worker_errors_total{}' => 0,
		'lambdaguard_worker_last_scan_seconds{}' => $w->{last_scan_us} / 1e6);
	foreach my $k (sort keys %want)
	{
		ok(defined $m->{$k} && abs($m->{$k} - $want{$k}) < 1e-9, "1.0 metrics: $k = $want{$k}")
		  or diag 'got ' . show($m->{$k});
	}
	my @shared = grep { exists $f1->{metrics}{$_} } sort keys %$m;
	is(scalar(@shared), scalar(keys %$m), 'current metrics: every metric of 1.0 is there');
	is(show({ map { $_ => $f1->{metrics}{$_} } @shared }), show($m),
		'current metrics vs 1.0: the same values');
}

# reset() of 1.0 clears events and stats, as both databases see
{
	$node->safe_psql($old_db, 'SELECT lambdaguard.reset()');
	foreach my $db ($old_db, $new_db)
	{
		is( $node->safe_psql($db,
				'SELECT (SELECT count(*) FROM lambdaguard.pinning_events) + (SELECT count(*) FROM lambdaguard.pinning_stats)'),
			'0', "1.0 reset(): no events and no stats left, as $db sees");
	}
}

is($node->safe_psql($old_db, $version_sql), '1.0', "$old_db still has version 1.0");
$_->close for ($pinner, $orphan, $waiter, $waiting);
is(join("\n", lg_crash_lines(lg_log_slice($node, 0))), '', 'no backend or worker crashed');
$node->stop;
done_testing();
