-- Database tenants: whole databases, created, migrated and dropped by
-- executors although PostgreSQL forbids CREATE/DROP DATABASE in a
-- transaction.  This database is the control database (tenant_mgr.database).
\getenv abs_srcdir PG_ABS_SRCDIR
\set fixtures :abs_srcdir '/fixtures'
CREATE EXTENSION tenant_mgr;
SELECT tenant_mgr.migrations_load(:'fixtures') AS loaded;

-- interactive: the caller waits and gets the finished tenant
SELECT name, isolation, object_name, owner, state, version
  FROM tenant_mgr.tenant_create('globex', 'database', metadata => '{"region": "eu"}');
SELECT d.datname, d.datdba::regrole AS owner,
       has_database_privilege('public', d.oid, 'CONNECT') AS public_connect,
       shobj_description(d.oid, 'pg_database') AS comment,
       d.oid = t.object_oid AS marker_matches
  FROM pg_database d, tenant_mgr.tenant t
 WHERE d.datname = 'tenant_globex' AND t.name = 'globex';
SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb,
       shobj_description(oid, 'pg_authid') AS comment
  FROM pg_roles WHERE rolname = 'tenant_globex';
SELECT tenant, action, version, status FROM tenant_mgr.history WHERE tenant = 'globex' ORDER BY id;
SELECT count(*) AS intents_left FROM tenant_mgr.intent;
-- verify() reads the ledger inside the database
SELECT * FROM tenant_mgr.verify();

-- migrations run inside the database, each committed with its ledger row
SELECT tenant_mgr.migration_add(12, 'nickname',
    'ALTER TABLE users ADD COLUMN nickname text',
    'ALTER TABLE users DROP COLUMN nickname');
SELECT tenant, version, migration, action, status FROM tenant_mgr.tenant_migrate('globex');
SELECT tenant, version, action, status FROM tenant_mgr.tenant_migrate('globex', target => 11);
SELECT name, version FROM tenant_mgr.tenants;
SELECT tenant, version, action, status FROM tenant_mgr.tenant_migrate();
SELECT * FROM tenant_mgr.verify();

-- a migration that fails in the tenant's database: its SQLSTATE comes back,
-- the tenant stays at its version and its ledger is untouched
SELECT tenant_mgr.migration_add(13, 'broken', 'ALTER TABLE nowhere ADD COLUMN x int');
SELECT * FROM tenant_mgr.tenant_migrate('globex');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant, version, status, sqlstate, message FROM tenant_mgr.tenant_migrate();
SELECT name, version, last_error FROM tenant_mgr.tenants;
SELECT * FROM tenant_mgr.verify();
SELECT tenant_mgr.migration_remove(13);

-- queued: the transaction only records the tenant and queues a job; the
-- launcher creates it after commit
SELECT name, state, version FROM tenant_mgr.tenant_create('initech', 'database', wait => false);
SELECT tenant_mgr.tenant_wait('initech', '2 minutes');
SELECT name, state, version FROM tenant_mgr.tenants WHERE name = 'initech';
SELECT tenant, action, state, attempts, sqlstate FROM tenant_mgr.jobs;
-- a rename moves the database, its owner role and their marks
SELECT name, object_name, owner FROM tenant_mgr.tenant_rename('initech', 'initrode');
SELECT datname, datdba::regrole AS owner, shobj_description(oid, 'pg_database') AS comment
  FROM pg_database WHERE datname LIKE 'tenant_init%';
SELECT rolname FROM pg_roles WHERE rolname LIKE 'tenant_init%';
SELECT * FROM tenant_mgr.verify();
SELECT name FROM tenant_mgr.tenant_rename('initrode', 'initech');
-- a queued create rolled back never existed
BEGIN;
SELECT name, state FROM tenant_mgr.tenant_create('hooli', 'database', wait => false);
ROLLBACK;
SELECT count(*) AS hooli_jobs FROM tenant_mgr.job WHERE tenant = 'hooli';
SELECT count(*) AS hooli_databases FROM pg_database WHERE datname = 'tenant_hooli';

