# The warm pool of schema tenants: the launcher keeps tenant_mgr.pool_schema
# spares built and at the latest migration; tenant_create claims one (in
# the caller's transaction: a rollback gives it back), inline, queued and
# concurrently (never the same spare twice); a spare behind the registry is
# never handed out; a claimed tenant is indistinguishable from one built
# from scratch (pg_dump of its schema, ledger, owner, labels); spares are in
# no tenant view; a failed spare build is not retried until the migrations
# change; a pool set to 0 is emptied.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('pool');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'tenant_mgr'
tenant_mgr.database = 'postgres'
tenant_mgr.poll_interval = 1
tenant_mgr.pool_schema = 3
max_worker_processes = 16
});
$node->start;

sub run_sql { return $node->safe_psql('postgres', shift); }

sub wait_for
{
	my ($query, $what) = @_;
	$node->poll_query_until('postgres', $query) or die "timed out waiting for $what";
}

sub pool_ready
{
	my ($n, $what) = @_;
	wait_for(qq{SELECT count(*) FILTER (WHERE state = 'ready' AND version = latest) = $n
		AND count(*) = $n FROM tenant_mgr.pool}, $what);
}

sub set_pool
{
	my ($n) = @_;
	run_sql("ALTER SYSTEM SET tenant_mgr.pool_schema = $n");
	run_sql('SELECT pg_reload_conf()');
}

# a spare's OIDs, to tell where a tenant came from
sub spare_oids
{
	return run_sql(q{SELECT string_agg(object_oid::text, ',' ORDER BY object_oid) FROM tenant_mgr.spare});
}

sub came_from_pool
{
	my ($name, $oids) = @_;
	my $oid = run_sql("SELECT object_oid FROM tenant_mgr.tenant WHERE name = '$name'");
	return scalar(grep { $_ eq $oid } split(/,/, $oids));
}

# the schema of a tenant as pg_dump prints it, its names and ids made neutral
sub schema_dump
{
	my ($name) = @_;
	my $id = run_sql("SELECT tenant_id FROM tenant_mgr.tenant WHERE name = '$name'");
	my ($stdout, $stderr);
	IPC::Run::run(
		[ 'pg_dump', '--schema-only', '-n', "tenant_$name", '-d', $node->connstr('postgres') ],
		'>', \$stdout, '2>', \$stderr) or die "pg_dump failed: $stderr";
	$stdout =~ s/\btenant $name $id\b/tenant X ID/g;
	$stdout =~ s/\btenant_mgr tenant $name\b/tenant_mgr tenant X/g;
	$stdout =~ s/\btenant_$name\b/tenant_X/g;
	$stdout =~ s/^--.*$//mg;
	$stdout =~ s/^\\(un)?restrict .*$//mg;    # a random key per dump
	return $stdout;
}

run_sql('CREATE EXTENSION tenant_mgr');
run_sql(q{SELECT tenant_mgr.migration_add(1, 'accounts',
	$$CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);
	  CREATE FUNCTION account_count() RETURNS bigint LANGUAGE sql STABLE RETURN (SELECT count(*) FROM accounts)$$)});
run_sql(q{SELECT tenant_mgr.migration_add(2, 'plan',
	$$CREATE TYPE plan AS ENUM ('free', 'pro'); ALTER TABLE accounts ADD COLUMN plan plan$$)});

pool_ready(3, 'three spares');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenants}), '0', 'spares are no tenants');
is(run_sql(q{SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant_mgr_spare_%'}), '3',
	'their schemas exist');
is(run_sql('SELECT count(*) FROM tenant_mgr.verify()'), '0', 'verify() checks them and finds nothing');

# --- a claim --------------------------------------------------------------------

my $oids = spare_oids();
is(run_sql(q{SELECT name || ':' || state || ':' || version FROM tenant_mgr.tenant_create('p1')}),
	'p1:ready:2', 'tenant_create() returns a ready tenant at the latest version');
ok(came_from_pool('p1', $oids), 'its schema is a spare\'s');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.spare WHERE object_oid = (SELECT object_oid FROM tenant_mgr.tenant WHERE name = 'p1')}),
	'0', 'the spare is gone from the pool');
