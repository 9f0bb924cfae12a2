#!/usr/bin/env bash
# Checks the relative links of the project's Markdown: README.md,
# CHANGELOG.md and docs/*.md.  Every [text](path) and [text](path#anchor)
# (images too) outside code spans and fenced blocks is resolved relative to
# the file that holds it; the target must exist, and an anchor must name a
# heading of the target (GitHub's slug: lower case, spaces to '-', every
# punctuation mark but '-' and '_' dropped, "-1", "-2" after repeats).
# Links with a scheme (https:, http:, mailto:, ...) are not followed: no
# network.  Needs bash and perl only.
#
#     bash tools/check_links.sh
#
# Prints each broken link as file:line and exits 1, or prints
# "links: N checked, 0 broken" and exits 0.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

files=()
for f in README.md CHANGELOG.md docs/*.md; do
	[ -f "$f" ] && files+=("$f")
done

exec perl -CSD -Mutf8 -e '
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;

my %anchors;    # file => { slug => 1 }

# The lines of a Markdown file with fenced blocks blanked out (line numbers kept).
sub prose_lines {
	my ($file) = @_;
	open(my $fh, "<:encoding(UTF-8)", $file) or return ();
	my @out;
	my $fence;
	while (my $line = <$fh>) {
		chomp $line;
		if (defined $fence) {
			$fence = undef if $line =~ /^\s*\Q$fence\E[`~]*\s*$/;
			push @out, "";
			next;
		}
		if ($line =~ /^\s*(```|~~~)/) {
			$fence = $1;
			push @out, "";
			next;
		}
		push @out, $line;
	}
	close $fh;
	return @out;
}

# GitHub heading slug.
sub slug {
	my ($text) = @_;
	$text =~ s/\[([^\]]*)\]\([^)]*\)/$1/g;     # a link keeps its text
	$text =~ s/<[^>]+>//g;                     # inline HTML tags
	$text = lc $text;
	$text =~ s/[^\p{L}\p{M}\p{N}\p{Pc} \-]//g;
	$text =~ s/ /-/g;
	return $text;
}

sub anchors_of {
	my ($file) = @_;
	return $anchors{$file} if $anchors{$file};
	my (%set, %seen);
	for my $line (prose_lines($file)) {
		if ($line =~ /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/) {
			my $s = slug($1);
			my $n = $seen{$s}++;
			$set{$n ? "$s-$n" : $s} = 1;
		}
		while ($line =~ /<a\s[^>]*?(?:name|id)="([^"]+)"/g) {
			$set{$1} = 1;
		}
	}
	return $anchors{$file} = \%set;
}

my ($checked, $broken) = (0, 0);
for my $file (@ARGV) {
	my @lines = prose_lines($file);
	for my $i (0 .. $#lines) {
		my $line = $lines[$i];
		$line =~ s/(`+)(?:(?!\1).)+?\1//g;     # code spans are not links
		while ($line =~ /\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g) {
			my $target = $2;
			next if $target =~ /^[A-Za-z][A-Za-z0-9+.-]*:/;    # https:, mailto:, ...
			$checked++;
			my ($path, $anchor) = $target =~ /^([^#]*)(?:#(.*))?$/;
			$path =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
			my $resolved = $path eq ""
				? $file
				: File::Spec->canonpath(File::Spec->catfile(dirname($file), $path));
			my $why;
			if (!-e $resolved) {
				$why = "no such file: $resolved";
			} elsif (defined $anchor && $anchor ne "") {
				if (-d $resolved || $resolved !~ /\.md$/i) {
					$why = "anchor on a target that is not a Markdown file";
				} elsif (!anchors_of($resolved)->{lc $anchor}) {
					$why = "no heading for #$anchor in $resolved";
				}
			}
			if (defined $why) {
				$broken++;
				printf "%s:%d: broken link (%s): %s\n", $file, $i + 1, $target, $why;
			}
		}
	}
}
printf "links: %d checked, %d broken\n", $checked, $broken;
exit($broken ? 1 : 0);
' "${files[@]}"
