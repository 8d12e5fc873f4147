# Citus mode: a coordinator and two workers with Citus schema-based
# sharding.  Twenty schema tenants created inline, from the provisioning
# trigger and queued are distributed schemas whose every table is a Citus
# tenant table, spread over both workers, none left on the coordinator; a
# fleet migration with one tenant failing, and one down; tenant_move to the
# other worker with the data intact; rename, detach and attach, drop (the
# shards and the owner role go on every node); a database tenant stays on
# the coordinator; verify() finds nothing, and finds a table that stayed
# local.  Skipped where Citus is not installed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $coord = PostgreSQL::Test::Cluster->new('coordinator');
my $pkglibdir = $coord->config_data('--pkglibdir');
plan skip_all => "Citus is not installed ($pkglibdir/citus.so is missing; "
  . "test/check.sh builds it from ../shared/vendor when that exists)"
  unless -f "$pkglibdir/citus.so";

my @workers = map { PostgreSQL::Test::Cluster->new("worker$_") } (1, 2);
for my $n ($coord, @workers)
{
	$n->init;
	# Citus must come first; tenant_mgr on the workers is the provider of
	# the roles' security labels, which Citus copies to nodes it adds
	$n->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'citus,tenant_mgr'
citus.local_hostname = '@{[$n->host]}'
tenant_mgr.database = 'postgres'
tenant_mgr.poll_interval = 1
max_worker_processes = 24
});
	$n->start;
	$n->safe_psql('postgres', 'CREATE EXTENSION citus');
}

sub run_sql { return $coord->safe_psql('postgres', shift); }

sub wait_for
{
	my ($query, $what) = @_;
	$coord->poll_query_until('postgres', $query) or die "timed out waiting for $what";
}

my $host = $coord->host;
my ($w1, $w2) = map { $_->port } @workers;
run_sql(qq{SELECT citus_set_coordinator_host('$host', @{[$coord->port]})});
run_sql(qq{SELECT citus_add_node('$host', $_)}) for ($w1, $w2);
run_sql('CREATE EXTENSION tenant_mgr');

run_sql(q{SELECT tenant_mgr.migration_add(1, 'accounts',
	$$CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);
	  CREATE INDEX accounts_name ON accounts (name)$$,
	$$DROP TABLE accounts$$)});
run_sql(q{SELECT tenant_mgr.migration_add(2, 'orders',
	$$CREATE TABLE orders (id int PRIMARY KEY, account int NOT NULL REFERENCES accounts);
	  INSERT INTO accounts VALUES (0, 'house')$$,
	$$DROP TABLE orders; DELETE FROM accounts WHERE id = 0$$)});

# --- twenty tenants: inline, from the trigger, queued

run_sql(q{SELECT tenant_mgr.tenant_create('i' || g) FROM generate_series(1, 8) g});
is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenant WHERE state = 'ready' AND version = 2}),
	'8', 'tenants created inline are ready at the latest version when the call returns');

run_sql('CREATE TABLE customers (slug text PRIMARY KEY)');
run_sql(q{SELECT tenant_mgr.provisioning_trigger('customers', 'slug')});
my ($rc, $out, $err) = $coord->psql('postgres',
	q{INSERT INTO customers SELECT 't' || g FROM generate_series(1, 6) g});
is($rc, 0, 'the trigger accepts the customers');
like($err, qr/creation of tenant "t1" is queued.*In Citus mode tenants are built outside/s,
	'the trigger queues them, saying why');
run_sql(q{SELECT tenant_mgr.tenant_create('q' || g, wait => false) FROM generate_series(1, 6) g});
wait_for(q{SELECT count(*) = 20 FROM tenant_mgr.tenant WHERE state = 'ready' AND version = 2},
	'twenty ready tenants');

is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenant t
	JOIN citus_schemas s ON s.schema_name::oid = t.object_oid}),
	'20', 'every tenant schema is a distributed schema');
is(run_sql(q{SELECT count(*) FROM pg_class c JOIN tenant_mgr.tenant t ON t.object_oid = c.relnamespace
	WHERE c.relkind = 'r'}), '60', 'each tenant has its ledger and two tables');
is(run_sql(q{SELECT count(*) FROM pg_class c JOIN tenant_mgr.tenant t ON t.object_oid = c.relnamespace
	JOIN citus_tables ct ON ct.table_name = c.oid
	WHERE c.relkind = 'r' AND ct.citus_table_type = 'schema'}),
	'60', 'all of them, ledgers included, are Citus tenant tables');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenant t JOIN pg_dist_schema s ON s.schemaid = t.object_oid
	JOIN pg_dist_partition p ON p.colocationid = s.colocationid}),
	'60', 'each colocated with its schema');
is(run_sql(q{SELECT string_agg(DISTINCT nodeport::text, ',' ORDER BY nodeport::text) FROM citus_shards
	WHERE citus_table_type = 'schema'}),
	join(',', sort ($w1, $w2)), 'the tenants are spread over both workers');
