
# Copyright (c) 2026, pg_lambdaguard developers

# "pinned" means pinned at the proxy:
#
# - lambdaguard.sessions.pinned is true exactly when pin_reasons holds a
#   reason whose lambdaguard.reasons.pins_rds_proxy is true (the oracle is
#   the reasons table itself), over sessions holding every kind of state
# - a real driver that names its prepared statements (node-postgres with
#   {name: 'q1'}) has pin_reasons {protocol_prepared_statement}, is not
#   pinned, and pinned_idle_timeout leaves it alone while it idles
# - pinned_idle ends idle sessions that are pinned (SET, PREPARE, LISTEN, an
#   advisory lock, a cursor WITH HOLD, a temp table), and one whose only
#   state is hidden from the proxy but breaks transaction pooling (an
#   advisory lock taken inside a function)
# - pinned_idle spares a session that is not pinned and whose only
#   dirty_reasons are sequence_function and/or protocol_prepared_statement
#   (an INSERT into a serial column, from psql and from a driver's named
#   statement), but ends one that called nextval() itself (that pins)
# - history.pin_reasons is filled for every decision, whatever
#   pinned_idle_timeout: an orphan terminated with pinned_idle_timeout = 0
#   after a SET has pin_reasons {set}

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
	'pinned', conf => q{
lambdaguard.idle_in_transaction_timeout = 1000
lambdaguard.blocking_timeout = 0
lambdaguard.aborted_transaction_timeout = 0
lambdaguard.pinned_idle_timeout = 0
});
$node->safe_psql(
	'postgres', q{
CREATE TABLE public.lg_serial (id serial PRIMARY KEY);
GRANT SELECT, INSERT ON public.lg_serial TO app;
GRANT USAGE ON SEQUENCE public.lg_serial_id_seq TO app;
CREATE FUNCTION public.lg_hidden_lock() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_lock(4242);
END
$$;
});

# ---------------------------------------------------------------------------
# history.pin_reasons with pinned_idle_timeout = 0
# ---------------------------------------------------------------------------
{
	my $s = lg_session($node, appname => 'lg_set_orphan');
	my $pid = $s->pid;
	my (undef, $err) = $s->query(q{SET work_mem = '8MB'; BEGIN; SELECT 1;});
	is($err, '', 'orphan after SET: opened');
	ok(lg_wait($node, "SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid", 10),
		'orphan after SET: terminated and recorded');
	my $h = lg_history($node, $pid)->[0] // {};
	is("$h->{verdict}/$h->{action}", 'orphan/terminate', 'orphan after SET: verdict orphan, action terminate');
	is_deeply($h->{pin_reasons}, ['set'],
		'orphan after SET: history.pin_reasons = {set} with pinned_idle_timeout = 0')
	  or diag explain $h;
	$s->close;
}

# ---------------------------------------------------------------------------
# sessions holding various state, and a driver that names its statements
# ---------------------------------------------------------------------------
my %state = (
	set => q{SET work_mem = '8MB'},
	prepare => q{PREPARE lg_p AS SELECT 1},
	listen => q{LISTEN lg_channel},
	advisory_lock => q{SELECT pg_advisory_lock(1)},
	cursor_with_hold => q{DECLARE lg_c CURSOR WITH HOLD FOR SELECT 1},
	temp_table => q{CREATE TEMP TABLE lg_tmp (x int)},
	hidden_lock => q{SELECT public.lg_hidden_lock()},
	serial_insert => q{INSERT INTO public.lg_serial DEFAULT VALUES},
	nextval => q{SELECT nextval('public.lg_serial_id_seq')},
	plain => q{SELECT 1},);
my %s;
foreach my $k (sort keys %state)
{
	$s{$k} = lg_session($node, appname => "lg_$k");
	my (undef, $err) = $s{$k}->query($state{$k});
	is($err, '', "$k: $state{$k}");
}

my $js = lg_node_client($node, appname => 'lg_node_named');
my $jpid = $js->pid;
my $r = $js->query({ name => 'q1', text => 'SELECT $1::int', values => [1] });
is_deeply($r->{rows}, [ [1] ], 'node-postgres: named prepared statement q1 ran');
$r = $js->query({ name => 'q1', text => 'SELECT $1::int', values => [2] });
is_deeply($r->{rows}, [ [2] ], 'node-postgres: q1 ran again (bound to the prepared statement)');
$r = $js->query(
	{ name => 'ins', text => 'INSERT INTO public.lg_serial DEFAULT VALUES RETURNING 1', values => [] });
is_deeply($r->{rows}, [ [1] ], 'node-postgres: a named INSERT into a serial column ran');

