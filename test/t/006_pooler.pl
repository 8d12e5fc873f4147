# Behind PgBouncer in transaction mode (issue 9): several clients share two
# server connections, and
#  - per transaction, BEGIN; tenant_use(t); ...; COMMIT; never reads another
#    tenant's rows, even while other clients leave session-wide search_paths
#    on the shared server connections;
#  - per login role (tenant_login_role, a pool per role), a plain query with
#    no tenant_use at all never does either;
#  - tenant_use outside a transaction block fails with 25P01;
# and the old danger is real: tenant_use(t, is_local => false) followed by
# plain queries reads the other tenant's rows (reported, not asserted: how
# often depends on the scheduling).
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my @tenants = ('red', 'blue');
my $clients = 6;          # tenants alternate: red, blue, red, ...
my $per_client = 60;      # requests per client and phase: 360 per phase
my $pool_size = 2;        # server connections per (user, database) pool

# the Debian package's binary; PGBOUNCER overrides
my $pgbouncer = $ENV{PGBOUNCER}
  // (-x '/usr/sbin/pgbouncer' ? '/usr/sbin/pgbouncer' : 'pgbouncer');

my $node = PostgreSQL::Test::Cluster->new('pooler');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'tenant_mgr'");
$node->start;

sub run_sql { return $node->safe_psql('postgres', shift); }

run_sql('CREATE EXTENSION tenant_mgr');
run_sql(q{SELECT tenant_mgr.migration_add(1, 'accounts', 'CREATE TABLE accounts (name text)')});
foreach my $t (@tenants)
{
	run_sql("SELECT tenant_mgr.tenant_create('$t')");
	run_sql("INSERT INTO tenant_$t.accounts VALUES ('$t')");
}
is(run_sql(q{SELECT string_agg(name || ':' || version, ',' ORDER BY name) FROM tenant_mgr.tenants}),
	'blue:1,red:1', 'two schema tenants at migration 1');
my $superuser = run_sql('SELECT current_user');

# the login roles, made now so that pgbouncer's user list can name them
my %login;
foreach my $t (@tenants)
{
	$login{$t} = run_sql("SELECT tenant_mgr.tenant_login_role('$t')");
}
is(join(',', map { $login{$_} } @tenants), 'tenant_red_login,tenant_blue_login',
	'a login role for each tenant');

# --- pgbouncer, as this (unprivileged) user, with its own files and port ----------

my $dir = PostgreSQL::Test::Utils::tempdir('pgbouncer');
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $ini = "$dir/pgbouncer.ini";
my $log = "$dir/pgbouncer.log";

# auth_type trust still wants the user names in auth_file
PostgreSQL::Test::Utils::append_to_file("$dir/userlist.txt",
	join('', map { qq{"$_" ""\n} } $superuser, values %login));
PostgreSQL::Test::Utils::append_to_file(
	$ini, sprintf(<<'EOF', $node->host, $node->port, $port, $dir, $dir, $log, $pool_size));
[databases]
postgres = host=%s port=%d dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s/userlist.txt
pidfile = %s/pgbouncer.pid
logfile = %s
pool_mode = transaction
default_pool_size = %d
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 100
ignore_startup_parameters = extra_float_digits
EOF

# its stderr goes to a file: a pipe nobody reads would fill and block it
my $bouncer = IPC::Run::start([ $pgbouncer, $ini ],
	'<', \undef, '>', "$dir/pgbouncer.stderr", '2>&1');
my @psql_clients;    # every client harness, for the END block

END
{
	# kill what is left if the test died midway
	foreach my $h (@psql_clients, $bouncer)
	{
		eval { $h->kill_kill(grace => 5) if $h && $h->pumpable; };
	}
}

sub bouncer_log
{
	my $text = join('', map { -f $_ ? slurp_file($_) : '' } $log, "$dir/pgbouncer.stderr");
	my @lines = split /\n/, $text;
	return join("\n", @lines > 40 ? @lines[-40 .. -1] : @lines);
}

