# Fleet runs over schema and database tenants: an enum value added in one
# migration and used in the next (as a partial index and in a SQL
# function), non-transactional migrations (CREATE INDEX CONCURRENTLY and
# its down), an executor killed in the middle of an index build (the
# server restarts, the launcher resumes the run, the invalid index is
# dropped and built again, and nothing is recorded twice), many tenants
# shared among helpers, and a run followed from another session.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('fleet_runs');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'tenant_mgr'
tenant_mgr.database = 'postgres'
tenant_mgr.poll_interval = 1
max_worker_processes = 16
restart_after_crash = on
});
$node->start;

sub run_sql { return $node->safe_psql('postgres', shift); }

sub wait_run
{
	my ($run) = @_;
	return run_sql("CALL tenant_mgr.run_wait($run, '3 minutes')");
}

run_sql('CREATE EXTENSION tenant_mgr');
run_sql(q{SELECT tenant_mgr.migration_add(1, 'jobs',
	$$CREATE TYPE job_state AS ENUM ('queued', 'done');
	  CREATE TABLE jobs (id int PRIMARY KEY, state job_state NOT NULL, note text)$$)});
run_sql(q{SELECT tenant_mgr.tenant_create('s' || g, metadata => '{"group": "a"}')
	FROM generate_series(1, 3) g});
run_sql(q{SELECT tenant_mgr.tenant_create('d' || g, 'database', metadata => '{"group": "a"}')
	FROM generate_series(1, 2) g});
# many more, made now, while every migration can share one transaction
# (after the enum migrations below, each creation would be built migration
# by migration by an executor: TAP 010)
run_sql(q{SELECT tenant_mgr.tenant_create('m' || g, metadata => '{"group": "m"}')
	FROM generate_series(1, 120) g});
my $group_a = q{metadata => '{"group": "a"}'};

# --- an enum value added, then used: each migration commits on its own ----

run_sql(q{SELECT tenant_mgr.migration_add(2, 'retry', $$ALTER TYPE job_state ADD VALUE 'retry'$$)});
run_sql(q{SELECT tenant_mgr.migration_add(3, 'retry_index',
	$$CREATE INDEX jobs_retry ON jobs (id) WHERE state = 'retry';
	  CREATE FUNCTION retries() RETURNS bigint LANGUAGE sql STABLE
	    RETURN (SELECT count(*) FROM jobs WHERE state = 'retry')$$)});
is(run_sql(q{SELECT string_agg(tenant || ':' || version || ':' || status, ',' ORDER BY tenant, version)
	FROM tenant_mgr.tenant_migrate(} . $group_a . ')'),
	'd1:2:applied,d1:3:applied,d2:2:applied,d2:3:applied,s1:2:applied,s1:3:applied,'
	  . 's2:2:applied,s2:3:applied,s3:2:applied,s3:3:applied',
	'a fleet run applies the enum value and its use to schema and database tenants');
$node->safe_psql('tenant_d1', q{INSERT INTO jobs VALUES (1, 'retry')});
is($node->safe_psql('tenant_d1', 'SELECT retries()'), '1',
	'the new value works in a database tenant');
run_sql(q{INSERT INTO tenant_s2.jobs VALUES (1, 'retry')});
is(run_sql('SELECT tenant_s2.retries()'), '1', 'and in a schema tenant');

# --- CREATE INDEX CONCURRENTLY, up and down, on both kinds ------------------

run_sql(q{SELECT tenant_mgr.migration_add(4, 'jobs_note',
	'CREATE INDEX CONCURRENTLY jobs_note ON jobs (note)',
	'DROP INDEX CONCURRENTLY jobs_note', transactional => false)});
my $run = run_sql("SELECT run_id FROM tenant_mgr.tenant_migrate(wait => false, $group_a)");
is(wait_run($run), 'done', 'a run with CREATE INDEX CONCURRENTLY is done');
is(run_sql(q{SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relname = 'jobs_note' AND i.indisvalid AND n.nspname LIKE 'tenant_s%'}), '3',
	'each schema tenant has the valid index');
foreach my $d ('d1', 'd2')
{
	is($node->safe_psql("tenant_$d", q{SELECT i.indisvalid FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'jobs_note'}),
		't', "database tenant $d has the valid index");
	is($node->safe_psql("tenant_$d", 'SELECT max(version) FROM tenant_mgr_ledger'),
		'4', "and its ledger records it");
}
$run = run_sql("SELECT run_id FROM tenant_mgr.tenant_migrate(target => 3, wait => false, $group_a)");
is(wait_run($run), 'done', 'the down run (DROP INDEX CONCURRENTLY) is done');
is(run_sql(q{SELECT count(*) FROM pg_class WHERE relname = 'jobs_note'}), '0',
	'no schema tenant has the index any more');
is($node->safe_psql('tenant_d2', q{SELECT count(*) FROM pg_class WHERE relname = 'jobs_note'}),
	'0', 'nor a database tenant');
is(run_sql(q{SELECT string_agg(DISTINCT version::text, ',') FROM tenant_mgr.tenant
	WHERE metadata @> '{"group": "a"}'}), '3', 'every tenant is at 3');

# --- an executor killed during the index build ------------------------------

# A transaction with an old snapshot holds the index build of s1 in its
# last phase (it waits for older snapshots of its database); with no lock
# timeout it waits until the executor is killed.
my $holder = $node->background_psql('postgres', on_error_stop => 1);
$holder->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$holder->query_safe('SELECT count(*) FROM tenant_mgr.tenant');
$run = run_sql(q{SET tenant_mgr.lock_timeout = 0;
	SELECT run_id FROM tenant_mgr.tenant_migrate(names => ARRAY['s1'], wait => false)});
ok( $node->poll_query_until('postgres',
		qq{SELECT count(*) = 1 FROM pg_stat_activity
		    WHERE application_name = 'tenant_mgr run $run'
		      AND query LIKE 'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'}),
	'the index build waits for the old transaction');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.progress WHERE run_id = } . $run), '1',
	'progress shows the run going on');
