
# Copyright (c) 2026, pg_lambdaguard developers

# Helpers for the tests that read the server log or act as several roles,
# on top of LgTest.pm:
#
# lg_psql_as()        one psql call as any role; returns (ret, out, err)
# lg_log_times()      the times (epoch seconds, ms precision) of the log
#                     lines matching a pattern
# lg_crash_lines()    log lines that show a crash or a crash-restart: every
#                     "terminated by signal", every "exited with exit code"
#                     except the worker's own exit 1 (and the logical
#                     replication launcher's at shutdown), every
#                     "terminating any other active server processes"
# lg_worker_backend() pid of the running pg_lambdaguard worker backend, or ''
# lg_wait_log()       bounded wait for a log line matching a pattern

package LgFaults;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use Time::Local qw(timegm);

our @EXPORT =
  qw(lg_psql_as lg_log_times lg_crash_lines lg_worker_backend lg_wait_log);

# One psql call (ON_ERROR_STOP) as $role over the Unix socket.
sub lg_psql_as
{
	my ($node, $role, $sql, %o) = @_;
	my ($out, $err) = ('', '');
	my $ret = $node->psql(
		$o{dbname} // 'postgres', $sql,
		stdout => \$out,
		stderr => \$err,
		on_error_stop => 1,
		extra_params => [ '-U', $role ]);
	return ($ret, $out, $err);
}

# log_line_prefix is '%m [%p] %q%a ' (PostgreSQL::Test::Cluster): every line
# starts with "YYYY-MM-DD HH:MM:SS.mmm ZONE".  The zone is the same for all
# lines of a log, so it is ignored: only differences are used.
sub lg_log_times
{
	my ($text, $re) = @_;
	my @times;
	foreach my $line (split /\n/, $text)
	{
		next unless $line =~ $re;
		next
		  unless $line =~
		  /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?/;
		my $t = timegm($6, $5, $4, $3, $2 - 1, $1);
		$t += ("0.$7") if defined $7;
		push @times, $t;
	}
	return @times;
}

sub lg_crash_lines
{
	my ($text) = @_;
	my @bad;
	foreach my $line (split /\n/, $text)
	{
		if ($line =~ /exited with exit code/)
		{
			# the worker's exit after an ERROR or a SIGTERM (the postmaster
			# names it by its bgw_type), and the launcher's at shutdown
			next
			  if $line =~
			  /background worker "(pg_lambdaguard[^"]*|logical replication launcher)" \(PID \d+\) exited with exit code 1$/;
			push @bad, $line;
		}
		elsif ($line =~
			/terminated by signal|terminating any other active server processes|all server processes terminated; reinitializing/
		  )
		{
			push @bad, $line;
		}
	}
	return @bad;
}

sub lg_worker_backend
{
	my ($node) = @_;
	my ($ret, $out) = $node->psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_lambdaguard'");
	return $ret == 0 ? $out : '';
}

# Wait (at most $secs) until the log from $offset on has a line matching
# $re; returns that part of the log, or undef (with a diag)
sub lg_wait_log
{
	my ($node, $re, $offset, $secs) = @_;
	my $deadline = time() + ($secs // 10);
	while (1)
	{
		my $text = slurp_file($node->logfile, $offset // 0);
		return $text if $text =~ $re;
		if (time() >= $deadline)
		{
			diag "gave up after ${secs}s waiting for $re in " . $node->logfile;
			return undef;
		}
		usleep(100_000);
	}
}

1;