my $all_pids = join(',', $jpid, map { $_->pid } values %s);
my $oracle = q{
SELECT count(*) FROM lambdaguard.sessions
 WHERE pinned IS DISTINCT FROM
       (pin_reasons && ARRAY(SELECT reason FROM lambdaguard.reasons WHERE pins_rds_proxy))};
is(lg_sql($node, $oracle), '0',
	'oracle: pinned is true exactly when a reason that pins RDS Proxy is held');
my $visible_pids = join(',', $jpid, map { $s{$_}->pid } grep { $_ ne 'hidden_lock' } keys %s);
is( lg_sql($node,
		"SELECT count(*) FILTER (WHERE pinned) || '/' || count(*) FROM lambdaguard.sessions WHERE pid IN ($visible_pids)"),
	'7/10',
	'oracle: 7 of the 10 sessions that changed state in plain sight are pinned (set, prepare, listen, advisory lock, cursor with hold, temp table, nextval)');
is( lg_sql($node,
		"SELECT dirty_reasons::text || ' ' || pinned FROM lambdaguard.sessions WHERE pid = ${\ $s{serial_insert}->pid}"),
	'{sequence_function} false',
	'INSERT into a serial column: dirty_reasons {sequence_function} (currval answers), not pinned');
is( lg_sql($node,
		"SELECT pin_reasons::text || ' ' || pinned FROM lambdaguard.sessions WHERE pid = ${\ $s{nextval}->pid}"),
	'{sequence_function} true',
	'an explicit nextval(): pin_reasons {sequence_function}, pinned');
is( lg_sql($node,
		"SELECT pin_reasons::text || ' ' || pinned FROM lambdaguard.sessions WHERE pid = $jpid"),
	'{protocol_prepared_statement} false',
	'node-postgres named statement: pin_reasons {protocol_prepared_statement}, pinned false');
is( lg_sql($node,
		"SELECT dirty_reasons::text FROM lambdaguard.sessions WHERE pid = $jpid"),
	'{protocol_prepared_statement,sequence_function}',
	'node-postgres named statements and a serial INSERT: dirty_reasons {protocol_prepared_statement,sequence_function}');
is( lg_sql($node,
		"SELECT dirty_reasons::text FROM lambdaguard.sessions WHERE pid = ${\ $s{hidden_lock}->pid}"),
	'{advisory_lock}',
	'advisory lock inside a function: dirty_reasons {advisory_lock}');
# CONTRACT.md: pin_reasons hold "only what the proxy can see, so changes made
# inside functions and procedures are not in it"
is( lg_sql($node,
		"SELECT pin_reasons::text || ' ' || pinned FROM lambdaguard.sessions WHERE pid = ${\ $s{hidden_lock}->pid}"),
	'{} false',
	'advisory lock inside a function: not in pin_reasons, not pinned (the proxy cannot see it)');

# ---------------------------------------------------------------------------
# pinned_idle_timeout = 1000
# ---------------------------------------------------------------------------
lg_reload($node, pinned_idle_timeout => 1000);
# fresh idle periods for the two that must stay
$r = $js->query({ name => 'q1', text => 'SELECT $1::int', values => [3] });
is_deeply($r->{rows}, [ [3] ], 'node-postgres: q1 runs once more');
$s{plain}->query('SELECT 1');
$s{serial_insert}->query('SELECT 1');
is( lg_sql($node,
		"SELECT verdict || ' ' || (action_at IS NULL) FROM lambdaguard.sessions WHERE pid = $jpid"),
	'ok true',
	'node-postgres named statement: verdict ok, no action planned');

foreach my $k (qw(set prepare listen advisory_lock cursor_with_hold temp_table hidden_lock nextval))
{
	my $pid = $s{$k}->pid;
	ok( lg_wait($node,
			"SELECT count(*) > 0 FROM lambdaguard.history WHERE pid = $pid", 10),
		"pinned_idle: $k: recorded");
	my $h = lg_history($node, $pid)->[0] // {};
	is("$h->{verdict}/$h->{action}", 'pinned_idle/terminate',
		"pinned_idle: $k: verdict pinned_idle, action terminate");
	ok(lg_gone($node, $pid), "pinned_idle: $k: terminated");
}

lg_assert_untouched($node, $js, 1000,
	'pinned_idle: node-postgres client whose only state is named protocol statements and sequence state');
lg_assert_untouched($node, $s{serial_insert}, 1000,
	'pinned_idle: a session whose only state is the sequence state of a serial INSERT');
lg_assert_untouched($node, $s{plain}, 1000, 'pinned_idle: a plain idle session');

$js->close;
$_->close foreach values %s;
is(join("\n", lg_crash_lines(lg_log_slice($node, 0))), '', 'no backend or worker crashed');
$node->stop;
done_testing();