like(run_sql(qq{SELECT array_to_string(executors, ';') FROM tenant_mgr.progress WHERE run_id = $run}),
	qr/CREATE INDEX CONCURRENTLY jobs_note/, 'and what its executor is doing');
my $pid = run_sql(qq{SELECT pid FROM pg_stat_activity WHERE application_name = 'tenant_mgr run $run'
	AND query LIKE 'CREATE INDEX CONCURRENTLY%'});
kill 'KILL', $pid;
$holder->{run}->kill_kill;
ok( $node->poll_query_until('postgres', "SELECT state FROM tenant_mgr.run WHERE id = $run", 'done'),
	'after the crash the launcher resumes the run to its end');
is(run_sql(q{SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'jobs_note' AND n.nspname = 'tenant_s1'}),
	't', 'the invalid index the kill left was dropped and built again');
is(run_sql(q{SELECT count(*) FROM tenant_s1.tenant_mgr_ledger WHERE version = 4}), '1',
	'the ledger records the migration once');
is(run_sql(qq{SELECT count(*) FROM tenant_mgr.event WHERE run_id = $run AND version = 4 AND status = 'ok'}),
	'1', 'and the run one applied step');
is(run_sql('SELECT count(*) FROM tenant_mgr.verify()'), '0', 'verify() is empty');

# --- many schema tenants: helpers share them --------------------------------

# every kind of step: the enum value and its use, the concurrent index,
# and one more
run_sql(q{SELECT tenant_mgr.migration_add(5, 'jobs_at', 'ALTER TABLE jobs ADD COLUMN at timestamptz')});
$run = run_sql(q{SELECT run_id FROM tenant_mgr.tenant_migrate(metadata => '{"group": "m"}',
	wait => false)});
ok( $node->poll_query_until('postgres',
		qq{SELECT count(*) > 1 FROM pg_stat_activity WHERE application_name = 'tenant_mgr run $run'}
		  . qq{ OR (SELECT state <> 'running' FROM tenant_mgr.run WHERE id = $run)}),
	'several executors work on the run (or it was already over)');
is(wait_run($run), 'done', 'the run over 120 tenants is done')
  or diag(run_sql(qq{SELECT string_agg(tenant || ' ' || status || ' ' || coalesce(sqlstate, '') || ' '
	|| coalesce(message, ''), E'\n') FROM tenant_mgr.run_tenant WHERE run_id = $run AND status <> 'migrated'}));
is(run_sql(qq{SELECT count(*) FROM tenant_mgr.run_tenant WHERE run_id = $run AND status = 'migrated'}),
	'120', 'every tenant of it migrated');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenant WHERE name LIKE 'm%' AND version = 5}),
	'120', 'and the catalog says so');
is(run_sql('SELECT count(*) FROM tenant_mgr.tenant_migrate(names => ARRAY[\'m1\', \'m2\'])'), '0',
	'a re-run of those tenants has nothing to do');
is(run_sql('SELECT count(*) FROM tenant_mgr.verify()'), '0', 'verify() is empty at the end');

$node->stop;
done_testing();
