
# Copyright (c) 2026, pg_lambdaguard developers

# A SELECT grant on a view is enough, and nothing less is:
#
# - a role given USAGE on schema lambdaguard and SELECT on one view
#   (sessions, orphans, pinning_events, pinning_stats, worker, metrics) reads
#   that view, and only that one
# - a role without grants, or with USAGE on the schema alone, is refused
#   every view and every function behind them (called directly)
# - query text keeps pg_stat_activity's rule, with pg_stat_activity as the
#   oracle, read by the same role at the same moment: the same client
#   backends, and another role's query visible exactly where
#   pg_stat_activity shows it (members of that role, pg_read_all_stats)

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
	'privileges', conf => q{
lambdaguard.enabled = off
lambdaguard.idle_in_transaction_timeout = 1000
});

my @views = qw(sessions orphans pinning_events pinning_stats worker metrics);
my @functions = (
	'session_rows()', 'event_rows()', 'stat_rows()', 'worker_row()',
	'action_counts()');

$node->safe_psql('postgres',
	join("\n",
		'CREATE ROLE lg_none LOGIN;',
		'CREATE ROLE lg_usage LOGIN;',
		'GRANT USAGE ON SCHEMA lambdaguard TO lg_usage;',
		(map { ("CREATE ROLE lg_sel_$_ LOGIN;",
				"GRANT USAGE ON SCHEMA lambdaguard TO lg_sel_$_;",
				"GRANT SELECT ON lambdaguard.$_ TO lg_sel_$_;") } @views),
		'CREATE ROLE lg_member LOGIN IN ROLE app;',
		'CREATE ROLE lg_stats LOGIN IN ROLE pg_read_all_stats;',
		'GRANT USAGE ON SCHEMA lambdaguard TO lg_member, lg_stats;',
		'GRANT SELECT ON lambdaguard.sessions TO lg_member, lg_stats;'));

# something in every view: a pinning event (and stats), an orphan of the
# watched role app (the worker is switched off: it stays)
my $app = lg_session($node, appname => 'lg_app');
$app->query(q{SET work_mem = '8MB'});
$app->query(q{BEGIN; SELECT 'lg_secret_app';});
lg_wait_idle_for($node, $app->pid, 1200, 10) or die 'no orphan';
my $other = lg_session($node, user => 'other', appname => 'lg_other');
$other->query(q{BEGIN; SELECT 'lg_secret_other';});

# ---------------------------------------------------------------------------
# SELECT on one view is enough for that view, and only for it
# ---------------------------------------------------------------------------
foreach my $v (@views)
{
	my ($ret, $out, $err) = lg_psql_as($node, "lg_sel_$v",
		"SELECT count(*) > 0 FROM lambdaguard.$v");
	ok($ret == 0 && $out eq 't' && $err eq '',
		"SELECT granted on lambdaguard.$v: the view is readable and not empty")
	  or diag "ret $ret, out '$out', err: $err";
	foreach my $w (grep { $_ ne $v } @views)
	{
		($ret, $out, $err) = lg_psql_as($node, "lg_sel_$v",
			"SELECT count(*) FROM lambdaguard.$w");
		ok($ret != 0 && $err =~ /permission denied for view $w/,
			"SELECT granted on lambdaguard.$v only: lambdaguard.$w is refused")
		  or diag "ret $ret, out '$out', err: $err";
	}
}

# ---------------------------------------------------------------------------
# no grant, or USAGE alone: refused
# ---------------------------------------------------------------------------
foreach my $v (@views)
{
	my ($ret, $out, $err) =
	  lg_psql_as($node, 'lg_none', "SELECT count(*) FROM lambdaguard.$v");
	ok($ret != 0 && $err =~ /permission denied/, "no grant: lambdaguard.$v is refused")
	  or diag "ret $ret, out '$out', err: $err";
	($ret, $out, $err) =
	  lg_psql_as($node, 'lg_usage', "SELECT count(*) FROM lambdaguard.$v");
	ok($ret != 0 && $err =~ /permission denied for view $v/,
		"USAGE on the schema alone: lambdaguard.$v is refused")
	  or diag "ret $ret, out '$out', err: $err";
}
foreach my $f (@functions)
{
	foreach my $role (qw(lg_none lg_usage))
	{
		my ($ret, $out, $err) =
		  lg_psql_as($node, $role, "SELECT count(*) FROM lambdaguard.$f");
		ok($ret != 0 && $err =~ /permission denied/,
			"$role: lambdaguard.$f called directly is refused")
		  or diag "ret $ret, out '$out', err: $err";
		note "$role calling lambdaguard.$f: $err";
	}
}

# ---------------------------------------------------------------------------
# query text: pg_stat_activity's rule, pg_stat_activity as the oracle
# ---------------------------------------------------------------------------
# pid: query of the client backends in $pids (but the reader's own) as
# $role reads them from $from.  pg_stat_activity hides even backend_type
# from a role without privileges, so the client backends are listed by the
# superuser.
sub text_seen
{
	my ($role, $from, $pids) = @_;
	my ($ret, $out, $err) = lg_psql_as(
		$node, $role, qq{
SELECT string_agg(pid || ': ' || coalesce(query, '<NULL>'), E'\\n' ORDER BY pid)
  FROM $from
 WHERE pid IN ($pids) AND pid <> pg_backend_pid()});
	diag "$role reading $from: $err" if $ret != 0;
	return $ret == 0 ? $out : "ERROR: $err";
}

my ($apid, $opid) = ($app->pid, $other->pid);
my $clients = lg_sql($node,
	"SELECT string_agg(pid::text, ',' ORDER BY pid) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()");
is($clients, join(',', sort { $a <=> $b } $apid, $opid),
	'the client backends are the two sessions of app and other');
foreach my $role (qw(lg_sel_sessions lg_member lg_stats postgres))
{
	my ($ret, $out, $err) = lg_psql_as($node, $role,
		"SELECT string_agg(pid::text, ',' ORDER BY pid) FROM lambdaguard.sessions WHERE pid <> pg_backend_pid()");
	is($out, $clients, "$role: lambdaguard.sessions has one row per client backend")
	  or diag $err;
	my $oracle = text_seen($role, 'pg_stat_activity', $clients);
	my $ours = text_seen($role, 'lambdaguard.sessions', $clients);
	is($ours, $oracle,
		"$role: lambdaguard.sessions shows the query text pg_stat_activity shows this role");
}
# what the oracle said, so that the comparison above is not empty
like(text_seen('lg_sel_sessions', 'lambdaguard.sessions', $clients),
	qr/^$apid: <insufficient privilege>$/m,
	'SELECT on sessions alone: app\'s query is <insufficient privilege>');
like(text_seen('lg_member', 'lambdaguard.sessions', $clients),
	qr/^$apid: SELECT 'lg_secret_app'/m, 'member of app: app\'s query is visible');
like(text_seen('lg_member', 'lambdaguard.sessions', $clients),
	qr/^$opid: <insufficient privilege>$/m,
	'member of app: the query of role other is <insufficient privilege>');
like(text_seen('lg_stats', 'lambdaguard.sessions', $clients),
	qr/^$opid: SELECT 'lg_secret_other'/m,
	'pg_read_all_stats: the query of role other is visible');

$app->close;
$other->close;
is(join("\n", lg_crash_lines(lg_log_slice($node, 0))), '', 'no backend or worker crashed');
$node->stop;
done_testing();
