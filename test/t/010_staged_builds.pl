# Schema tenants whose migrations cannot share one transaction (an enum
# value added in one migration and used in the next): created inline, in
# an explicit transaction, queued and from the trigger, each migration
# committed on its own; a rollback leaves nothing; a failing migration
# leaves nothing; a builder or job worker killed half-way leaves nothing
# (interactive) or resumes from the ledger (queued); the warm pool's spares
# of such a set are complete too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('staged_builds');
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

sub wait_for
{
	my ($query, $what) = @_;
	$node->poll_query_until('postgres', $query) or die "timed out waiting for $what";
}

# nothing of tenant $name: no schema, no role, no catalog row, no intent
sub nothing_left
{
	my ($name, $what) = @_;
	is( run_sql(
			qq{SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_$name')
			     || ',' || (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tenant\\_$name%')
			     || ',' || (SELECT count(*) FROM tenant_mgr.tenant WHERE name = '$name')
			     || ',' || (SELECT count(*) FROM tenant_mgr.intent WHERE tenant = '$name')}),
		'0,0,0,0', $what);
}

# a built tenant: ready at 3, each migration once in its ledger, the enum
# value's partial index and function in place
sub built
{
	my ($name, $what) = @_;
	is( run_sql(
			qq{SELECT t.state || ':' || t.version || ':'
			     || (SELECT string_agg(version::text, ',' ORDER BY version) FROM tenant_$name.tenant_mgr_ledger) || ':'
			     || (SELECT count(*) FROM pg_indexes WHERE schemaname = 'tenant_$name' AND indexname = 'jobs_retry') || ':'
			     || tenant_$name.retries()
			   FROM tenant_mgr.tenants t WHERE t.name = '$name'}),
		'ready:3:1,2,3:1:0', $what);
}

run_sql('CREATE EXTENSION tenant_mgr');
run_sql(q{SELECT tenant_mgr.migration_add(1, 'jobs',
	$$CREATE TYPE job_state AS ENUM ('queued', 'done');
	  CREATE TABLE jobs (id int PRIMARY KEY, state job_state NOT NULL)$$)});
run_sql(q{SELECT tenant_mgr.migration_add(2, 'retry', $$ALTER TYPE job_state ADD VALUE 'retry'$$)});
# tenant "gated" waits at the end while a session holds advisory lock 4242
# (the index before it fails at once where the enum value is new)
run_sql(q{SELECT tenant_mgr.migration_add(3, 'retry_index',
	$$CREATE INDEX jobs_retry ON jobs (id) WHERE state = 'retry';
	  CREATE FUNCTION retries() RETURNS bigint LANGUAGE sql STABLE
	    RETURN (SELECT count(*) FROM jobs WHERE state = 'retry');
	  DO $b$ BEGIN
	    IF current_schema() = 'tenant_gated' THEN PERFORM pg_advisory_xact_lock_shared(4242); END IF;
	  END $b$ $$)});

# --- inline, and in an explicit transaction --------------------------------------

is(run_sql(q{SELECT name || ':' || state || ':' || version FROM tenant_mgr.tenant_create('a')}),
	'a:ready:3', 'tenant_create() builds a tenant whose migrations need transactions of their own');
built('a', 'its migrations are applied and recorded once each');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.history WHERE tenant = 'a' AND action = 'up'}),
	'3', 'the history has its three steps');
is(run_sql(q{BEGIN;
	SELECT count(*) FROM tenant_mgr.tenant_create('b');
	INSERT INTO tenant_b.jobs VALUES (1, 'retry');
	COMMIT;
	SELECT tenant_b.retries()}), "1\n1", 'in an explicit transaction the tenant is usable before the commit');
built('a', 'tenant a is untouched');

# --- a rollback: the launcher removes the tenant built outside -----------------

run_sql(q{BEGIN; SELECT count(*) FROM tenant_mgr.tenant_create('rb'); ROLLBACK;});
wait_for(q{SELECT count(*) = 0 FROM tenant_mgr.intent}, 'the orphan to be removed');
nothing_left('rb', 'a rolled-back creation leaves nothing');
like(slurp_file($node->logfile), qr/removed what an aborted creation of tenant "rb" left/,
	'the launcher said so');

# --- queued, and from the trigger -------------------------------------------------

run_sql(q{SELECT count(*) FROM tenant_mgr.tenant_create('q', wait => false)});
is(run_sql(q{SELECT tenant_mgr.tenant_wait('q', '60 s')}), 't', 'a queued create finishes');
built('q', 'the queued tenant is built');