is(run_sql(q{SELECT l.label = 'tenant p1 ' || t.tenant_id || ' 2' AND r.rolname = 'tenant_p1'
	FROM tenant_mgr.tenant t JOIN pg_namespace n ON n.oid = t.object_oid
	JOIN pg_roles r ON r.oid = n.nspowner
	JOIN pg_seclabel l ON l.objoid = n.oid AND l.provider = 'tenant_mgr'
	WHERE t.name = 'p1'}), 't', 'schema and owner role carry the tenant\'s names and label');
is(run_sql(q{SELECT string_agg(version::text, ',' ORDER BY version) FROM tenant_p1.tenant_mgr_ledger}),
	'1,2', 'its ledger holds both migrations');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.history WHERE tenant = 'p1' AND action = 'create' AND status = 'ok'}),
	'1', 'the history has its creation');
pool_ready(3, 'the pool to be refilled');

# --- a rollback gives the spare back ------------------------------------------------

$oids = spare_oids();
run_sql(q{BEGIN; SELECT count(*) FROM tenant_mgr.tenant_create('rb'); ROLLBACK;});
is(spare_oids(), $oids, 'a rolled-back claim leaves the pool as it was');
is(run_sql(q{SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_rb'}), '0', 'and no schema');

# --- concurrent claims never take the same spare ------------------------------------

$oids = spare_oids();
my $a = $node->background_psql('postgres');
$a->query_safe(q{BEGIN; SELECT count(*) FROM tenant_mgr.tenant_create('c1')});
run_sql(q{SELECT count(*) FROM tenant_mgr.tenant_create('c2')});
$a->query_safe('COMMIT');
$a->quit;
ok(came_from_pool('c1', $oids) && came_from_pool('c2', $oids), 'both concurrent creations claimed a spare');
is(run_sql(q{SELECT count(DISTINCT object_oid) FROM tenant_mgr.tenant WHERE name IN ('c1', 'c2')}),
	'2', 'not the same one');

# --- more sessions at once than spares: distinct spares, then a clean fallback -------

pool_ready(3, 'the pool to be refilled');
$oids = spare_oids();
my @sessions;
foreach my $i (1 .. 5)
{
	my $s = $node->background_psql('postgres');
	$s->query_safe("BEGIN; SELECT count(*) FROM tenant_mgr.tenant_create('m$i')");
	push @sessions, $s;
}
foreach my $s (@sessions)
{
	$s->query_safe('COMMIT');
	$s->quit;
}
is(run_sql(q{SELECT count(*) || ':' || count(DISTINCT object_oid) FROM tenant_mgr.tenants t
	JOIN tenant_mgr.tenant r USING (name) WHERE name ~ '^m[1-5]$' AND t.state = 'ready' AND t.version = 2}),
	'5:5', 'five concurrent creations, each its own schema');
is(scalar(grep { came_from_pool("m$_", $oids) } 1 .. 5), 3,
	'three claimed the three spares, two were built when the pool ran dry');

# --- queued creations claim too ----------------------------------------------------

pool_ready(3, 'the pool to be refilled');
$oids = spare_oids();
run_sql(q{SELECT count(*) FROM tenant_mgr.tenant_create('q1', wait => false)});
is(run_sql(q{SELECT tenant_mgr.tenant_wait('q1', '60 s')}), 't', 'a queued creation finishes');
ok(came_from_pool('q1', $oids), 'with a spare');

# --- never behind the registry ---------------------------------------------------------

pool_ready(3, 'the pool to be refilled');
run_sql(q{SELECT tenant_mgr.migration_add(3, 'notes', $$ALTER TABLE accounts ADD COLUMN notes text$$)});
is(run_sql(q{SELECT version FROM tenant_mgr.tenant_create('fresh')}), '3',
	'a creation right after a new migration gets it');
is(run_sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'tenant_fresh.accounts'::regclass AND attname = 'notes'}),
	'1', 'applied');
pool_ready(3, 'the spares to reach version 3');
is(run_sql(q{SELECT string_agg(DISTINCT version::text, ',') FROM tenant_mgr.spare}), '3',
	'the launcher brought every spare to version 3');

# --- a claimed tenant is one built from scratch -----------------------------------------

$oids = spare_oids();
run_sql(q{SELECT count(*) FROM tenant_mgr.tenant_create('pooled')});
ok(came_from_pool('pooled', $oids), 'tenant "pooled" is a claimed spare');
set_pool(0);
wait_for(q{SELECT count(*) = 0 FROM tenant_mgr.spare}, 'the pool to be emptied');
is(run_sql(q{SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant_mgr_spare_%'})
	  . run_sql(q{SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tenant_mgr_spare_%'}),
	'00', 'a pool set to 0 leaves no spare schema or role');
run_sql(q{SELECT count(*) FROM tenant_mgr.tenant_create('scratch')});
is(schema_dump('pooled'), schema_dump('scratch'),
	'pg_dump of a claimed tenant equals that of one built from scratch');
run_sql(q{SET tenant_mgr.build_in_transaction = off;
	SELECT count(*) FROM tenant_mgr.tenant_create('outside')});
is(run_sql(q{SELECT count(*) FROM tenant_mgr.history WHERE tenant = 'outside' AND action = 'up'}), '3',
	'with build_in_transaction off, a tenant is built outside the caller\'s transaction');
is(schema_dump('outside'), schema_dump('scratch'),
	'pg_dump of a tenant built outside, migration by migration, equals that of one built inside');
is(run_sql(q{SELECT string_agg(version || ':' || checksum, ',' ORDER BY version) FROM tenant_pooled.tenant_mgr_ledger}),
	run_sql(q{SELECT string_agg(version || ':' || checksum, ',' ORDER BY version) FROM tenant_scratch.tenant_mgr_ledger}),
	'so do their ledgers');
is(run_sql(q{SELECT string_agg(r.rolname || ':' || r.rolcanlogin || ':' || coalesce(d.description, ''), ',')
	FROM pg_roles r LEFT JOIN pg_shdescription d ON d.objoid = r.oid
	WHERE r.rolname = 'tenant_pooled'}) =~ s/pooled/X/gr,
	run_sql(q{SELECT string_agg(r.rolname || ':' || r.rolcanlogin || ':' || coalesce(d.description, ''), ',')
	FROM pg_roles r LEFT JOIN pg_shdescription d ON d.objoid = r.oid
	WHERE r.rolname = 'tenant_scratch'}) =~ s/scratch/X/gr,
	'and their owner roles');

# --- a crash while the launcher builds a spare -------------------------------------------

# spares wait in their last migration while a session holds advisory lock 4343
run_sql(q{SELECT tenant_mgr.migration_add(4, 'gate',
	$$DO $b$ BEGIN IF current_schema() LIKE 'tenant_mgr_spare%' THEN PERFORM pg_advisory_xact_lock_shared(4343); END IF; END $b$ $$)});
my $gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(4343)');
set_pool(2);
wait_for(q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'tenant_mgr launcher'
	AND wait_event_type = 'Lock'}, 'the launcher to wait in a spare\'s migration');
$node->stop('immediate');
eval { $gate->quit; };    # its session went with the crash
$node->start;
pool_ready(2, 'the pool after the crash');
is(run_sql(q{SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant_mgr_spare_%'})
	  . ':' . run_sql(q{SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tenant_mgr_spare_%'}),
	'2:2', 'a crash during a refill leaves no orphan schema or role');
is(run_sql('SELECT count(*) FROM tenant_mgr.verify()'), '0', 'and verify() finds nothing');
set_pool(0);
wait_for(q{SELECT count(*) = 0 FROM tenant_mgr.spare}, 'the pool to be emptied');
run_sql(q{SELECT tenant_mgr.migration_add(5, 'after_gate', $$SELECT 1$$)});

# --- a spare build that fails ---------------------------------------------------------------

run_sql(q{SELECT tenant_mgr.migration_add(6, 'no_spares',
	$$DO $b$ BEGIN IF current_schema() LIKE 'tenant_mgr_spare%' THEN RAISE EXCEPTION 'no spares here'; END IF; END $b$ $$)});
set_pool(2);
wait_for(q{SELECT count(*) = 1 FROM tenant_mgr.pool WHERE state = 'failed' AND last_error = 'no spares here'},
	'the failed spare');
my $warnings = () = slurp_file($node->logfile) =~ /could not build spare/g;
run_sql('SELECT pg_sleep(3)');
my $later = () = slurp_file($node->logfile) =~ /could not build spare/g;
is($later, $warnings, 'a failed spare build is not tried again while the migrations stay the same');
is(run_sql(q{SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenant_mgr_spare_%'}), '0',
	'it left no schema');
is(run_sql(q{SELECT version FROM tenant_mgr.tenant_create('after')}), '6', 'tenants are still built');
set_pool(0);
wait_for(q{SELECT count(*) = 0 FROM tenant_mgr.spare}, 'the failed row to go with the pool');

# --- database spares ---------------------------------------------------------------

run_sql('ALTER SYSTEM SET tenant_mgr.pool_database = 2');
run_sql('SELECT pg_reload_conf()');
wait_for(q{SELECT count(*) = 2 FROM tenant_mgr.pool WHERE isolation = 'database' AND state = 'ready' AND version = latest},
	'two database spares');
is(run_sql(q{SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant_mgr_spare_%' AND NOT datallowconn IS NULL}),
	'2', 'their databases exist');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenants WHERE isolation = 'database'}), '0',
	'and they are no tenants');
is(run_sql('SELECT count(*) FROM tenant_mgr.verify()'), '0', 'verify() checks them and finds nothing');

$oids = spare_oids();
is(run_sql(q{SELECT name || ':' || state || ':' || version FROM tenant_mgr.tenant_create('dbp', 'database')}),
	'dbp:ready:6', 'a database tenant is claimed from the pool');
ok(came_from_pool('dbp', $oids), 'its database is a spare\'s');
is(run_sql(q{SELECT d.datname || ':' || pg_get_userbyid(d.datdba) || ':' || (l.label = 'tenant dbp ' || t.tenant_id || ' 6')
	FROM tenant_mgr.tenant t JOIN pg_database d ON d.oid = t.object_oid
	JOIN pg_shseclabel l ON l.objoid = d.oid AND l.provider = 'tenant_mgr'
	WHERE t.name = 'dbp'}), 'tenant_dbp:tenant_dbp:true', 'renamed, owned and labelled as the tenant');
is($node->safe_psql('tenant_dbp', q{SELECT string_agg(version::text, ',' ORDER BY version) FROM tenant_mgr_ledger}),
	'1,2,3,4,5,6', 'its ledger is complete');

wait_for(q{SELECT count(*) = 2 FROM tenant_mgr.pool WHERE isolation = 'database' AND state = 'ready'},
	'the database pool to be refilled');
$oids = spare_oids();
run_sql(q{BEGIN; SELECT count(*) FROM tenant_mgr.tenant_create('dbrb', 'database'); ROLLBACK;});
is(spare_oids(), $oids, 'a rolled-back database claim leaves the pool as it was');
is(run_sql(q{SELECT count(*) FROM pg_database WHERE datname = 'tenant_dbrb'}), '0', 'and no database');

run_sql(q{SELECT count(*) FROM tenant_mgr.tenant_create('dbq', 'database', wait => false)});
is(run_sql(q{SELECT tenant_mgr.tenant_wait('dbq', '60 s')}), 't', 'a queued database creation finishes');
ok(came_from_pool('dbq', $oids), 'with a spare');

run_sql('ALTER SYSTEM SET tenant_mgr.pool_database = 0');
run_sql('SELECT pg_reload_conf()');
wait_for(q{SELECT count(*) = 0 FROM tenant_mgr.spare}, 'the database pool to be emptied');
is(run_sql(q{SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant_mgr_spare_%'})
	  . run_sql(q{SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tenant_mgr_spare_%'}),
	'00', 'no spare database or role is left');
run_sql(q{SELECT count(*) FROM tenant_mgr.tenant_create('dbs', 'database')});
my %dumps;
foreach my $name ('dbp', 'dbs')
{
	my ($stdout, $stderr);
	IPC::Run::run([ 'pg_dump', '--schema-only', '-d', $node->connstr("tenant_$name") ],
		'>', \$stdout, '2>', \$stderr) or die "pg_dump failed: $stderr";
	$stdout =~ s/\btenant_$name\b/tenant_X/g;
	$stdout =~ s/^--.*$//mg;
	$stdout =~ s/^\\(un)?restrict .*$//mg;
	$dumps{$name} = $stdout;
}
is($dumps{dbp}, $dumps{dbs}, 'pg_dump of a claimed database tenant equals that of one built from scratch');

is(run_sql('SELECT count(*) FROM tenant_mgr.verify()'), '0', 'verify() finds nothing');
$node->stop;
done_testing();