-- bad input; nothing is created, nothing is adopted
CREATE DATABASE tenant_squat;
SELECT tenant_mgr.tenant_create('squat', 'database');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS squat_untouched FROM pg_database
 WHERE datname = 'tenant_squat' AND shobj_description(oid, 'pg_database') IS NULL;
DROP DATABASE tenant_squat;
CREATE ROLE tenant_rolesquat NOLOGIN;
SELECT tenant_mgr.tenant_create('rolesquat', 'database');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rolesquat_databases FROM pg_database WHERE datname = 'tenant_rolesquat';
DROP ROLE tenant_rolesquat;
SET tenant_mgr.prefix = '';
SELECT tenant_mgr.tenant_create('postgres', 'database');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('template0', 'database');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('contrib_regression', 'database');
\echo :LAST_ERROR_SQLSTATE
RESET tenant_mgr.prefix;
SELECT tenant_mgr.tenant_create('owned', 'database', owner => current_user);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('globex', 'database');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_use('globex');
\echo :LAST_ERROR_SQLSTATE
-- a caller with EXECUTE and nothing else (no CREATEDB, no CREATEROLE, no
-- CREATE on the database): tenant_mgr makes the role and the database, and
-- the caller may act as the new owner
CREATE ROLE regress_tm_caller;
GRANT USAGE ON SCHEMA tenant_mgr TO regress_tm_caller;
GRANT EXECUTE ON FUNCTION tenant_mgr.tenant_create(text, text, name, jsonb, boolean),
                          tenant_mgr.tenant_drop(text, boolean, boolean),
                          tenant_mgr.tenant_wait(text, interval) TO regress_tm_caller;
SET ROLE regress_tm_caller;
SELECT name, owner, state FROM tenant_mgr.tenant_create('plain', 'database');
SELECT rolcreatedb, rolcreaterole, pg_has_role('regress_tm_caller', 'tenant_plain', 'MEMBER') AS acts_as_owner
  FROM pg_roles WHERE rolname = 'regress_tm_caller';
SELECT tenant_mgr.tenant_drop('plain');
SELECT tenant_mgr.tenant_wait('plain', '2 minutes') AS dropped;
RESET ROLE;
-- without EXECUTE, PostgreSQL refuses the call itself
CREATE ROLE regress_tm_nothing;
GRANT USAGE ON SCHEMA tenant_mgr TO regress_tm_nothing;
SET ROLE regress_tm_nothing;
SELECT tenant_mgr.tenant_create('sneaky', 'database');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP OWNED BY regress_tm_caller, regress_tm_nothing;
DROP ROLE regress_tm_caller, regress_tm_nothing;
SELECT count(*) AS stray_databases FROM pg_database
 WHERE datname IN ('tenant_squat', 'tenant_rolesquat', 'tenant_owned', 'tenant_plain', 'tenant_sneaky');
SELECT count(*) AS intents_left FROM tenant_mgr.intent;

-- an interactive create whose migration fails: the error comes back with its
-- SQLSTATE and nothing is left behind
SELECT tenant_mgr.migration_add(13, 'refuses_doomed',
    $$DO $b$ BEGIN IF current_database() = 'tenant_doomed' THEN
      RAISE EXCEPTION USING ERRCODE = '22012', MESSAGE = 'doomed refuses';
    ELSIF current_database() = 'tenant_wordy' THEN
      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = repeat('é', 2500); END IF; END $b$ $$);
SELECT tenant_mgr.tenant_create('doomed', 'database');
\echo :LAST_ERROR_SQLSTATE
SELECT (SELECT count(*) FROM pg_database WHERE datname = 'tenant_doomed') AS databases,
       (SELECT count(*) FROM pg_roles WHERE rolname = 'tenant_doomed') AS roles,
       (SELECT count(*) FROM tenant_mgr.tenant WHERE name = 'doomed') AS catalog_rows,
       (SELECT count(*) FROM tenant_mgr.intent) AS intents;

