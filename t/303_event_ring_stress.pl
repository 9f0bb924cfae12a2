# The event ring is written without a lock: many sessions write events at
# once while another reads the ring, and no row read is torn, and no count
# is lost.  Each statement carries its own writer, sequence number, padding
# and an MD5 checksum of them in a comment, so a row whose statement, pid
# or application_name belong to different events shows itself.  The ring is
# small and the statements long, so that both the entries and the text arena
# wrap many times while the reader reads.
#
# The test fails on a ring without its checks: build with
# make COPT=-DLG_RING_BROKEN (docs/testing.md).
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $writers = 8;
my $statements = 4000;
my $reader_reads = 400;

my $node = PostgreSQL::Test::Cluster->new('ring_stress');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_lambdaguard'
lambdaguard.max_events = 100
lambdaguard.track_pinning = all
max_connections = 30
log_min_messages = warning
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_lambdaguard;
CREATE ROLE ring_writer LOGIN;
});

# One script per writer: SET statements whose comment checks itself
my @files;
for my $w (1 .. $writers)
{
	my $file = $node->basedir . "/writer_$w.sql";
	my $sql = '';
	for my $n (1 .. $statements)
	{
		my $kb = 4096 + ($n * 7 + $w) % 1000;
		my $pad = substr(md5_hex("$w/$n") x 3, 0, 20 + ($n * 13 + $w * 7) % 80);
		my $body = "w=$w n=$n kb=$kb pad=$pad";
		$sql .= "SET work_mem = '${kb}kB' /* $body sum=" . md5_hex($body) . " */;\n";
	}
	PostgreSQL::Test::Utils::append_to_file($file, $sql);
	push @files, $file;
}

# A row is whole if its statement checks itself and names the writer its
# application_name names; a pid belongs to one writer only.
my %writer_of_pid;
my ($rows_checked, $rows_whole, $texts_gone, $torn) = (0, 0, 0, 0);

sub check_rows
{
	my ($out) = @_;
	foreach my $line (split /\n/, $out)
	{
		my ($pid, $app, $reason, $hidden, $statement) = split /\|/, $line, 5;
		$rows_checked++;
		if ($statement eq '' && $app eq '')
		{
			$texts_gone++;    # overwritten in the arena: shown as NULL
			next;
		}
		my $ok = 0;
		if ($statement =~
			m{^SET work_mem = '(\d+)kB' /\* (w=(\d+) n=(\d+) kb=(\d+) pad=([0-9a-f]+)) sum=([0-9a-f]{32}) \*/$})
		{
			my ($kb, $body, $w, $n, $kb2, $sum) = ($1, $2, $3, $4, $5, $7);
			$ok = md5_hex($body) eq $sum && $kb == $kb2
			  && $app eq "ring_writer_$w" && $reason eq 'set' && $hidden eq 'f';
			$writer_of_pid{$pid} //= $w;
			$ok &&= $writer_of_pid{$pid} == $w;
		}
		if ($ok)
		{
			$rows_whole++;
		}
		else
		{
			$torn++;
			diag("torn row: $line") if $torn <= 5;
		}
	}
}

my $read_sql = q{SELECT pid, application_name, reason, hidden, statement
  FROM lambdaguard.pinning_events WHERE usename = 'ring_writer'};

# a reader that reads the ring again and again while they write, in one
# session; its rows are checked once it is done
my $read_file = $node->basedir . '/reader.sql';
PostgreSQL::Test::Utils::append_to_file($read_file, "$read_sql;\n" x $reader_reads);
my $reader_out = '';
my $reader = IPC::Run::start(
	[ 'psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1',
	  '-h', $node->host, '-p', $node->port, '-d', 'postgres', '-f', $read_file ],
	'>', \$reader_out, '2>', \my $reader_err);

my @handles;
for my $w (1 .. $writers)
{
	local $ENV{PGAPPNAME} = "ring_writer_$w";
	push @handles, IPC::Run::start(
		[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-U', 'ring_writer',
		  '-h', $node->host, '-p', $node->port, '-d', 'postgres', '-f', $files[ $w - 1 ] ],
		'>', \my $out, '2>', \my $err);
}

# read while they write
my $reads = 0;
my $deadline = time() + 300;
while (grep { $_->pumpable } @handles)
{
	check_rows($node->safe_psql('postgres', $read_sql));
	$reads++;
	last if time() > $deadline;
	foreach my $h (@handles, $reader) { $h->pump_nb if $h->pumpable; }
}
my $failed = 0;
foreach my $h (@handles)
{
	$h->finish;
	$failed++ if $h->result != 0;
}
is($failed, 0, "$writers writers ran $statements SET statements each");
ok($reader->finish, "a reader read the ring $reader_reads times meanwhile")
  or diag($reader_err);
check_rows($reader_out);
check_rows($node->safe_psql('postgres', $read_sql));
note("$reads reads while writing, $rows_checked rows: $rows_whole whole, "
	  . "$texts_gone with their text overwritten, $torn torn");
ok($reads >= 1, "the ring was read $reads more times while the writers wrote");
ok($rows_whole > 0, 'rows with their text were read');
is($torn, 0, 'no torn row: every statement, pid and application_name belong together');

# no count lost: every SET counted once, each session once
is($node->safe_psql('postgres',
		"SELECT events, sessions, hidden_events FROM lambdaguard.pinning_stats
		  WHERE usename = 'ring_writer' AND reason = 'set'"),
	($writers * $statements) . "|$writers|0",
	'pinning_stats counts every event and every session exactly');

# after the writers: the ring holds the last max_events events, whole
is($node->safe_psql('postgres',
		"SELECT count(*) FROM lambdaguard.pinning_events WHERE usename = 'ring_writer'"),
	'100', 'the ring holds max_events events once the writers are done');

# reset: no event and no count left, and counting goes on afterwards
$node->safe_psql('postgres', 'SELECT lambdaguard.reset()');
is($node->safe_psql('postgres',
		"SELECT (SELECT count(*) FROM lambdaguard.pinning_events),
		        (SELECT count(*) FROM lambdaguard.pinning_stats)"),
	'0|0', 'reset() leaves no event and no statistics row');
$node->safe_psql('postgres', "SET work_mem = '5MB'; SET work_mem = '6MB';",
	extra_params => [ '-U', 'ring_writer' ]);
is($node->safe_psql('postgres',
		"SELECT events, sessions FROM lambdaguard.pinning_stats
		  WHERE usename = 'ring_writer' AND reason = 'set'"),
	'2|1', 'events after reset() are counted from zero');

$node->stop;
done_testing();
