# A job queue that polls with pg_try_advisory_lock must not pay for a copy
# of the whole lock table (GetLockStatusData: all 16 lock partitions) at the
# end of every transaction.  Counted with callgrind on a single-user
# backend, so the check is about calls made, not about time.
use strict;
use warnings;
use File::Temp qw(tempdir);
use IPC::Run qw(run);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

plan skip_all => 'valgrind is not installed'
  unless system('valgrind --version >/dev/null 2>&1') == 0;

my $node = PostgreSQL::Test::Cluster->new('advisory_polling');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_lambdaguard'
lambdaguard.track_pinning = all
});

# valgrind cannot run every server on every CPU (an instruction it does not
# know, as in 19's TSC calibration, stops it with SIGILL): first a backend
# without the library that only starts and stops; where valgrind stops that
# one on an instruction it does not know, the test is skipped with
# valgrind's words, since the library is not what failed.  Any other
# failure is left to the test below.
{
	my ($o, $e);
	my $probe_dir = tempdir(CLEANUP => 1);
	run [
		'valgrind', '--tool=callgrind', "--callgrind-out-file=$probe_dir/probe.out",
		'postgres', '--single', '-c', 'shared_preload_libraries=',
		'-D', $node->data_dir, 'postgres'
	  ],
	  '<', \"SELECT 1\n", '>', \$o, '2>', \$e;
	if ($e =~ /(unhandled instruction[^\n]*|[^\n]*SIGILL[^\n]*|Illegal instruction[^\n]*)/)
	{
		plan skip_all => "valgrind cannot run this server on this CPU: $1";
	}
}

my $polls = 100;
my $script = '';
for my $i (1 .. $polls)
{
	$script .= "SELECT pg_try_advisory_lock($i)\n";
	$script .= "SELECT pg_advisory_unlock($i)\n";
}
# an xact-level lock, and a session lock kept to the end
$script .= "SELECT pg_advisory_xact_lock(7)\n";
$script .= "SELECT pg_advisory_lock(8)\n";

# counts the calls of each function in a callgrind output file
sub callgrind_calls
{
	my ($file) = @_;
	my (%name, %calls, $callee);
	open(my $fh, '<', $file) or die "open $file: $!";
	while (my $line = <$fh>)
	{
		if ($line =~ /^(c?)fn=\((\d+)\)(?: (.+))?$/)
		{
			my ($is_callee, $id, $fn) = ($1, $2, $3);

			$name{$id} = $fn if defined $fn;
			$callee = $name{$id} if $is_callee;
		}
		elsif ($line =~ /^calls=(\d+)/ && defined $callee)
		{
			$calls{$callee} += $1;
		}
	}
	close($fh);
	return \%calls;
}

my $dir = tempdir(CLEANUP => 1);
my $out = "$dir/callgrind.out";
my ($stdout, $stderr);
my $ok = run [
	'valgrind', '--tool=callgrind', "--callgrind-out-file=$out",
	'postgres', '--single', '-D', $node->data_dir, 'postgres'
  ],
  '<', \$script, '>', \$stdout, '2>', \$stderr;
ok($ok, 'the single-user backend ran the polling script under callgrind')
  or diag($stderr);

my $calls = callgrind_calls($out);
is($calls->{pg_try_advisory_lock_int8} // 0, $polls,
	"pg_try_advisory_lock ran $polls times (the count is real)");
is($calls->{pg_advisory_unlock_int8} // 0, $polls,
	"pg_advisory_unlock ran $polls times");
is($calls->{GetLockStatusData} // 0, 0,
	'no transaction copied the lock table (GetLockStatusData never called)');
ok(($calls->{LWLockAcquire} // 0) > 0, 'callgrind counted core functions by name');

done_testing();
