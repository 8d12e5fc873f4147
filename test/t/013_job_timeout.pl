# tenant_mgr.job_timeout: an executor that runs out of time is terminated
# and its step fails with 57014 (query_canceled), not with the 57P01 that
# its own termination reports; the tenant stays as it was and nothing is
# left behind, for a waiting caller (create, migrate) and for the launcher.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('job_timeout');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'tenant_mgr'
tenant_mgr.database = 'postgres'
tenant_mgr.poll_interval = 1
max_worker_processes = 16
});
$node->start;

sub run_sql { return $node->safe_psql('postgres', shift); }

# the SQLSTATE and message of a statement that must fail
sub fails
{
	my ($sql) = @_;
	my ($ret, $stdout, $stderr) =
	  $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	return $ret == 0 ? 'no error' : ($stderr =~ /ERROR:\s+(\w{5}: [^\n]*)/)[0];
}

sub consistent
{
	my ($what) = @_;
	$node->poll_query_until('postgres',
		'SELECT count(*) = 0 FROM tenant_mgr.intent')
	  or diag('intents left: ' . run_sql('SELECT * FROM tenant_mgr.intent'));
	is(run_sql('SELECT count(*) FROM tenant_mgr.verify()'), '0',
		"verify() is empty $what")
	  or diag(run_sql('SELECT * FROM tenant_mgr.verify()'));
}

sub set_timeout
{
	my ($seconds) = @_;
	run_sql("ALTER SYSTEM SET tenant_mgr.job_timeout = $seconds");
	run_sql('SELECT pg_reload_conf()');
	$node->poll_query_until('postgres',
		"SELECT current_setting('tenant_mgr.job_timeout')::interval = '$seconds s'")
	  or die 'tenant_mgr.job_timeout not reloaded';
}

run_sql('CREATE EXTENSION tenant_mgr');
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'tenant_mgr launcher'})
  or die 'no launcher';
run_sql(q{SELECT tenant_mgr.migration_add(1, 'accounts', 'CREATE TABLE accounts (id int)')});
is(run_sql(q{SELECT state || ':' || version FROM tenant_mgr.tenant_create('fast', 'database')}),
	'ready:1', 'a database tenant built within the default job_timeout');

# every later build or migration sleeps past the timeout
run_sql(q{SELECT tenant_mgr.migration_add(2, 'slow', 'SELECT pg_sleep(60)')});
set_timeout(2);

my $timed_out = qr/^57014: executor did not finish within tenant_mgr\.job_timeout \(2 s\)$/;

# --- a caller waiting for a migration ----------------------------------------

like(fails(q{SELECT * FROM tenant_mgr.tenant_migrate('fast')}),
	$timed_out, 'tenant_migrate: 57014 when the executor runs out of time');
is(run_sql(q{SELECT version FROM tenant_mgr.tenant WHERE name = 'fast'}),
	'1', 'the tenant stays at its version');
is( $node->safe_psql(
		'tenant_fast',
		q{SELECT string_agg(version::text, ',' ORDER BY version) FROM tenant_mgr_ledger}),
	'1',
	'its ledger is untouched');
consistent('after a migration timed out');

# --- a caller waiting for a create -------------------------------------------

like(fails(q{SELECT * FROM tenant_mgr.tenant_create('slow', 'database')}),
	$timed_out, 'tenant_create: 57014 when the executor runs out of time');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenant WHERE name = 'slow'}),
	'0', 'no catalog row is left');
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_database WHERE datname LIKE 'tenant_slow' OR datname LIKE 'tenant_mgr_%'}),
	'nor a database');
is(run_sql(q{SELECT count(*) FROM pg_roles WHERE rolname = 'tenant_slow'}),
	'0', 'nor a role');
consistent('after a create timed out');

# --- the launcher running a queued create ------------------------------------

run_sql(q{SELECT tenant_mgr.tenant_create('queued', 'database', wait => false)});
is(run_sql(q{SELECT tenant_mgr.tenant_wait('queued', '120 s')}),
	'f', 'a queued create that runs out of time fails');
like(
	run_sql(
		q{SELECT sqlstate || ': ' || message FROM tenant_mgr.job WHERE tenant = 'queued'}),
	$timed_out,
	'its job records 57014');
is(run_sql(q{SELECT state FROM tenant_mgr.tenant WHERE name = 'queued'}),
	'failed', 'the tenant is marked failed');
set_timeout(600);
run_sql(q{SELECT tenant_mgr.migration_remove(2)});
run_sql(q{SELECT tenant_mgr.tenant_drop('queued')});
run_sql(q{SELECT tenant_mgr.tenant_wait('queued', '120 s')});
is(run_sql(q{SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant_queued'}),
	'0', 'and drops without a trace');
consistent('after a queued create timed out');

$node->stop;
done_testing();
