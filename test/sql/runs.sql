-- Fleet runs: recorded, one transaction per migration per tenant in
-- executors, with options (subset, canary, stop, dry run, no wait), cancel,
-- and an enum value added in one migration and used in the next.
CREATE EXTENSION tenant_mgr;

-- waits for a run started with wait => false to end, and says how it ended
CREATE FUNCTION wait_run(id bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    s text;
BEGIN
    FOR i IN 1 .. 600 LOOP
        SELECT state INTO s FROM tenant_mgr.run WHERE run.id = wait_run.id;
        IF s NOT IN ('running', 'stopping') THEN
            RETURN s;
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN 'still ' || s;
END
$$;

SELECT tenant_mgr.migration_add(1, 'accounts',
    'CREATE TABLE accounts (id int PRIMARY KEY, plan text NOT NULL DEFAULT ''free'')',
    'DROP TABLE accounts');
SELECT count(*) AS tenants
  FROM unnest(ARRAY['t01', 't02', 't03', 't04', 't05', 't06']) n,
       LATERAL tenant_mgr.tenant_create(n, metadata => jsonb_build_object('tier',
               CASE WHEN n IN ('t05', 't06') THEN 'gold' ELSE 'free' END));

-- nothing to do: answered from the catalog, no run recorded
SELECT count(*) AS steps FROM tenant_mgr.tenant_migrate();
SELECT count(*) AS runs FROM tenant_mgr.run;

-- a run over every tenant: a row per tenant and step, all of the same run,
-- recorded in the catalog with each tenant's outcome
SELECT tenant_mgr.migration_add(2, 'notes', 'CREATE TABLE notes (id int, body text)',
    'DROP TABLE notes');
SELECT tenant, version, migration, action, status, sqlstate, run_id IS NOT NULL AS has_run
  FROM tenant_mgr.tenant_migrate() ORDER BY tenant;
SELECT count(DISTINCT run_id) AS runs FROM tenant_mgr.event WHERE version = 2;
SELECT state, tenants, done, failed, skipped, not_done, requested_by = current_user AS by_me,
       options->>'lock_timeout' IS NOT NULL AS has_lock_timeout
  FROM tenant_mgr.runs;
SELECT tenant, isolation, status, from_version, to_version, attempts, sqlstate
  FROM tenant_mgr.run_tenants ORDER BY tenant;
SELECT name, version, last_error FROM tenant_mgr.tenants;
SELECT count(*) AS ledgers_at_2 FROM tenant_mgr.tenant t
 WHERE t.version = 2;
SELECT count(*) AS notes_tables FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname = 'notes' AND n.nspname LIKE 'tenant_t0%';
-- nothing going on now
SELECT count(*) AS in_progress FROM tenant_mgr.progress;

-- subsets: by names, by pattern, by metadata; the others stay behind
SELECT tenant_mgr.migration_add(3, 'notes_at', 'ALTER TABLE notes ADD COLUMN at timestamptz',
    'ALTER TABLE notes DROP COLUMN at');
SELECT tenant, version, status FROM tenant_mgr.tenant_migrate(names => ARRAY['t01', 't02'])
 ORDER BY tenant;
SELECT tenant, version, status FROM tenant_mgr.tenant_migrate(pattern => 't_3') ORDER BY tenant;
SELECT tenant, version, status FROM tenant_mgr.tenant_migrate(metadata => '{"tier": "gold"}')
 ORDER BY tenant;
SELECT name, version FROM tenant_mgr.tenants;
SELECT options FROM tenant_mgr.run ORDER BY id DESC LIMIT 1;

-- a re-run touches only the tenants that are behind
SELECT tenant, version, status FROM tenant_mgr.tenant_migrate() ORDER BY tenant;
SELECT tenants FROM tenant_mgr.runs ORDER BY id DESC LIMIT 1;

-- bad input is refused and records no run
SELECT count(*) AS runs_before FROM tenant_mgr.run \gset
SELECT * FROM tenant_mgr.tenant_migrate(canary => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM tenant_mgr.tenant_migrate(names => ARRAY['t01', 'nobody']);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM tenant_mgr.tenant_migrate(names => ARRAY[NULL]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM tenant_mgr.tenant_migrate(metadata => '["gold"]');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM tenant_mgr.tenant_migrate('t01', pattern => 't%');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM tenant_mgr.tenant_migrate(target => 99);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.run_cancel(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.run_cancel(424242);
\echo :LAST_ERROR_SQLSTATE
-- migrations registered in the same transaction: the executors would not
-- see them
BEGIN;
SELECT tenant_mgr.migration_add(4, 'uncommitted', 'CREATE TABLE later (id int)');
SELECT * FROM tenant_mgr.tenant_migrate();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT count(*) - :runs_before AS new_runs FROM tenant_mgr.run;

-- a run is not undone by the caller's rollback: each migration committed
BEGIN;
SELECT count(*) AS steps FROM tenant_mgr.tenant_migrate(target => 2);
ROLLBACK;
SELECT name, version FROM tenant_mgr.tenants;
SELECT count(*) AS ledger_rows FROM tenant_t01.tenant_mgr_ledger;

-- a dry run applies and rolls back: it reports, and changes nothing
SELECT tenant_mgr.migration_add(4, 'plan_check',
    'ALTER TABLE accounts ADD CONSTRAINT plan_known CHECK (plan IN (''free'', ''gold''))',
    'ALTER TABLE accounts DROP CONSTRAINT plan_known');
INSERT INTO tenant_t03.accounts VALUES (1, 'platinum');
SELECT tenant, version, action, status, sqlstate
  FROM tenant_mgr.tenant_migrate(dry_run => true) ORDER BY tenant;
SELECT name, version FROM tenant_mgr.tenants;
SELECT count(*) AS constraints FROM pg_constraint WHERE conname = 'plan_known';
SELECT count(*) AS events_of_dry_run FROM tenant_mgr.event e
  JOIN tenant_mgr.run r ON r.id = e.run_id WHERE (r.options->>'dry_run')::boolean;

-- a canary: the first tenants alone, and no further when one of them fails
SELECT tenant, version, status, sqlstate
  FROM tenant_mgr.tenant_migrate(canary => 3) ORDER BY tenant;
SELECT state, message, done, failed, not_done FROM tenant_mgr.runs ORDER BY id DESC LIMIT 1;
SELECT name, version, last_error IS NOT NULL AS has_error FROM tenant_mgr.tenants;

-- the data fixed, a run without stop completes the rest; one failure does
-- not stop the others
UPDATE tenant_t03.accounts SET plan = 'gold';
INSERT INTO tenant_t05.accounts VALUES (1, 'platinum');
SELECT tenant, version, status, sqlstate FROM tenant_mgr.tenant_migrate() ORDER BY tenant;
SELECT state, done, failed FROM tenant_mgr.runs ORDER BY id DESC LIMIT 1;
-- stop_on_error: the tenants after the first failure are not taken
UPDATE tenant_t05.accounts SET plan = 'free';
SELECT tenant_mgr.migration_add(5, 'one_account', 'ALTER TABLE accounts ADD CONSTRAINT one_account CHECK (id < 2)',
    'ALTER TABLE accounts DROP CONSTRAINT one_account');
INSERT INTO tenant_t02.accounts VALUES (5, 'free');
SELECT tenant, version, status FROM tenant_mgr.tenant_migrate(stop_on_error => true)
 ORDER BY tenant, version;
SELECT state, done, failed, not_done FROM tenant_mgr.runs ORDER BY id DESC LIMIT 1;
DELETE FROM tenant_t02.accounts WHERE id = 5;
SELECT tenant, version, status FROM tenant_mgr.tenant_migrate() ORDER BY tenant, version;

-- down across the fleet, each step its own transaction
SELECT tenant, version, action, status FROM tenant_mgr.tenant_migrate(target => 3)
 ORDER BY tenant, version DESC;
SELECT DISTINCT version FROM tenant_mgr.tenant;

-- wait => false: the run's id at once; the run goes on, and can be waited
-- for in the catalog
SELECT tenant IS NULL AS no_tenant, status, run_id IS NOT NULL AS has_run
  FROM tenant_mgr.tenant_migrate(wait => false);
SELECT max(id) AS run FROM tenant_mgr.run \gset
SELECT wait_run(:run);
SELECT state, done, not_done FROM tenant_mgr.runs WHERE id = :run;
SELECT DISTINCT version FROM tenant_mgr.tenant;

-- cancel: the executors finish the migration they are in and take no more
SELECT tenant_mgr.migration_add(6, 'slow', 'SELECT pg_sleep(0.3)');
SELECT run_id AS run FROM tenant_mgr.tenant_migrate(wait => false) \gset
SELECT tenant_mgr.run_cancel(:run) AS cancelled;
SELECT wait_run(:run);
SELECT state, cancelled_by = current_user AS by_me, not_done > 0 AS some_not_done
  FROM tenant_mgr.runs WHERE id = :run;
SELECT count(*) FILTER (WHERE status = 'stopped') > 0 AS stopped,
       count(*) FILTER (WHERE status NOT IN ('migrated', 'stopped')) AS others
  FROM tenant_mgr.run_tenant WHERE run_id = :run;
-- a cancelled run cannot be cancelled again; the next run finishes the job
SELECT tenant_mgr.run_cancel(:run) AS cancelled;
SELECT count(*) FILTER (WHERE status = 'applied') > 0 AS applied,
       count(*) FILTER (WHERE status <> 'applied') AS others
  FROM tenant_mgr.tenant_migrate();
SELECT DISTINCT version FROM tenant_mgr.tenant;

-- non-transactional migrations: one statement, run top-level by an executor
-- and recorded only once it took effect
SELECT tenant_mgr.migration_add(7, 'two', 'CREATE INDEX CONCURRENTLY a ON accounts (plan); VACUUM accounts',
    transactional => false);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(7, 'unnamed', 'CREATE INDEX CONCURRENTLY ON accounts (plan)',
    transactional => false);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(7, 'plain', 'ALTER TABLE accounts ADD COLUMN x int',
    transactional => false);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(7, 'cic', 'CREATE INDEX CONCURRENTLY accounts_plan ON accounts (plan)');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM tenant_mgr.migration WHERE version = 7;
-- a unique index one tenant's data violates: that tenant fails and keeps
-- an invalid index, the others get a valid one
SELECT count(*) AS runs_before FROM tenant_mgr.run \gset
INSERT INTO tenant_t04.notes VALUES (7, 'first'), (7, 'again');
SELECT tenant_mgr.migration_add(7, 'one_gold', 'CREATE UNIQUE INDEX CONCURRENTLY one_gold ON notes (id) WHERE id > 0',
    'DROP INDEX CONCURRENTLY one_gold', transactional => false);
-- such a run on schema tenants cannot be waited for in a transaction: the
-- index build waits for every older transaction of the database
SELECT * FROM tenant_mgr.tenant_migrate();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) - :runs_before AS new_runs FROM tenant_mgr.run;
-- started without waiting, and waited for with CALL, which holds no snapshot
SELECT run_id AS run FROM tenant_mgr.tenant_migrate(wait => false) \gset
CALL tenant_mgr.run_wait(:run);
SELECT tenant, status, from_version, to_version, sqlstate FROM tenant_mgr.run_tenants
 WHERE run_id = :run ORDER BY tenant;
SELECT tenant, version, status, sqlstate FROM tenant_mgr.history
 WHERE run_id = :run AND (status <> 'ok' OR tenant = 't01') ORDER BY tenant;
SELECT n.nspname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'one_gold' ORDER BY 1;
-- a dry run cannot roll such a migration back
SELECT tenant, status, sqlstate FROM tenant_mgr.tenant_migrate(dry_run => true);
-- the data fixed, the next run drops the invalid index and builds it again
DELETE FROM tenant_t04.notes WHERE body = 'again';
SELECT run_id AS run FROM tenant_mgr.tenant_migrate(wait => false) \gset
CALL tenant_mgr.run_wait(:run, '5 minutes');
SELECT tenant, status, from_version, to_version FROM tenant_mgr.run_tenants WHERE run_id = :run;
SELECT count(*) FILTER (WHERE i.indisvalid) AS valid, count(*) AS indexes
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'one_gold';
SELECT count(*) AS ledgers_with_7 FROM tenant_mgr.tenant t WHERE t.version = 7;
-- down, top-level too: one tenant alone, as a run of one
SELECT run_id AS run FROM tenant_mgr.tenant_migrate('t01', target => 6, wait => false) \gset
CALL tenant_mgr.run_wait(:run);
SELECT tenant, version, action, status FROM tenant_mgr.history WHERE run_id = :run;
SELECT count(*) AS one_gold_in_t01 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname = 'one_gold' AND n.nspname = 'tenant_t01';
SELECT run_id AS run FROM tenant_mgr.tenant_migrate('t01', wait => false) \gset
CALL tenant_mgr.run_wait(:run);
SELECT name, version FROM tenant_mgr.tenants WHERE name = 't01';
-- run_wait is a procedure that commits: not in a transaction block, not for
-- unknown runs
BEGIN;
CALL tenant_mgr.run_wait(:run);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
CALL tenant_mgr.run_wait(424242);
\echo :LAST_ERROR_SQLSTATE

-- an enum value added in one migration and used in the next: PostgreSQL
-- refuses that in one transaction (55P04), a run commits each migration
SELECT name FROM tenant_mgr.tenant_create('t07');
-- (it got migration 7 in its creating transaction, where nobody else sees
-- its tables: without CONCURRENTLY)
SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname = 'one_gold' AND n.nspname = 'tenant_t07';
SELECT tenant_mgr.migration_add(8, 'job_state', 'CREATE TYPE job_state AS ENUM (''queued'', ''done'');
    CREATE TABLE jobs (id int, state job_state NOT NULL)');
SELECT tenant_mgr.migration_add(9, 'job_state_retry', 'ALTER TYPE job_state ADD VALUE ''retry''');
SELECT tenant_mgr.migration_add(10, 'jobs_retry_index',
    'CREATE INDEX jobs_retry ON jobs (id) WHERE state = ''retry'';
     CREATE FUNCTION retry_count() RETURNS bigint LANGUAGE sql STABLE
       RETURN (SELECT count(*) FROM jobs WHERE state = ''retry'')');
SELECT tenant, version, status, sqlstate
  FROM tenant_mgr.tenant_migrate(names => ARRAY['t01', 't02', 't03', 't04', 't05', 't06'])
 ORDER BY tenant, version;
SELECT count(*) AS retry_indexes FROM pg_indexes WHERE indexname = 'jobs_retry';
INSERT INTO tenant_t02.jobs VALUES (1, 'retry');
SELECT tenant_t02.retry_count();
-- one tenant alone takes the same path: in the caller's transaction the
-- new value could not be used
SELECT tenant, version, status FROM tenant_mgr.tenant_migrate('t07') ORDER BY version;
SELECT name, version FROM tenant_mgr.tenants WHERE name = 't07';
SELECT count(*) AS retry_indexes FROM pg_indexes WHERE indexname = 'jobs_retry';

-- erasure: a purged tenant's name leaves the run records too
SELECT tenant_mgr.tenant_drop('t06');
SELECT tenant_mgr.tenant_purge('t06') > 0 AS purged;
SELECT count(*) AS rows_naming_t06 FROM tenant_mgr.run_tenant WHERE tenant = 't06';
SELECT count(*) AS runs_listing_t06 FROM tenant_mgr.run WHERE options->'names' ? 't06';

SELECT * FROM tenant_mgr.verify();
SELECT count(*) FROM tenant_mgr.tenant t, LATERAL tenant_mgr.tenant_drop(t.name) d;
DROP FUNCTION wait_run(bigint);
DROP EXTENSION tenant_mgr;
