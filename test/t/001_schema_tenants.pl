# Schema tenants across restarts, crashes and a dump/restore: the catalog
# and the ledgers always agree (verify() returns nothing), and a crash in
# the middle of tenant_create leaves nothing behind.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $fixtures = abs_path(dirname(__FILE__) . '/../fixtures');

# every tenant as name:version
my $versions = q{SELECT string_agg(name || ':' || version, ',' ORDER BY name) FROM tenant_mgr.tenants};

my $node = PostgreSQL::Test::Cluster->new('schema_tenants');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'tenant_mgr'");
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION tenant_mgr');
is($node->safe_psql('postgres',
		"SELECT tenant_mgr.migrations_load('$fixtures')"),
	'11', 'fixture migrations registered');
$node->safe_psql('postgres',
	"SELECT tenant_mgr.tenant_create(n) FROM unnest(ARRAY['acme', 'globex', 'initech']) n");

# a clean restart changes nothing
$node->restart;
is($node->safe_psql('postgres',
		$versions),
	'acme:11,globex:11,initech:11', 'tenants survive a restart');
is($node->safe_psql('postgres', 'SELECT count(*) FROM tenant_mgr.verify()'),
	'0', 'verify() is empty after a restart');

# a crash while tenant_create's transaction is open: nothing survives
my $bg = $node->background_psql('postgres', on_error_stop => 1);
$bg->query_safe('BEGIN');
$bg->query_safe("SELECT tenant_mgr.tenant_create('halfway')");
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_halfway'"),
	'0', 'an uncommitted tenant is invisible to others');
$node->stop('immediate');
$bg->{run}->kill_kill;
$node->start;
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_halfway'"),
	'0', 'no schema left by a crash during tenant_create');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM tenant_mgr.tenant WHERE name = 'halfway'"),
	'0', 'no catalog row left by a crash during tenant_create');
is($node->safe_psql('postgres', 'SELECT count(*) FROM tenant_mgr.verify()'),
	'0', 'verify() is empty after the crash');

# a crash during a fleet run: every migration committed with its ledger
# row stays, the launcher takes the run up again after the restart, and no
# migration is applied twice
$node->safe_psql('postgres',
	"SELECT tenant_mgr.migration_add(12, 'estimate', 'SELECT pg_sleep(1); ALTER TABLE tasks ADD COLUMN estimate numeric')");
my $run = $node->safe_psql('postgres',
	'SELECT run_id FROM tenant_mgr.tenant_migrate(wait => false)');
ok($node->poll_query_until('postgres',
		"SELECT count(*) >= 1 FROM tenant_mgr.run_tenant WHERE run_id = $run AND status = 'migrated'"),
	'the run migrated a first tenant');
$node->stop('immediate');
$node->start;
ok($node->poll_query_until('postgres',
		"SELECT state FROM tenant_mgr.run WHERE id = $run", 'done'),
	'the launcher resumed the interrupted run to its end');
is($node->safe_psql('postgres', $versions),
	'acme:12,globex:12,initech:12', 'after the crash every tenant is migrated');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM information_schema.columns WHERE column_name = 'estimate'"),
	'3', 'each tenant has the migration once');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM tenant_mgr.event WHERE run_id = $run AND version = 12 AND status = 'ok'"),
	'3', 'one applied step per tenant is recorded for the run, none twice');
is($node->safe_psql('postgres',
		"SELECT string_agg(tenant || ':' || status, ',' ORDER BY tenant) FROM tenant_mgr.run_tenant WHERE run_id = $run"),
	'acme:migrated,globex:migrated,initech:migrated', 'the run records each tenant migrated');
is($node->safe_psql('postgres', 'SELECT count(*) FROM tenant_mgr.verify()'),
	'0', 'verify() is empty after a crash during a fleet run');
is($node->safe_psql('postgres', 'SELECT count(*) FROM tenant_mgr.tenant_migrate()'),
	'0', 'nothing is left to do');

# pg_dump keeps the catalog; the restored schemas get new OIDs but keep
# tenant_mgr's marks, so they are still recognized, migrated and dropped
my $dump = $node->basedir . '/dump.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', $dump ],
	'pg_dump of a database with tenants');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('restored'), '-f', $dump ],
	'restore into a new database');
is($node->safe_psql('restored',
		$versions),
	'acme:12,globex:12,initech:12', 'catalog restored');
is($node->safe_psql('restored', 'SELECT count(*) FROM tenant_mgr.migration'),
	'12', 'migrations restored');
is($node->safe_psql('restored', 'SELECT count(*) FROM tenant_mgr.verify()'),
	'0', 'verify() is empty after a restore');
$node->safe_psql('restored',
	"SELECT tenant_mgr.migration_add(13, 'flag', 'ALTER TABLE tasks ADD COLUMN flagged boolean')");
is($node->safe_psql('restored', 'SELECT count(*) FROM tenant_mgr.tenant_migrate()'),
	'3', 'restored tenants migrate');
$node->safe_psql('restored', "SELECT tenant_mgr.tenant_drop('acme')");
is($node->safe_psql('restored',
		"SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_acme'"),
	'0', 'a restored tenant is dropped');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_acme'"),
	'1', 'the original database is untouched');

$node->stop;
done_testing();