# psql through pgbouncer: a script on stdin, (rc, stdout, stderr) back
sub bouncer_psql
{
	my ($user, $script) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run(
		[ 'psql', '-X', '-A', '-t', '-q', '-h', '127.0.0.1', '-p', $port, '-U', $user, '-d', 'postgres' ],
		'<', \$script, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	chomp $out;
	return ($? >> 8, $out, $err);
}

# pgbouncer is up when a query through it answers
my $up = 0;
foreach (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
{
	last unless $bouncer->pumpable;    # it exited
	my ($rc, $out) = bouncer_psql($superuser, 'SELECT 1;');
	if ($rc == 0 && $out eq '1')
	{
		$up = 1;
		last;
	}
	select(undef, undef, undef, 0.1);
}
ok($up, "pgbouncer accepts queries on port $port") or diag(bouncer_log());
die 'pgbouncer did not start: ' . bouncer_log() unless $up;
my $bouncer_pid = slurp_file("$dir/pgbouncer.pid");
chomp $bouncer_pid;

# --- running many requests from concurrent clients ----------------------------------

# The server backends of the pools, from the server's side, per user: with
# every client still connected, the clients of a pool share at most
# $pool_size of them.
sub server_connections
{
	my %n = map { split /\|/ } split /\n/,
	  run_sql(q{SELECT usename, count(*) FROM pg_stat_activity
		WHERE datname = 'postgres' AND backend_type = 'client backend'
		  AND pid <> pg_backend_pid() GROUP BY usename});
	return \%n;
}

# Runs the clients' requests at once, each client a psql through pgbouncer
# fed through a pipe: each of @_ is { tenant, user, setup (SQL sent once
# first, optional), request (a sub giving request N's SQL) }.  Every client
# is connected before any request is sent, then all get their requests at
# once; each request ends with the line "@@ N" (\echo).  Returns the
# clients, each with read: the tenant each request read ('?' for no row or
# several); the server pids of the requests that printed "pid P xid X", with
# the tenants each served; the order in which the clients' transactions
# ran (by xid); and the server connections while all were connected.
sub run_clients
{
	my @c;
	my $timeout = IPC::Run::timeout(3 * $PostgreSQL::Test::Utils::timeout_default);
	foreach my $s (@_)
	{
		my $c = { %$s, in => "\\echo @@ ready\n", out => '', err => '' };
		$c->{h} = IPC::Run::start(
			[ 'psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=0',
			  '-h', '127.0.0.1', '-p', $port, '-U', $s->{user}, '-d', 'postgres' ],
			'<', \$c->{in}, '>', \$c->{out}, '2>', \$c->{err}, $timeout);
		push @psql_clients, $c->{h};
		push @c, $c;
	}

	# pumps every client until each has printed the line $_[0]
	my $pump_until = sub {
		my $line = qr/^\Q$_[0]\E$/m;
		while (my @waiting = grep { $_->{out} !~ $line } @c)
		{
			foreach my $c (@waiting)
			{
				die "client of $c->{tenant} as $c->{user} exited early: $c->{err}"
				  unless $c->{h}->pumpable;
				$c->{h}->pump_nb;
			}
			select(undef, undef, undef, 0.005);
		}
	};
	$pump_until->('@@ ready');    # psql connects before it reads stdin
	foreach my $c (@c)
	{
		$c->{in} .= "$c->{setup}\n\\echo @@ setup\n" if $c->{setup};
		$c->{in} .= $c->{request}->($_) . "\n\\echo @@ $_\n" foreach 1 .. $per_client;
	}
	$pump_until->("@@ $per_client");
	my $servers = server_connections();
	foreach my $c (@c)
	{
		$c->{in} .= "\\q\n";
		$c->{h}->finish;
	}

	my (%pids, %xids);
	foreach my $i (0 .. $#c)
	{
		my $c = $c[$i];
		my @read;
		my $body = $c->{out};
		$body =~ s/\A.*?^@@ (?:setup|ready)\n//ms foreach 1 .. ($c->{setup} ? 2 : 1);
		foreach my $chunk (split /^@@ \d+\n/m, $body, -1)
		{
			my @names = grep { my $l = $_; grep { $l eq $_ } @tenants } split /\n/, $chunk;
			push @read, @names == 1 ? $names[0] : '?';
			while ($chunk =~ /^pid (\d+) xid (\d+)$/mg)
			{
				$pids{$1}{ $c->{tenant} } = 1;
				$xids{$2} = $i;
			}
		}
		pop @read;    # after the last marker
		$c->{read} = \@read;
	}
	my @order = map { $xids{$_} } sort { $a <=> $b } keys %xids;
	return (\@c, \%pids, \@order, $servers);
}

# how often consecutive transactions (by xid) came from different clients
sub switches
{
	my @order = @_;
	return scalar grep { $order[$_] != $order[ $_ - 1 ] } 1 .. $#order;
}

# counts: [requests, read their own tenant, read the other one, read nothing]
sub tally
{
	my @n = (0, 0, 0, 0);
	foreach my $c (@_)
	{
		foreach my $r (@{ $c->{read} })
		{
			$n[0]++;
			$n[ $r eq $c->{tenant} ? 1 : $r eq '?' ? 3 : 2 ]++;
		}
	}
	return @n;
}

sub errors { return join('', map { $_->{err} } @_); }

my $per_transaction = sub {
	my ($t) = @_;
	return sub {
		return "BEGIN;\nSELECT tenant_mgr.tenant_use('$t');\nSELECT name FROM accounts;\n"
		  . "SELECT 'pid ' || pg_backend_pid() || ' xid ' || pg_current_xact_id();\nCOMMIT;";
	};
};
sub tenant_of { return $tenants[ $_[0] % @tenants ]; }

# --- 1. per transaction: BEGIN; tenant_use(t); SELECT; COMMIT; ----------------------

my ($res, $pids, $order, $servers) = run_clients(
	map {
		{ tenant => tenant_of($_), user => $superuser, request => $per_transaction->(tenant_of($_)) }
	} 0 .. $clients - 1);
my ($requests, $own, $leaks, $none) = tally(@$res);
note("per transaction: $requests requests, $leaks read the other tenant, $none read nothing; "
	  . scalar(@$order) . ' transactions switched clients ' . switches(@$order) . ' times; '
	  . 'server pids: ' . join(',', sort keys %$pids));
is($requests, $clients * $per_client, "per transaction: $requests requests from $clients concurrent clients");
is($leaks, 0, 'per transaction: no request reads the other tenant');
is($own, $requests, 'per transaction: every request reads its own tenant') or diag(errors(@$res));
cmp_ok(scalar(keys %$pids), '<=', $pool_size, "the clients share at most $pool_size server connections");
is($servers->{$superuser}, scalar(keys %$pids), 'the server saw only those connections');
ok((grep { keys %{ $pids->{$_} } == 2 } keys %$pids), 'a server connection served both tenants');

# --- 2. the old danger: tenant_use(t, is_local => false), then plain queries --------

# Half of the clients set a session-wide search_path once and then query
# outside any transaction; the other half go on per transaction.
($res, $pids, $order, $servers) = run_clients(
	map {
		my $t = tenant_of($_);
		$_ < $clients / 2
		  ? { tenant => $t, user => $superuser, unsafe => 1,
			  setup => "SELECT tenant_mgr.tenant_use('$t', is_local => false);",
			  request => sub { 'SELECT name FROM accounts;' } }
		  : { tenant => $t, user => $superuser, request => $per_transaction->($t) }
	} 0 .. $clients - 1);
my @unsafe = grep { $_->{unsafe} } @$res;
my @safe = grep { !$_->{unsafe} } @$res;
($requests, $own, $leaks, $none) = tally(@unsafe);
note("is_local => false through the pooler: $requests requests, $own read their own tenant, "
	  . "$leaks read the OTHER tenant, $none read nothing (no tenant on their server connection)");
my ($srequests, $sown, $sleaks) = tally(@safe);
note("meanwhile per transaction: $srequests requests, $sleaks read the other tenant");
is($requests + $srequests, $clients * $per_client, "mixed: $requests + $srequests requests");
is($sleaks, 0, 'per-transaction requests read no other tenant while session-wide paths linger')
  or diag(errors(@safe));
is($sown, $srequests, 'and every one reads its own tenant') or diag(errors(@safe));

# --- 3. per login role: plain queries, no tenant_use -------------------------------

($res, $pids, $order, $servers) = run_clients(
	map {
		my $t = tenant_of($_);
		{ tenant => $t, user => $login{$t}, request => sub { 'SELECT name FROM accounts;' } }
	} 0 .. $clients - 1);
($requests, $own, $leaks, $none) = tally(@$res);
note("login roles: $requests requests, $leaks read the other tenant, $none read nothing; "
	  . 'server connections: ' . join(',', map { "$_:$servers->{$_}" } sort keys %$servers));
is($requests, $clients * $per_client, "login roles: $requests requests from $clients concurrent clients");
is($leaks, 0, 'login roles: no request reads the other tenant');
is($own, $requests, 'login roles: every request reads its own tenant') or diag(errors(@$res));
foreach my $t (@tenants)
{
	ok($servers->{ $login{$t} } >= 1 && $servers->{ $login{$t} } <= $pool_size,
		"$login{$t} has a pool of its own, of at most $pool_size server connections");
}

# a login role reaches its own tenant only, named or not
my ($rc, $out, $err) = bouncer_psql($login{red},
	"SELECT name FROM tenant_blue.accounts;\n\\echo sqlstate :SQLSTATE\n");
is($out, 'sqlstate 42501', "$login{red} is refused the other tenant's table through pgbouncer");

# --- tenant_use outside a transaction block ------------------------------------------

($rc, $out, $err) = bouncer_psql($superuser,
	"SELECT tenant_mgr.tenant_use('red');\n\\echo sqlstate :SQLSTATE\n");
is($out, 'sqlstate 25P01', 'tenant_use outside a transaction block fails with 25P01 through pgbouncer');
like($err, qr/tenant_use\(\) outside a transaction block/, 'with its message');

# --- stop pgbouncer ---------------------------------------------------------------

# (kill_kill returns true when SIGTERM was not enough and it sent SIGKILL)
ok(!$bouncer->kill_kill(grace => 60), 'pgbouncer stops on SIGTERM') or diag(bouncer_log());
ok(!kill(0, $bouncer_pid), "pgbouncer's process $bouncer_pid is gone");

$node->stop;
done_testing();