is(run_sql(qq{SELECT count(*) FROM citus_shards WHERE nodeport = @{[$coord->port]}}),
	'0', 'no shard is on the coordinator');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.placement WHERE node IS NOT NULL AND size > 0}),
	'20', 'placement shows the node and size of every tenant');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.placement p
	JOIN citus_shards s ON s.table_name = (p.schema || '.tenant_mgr_ledger')::regclass
	WHERE p.node = s.nodename || ':' || s.nodeport}), '20', 'as Citus places them');
is($workers[0]->safe_psql('postgres',
	q{SELECT count(*) FROM pg_roles WHERE rolname ~ '^tenant_[itq][0-9]+$' AND rolcanlogin}),
	'20', 'the owner roles exist on the workers and can log in there (Citus connects as them)');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.verify()}), '0', 'verify() finds nothing');

# --- data through the coordinator

run_sql(q{INSERT INTO tenant_i1.accounts VALUES (1, 'alice'); INSERT INTO tenant_i1.orders VALUES (1, 1)});
is(run_sql(q{SELECT string_agg(name, ',' ORDER BY id) FROM tenant_i1.accounts}), 'house,alice',
	'a tenant is read and written through the coordinator');

# --- a fleet migration, one tenant failing, and one down

run_sql(q{SELECT tenant_mgr.migration_add(3, 'invoices',
	$$ALTER TABLE accounts ADD COLUMN email text;
	  CREATE TABLE invoices (id int PRIMARY KEY, account int NOT NULL REFERENCES accounts)$$,
	$$DROP TABLE invoices; ALTER TABLE accounts DROP COLUMN email$$)});
# in the way of migration 3 in tenant q3 (a tenant table itself: created top-level)
run_sql(q{CREATE TABLE tenant_q3.invoices (x int)});
my $res = run_sql(q{SELECT tenant, status, coalesce(sqlstate, '') FROM tenant_mgr.tenant_migrate()
	ORDER BY tenant});
is(scalar(() = $res =~ /\|applied\|$/mg), 19, 'the fleet run applies migration 3 to 19 tenants');
like($res, qr/^q3\|failed\|42P07$/m, 'and records the failure of the one in the way');
is(run_sql(q{SELECT string_agg(name || '=' || version, ',' ORDER BY name) FROM tenant_mgr.tenant
	WHERE version <> 3}), 'q3=2', 'q3 stays at version 2, the others go on');
is(run_sql(q{SELECT tenants || ' ' || failed FROM tenant_mgr.runs ORDER BY id LIMIT 1}), '20 1',
	'the run and its failure are recorded');
is(run_sql(q{SELECT count(*) FROM citus_tables WHERE table_name::text ~ '\.invoices$'
	AND citus_table_type = 'schema'}), '20',
	'the tables the migration created are tenant tables (and so is the one in the way)');
is(run_sql(q{SELECT count(*) FROM citus_shards s JOIN tenant_mgr.placement p
	ON s.table_name = (p.schema || '.invoices')::regclass AND p.node = s.nodename || ':' || s.nodeport}),
	'20', 'on the worker of their tenant');
run_sql(q{DROP TABLE tenant_q3.invoices});
is(run_sql(q{SELECT status FROM tenant_mgr.tenant_migrate('q3')}), 'applied',
	'once the table is gone, q3 is migrated alone');

$res = run_sql(q{SELECT count(*) FILTER (WHERE status = 'reverted'), count(*)
	FROM tenant_mgr.tenant_migrate(target => 2)});
is($res, '20|20', 'a fleet run down reverts migration 3 everywhere');
is(run_sql(q{SELECT count(*) FROM citus_tables WHERE table_name::text ~ '\.invoices$'}), '0',
	'its tables are gone from Citus');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenant WHERE version = 2}), '20', 'every tenant is at 2');
is(join(',', map { $_->safe_psql('postgres', q{SET citus.override_table_visibility = off;
	SELECT count(*) FILTER (WHERE relname ~ '^invoices_[0-9]+$') || ' '
	    || (count(*) FILTER (WHERE relname ~ '^accounts_[0-9]+$') > 0) FROM pg_class}) } @workers),
	'0 true,0 true', 'and no shard of them is left on a worker (where the accounts shards are)');
run_sql(q{SELECT count(*) FROM tenant_mgr.tenant_migrate()});
is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenant WHERE version = 3}), '20', 'and up again');

# a non-transactional migration runs top-level; Citus builds the index on the shards
run_sql(q{SELECT tenant_mgr.migration_add(4, 'email_index',
	$$CREATE INDEX CONCURRENTLY accounts_email ON accounts (email)$$,
	$$DROP INDEX CONCURRENTLY accounts_email$$, transactional => false)});
my $run = run_sql(q{SELECT run_id FROM tenant_mgr.tenant_migrate(wait => false)});
is(run_sql("CALL tenant_mgr.run_wait($run, '3 minutes')"), 'done', 'a run with CREATE INDEX CONCURRENTLY is done');
is(run_sql("SELECT count(*) FROM tenant_mgr.run_tenants WHERE run_id = $run AND status = 'migrated'"), '20',
	'and has migrated every tenant');
