
# Copyright (c) 2026, pg_lambdaguard developers

# A primary and a streaming hot standby (fsync = on on the standby):
#
# - the worker runs on the standby; an orphan there is terminated after its
#   timeout; its record is in lambdaguard.standby_history (SQL on the
#   standby), with the LOG line as on a primary; superusers and unwatched
#   roles are untouched there
# - durability: kill -9 of the standby's postmaster right after the signal,
#   restart: the record is there; a fault that makes the record's fsync fail
#   (an LD_PRELOAD shim, built here, failing fsync on the journal while a
#   file lg_fail_fsync exists in the data directory): no signal, no record;
#   the fault gone, the orphan is terminated and recorded
# - hot_standby_feedback = on: an orphan in a REPEATABLE READ transaction on
#   the standby (sessions.xmin_age set) keeps VACUUM on the primary from
#   removing dead rows; once it is terminated, the primary's oldest xmin
#   moves on and VACUUM removes them
# - pinning on the standby: SET, PREPARE, a cursor WITH HOLD and an advisory
#   lock as events, statistics and dirty_reasons
# - metrics on both servers, read by a pg_monitor role, with the exporter's
#   queries (monitoring/queries.yaml); lambdaguard_in_recovery 0 and 1
# - promotion with the worker running: the same worker goes on, the
#   records are imported into lambdaguard.history once, a record of another
#   server (another system identifier) is not; a restart, and the journal
#   put back as if the server had crashed before removing it, import nothing
#   twice

use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/lib";

use LgTest;
use LgFaults;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $primary = lg_node(
	'primary',
	init => { allows_streaming => 1 },
	conf => q{
lambdaguard.idle_in_transaction_timeout = 1000
lambdaguard.blocking_timeout = 0
lambdaguard.aborted_transaction_timeout = 0
});
$primary->safe_psql(
	'postgres', q{
CREATE ROLE mon LOGIN IN ROLE pg_monitor;
CREATE EXTENSION pgstattuple;
CREATE TABLE public.bloat (id int) WITH (autovacuum_enabled = off);
INSERT INTO public.bloat SELECT g FROM generate_series(1, 1000) g;
GRANT SELECT ON public.bloat TO app;
});

# the fsync fault: a shim that fails fsync() of the journal while the file
# lg_fail_fsync exists in the server's working directory (its data directory)
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $shim = "$tmp/lg_fail_fsync.so";
PostgreSQL::Test::Utils::append_to_file("$tmp/shim.c", q{
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int
fail(int fd)
{
	char		link[64];
	char		path[4096];
	ssize_t		n;

	if (access("lg_fail_fsync", F_OK) != 0)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return 0;
	path[n] = '\0';
	return strstr(path, "/pg_lambdaguard/standby_history") != NULL;
}

int
fsync(int fd)
{
	static int	(*real) (int);

	if (!real)
		real = (int (*) (int)) dlsym(RTLD_NEXT, "fsync");
	if (fail(fd))
	{
		errno = EIO;
		return -1;
	}
	return real(fd);
}

int
fdatasync(int fd)
{
	static int	(*real) (int);

	if (!real)
		real = (int (*) (int)) dlsym(RTLD_NEXT, "fdatasync");
	if (fail(fd))
	{
		errno = EIO;
		return -1;
	}
	return real(fd);
}
});
system("gcc -shared -fPIC -o $shim $tmp/shim.c -ldl") == 0
  or BAIL_OUT('could not build the fsync fault shim');

$primary->backup('b1');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b1', has_streaming => 1);
$standby->append_conf(
	'postgresql.conf', q{
fsync = on
hot_standby_feedback = on
wal_receiver_status_interval = 1
});
{
	local $ENV{LD_PRELOAD} = $shim;
	$standby->start;
}
my $pgdata = $standby->data_dir;
my $fault = "$pgdata/lg_fail_fsync";

