# Upgrading from 1.0: the 1.1 library works on a 1.0 catalog, ALTER
# EXTENSION tenant_mgr UPDATE keeps every tenant (schema and database, with
# their data) and the work queued before it, labels what 1.0 made with the
# tenants' new ids, every tenant migrates
# afterwards, and the updated extension is object for object the same as a
# fresh CREATE EXTENSION (test/t/extension_objects.sql lists both).
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $here = abs_path(dirname(__FILE__));
my $fixtures = "$here/../fixtures";
my $objects_sql = slurp_file("$here/extension_objects.sql");

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'tenant_mgr'
tenant_mgr.database = 'app'
tenant_mgr.poll_interval = 1
max_worker_processes = 16
});
$node->start;

# the launcher retries every 5 s until the control database exists
$node->safe_psql('postgres', 'CREATE DATABASE app');

sub run_sql { return $node->safe_psql('app', shift); }

# registers fixture migration NNN_name.sql with its text
sub add_fixture
{
	my ($version) = @_;
	my ($file) = glob(sprintf('%s/%03d_*.sql', $fixtures, $version));
	die "no fixture migration $version" unless $file;
	my ($name) = $file =~ m{/\d+_(\w+)\.sql$};
	my $sql = slurp_file($file);
	die "fixture $file contains the quote \$m\$" if $sql =~ /\$m\$/;
	return run_sql("SELECT tenant_mgr.migration_add($version, '$name', \$m\$$sql\$m\$)");
}

# every tenant as name:isolation:state:version, from the catalog's view
sub tenants
{
	return run_sql(q{SELECT string_agg(name || ':' || isolation || ':' || state || ':' || version,
		',' ORDER BY name) FROM tenant_mgr.tenants});
}

# the versions in a tenant's ledger: in its schema, or in its database
sub ledger
{
	my ($tenant, $isolation) = @_;
	my $list = q{string_agg(version::text, ',' ORDER BY version)};
	return $isolation eq 'schema'
	  ? run_sql("SELECT $list FROM tenant_$tenant.tenant_mgr_ledger")
	  : $node->safe_psql("tenant_$tenant", "SELECT $list FROM public.tenant_mgr_ledger");
}

sub launcher_running
{
	return $node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		   WHERE backend_type = 'tenant_mgr launcher' AND datname = 'app'});
}

# no intent left, and verify() finds nothing
sub consistent
{
	my ($what) = @_;
	$node->poll_query_until('app', 'SELECT count(*) = 0 FROM tenant_mgr.intent')
	  or diag('intents left: ' . run_sql('SELECT * FROM tenant_mgr.intent'));
	is(run_sql('SELECT count(*) FROM tenant_mgr.verify()'), '0', "verify() is empty $what")
	  or diag(run_sql('SELECT * FROM tenant_mgr.verify()'));
}

# --- a 1.0 installation ----------------------------------------------------------

run_sql(q{CREATE EXTENSION tenant_mgr VERSION '1.0'});
is(run_sql(q{SELECT extversion FROM pg_extension WHERE extname = 'tenant_mgr'}),
	'1.0', 'the extension is created at version 1.0');
is(run_sql(q{SELECT count(*) FROM pg_class WHERE relname IN ('intent_job_id_idx', 'intent_object_name_idx')}),
	'0', 'without the indexes 1.1 adds');
ok(launcher_running(), 'the launcher runs in the control database');

is(join(',', map { add_fixture($_) } 1 .. 3), 't,t,t', 'migrations 1..3 registered');

# --- the 1.1 library works on the 1.0 catalog ------------------------------------

run_sql(q{SELECT tenant_mgr.tenant_create(n) FROM unnest(ARRAY['s1', 's2']) n});
is(run_sql(q{SELECT state || ':' || version FROM tenant_mgr.tenant_create('d1', 'database')}),
	'ready:3', 'a database tenant is created on the 1.0 catalog');
is(tenants(), 'd1:database:ready:3,s1:schema:ready:3,s2:schema:ready:3',
	'schema and database tenants on the 1.0 catalog');
is(run_sql(q{SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname LIKE 'tenant\_s_'}),
	'tenant_s1,tenant_s2', 'their schemas exist');
is(ledger('s1', 'schema') . ';' . ledger('d1', 'database'), '1,2,3;1,2,3',
	'and their ledgers record 1..3');

add_fixture(4);
is(run_sql(q{SELECT string_agg(tenant || ':' || version || ':' || status, ',' ORDER BY tenant)
	FROM tenant_mgr.tenant_migrate()}),
	'd1:4:applied,s1:4:applied,s2:4:applied', 'tenant_migrate() runs on the 1.0 catalog');
is(ledger('s2', 'schema') . ';' . ledger('d1', 'database'), '1,2,3,4;1,2,3,4',
	'the ledgers record migration 4');

