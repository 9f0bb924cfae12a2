
# Copyright (c) 2026, pg_lambdaguard developers

# A real driver for the TAP tests: node-postgres ("pg", pinned in
# test/e2e/package-lock.json), one connection per object, driven from Perl.
#
# lg_node_modules()       installs the locked packages once per test run
#                         (npm ci into tmp_check; reuses test/e2e/node_modules
#                         if it exists) and returns the node_modules path
# lg_node_client($node, %o)
#                         a connected client (user app, TCP 127.0.0.1,
#                         application_name lg_node); ->query(\%q) sends one
#                         node-postgres query config ({text, values, name})
#                         and returns its answer as a hash (rows, or error and
#                         code, or dead); ->pid, ->ping and ->close as
#                         LgTest::Session has them, so lg_assert_untouched()
#                         takes it

package LgNodeClient;

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter 'import';
use File::Basename qw(dirname);
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(lg_node_modules lg_node_client);

# this file's directory (t/lib), which holds pg_client.js
my $libdir = dirname(abs_path(__FILE__));

my $modules;

sub lg_node_modules
{
	return $modules if defined $modules;
	my $e2e = "$libdir/../../test/e2e";
	if (-d "$e2e/node_modules/pg")
	{
		$modules = "$e2e/node_modules";
		return $modules;
	}
	my $dir = "$PostgreSQL::Test::Utils::tmp_check/node";
	mkdir $dir;
	foreach my $f ('package.json', 'package-lock.json')
	{
		my $text = slurp_file("$e2e/$f");
		open(my $fh, '>', "$dir/$f") or die "cannot write $dir/$f: $!";
		print $fh $text;
		close $fh;
	}
	my ($out, $err) = ('', '');
	local $ENV{npm_config_cache} = "$dir/npm-cache";
	my $ok = IPC::Run::run(
		[ 'npm', 'ci', '--no-audit', '--no-fund', '--ignore-scripts' ],
		'>', \$out, '2>', \$err,
		init => sub { chdir $dir or die "chdir $dir: $!"; });
	die "npm ci in $dir failed:\n$out\n$err" unless $ok && -d "$dir/node_modules/pg";
	$modules = "$dir/node_modules";
	return $modules;
}

sub lg_node_client
{
	return LgNodeClient::Client->new(@_);
}

package LgNodeClient::Client;

use strict;
use warnings;

use IPC::Run;
use JSON::PP;

sub new
{
	my ($class, $node, %o) = @_;
	my $self = bless {
		stdin => '',
		stdout => '',
		stderr => '',
		dead => 0,
	}, $class;
	local $ENV{NODE_PATH} = LgNodeClient::lg_node_modules();
	local $ENV{LG_HOST} = '127.0.0.1';
	local $ENV{LG_PORT} = $node->port;
	local $ENV{LG_USER} = $o{user} // 'app';
	local $ENV{LG_DB} = $o{dbname} // 'postgres';
	local $ENV{LG_APPNAME} = $o{appname} // 'lg_node';
	$self->{timer} = IPC::Run::timer(30);
	$self->{run} = IPC::Run::start(
		[ 'node', "$libdir/pg_client.js" ],
		'<', \$self->{stdin},
		'>', \$self->{stdout},
		'2>', \$self->{stderr},
		$self->{timer});
	my $r = $self->query({ text => 'SELECT pg_backend_pid()' });
	die "node-postgres client did not connect: "
	  . encode_json($r) . " $self->{stderr}"
	  unless $r->{rows} && $r->{rows}[0][0] =~ /^\d+$/;
	$self->{pid} = $r->{rows}[0][0];
	return $self;
}

sub pid { return $_[0]->{pid}; }

# Send one query config, wait (at most $secs) for its answer line
sub query
{
	my ($self, $q, $secs) = @_;
	return { dead => 'closed before' } if $self->{dead};
	$self->{stdin} .= encode_json($q) . "\n";
	$self->{timer}->start($secs // 30);
	while ($self->{stdout} !~ /\n/)
	{
		if ($self->{timer}->is_expired)
		{
			return { error => 'no answer in time' };
		}
		if (!$self->{run}->pumpable)
		{
			$self->{dead} = 1;
			return { dead => 'node exited: ' . $self->{stderr} };
		}
		eval { $self->{run}->pump; };
	}
	$self->{stdout} =~ s/^([^\n]*)\n//;
	my $r = decode_json($1);
	$self->{dead} = 1 if exists $r->{dead};
	return $r;
}

sub ping
{
	my ($self) = @_;
	my $r = $self->query({ text => 'SELECT 4711' }, 10);
	return $r->{rows} && $r->{rows}[0][0] == 4711;
}

sub close
{
	my ($self) = @_;
	return if $self->{closed};
	$self->{closed} = 1;
	eval { $self->{run}->kill_kill; } if $self->{run}->pumpable;
	eval { $self->{run}->finish; };
	return;
}

sub DESTROY
{
	my ($self) = @_;
	$self->close if $self->{run};
}

1;
