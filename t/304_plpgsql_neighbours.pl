
# Copyright (c) 2026, pg_lambdaguard developers

# PL/pgSQL has one plugin slot, and other tools want it too.  With
# plpgsql_check, pldebugger (plugin_debugger), pg_stat_statements,
# auto_explain and pgaudit preloaded before or after pg_lambdaguard:
#
# - calls in PL/pgSQL simple expressions are seen, in a function and in a
#   procedure: x := set_config(...) and x := nextval(...) give hidden events
#   and dirty_reasons {set_config, sequence_function} (sequence state is
#   seen only through the plugin: no read-back finds it);
# - the neighbours keep working: plpgsql_check's checks run and its
#   profiler counts the function's statements; pldebugger's breakpoint API
#   answers; pg_stat_statements counts the calls; auto_explain and pgaudit
#   write their log lines.
#
# A library that is not installed is skipped with a note.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/lib";

use LgTest;
use LgFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;

sub installed
{
	my ($lib) = @_;
	return -f "$pkglibdir/$lib.so";
}

my @orders = (
	[ 'plpgsql_check',   'pg_lambdaguard' ],
	[ 'pg_lambdaguard',  'plpgsql_check' ],
	[ 'plugin_debugger', 'pg_lambdaguard' ],
	[ 'pg_lambdaguard',  'plugin_debugger' ],
	[ 'pg_stat_statements', 'auto_explain', 'pgaudit', 'pg_lambdaguard' ],
	[ 'pg_lambdaguard', 'pgaudit', 'auto_explain', 'pg_stat_statements' ],);

my $n = 0;
foreach my $order (@orders)
{
	my $list = join(', ', @$order);
	my @missing = grep { !installed($_) } @$order;
  SKIP:
	{
		if (@missing)
		{
			note "not installed: @missing: order '$list' skipped";
			skip "not installed: @missing", 1;
		}
		check_order($order, $n++);
	}
}

sub check_order
{
	my ($order, $i) = @_;
	my $list = join(', ', @$order);
	my %has = map { $_ => 1 } @$order;
	my $node = lg_node(
		"neighbours_$i", conf => qq{
shared_preload_libraries = '$list'
lambdaguard.track_pinning = all
auto_explain.log_min_duration = 0
pgaudit.log = 'function'
});

	$node->safe_psql(
		'postgres', q{
CREATE SEQUENCE public.lg_seq;
CREATE FUNCTION public.lg_simple() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    t text;
    x bigint;
BEGIN
    t := set_config('app.t', '1', false);
    x := nextval('public.lg_seq');
    RETURN x;
END
$$;
CREATE PROCEDURE public.lg_proc() LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    t := set_config('app.p', '1', false);
END
$$;
GRANT USAGE ON SEQUENCE public.lg_seq TO app;
});

	# a function, then a procedure, each in a session of its own
	my $s = lg_session($node, appname => 'lg_fn');
	my ($out, $err) = $s->query('SELECT public.lg_simple()');
	is($err, '', "[$list] a PL/pgSQL function ran");
	is( lg_sql($node,
			"SELECT dirty_reasons::text FROM lambdaguard.sessions WHERE pid = ${\ $s->pid}"),
		'{set_config,sequence_function}',
		"[$list] function: dirty_reasons {set_config,sequence_function}");
	is( lg_sql($node,
			"SELECT string_agg(reason || ':' || hidden, ',' ORDER BY reason) FROM lambdaguard.pinning_events WHERE pid = ${\ $s->pid}"),
		'sequence_function:true,set_config:true',
		"[$list] function: hidden events of both simple expressions");
	$s->close;

	my $p = lg_session($node, appname => 'lg_proc');
	($out, $err) = $p->query('CALL public.lg_proc()');
	is($err, '', "[$list] a PL/pgSQL procedure ran");
	is( lg_sql($node,
			"SELECT string_agg(reason || ':' || hidden, ',') FROM lambdaguard.pinning_events WHERE pid = ${\ $p->pid}"),
		'set_config:true',
		"[$list] procedure: a hidden set_config event");
	$p->close;

	if ($has{plpgsql_check})
	{
		$node->safe_psql('postgres', 'CREATE EXTENSION plpgsql_check');
		$node->safe_psql(
			'postgres', q{
CREATE FUNCTION public.lg_broken() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT no_such_column FROM public.t LIMIT 1);
END
$$;});
		like(
			lg_sql($node, q{SELECT string_agg(message, ' ') FROM plpgsql_check_function_tb('public.lg_broken()')}),
			qr/no_such_column/,
			"[$list] plpgsql_check: its checks run");
		is( lg_sql($node, q{
SET plpgsql_check.profiler = on;
SELECT public.lg_simple() > 0;
SELECT sum(exec_stmts) > 0 FROM plpgsql_profiler_function_tb('public.lg_simple()')}),
			"t\nt",
			"[$list] plpgsql_check: its profiler counts the function's statements");
	}
	if ($has{plugin_debugger})
	{
		$node->safe_psql('postgres', 'CREATE EXTENSION pldbgapi');
		is( lg_sql($node, q{
SELECT pldbg_set_global_breakpoint(pldbg_create_listener(),
                                   'public.lg_simple()'::regprocedure::oid, NULL, NULL)}),
			't',
			"[$list] pldebugger: its breakpoint API answers");
	}
	if ($has{pg_stat_statements})
	{
		$node->safe_psql('postgres', 'CREATE EXTENSION pg_stat_statements');
		lg_sql($node, 'SELECT public.lg_simple()');
		is( lg_sql($node,
				q{SELECT sum(calls) > 0 FROM pg_stat_statements WHERE query LIKE '%lg_simple%'}),
			't',
			"[$list] pg_stat_statements counts the calls");
	}
	if ($has{auto_explain} || $has{pgaudit})
	{
		my $log = slurp_file($node->logfile);
		like($log, qr/Query Text: SELECT public\.lg_simple\(\)/,
			"[$list] auto_explain logs the plan") if $has{auto_explain};
		like($log, qr/AUDIT: SESSION,.*FUNCTION,EXECUTE,FUNCTION,public\.lg_simple/,
			"[$list] pgaudit logs the function call") if $has{pgaudit};
	}
	is(join("\n", lg_crash_lines(lg_log_slice($node, 0))), '', "[$list] no backend crashed");
	$node->stop;
	return;
}

done_testing();