run_sql(q{SELECT tenant_mgr.tenant_create('gone')});
run_sql(q{SELECT tenant_mgr.tenant_create('dgone', 'database')});
is(run_sql(q{SELECT tenant_mgr.tenant_drop('gone')}), 't', 'a schema tenant is dropped on the 1.0 catalog');
is(run_sql(q{SELECT tenant_mgr.tenant_drop('dgone')}), 't', 'and a database tenant');
ok( $node->poll_query_until('app',
		q{SELECT count(*) = 0 FROM pg_database WHERE datname = 'tenant_dgone'}),
	'the dropped database goes after commit');
is(run_sql(q{SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_gone'}), '0',
	'the dropped schema is gone');
is(tenants(), 'd1:database:ready:4,s1:schema:ready:4,s2:schema:ready:4',
	'the catalog holds the remaining tenants');
consistent('on the 1.0 catalog');

# a provisioning trigger set up as 1.0 documented it: its definer held
# CREATEROLE, and no EXECUTE on tenant_mgr's functions
run_sql(q{CREATE ROLE regress_prov NOLOGIN CREATEROLE});
run_sql(q{CREATE ROLE regress_app});
run_sql(q{CREATE TABLE customers (slug text PRIMARY KEY)});
run_sql(q{GRANT INSERT ON customers TO regress_app});
run_sql(q{SELECT tenant_mgr.provisioning_trigger('customers', 'slug', definer => 'regress_prov')});

# a login role as 1.0 made it: labelled by the update, without a search_path
run_sql(q{SELECT tenant_mgr.tenant_login_role('s1')});
run_sql(q{ALTER ROLE tenant_s1_login RESET search_path});

# data in the tenants
run_sql(q{INSERT INTO tenant_s1.accounts (name) VALUES ('s1 customer')});
run_sql(q{INSERT INTO tenant_s2.accounts (name) VALUES ('s2 customer')});
$node->safe_psql('tenant_d1', q{INSERT INTO accounts (name) VALUES ('d1 customer')});

# --- work queued when the update runs --------------------------------------------

# With the launcher gone (it is restarted after 5 s), the creates below stay
# queued for a while; whether they still are when the update runs depends
# on the machine, so it is only reported.
ok(launcher_running(), 'the launcher runs before the update');
run_sql(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE backend_type = 'tenant_mgr launcher'});
run_sql(q{SELECT tenant_mgr.tenant_create('q1', wait => false)});
run_sql(q{SELECT tenant_mgr.tenant_create('qd1', 'database', wait => false)});
my $queued = run_sql(q{SELECT string_agg(tenant || ':' || state, ',' ORDER BY tenant)
	FROM tenant_mgr.job WHERE tenant IN ('q1', 'qd1')});
# a DBA's grant on 1.0's tenant_migrate, which 1.1 replaces
run_sql(q{GRANT EXECUTE ON FUNCTION tenant_mgr.tenant_migrate(text, bigint, boolean) TO regress_prov});
run_sql('ALTER EXTENSION tenant_mgr UPDATE');
note("jobs when ALTER EXTENSION UPDATE started: $queued");
is(run_sql(q{SELECT has_function_privilege('regress_prov',
	'tenant_mgr.tenant_migrate(text, bigint, boolean, boolean, integer, text[], text, jsonb, boolean)',
	'EXECUTE')}), 't', 'the EXECUTE granted on 1.0\'s tenant_migrate passes to 1.1\'s');
is(run_sql(q{SELECT count(*) FROM pg_proc WHERE proname LIKE 'tenant_migrate%'
	AND pronamespace = 'tenant_mgr'::regnamespace}), '1', 'and the old function is gone');

# --- after the update ------------------------------------------------------------

is(run_sql(q{SELECT extversion FROM pg_extension WHERE extname = 'tenant_mgr'}),
	'1.1', 'the extension is at version 1.1');
is(run_sql(q{SELECT tenant_mgr.tenant_wait('q1', '5 minutes')}), 't',
	'the schema tenant queued before the update is created');
is(run_sql(q{SELECT tenant_mgr.tenant_wait('qd1', '5 minutes')}), 't',
	'the database tenant queued before the update is created');
is(tenants(),
	'd1:database:ready:4,q1:schema:ready:4,qd1:database:ready:4,s1:schema:ready:4,s2:schema:ready:4',
	'every tenant is ready at version 4');

# 1.1 identifies tenants by security label: the update labelled what 1.0 made
is(run_sql(q{SELECT string_agg(t.name || ':' || l.objtype, ',' ORDER BY t.name, l.objtype)
	FROM tenant_mgr.tenant t
	JOIN pg_seclabels l ON l.provider = 'tenant_mgr'
	 AND l.label ~ ('^tenant ' || t.name || ' ' || t.tenant_id || '( [0-9]+)?$')}),
	'd1:database,d1:role,q1:role,q1:schema,qd1:database,qd1:role,s1:role,s1:schema,s2:role,s2:schema',
	"every tenant's schema or database and owner role carry its label and id (and the version of a ledger written since)");

is(run_sql(q{SELECT array_to_string(rolconfig, ',') FROM pg_roles WHERE rolname = 'tenant_s1_login'}),
	'search_path=tenant_s1', "the update gave 1.0's login role its tenant's search_path");
is(run_sql(q{SELECT count(*) FROM pg_seclabels WHERE provider = 'tenant_mgr' AND objname = 'tenant_s1_login'
	AND label = 'login s1 ' || (SELECT tenant_id FROM tenant_mgr.tenant WHERE name = 's1')}),
	'1', 'and its login label');

# 1.1 asks the trigger's definer for EXECUTE instead of CREATEROLE: until the
# DBA grants it (the README's upgrade step), the trigger refuses, changing
# nothing; then it provisions
my ($rc, $out, $err) = $node->psql('app',
	q{SET ROLE regress_app; INSERT INTO customers VALUES ('viatrigger')});
like($err, qr/permission denied for function tenant_mgr\.tenant_create/,
	'the 1.0 definer without EXECUTE is refused after the update');
is(run_sql(q{SELECT count(*) FROM customers}), '0', 'and the customer row is not inserted');
run_sql(q{GRANT EXECUTE ON FUNCTION tenant_mgr.tenant_create(text, text, name, jsonb, boolean),
	tenant_mgr.tenant_drop(text, boolean, boolean) TO regress_prov});
$node->safe_psql('app', q{SET ROLE regress_app; INSERT INTO customers VALUES ('viatrigger')});
is(run_sql(q{SELECT state FROM tenant_mgr.tenants WHERE name = 'viatrigger'}), 'ready',
	'with EXECUTE granted, the trigger provisions');
run_sql(q{SELECT tenant_mgr.tenant_drop('viatrigger')});
# (what the listing below compares has no place for the definer's grants)
run_sql(q{DROP TABLE customers; DROP FUNCTION customers_provision();
	REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA tenant_mgr FROM regress_prov});

run_sql(q{INSERT INTO tenant_q1.accounts (name) VALUES ('q1 customer')});
$node->safe_psql('tenant_qd1', q{INSERT INTO accounts (name) VALUES ('qd1 customer')});

add_fixture(5);
is(run_sql(q{SELECT string_agg(tenant || ':' || version || ':' || status, ',' ORDER BY tenant)
	FROM tenant_mgr.tenant_migrate()}),
	'd1:5:applied,q1:5:applied,qd1:5:applied,s1:5:applied,s2:5:applied',
	'a migration registered after the update reaches every tenant');
is(tenants(),
	'd1:database:ready:5,q1:schema:ready:5,qd1:database:ready:5,s1:schema:ready:5,s2:schema:ready:5',
	'the catalog has every tenant at version 5');
foreach my $t ([ 's1', 'schema' ], [ 's2', 'schema' ], [ 'q1', 'schema' ],
	[ 'd1', 'database' ], [ 'qd1', 'database' ])
{
	my ($name, $isolation) = @$t;
	is(ledger($name, $isolation), '1,2,3,4,5', "the ledger of $isolation tenant $name records 1..5");
	my $accounts = q{SELECT string_agg(name, ',' ORDER BY id) FROM };
	my $data = $isolation eq 'schema'
	  ? run_sql("$accounts tenant_$name.accounts")
	  : $node->safe_psql("tenant_$name", "$accounts public.accounts");
	is($data, "$name customer", "tenant $name keeps its data");
}
is(run_sql(q{SELECT count(*) FROM tenant_s1.comments}), '0', 'migration 5 built its table');
consistent('after the update');

# --- the updated extension is the same as a fresh one -----------------------------

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION tenant_mgr');
is($node->safe_psql('fresh', q{SELECT extversion FROM pg_extension WHERE extname = 'tenant_mgr'}),
	'1.1', 'a fresh CREATE EXTENSION installs 1.1');

my $updated = run_sql($objects_sql);
my $fresh = $node->safe_psql('fresh', $objects_sql);
like($fresh, qr/^function tenant_mgr\.tenant_create\(/m, 'the listing shows functions');
like($fresh, qr/^index CREATE INDEX intent_job_id_idx ON tenant_mgr\.intent /m,
	'and the indexes of 1.1');
my @fresh = split /\n/, $fresh;
my @updated = split /\n/, $updated;
cmp_ok(scalar(@fresh), '>', 100, 'the listing is not trivial');

# the listing is sorted: lines found on one side only are the diff
my %in_fresh = map { $_ => 1 } @fresh;
my %in_updated = map { $_ => 1 } @updated;
is($updated, $fresh, 'the updated extension has exactly the objects of a fresh one')
  or diag(join("\n",
	'only after the update:',
	(grep { !$in_fresh{$_} } @updated),
	'only in a fresh installation:',
	(grep { !$in_updated{$_} } @fresh)));

$node->stop;
done_testing();