is(run_sql(q{SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	WHERE c.relname = 'accounts_email' AND i.indisvalid}), '20', 'the indexes are valid');
# Citus hides shards from catalog queries on the workers unless told not to
is(join(',', map { $_->safe_psql('postgres', q{SET citus.override_table_visibility = off;
	SELECT count(*) > 0 FROM pg_indexes WHERE indexname ~ '^accounts_email_[0-9]+$'}) } @workers),
	't,t', 'on the shards of both workers');

# --- tenant_move

my $from = run_sql(q{SELECT node FROM tenant_mgr.placement WHERE tenant = 'i1'});
my $to = $from eq "$host:$w1" ? "$host:$w2" : "$host:$w1";
is(run_sql(qq{SELECT tenant_mgr.tenant_move('i1', '$to')}), $to, 'tenant_move returns the node');
is(run_sql(q{SELECT node FROM tenant_mgr.placement WHERE tenant = 'i1'}), $to,
	'the tenant is on the other worker');
is(run_sql(q{SELECT count(DISTINCT nodename || ':' || nodeport) || ' ' || min(nodename || ':' || nodeport)
	FROM citus_shards WHERE table_name::text LIKE 'tenant_i1.%'}), "1 $to",
	'all its tables moved together');
is(run_sql(q{SELECT string_agg(a.name || '/' || o.id, ',') FROM tenant_i1.accounts a
	JOIN tenant_i1.orders o ON o.account = a.id}), 'alice/1', 'with their data');
($rc, $out, $err) = $coord->psql('postgres', q{SELECT tenant_mgr.tenant_move('i1', 'nowhere:1')});
like($err, qr/node "nowhere:1" is not an active Citus node/, 'an unknown node is refused');
($rc, $out, $err) = $coord->psql('postgres', q{SELECT tenant_mgr.tenant_move('i1', 'nowhere')});
like($err, qr/invalid node "nowhere"/, 'a node without a port is refused');

# --- rename, detach and attach, drop

run_sql(q{SELECT tenant_mgr.tenant_rename('i2', 'renamed')});
is(run_sql(q{SELECT count(*) FROM citus_tables WHERE table_name::text LIKE 'tenant_renamed.%'}), '4',
	'a renamed tenant keeps its tenant tables under the new schema name');
is(run_sql(q{SELECT name FROM tenant_renamed.accounts}), 'house', 'and its data');
is($workers[0]->safe_psql('postgres', q{SELECT count(*) FROM pg_roles WHERE rolname = 'tenant_renamed'}),
	'1', 'its owner role is renamed on the workers too');
run_sql(q{SELECT tenant_mgr.tenant_detach('i3')});
is(run_sql(q{SELECT count(*) FROM citus_schemas WHERE schema_name::text LIKE 'tenant_mgr_detached_%'}),
	'1', 'a detached tenant stays a distributed schema, out of the way');
run_sql(q{SELECT tenant_mgr.tenant_attach('i3')});
is(run_sql(q{SELECT name FROM tenant_i3.accounts}), 'house', 'and comes back');

my $coloc = run_sql(q{SELECT colocationid FROM pg_dist_schema WHERE schemaid = 'tenant_i4'::regnamespace});
is(run_sql(q{SELECT tenant_mgr.tenant_drop('i4')}), 't', 'a tenant is dropped');
is(run_sql(qq{SELECT count(*) FROM pg_dist_partition WHERE colocationid = $coloc}), '0',
	'its tables are gone from Citus');
is(join(',', map { $_->safe_psql('postgres',
	q{SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_i4'}) } @workers), '0,0',
	'its schema is gone from both workers');
is(join(',', map { $_->safe_psql('postgres',
	q{SELECT count(*) FROM pg_roles WHERE rolname = 'tenant_i4'}) } ($coord, @workers)), '0,0,0',
	'and its owner role from every node');

# --- a database tenant stays on the coordinator

is(run_sql(q{SELECT state || ' ' || version FROM tenant_mgr.tenant_create('db', 'database')}), 'ready 4',
	'a database tenant is created in Citus mode');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.placement WHERE tenant = 'db'}), '0',
	'on the coordinator only: it has no placement');
($rc, $out, $err) = $coord->psql('postgres', qq{SELECT tenant_mgr.tenant_move('db', '$to')});
like($err, qr/tenant "db" is a database tenant/, 'and is not moved');

# --- verify(): nothing wrong, then a table left local

is(run_sql(q{SELECT count(*) FROM tenant_mgr.verify()}), '0', 'verify() finds nothing after all that');
is(run_sql(qq{SELECT count(*) FROM citus_shards WHERE nodeport = @{[$coord->port]}}),
	'0', 'and no shard is on the coordinator');
run_sql(q{DO $$BEGIN CREATE TABLE tenant_i5.stray (x int); END$$});
is(run_sql(q{SELECT problem || ': ' || detail FROM tenant_mgr.verify()}),
	'local_table: table "stray" is not a tenant table of Citus: it stays on the coordinator',
	'verify() reports a table that is not a tenant table');

$_->stop for ($coord, @workers);
done_testing();