-- an executor's error of 5,000 bytes (2,500 two-byte characters) is stored
-- whole and valid, in the job and the tenant's last error
SELECT name, state FROM tenant_mgr.tenant_create('wordy', 'database', wait => false);
SELECT tenant_mgr.tenant_wait('wordy', '2 minutes') AS wordy_succeeded;
SELECT state, octet_length(last_error) AS error_bytes, last_error = repeat('é', 2500) AS whole
  FROM tenant_mgr.tenants WHERE name = 'wordy';
SELECT sqlstate, message = repeat('é', 2500) AS whole FROM tenant_mgr.jobs WHERE tenant = 'wordy';
-- the launcher removes what the failed job left
DO $$ BEGIN
    FOR i IN 1..1200 LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM tenant_mgr.intent);
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT count(*) AS wordy_databases FROM pg_database WHERE datname = 'tenant_wordy';
SELECT tenant_mgr.tenant_drop('wordy');

-- a job the launcher cannot run (its requester is gone) fails, and the
-- launcher goes on with the next one
INSERT INTO tenant_mgr.tenant (name, isolation, object_name, object_oid, owner, state)
  VALUES ('ghostly', 'database', 'tenant_ghostly', 0, 'tenant_ghostly', 'creating');
INSERT INTO tenant_mgr.job (tenant, action, object_name, owner, requested_by)
  VALUES ('ghostly', 'create', 'tenant_ghostly', 'tenant_ghostly', 'regress_no_such_role');
SELECT name, state FROM tenant_mgr.tenant_create('aftermath', 'database', wait => false);
SELECT tenant_mgr.tenant_wait('ghostly', '2 minutes') AS ghostly_succeeded,
       tenant_mgr.tenant_wait('aftermath', '2 minutes') AS aftermath_succeeded;
SELECT tenant, state, sqlstate, message FROM tenant_mgr.jobs WHERE tenant IN ('ghostly', 'aftermath');
SELECT name, state, last_error FROM tenant_mgr.tenants WHERE name IN ('ghostly', 'aftermath');
DELETE FROM tenant_mgr.tenant WHERE name = 'ghostly';
SELECT tenant_mgr.tenant_drop('aftermath');
SELECT tenant_mgr.tenant_wait('aftermath', '2 minutes') AS dropped;

-- drop: detached in the transaction (a rollback undoes it), dropped by the
-- launcher after commit, with its owner role
BEGIN;
SELECT tenant_mgr.tenant_drop('initech');
SELECT count(*) AS detached FROM pg_database WHERE datname LIKE 'tenant_mgr_drop_%';
ROLLBACK;
SELECT count(*) AS back FROM pg_database WHERE datname = 'tenant_initech';
SELECT tenant_mgr.tenant_drop('initech');
SELECT name FROM tenant_mgr.tenants;
SELECT tenant_mgr.tenant_wait('initech', '2 minutes');
SELECT count(*) AS initech_databases FROM pg_database
 WHERE datname = 'tenant_initech' OR datname LIKE 'tenant_mgr_drop_%';
SELECT count(*) AS initech_roles FROM pg_roles WHERE rolname = 'tenant_initech';
SELECT tenant_mgr.tenant_drop('globex');
SELECT tenant_mgr.tenant_wait('globex', '2 minutes');
-- tenant_wait answers for a tenant its finished drop job names (above), and
-- for an inline tenant without jobs while it exists; a name with neither a
-- catalog row nor a job is unknown, never "ready"
SELECT tenant_mgr.tenant_wait('typo');
\echo :LAST_ERROR_SQLSTATE
SELECT name FROM tenant_mgr.tenant_create('inline');
SELECT tenant_mgr.tenant_wait('inline') AS inline_ready;
SELECT tenant_mgr.tenant_drop('inline');
SELECT tenant_mgr.tenant_wait('inline');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant, action, state, sqlstate FROM tenant_mgr.jobs;
SELECT count(*) AS tenant_databases FROM pg_database WHERE datname LIKE 'tenant%';
SELECT count(*) AS tenant_roles FROM pg_roles WHERE rolname LIKE 'tenant%';
SELECT * FROM tenant_mgr.verify();
DROP EXTENSION tenant_mgr;