is(lg_sql($standby, 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
ok(lg_wait($standby, 'SELECT pid IS NOT NULL FROM lambdaguard.worker', 15),
	'the worker runs on the standby');
my $worker_pid = lg_sql($standby, 'SELECT pid FROM lambdaguard.worker');
ok( lg_wait_log(
		$standby, qr/pg_lambdaguard: worker started in database "postgres" \(hot standby/,
		0, 5),
	'the worker says it started on a hot standby');

# ---------------------------------------------------------------------------
# an orphan on the standby, durable across a kill -9; superusers and
# unwatched roles untouched
# ---------------------------------------------------------------------------
my $log = lg_log_offset($standby);
my $o1 = lg_session($standby, appname => 'lg_standby_orphan');
my $pid1 = $o1->pid;
$o1->query('BEGIN; SELECT count(*) FROM t;');
ok(lg_gone($standby, $pid1, 15), 'standby: the orphan is terminated');
# right after the signal: kill -9 the postmaster, then start again
$standby->kill9;
{
	local $ENV{LD_PRELOAD} = $shim;
	my $started = 0;
	for (1 .. 50)
	{
		# the killed postmaster's children may still be leaving
		$started = $standby->start(fail_ok => 1);
		last if $started;
		$standby->{_pid} = undef;
		usleep(200_000);
	}
	ok($started, 'standby: restarted after kill -9');
}
is( lg_sql($standby,
		"SELECT verdict, action, usename, application_name, state, elapsed >= 1 FROM (SELECT *, extract(epoch FROM at - state_since) AS elapsed FROM lambdaguard.standby_history WHERE pid = $pid1) x"),
	'orphan|terminate|app|lg_standby_orphan|idle in transaction|t',
	'after kill -9 and restart: the record is in lambdaguard.standby_history');
like(lg_log_slice($standby, $log),
	qr/pg_lambdaguard: terminated pid $pid1 \(role app, database postgres, application "lg_standby_orphan", client [^)]*\): verdict orphan, idle in transaction for [\d.]+ s, \d+ locks held, 0 sessions blocked/,
	'the LOG line as on a primary');
is(lg_sql($standby, "SELECT count(*) FROM lambdaguard.history WHERE pid = $pid1"),
	'0', 'lambdaguard.history (replicated from the primary) has no row of it');

ok(lg_wait($standby, 'SELECT pid IS NOT NULL FROM lambdaguard.worker', 15),
	'the worker runs again after the restart');

# a superuser and an unwatched role, idle in transaction past the timeout
my $su = lg_session($standby, user => scalar(getpwuid($<)), appname => 'lg_superuser');
$su->query('BEGIN; SELECT 1;');
my $other = lg_session($standby, user => 'other', appname => 'lg_unwatched');
$other->query('BEGIN; SELECT 1;');
foreach my $pair ([ $su, 'superuser' ], [ $other, 'unwatched role' ])
{
	my ($sess, $name) = @$pair;
	ok(lg_wait_idle_for($standby, $sess->pid, 1700, 10), "standby: $name idle in transaction for 1.7 s");
	ok($sess->ping, "standby: $name untouched");
	is(lg_sql($standby, "SELECT count(*) FROM lambdaguard.standby_history WHERE pid = ${\ $sess->pid}"),
		'0', "standby: $name has no record");
}
$su->close;
$other->close;

# ---------------------------------------------------------------------------
# the record's fsync fails: no signal, no record
# ---------------------------------------------------------------------------
{
	PostgreSQL::Test::Utils::append_to_file($fault, '');
	$log = lg_log_offset($standby);
	my $o2 = lg_session($standby, appname => 'lg_fsync_fault');
	my $pid2 = $o2->pid;
	$o2->query('BEGIN; SELECT 1;');
	ok( lg_wait_log(
			$standby,
			qr/could not make a record of file "pg_lambdaguard\/standby_history" durable: Input\/output error/,
			$log, 15),
		'fsync fault: the failed fsync is logged');
	ok(lg_wait_idle_for($standby, $pid2, 2500, 10), 'fsync fault: the orphan lives on past its timeout');
	ok($o2->ping, 'fsync fault: no signal');
	is(lg_sql($standby, "SELECT count(*) FROM lambdaguard.standby_history WHERE pid = $pid2"),
		'0', 'fsync fault: no record');
	unlike(lg_log_slice($standby, $log), qr/terminated pid $pid2 /, 'fsync fault: no LOG line of a signal');
	unlink $fault;
	# the worker ended with the ERROR and is started again within 10 s
	ok(lg_gone($standby, $pid2, 30), 'fault gone: the orphan is terminated');
	is(lg_sql($standby, "SELECT count(*) FROM lambdaguard.standby_history WHERE pid = $pid2 AND action = 'terminate'"),
		'1', 'fault gone: its record');
	$o2->close;
}
$worker_pid = lg_sql($standby, 'SELECT pid FROM lambdaguard.worker');

# ---------------------------------------------------------------------------
# hot_standby_feedback: an orphan holding a snapshot holds back VACUUM
# ---------------------------------------------------------------------------
{
	$standby->append_conf('postgresql.conf', 'lambdaguard.idle_in_transaction_timeout = 4000');
	$standby->reload;
	ok(lg_wait($standby, q{SELECT current_setting('lambdaguard.idle_in_transaction_timeout') = '4s'}, 10),
		'feedback: a 4 s timeout on the standby');
	my $rr = lg_session($standby, appname => 'lg_rr_orphan');
	my $rrpid = $rr->pid;
	$rr->query('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM bloat;');
	my $xmin = lg_sql($standby, "SELECT backend_xmin FROM pg_stat_activity WHERE pid = $rrpid");
	ok($xmin ne '', 'feedback: the REPEATABLE READ orphan holds a snapshot');
	is(lg_sql($standby, "SELECT xmin_age IS NOT NULL AND xmin_age >= 0 FROM lambdaguard.sessions WHERE pid = $rrpid"),
		't', 'feedback: lambdaguard.sessions shows its xmin_age');
	ok( lg_wait($primary,
			"SELECT bool_and(age(backend_xmin) >= age('$xmin'::xid)) FROM pg_stat_replication", 10),
		'feedback: the primary\'s oldest xmin from the standby is the orphan\'s');
	$primary->safe_psql('postgres', 'DELETE FROM public.bloat');
	$primary->safe_psql('postgres', 'VACUUM public.bloat');
	is($primary->safe_psql('postgres', 'SELECT dead_tuple_count FROM pgstattuple(\'public.bloat\')'),
		'1000', 'feedback: VACUUM on the primary cannot remove the dead rows');
	ok(lg_gone($standby, $rrpid, 15), 'feedback: the orphan is terminated after its timeout');
	ok( lg_wait($primary,
			"SELECT bool_and(backend_xmin IS NULL OR age(backend_xmin) < age('$xmin'::xid)) FROM pg_stat_replication", 15),
		'feedback: the primary\'s oldest xmin moves on');
	my $removed = 0;
	my $deadline = time() + 15;
	while (time() < $deadline)
	{
		$primary->safe_psql('postgres', 'VACUUM public.bloat');
		$removed = $primary->safe_psql('postgres',
			'SELECT dead_tuple_count = 0 FROM pgstattuple(\'public.bloat\')') eq 't';
		last if $removed;
		usleep(200_000);
	}
	ok($removed, 'feedback: VACUUM on the primary removes the dead rows');
	$rr->close;
	$standby->append_conf('postgresql.conf', 'lambdaguard.idle_in_transaction_timeout = 1000');
	$standby->reload;
}

# ---------------------------------------------------------------------------
# pinning on the standby (read-only sessions)
# ---------------------------------------------------------------------------
{
	my $p = lg_session($standby, appname => 'lg_standby_pinner');
	my $ppid = $p->pid;
	$p->query(q{SET work_mem = '8MB'});
	$p->query(q{PREPARE lg_q AS SELECT 1});
	$p->query(q{DECLARE lg_c CURSOR WITH HOLD FOR SELECT 1});
	$p->query(q{SELECT pg_advisory_lock(4711)});
	is( lg_sql($standby,
			"SELECT string_agg(DISTINCT reason, ',' ORDER BY reason) FROM lambdaguard.pinning_events WHERE pid = $ppid"),
		'advisory_lock,cursor_with_hold,prepared_statement,set',
		'pinning on the standby: the events');
	is( lg_sql($standby,
			"SELECT array(SELECT unnest(dirty_reasons) ORDER BY 1)::text, pinned FROM lambdaguard.sessions WHERE pid = $ppid"),
		'{advisory_lock,cursor_with_hold,prepared_statement,set}|t',
		'pinning on the standby: dirty_reasons and pinned');
	is( lg_sql($standby,
			"SELECT string_agg(reason, ',' ORDER BY reason) FROM lambdaguard.pinning_stats WHERE usename = 'app' AND reason IN ('set', 'prepared_statement', 'cursor_with_hold', 'advisory_lock') AND sessions >= 1"),
		'advisory_lock,cursor_with_hold,prepared_statement,set',
		'pinning on the standby: the statistics');
	$p->query(q{DISCARD ALL});
	is(lg_sql($standby, "SELECT cardinality(dirty_reasons) FROM lambdaguard.sessions WHERE pid = $ppid"),
		'0', 'pinning on the standby: DISCARD ALL clears dirty_reasons');
	$p->close;
}

# ---------------------------------------------------------------------------
# metrics on both servers, as a pg_monitor role, with the exporter's queries
# ---------------------------------------------------------------------------
{
	my $queries = slurp_file("$FindBin::RealBin/../monitoring/queries.yaml");
	my @sql;
	while ($queries =~ /^\s+query: \|\n((?:\s{4,}.*\n)+)/mg)
	{
		push @sql, $1;
	}
	cmp_ok(scalar(@sql), '>=', 3, 'metrics: the exporter\'s queries are read');
	foreach my $pair ([ $primary, 'primary', '0' ], [ $standby, 'standby', '1' ])
	{
		my ($n, $name, $rec) = @$pair;
		my ($ret, $out, $err) = lg_psql_as($n, 'mon',
			"SELECT value FROM lambdaguard.metrics WHERE metric = 'lambdaguard_in_recovery'");
		is("$ret|$out", "0|$rec", "metrics on the $name: lambdaguard_in_recovery is $rec") or diag $err;
		($ret, $out, $err) = lg_psql_as($n, 'mon',
			"SELECT value FROM lambdaguard.metrics WHERE metric = 'lambdaguard_worker_up'");
		is("$ret|$out", '0|1', "metrics on the $name: the worker is up") or diag $err;
		my $i = 0;
		foreach my $q (@sql)
		{
			$i++;
			($ret, $out, $err) = lg_psql_as($n, 'mon', $q);
			is($ret, 0, "metrics on the $name: exporter query $i runs as a pg_monitor role")
			  or diag "$q\n$err";
		}
	}
	my ($ret, $out, $err) = lg_psql_as($standby, 'mon',
		"SELECT value >= 2 FROM lambdaguard.metrics WHERE metric = 'lambdaguard_standby_history_records'");
	is("$ret|$out", '0|t', 'metrics on the standby: its records not yet imported') or diag $err;
}

# ---------------------------------------------------------------------------
# promotion with the worker running
# ---------------------------------------------------------------------------
{
	# a record of another server: a copy of a real one under another system
	# identifier, with its CRC
	my $journal = "$pgdata/pg_lambdaguard/standby_history";
	my ($line) = grep { /\tlg_standby_orphan\t/ } split /\n/, slurp_file($journal);
	my @f = split /\t/, $line;
	pop @f;
	$f[1] = '12345';
	$f[3] = '999999';
	$f[9] = 'lg_foreign';
	my $body = join("\t", @f);
	PostgreSQL::Test::Utils::append_to_file($journal,
		sprintf("%s\t%08x\n", $body, crc32c($body)));
	is(lg_sql($standby, "SELECT count(*) FROM lambdaguard.standby_history WHERE application_name = 'lg_foreign'"),
		'0', 'a record of another server is not shown');
	my $records = lg_sql($standby, 'SELECT count(*) FROM lambdaguard.standby_history');
	my $copy = slurp_file($journal);

	$log = lg_log_offset($standby);
	$standby->promote;
	ok(lg_wait($standby, 'SELECT NOT pg_is_in_recovery()', 15), 'promoted');
	ok( lg_wait($standby,
			"SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = $pid1 AND action = 'terminate' AND application_name = 'lg_standby_orphan'", 15),
		'promoted: the standby\'s records are in lambdaguard.history');
	ok(lg_wait_log($standby, qr/imported $records records of the standby history into lambdaguard.history/, $log, 5),
		"promoted: $records records imported");
	like(lg_log_slice($standby, $log), qr/1 records of another server \(another system identifier\) were not imported/,
		'promoted: the record of another server is not imported');
	is(lg_sql($standby, "SELECT count(*) FROM lambdaguard.history WHERE application_name = 'lg_foreign'"),
		'0', 'promoted: no row of another server');
	is(lg_sql($standby, 'SELECT count(*) FROM lambdaguard.standby_history'), '0',
		'promoted: lambdaguard.standby_history is empty');
	is(lg_sql($standby, 'SELECT pid FROM lambdaguard.worker'), $worker_pid,
		'promoted: the same worker goes on, without a restart');
	my $history_sql = q{SELECT count(*) || '/' || count(DISTINCT (pid, backend_start, action)) FROM lambdaguard.history};
	my $rows = lg_sql($standby, $history_sql);

	# a crash after the import committed but before the file was removed
	$standby->stop('immediate');
	PostgreSQL::Test::Utils::append_to_file($journal, $copy);
	$log = lg_log_offset($standby);
	$standby->start;
	ok(lg_wait_log($standby, qr/imported 0 records of the standby history/, $log, 15),
		'journal back after a restart: nothing imported twice');
	ok(!-e $journal, 'journal back after a restart: the file is removed');
	is(lg_sql($standby, $history_sql), $rows, 'restart: lambdaguard.history has no duplicate');

	my $o3 = lg_session($standby, appname => 'lg_after_promotion');
	$o3->query('BEGIN; SELECT 1;');
	ok( lg_wait($standby,
			"SELECT count(*) = 1 FROM lambdaguard.history WHERE pid = ${\ $o3->pid} AND action = 'terminate'", 15),
		'promoted: an orphan is recorded in lambdaguard.history');
	$o3->close;
}

my @crash = (lg_crash_lines(lg_log_slice($primary, 0)));
is(scalar(@crash), 0, 'primary: no crash') or diag join("\n", @crash);

$standby->stop;
$primary->stop;
done_testing();

# CRC-32C (Castagnoli), as the journal's lines carry it
sub crc32c
{
	my ($s) = @_;
	my $crc = 0xFFFFFFFF;
	foreach my $byte (unpack('C*', $s))
	{
		$crc ^= $byte;
		for (1 .. 8)
		{
			$crc = ($crc & 1) ? (($crc >> 1) ^ 0x82F63B78) : ($crc >> 1);
		}
	}
	return $crc ^ 0xFFFFFFFF;
}