run_sql(q{CREATE TABLE customers (slug text PRIMARY KEY);
	CREATE TRIGGER provision AFTER INSERT OR UPDATE OR DELETE ON customers
	  FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug')});
my ($rc, $out, $err) = $node->psql('postgres', q{INSERT INTO customers VALUES ('tr')});
is($rc, 0, 'an inline trigger INSERT succeeds');
like($err, qr/NOTICE:  creation of tenant "tr" is queued/, 'and says the tenant is queued');
is(run_sql(q{SELECT tenant_mgr.tenant_wait('tr', '60 s')}), 't', 'the trigger\'s tenant is built after the commit');
built('tr', 'the trigger\'s tenant is complete');
run_sql(q{BEGIN; INSERT INTO customers VALUES ('trb'); ROLLBACK;});
is(run_sql(q{SELECT count(*) FROM tenant_mgr.job WHERE tenant = 'trb'}), '0',
	'a rolled-back trigger INSERT queued nothing');
nothing_left('trb', 'and left nothing');

# --- a failing migration leaves nothing ---------------------------------------------

run_sql(q{SELECT tenant_mgr.migration_add(4, 'picky',
	$$DO $b$ BEGIN
	    IF current_schema() IN ('tenant_fail', 'tenant_qfail') THEN RAISE EXCEPTION 'no room for %', current_schema(); END IF;
	  END $b$ $$)});
($rc, $out, $err) = $node->psql('postgres', q{SELECT tenant_mgr.tenant_create('fail')});
isnt($rc, 0, 'a creation whose fourth migration fails is refused');
like($err, qr/ERROR:  no room for tenant_fail/, 'with the migration\'s error');
wait_for(q{SELECT count(*) = 0 FROM tenant_mgr.intent}, 'the failed creation\'s intent');
nothing_left('fail', 'the failed creation leaves nothing');
run_sql(q{SELECT count(*) FROM tenant_mgr.tenant_create('qfail', wait => false)});
is(run_sql(q{SELECT tenant_mgr.tenant_wait('qfail', '60 s')}), 'f', 'a queued creation with a failing migration fails');
is(run_sql(q{SELECT state || ':' || (last_error LIKE '%no room for tenant_qfail%') FROM tenant_mgr.tenant WHERE name = 'qfail'}),
	'failed:true', 'its catalog row says why');
is(run_sql(q{SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_qfail'}), '0',
	'and its half-built schema is gone');
run_sql(q{SELECT tenant_mgr.tenant_drop('qfail')});
run_sql(q{SELECT tenant_mgr.migration_remove(4)});

# --- killed half-way ---------------------------------------------------------------

my $gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(4242)');

# interactive: the caller gets an error, the launcher removes what was built
my $caller = $node->background_psql('postgres', on_error_stop => 0);
$caller->query_until(qr/go/, q{\echo go
SELECT count(*) FROM tenant_mgr.tenant_create('gated');
});
wait_for(q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'tenant_mgr executor'
	AND query LIKE '%migration 3%'}, 'the builder to reach migration 3');
run_sql(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE backend_type = 'tenant_mgr executor' AND query LIKE '%migration 3%'});
$caller->quit;
wait_for(q{SELECT count(*) = 0 FROM tenant_mgr.intent}, 'the killed build\'s orphan');
nothing_left('gated', 'a builder killed half-way leaves nothing');

# queued: the job runs again and goes on from the ledger
run_sql(q{SELECT count(*) FROM tenant_mgr.tenant_create('gated', wait => false)});
wait_for(q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'tenant_mgr job worker'
	AND query LIKE '%migration 3%'}, 'the job worker to reach migration 3');
is(run_sql(q{SELECT string_agg(version::text, ',' ORDER BY version) FROM tenant_gated.tenant_mgr_ledger}),
	'1,2', 'migrations 1 and 2 are committed while 3 waits');
run_sql(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE backend_type = 'tenant_mgr job worker' AND query LIKE '%migration 3%'});
wait_for(q{SELECT attempts = 2 FROM tenant_mgr.job WHERE tenant = 'gated' AND state = 'running'},
	'the job to run again');
$gate->query_safe('SELECT pg_advisory_unlock(4242)');
$gate->quit;
is(run_sql(q{SELECT tenant_mgr.tenant_wait('gated', '60 s')}), 't', 'the interrupted queued build finishes');
built('gated', 'from where it stopped, each migration once');

# --- from the warm pool: spares are built migration by migration too ----------------

run_sql(q{ALTER SYSTEM SET tenant_mgr.pool_schema = 2});
run_sql(q{SELECT pg_reload_conf()});
wait_for(q{SELECT count(*) = 2 FROM tenant_mgr.pool WHERE state = 'ready' AND version = latest},
	'two spares');
my $spares = run_sql(q{SELECT string_agg(object_oid::text, ',') FROM tenant_mgr.spare});
is(run_sql(q{SELECT version FROM tenant_mgr.tenant_create('pooled')}), '3', 'a tenant is claimed from the pool');
my $oid = run_sql(q{SELECT object_oid FROM tenant_mgr.tenant WHERE name = 'pooled'});
ok(grep({ $_ eq $oid } split(/,/, $spares)), 'its schema is a spare\'s');
built('pooled', 'and it is complete');
run_sql(q{ALTER SYSTEM RESET tenant_mgr.pool_schema});
run_sql(q{SELECT pg_reload_conf()});
wait_for(q{SELECT count(*) = 0 FROM tenant_mgr.spare}, 'the pool to be emptied');

# --- in the end ---------------------------------------------------------------------

is(run_sql('SELECT count(*) FROM tenant_mgr.verify()'), '0', 'verify() finds nothing');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.intent}), '0', 'no intent is left');

$node->stop;
done_testing();
