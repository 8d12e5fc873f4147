-- test/demo.sql: a guided tour of tenant_mgr, run by test/demo.sh.
--
-- psql runs it with -e (every statement is printed before its result) and
-- ON_ERROR_STOP, against a server started with
-- shared_preload_libraries = 'tenant_mgr' and tenant_mgr.database = 'demo'.
-- demo.sh sets two variables:
--   fixtures    test/fixtures of the staged tree (001..011), readable by the server
--   migrations  a server directory holding only 001..010
--
-- Database tenants (whole databases, created and dropped by tenant_mgr's
-- background workers) need both settings: this database, 'demo', is the
-- control database.  The launcher starts with the server, before demo.sh
-- runs createdb demo, and retries every 5 s until it can connect, so the
-- first queued job may wait a few seconds to start; tenant_wait() covers it.
--
-- pg_temp.expect(condition, what) turns an expectation into an error, so
-- that the demo fails, not just looks odd, when tenant_mgr misbehaves.

\set ECHO none
\set QUIET 1
CREATE FUNCTION pg_temp.expect(ok boolean, what text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION 'demo expectation failed: %', what;
    END IF;
    RETURN 'ok: ' || what;
END
$$;
\unset QUIET
\set ECHO queries

\echo
\echo '==> 1. Install the extension: its catalog and functions live in schema tenant_mgr'
\echo
CREATE EXTENSION tenant_mgr;
\echo '\\dx tenant_mgr'
\dx tenant_mgr

\echo
\echo '==> 2. Register migrations 001..010 from a server directory'
\echo
SELECT tenant_mgr.migrations_load(:'migrations') AS newly_registered;
SELECT version, name, reversible, applied_to, pending_on, checksum
  FROM tenant_mgr.migrations;
\echo 'Loading the same directory again registers nothing: registered migrations never change.'
SELECT tenant_mgr.migrations_load(:'migrations') AS newly_registered;

\echo
\echo '==> 3. Create two schema tenants by hand; each gets migrations 001..010 at once'
\echo
-- tenant_create returns the tenant's catalog row ...
SELECT tenant_mgr.tenant_create('acme');
-- ... whose columns can be picked; metadata is free-form JSON
SELECT name, object_name, owner, version, metadata
  FROM tenant_mgr.tenant_create('globex', metadata => '{"plan":"pro"}');
\dt tenant_globex.*
\echo 'Each schema belongs to an owner role of its own, named like the schema and'
\echo 'unable to log in (NOLOGIN); tenant_create(..., owner => role) uses an existing'
\echo 'role instead.'
SELECT n.nspname, n.nspowner::regrole AS owner, r.rolcanlogin,
       obj_description(n.oid, 'pg_namespace') AS comment
  FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
 WHERE n.nspname IN ('tenant_acme', 'tenant_globex')
 ORDER BY 1;
SELECT pg_temp.expect(count(*) = 2, 'tenant_acme and tenant_globex belong to NOLOGIN roles named like them')
  FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
 WHERE n.nspname IN ('tenant_acme', 'tenant_globex')
   AND r.rolname = n.nspname AND NOT r.rolcanlogin;

\echo
\echo '==> 3b. A database tenant: a whole database, with an owner role named like it'
\echo
\echo 'PostgreSQL runs CREATE DATABASE only outside a transaction, so tenant_mgr has'
\echo 'background workers create the role and the database and apply 001..010 inside'
\echo 'it; the caller waits and gets the finished tenant.'
SELECT name, isolation, object_name, owner, state, version
  FROM tenant_mgr.tenant_create('contoso', 'database');
\echo 'The database belongs to its own role, and PUBLIC may not connect to it:'
SELECT datname, datdba::regrole AS owner,
       has_database_privilege('public', oid, 'CONNECT') AS public_can_connect
  FROM pg_database WHERE datname = 'tenant_contoso';
SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole
  FROM pg_roles WHERE rolname = 'tenant_contoso';
SELECT name, isolation, object_name, owner, state, version, latest, pending
  FROM tenant_mgr.tenants;
SELECT pg_temp.expect(d.datdba::regrole::text = 'tenant_contoso'
                      AND NOT has_database_privilege('public', d.oid, 'CONNECT')
                      AND t.state = 'ready' AND t.version = 10,
                      'database tenant_contoso exists, owned by tenant_contoso, closed to PUBLIC, at version 10')
  FROM pg_database d, tenant_mgr.tenants t
 WHERE d.datname = 'tenant_contoso' AND t.name = 'contoso';

\echo
\echo '==> 4. Tenants that follow an application table'
\echo
\echo 'tenant_mgr ships the trigger function tenant_mgr.customers_trigger(): INSERT'
\echo 'creates the tenant, DELETE drops it, UPDATE of the name column renames it.'
\echo
\echo 'Each customer chooses its isolation, so two INSERT triggers with WHEN clauses'
\echo 'pick it.  A schema tenant is created inside the inserting transaction; a'
\echo 'database tenant is only queued and created by the launcher after COMMIT: a'
\echo 'trigger never waits for CREATE DATABASE.'
\echo
CREATE TABLE customers (
    id        serial PRIMARY KEY,
    slug      text UNIQUE NOT NULL,
    name      text,
    isolation text NOT NULL DEFAULT 'schema'
);
-- tenant_mgr.customers_trigger() takes key=value arguments:
--   name=<column>               the column holding the tenant name (required)
--   isolation=schema|database   what INSERT creates (default schema)
--   on_delete=drop|keep         whether DELETE drops the tenant (default drop)
--   mode=inline|queued          schema tenants: created in the inserting
--                               transaction (default) or by the launcher after
--                               COMMIT; database tenants are always queued
-- Rename and drop find the tenant's isolation in the catalog, so one
-- UPDATE/DELETE trigger serves both kinds.
CREATE TRIGGER customers_create_schema AFTER INSERT ON customers
    FOR EACH ROW WHEN (NEW.isolation = 'schema')
    EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug');
CREATE TRIGGER customers_create_database AFTER INSERT ON customers
    FOR EACH ROW WHEN (NEW.isolation = 'database')
    EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug', 'isolation=database');
CREATE TRIGGER customers_rename_drop AFTER UPDATE OF slug OR DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug');
\echo '\\d customers'
\d customers

\echo
\echo 'Three customers in one transaction: the schema tenants are created with the'
\echo 'rows; the database tenant wayne is recorded in state creating and queued.'
BEGIN;
INSERT INTO customers (slug, name, isolation)
VALUES ('initech', 'Initech', 'schema'),
       ('umbrella', 'Umbrella Corporation', 'schema'),
       ('wayne', 'Wayne Enterprises', 'database');
SELECT name, isolation, state, version FROM tenant_mgr.tenants
 WHERE name IN ('initech', 'umbrella', 'wayne');
SELECT id, tenant, action, state FROM tenant_mgr.jobs;
COMMIT;
\echo 'After COMMIT the launcher picks up the job (wayne: creating, or already ready):'
SELECT id, tenant, action, state, attempts, duration, sqlstate, message
  FROM tenant_mgr.jobs;
SELECT c.slug, c.name, c.isolation, t.object_name, t.state, t.version
  FROM customers c JOIN tenant_mgr.tenants t ON t.name = c.slug
 ORDER BY c.slug;
SELECT pg_temp.expect(count(*) = 2, 'initech and umbrella are ready tenants after COMMIT')
  FROM tenant_mgr.tenants
 WHERE name IN ('initech', 'umbrella') AND state = 'ready' AND version = 10;
SELECT pg_temp.expect(state IN ('creating', 'ready'), 'wayne is creating or ready after COMMIT')
  FROM tenant_mgr.tenants WHERE name = 'wayne';
\echo 'tenant_wait() waits until the tenant has no queued or running job; true means'
\echo 'the last one succeeded.'
SELECT tenant_mgr.tenant_wait('wayne');
SELECT id, tenant, action, state, attempts, duration, sqlstate, message
  FROM tenant_mgr.jobs;
SELECT name, isolation, object_name, owner, state, version
  FROM tenant_mgr.tenants WHERE name = 'wayne';
SELECT datname, datdba::regrole AS owner,
       has_database_privilege('public', oid, 'CONNECT') AS public_can_connect
  FROM pg_database WHERE datname = 'tenant_wayne';
SELECT pg_temp.expect(t.state = 'ready' AND t.version = 10
                      AND EXISTS (SELECT FROM pg_database WHERE datname = 'tenant_wayne'),
                      'wayne is ready at version 10 in database tenant_wayne after tenant_wait')
  FROM tenant_mgr.tenants t WHERE t.name = 'wayne';

\echo
\echo 'Customers inserted and rolled back leave no tenant behind: the schema is'
\echo 'rolled back, and the queued job of a database customer vanishes with the'
\echo 'transaction, so the launcher never sees it.'
BEGIN;
INSERT INTO customers (slug, name, isolation)
VALUES ('hooli', 'Hooli', 'schema'),
       ('cyberdyne', 'Cyberdyne Systems', 'database');
SELECT nspname AS inside_the_transaction FROM pg_namespace WHERE nspname = 'tenant_hooli';
SELECT id, tenant, action, state FROM tenant_mgr.jobs WHERE tenant = 'cyberdyne';
ROLLBACK;
SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_hooli') AS schemas,
       (SELECT count(*) FROM pg_database WHERE datname = 'tenant_cyberdyne') AS databases,
       (SELECT count(*) FROM tenant_mgr.jobs WHERE tenant = 'cyberdyne') AS jobs,
       (SELECT count(*) FROM tenant_mgr.tenants WHERE name IN ('hooli', 'cyberdyne')) AS tenants,
       (SELECT count(*) FROM customers WHERE slug IN ('hooli', 'cyberdyne')) AS customers;
SELECT pg_temp.expect(NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'tenant_hooli')
                      AND NOT EXISTS (SELECT FROM tenant_mgr.tenants WHERE name = 'hooli'),
                      'the rollback left neither schema tenant_hooli nor a catalog row');
SELECT pg_temp.expect(NOT EXISTS (SELECT FROM tenant_mgr.jobs WHERE tenant = 'cyberdyne')
                      AND NOT EXISTS (SELECT FROM pg_database WHERE datname = 'tenant_cyberdyne')
                      AND NOT EXISTS (SELECT FROM tenant_mgr.tenants WHERE name = 'cyberdyne'),
                      'the rollback queued no job, created no database tenant_cyberdyne and no catalog row');

\echo
\echo '==> 4b. Rename a customer: UPDATE of slug renames its tenant'
\echo
\echo 'The trigger renames, in the updating transaction, the schema, the owner role'
\echo 'tenant_mgr created for it, their marks and the catalog row (tenant_rename()'
\echo 'does the same by hand).  Migrations and data stay where they are.'
SELECT n.nspname, n.nspowner::regrole AS owner
  FROM pg_namespace n WHERE n.nspname = 'tenant_initech';
UPDATE customers SET slug = 'initech_corp' WHERE slug = 'initech';
SELECT name, isolation, object_name, owner, state, version
  FROM tenant_mgr.tenants WHERE name LIKE 'initech%';
SELECT n.nspname, n.nspowner::regrole AS owner, r.rolcanlogin,
       obj_description(n.oid, 'pg_namespace') AS comment
  FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
 WHERE n.nspname LIKE 'tenant\_initech%'
 ORDER BY 1;
SELECT max(version) AS ledger_version FROM tenant_initech_corp.tenant_mgr_ledger;
SELECT tenant, action, status FROM tenant_mgr.history WHERE action = 'rename';
SELECT pg_temp.expect(NOT EXISTS (SELECT FROM tenant_mgr.tenants WHERE name = 'initech')
                      AND EXISTS (SELECT FROM tenant_mgr.tenants
                                   WHERE name = 'initech_corp' AND object_name = 'tenant_initech_corp'
                                     AND owner = 'tenant_initech_corp' AND state = 'ready'
                                     AND version = 10),
                      'the catalog knows initech_corp (schema and owner tenant_initech_corp), not initech');
SELECT pg_temp.expect(NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'tenant_initech')
                      AND NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenant_initech')
                      AND EXISTS (SELECT FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
                                   WHERE n.nspname = 'tenant_initech_corp'
                                     AND r.rolname = 'tenant_initech_corp' AND NOT r.rolcanlogin),
                      'schema tenant_initech is gone; tenant_initech_corp is owned by the renamed NOLOGIN role');
SELECT pg_temp.expect(count(*) = 1, 'the rename is in the history')
  FROM tenant_mgr.history
 WHERE tenant = 'initech_corp' AND action = 'rename' AND status = 'ok';
SELECT * FROM tenant_mgr.verify();
SELECT pg_temp.expect(count(*) = 0, 'verify() found no problem after the rename') FROM tenant_mgr.verify();

\echo
\echo '==> 5. Every tenant, its version and how many migrations it lacks'
\echo
SELECT name, isolation, object_name, owner, state, version, latest, pending
  FROM tenant_mgr.tenants;

\echo
\echo '==> 6. Work inside one tenant: tenant_use() points search_path at its schema'
\echo
-- for this psql session; behind a connection pooler, call it after BEGIN
-- instead (its default then scopes it to the transaction)
SELECT tenant_mgr.tenant_use('acme', is_local => false);
SHOW search_path;
INSERT INTO accounts (name, plan) VALUES ('ACME Corporation', 'enterprise');
INSERT INTO users (account_id, email, name)
VALUES (1, 'wile@acme.example', 'Wile E. Coyote'),
       (1, 'road.runner@acme.example', 'Road Runner');
SELECT u.id, u.email, u.name, a.name AS account
  FROM users u JOIN accounts a ON a.id = u.account_id
 ORDER BY u.id;
SELECT * FROM settings;
RESET search_path;
SHOW search_path;
\echo 'The rows are in acme only:'
SELECT (SELECT count(*) FROM tenant_acme.users) AS acme_users,
       (SELECT count(*) FROM tenant_globex.users) AS globex_users;

\echo
\echo '==> 7. A new migration (011: users.last_login_at), rolled out to every tenant'
\echo
\echo 'tenant_migrate() starts a fleet run: background executors migrate every tenant,'
\echo 'each migration of each tenant in a transaction of its own (schema tenants shared'
\echo 'among executors, database tenants one executor each); every step gets a row.'
\set m011 `cat :'fixtures'/011_new.sql`
\echo 'Its up SQL is test/fixtures/011_new.sql, read into psql variable m011:'
SELECT tenant_mgr.migration_add(11, 'new', :'m011',
    'DROP INDEX users_last_login_idx; ALTER TABLE users DROP COLUMN last_login_at');
SELECT name, version, latest, pending FROM tenant_mgr.tenants;
SELECT * FROM tenant_mgr.tenant_migrate();
\echo 'The run is recorded: who, the target, and each tenant''s outcome.'
SELECT id, state, requested_by, target, tenants, done, failed, skipped, not_done
  FROM tenant_mgr.runs ORDER BY id DESC LIMIT 1;
SELECT tenant, isolation, status, from_version, to_version, attempts
  FROM tenant_mgr.run_tenants
 WHERE run_id = (SELECT max(id) FROM tenant_mgr.runs) ORDER BY tenant;
SELECT pg_temp.expect(state = 'done' AND failed = 0 AND not_done = 0, 'the run is done, nothing failed')
  FROM tenant_mgr.runs ORDER BY id DESC LIMIT 1;
\echo 'Another session sees a run going on in tenant_mgr.progress; with nothing to do,'
\echo 'tenant_migrate() answers from the catalog and starts nothing:'
SELECT count(*) AS steps FROM tenant_mgr.tenant_migrate();
SELECT count(*) AS runs_going_on FROM tenant_mgr.progress;
SELECT version, name, reversible, applied_to, pending_on
  FROM tenant_mgr.migrations;
SELECT pg_temp.expect(bool_and(version = 11), 'every tenant is at version 11')
  FROM tenant_mgr.tenants;
SELECT pg_temp.expect(count(*) = 2, 'database tenants contoso and wayne are at version 11')
  FROM tenant_mgr.tenants
 WHERE name IN ('contoso', 'wayne') AND isolation = 'database' AND version = 11;
SELECT pg_temp.expect(count(DISTINCT tenant) = 2,
                      'the last tenant_migrate() run applied 011 to contoso and wayne')
  FROM tenant_mgr.history
 WHERE run_id = (SELECT max(run_id) FROM tenant_mgr.history)
   AND tenant IN ('contoso', 'wayne') AND action = 'up' AND version = 11 AND status = 'ok';

\echo
\echo '==> 8. Revert one tenant to version 10 with the down SQL of 011, then bring it forward'
\echo
SELECT * FROM tenant_mgr.tenant_migrate('globex', target => 10);
SELECT name, version, latest, pending FROM tenant_mgr.tenants;
SELECT table_schema AS schemas_with_users_last_login_at
  FROM information_schema.columns
 WHERE table_name = 'users' AND column_name = 'last_login_at'
 ORDER BY 1;
SELECT pg_temp.expect(NOT EXISTS (SELECT FROM information_schema.columns
                                   WHERE table_schema = 'tenant_globex'
                                     AND table_name = 'users'
                                     AND column_name = 'last_login_at'),
                      'globex lost users.last_login_at');
SELECT * FROM tenant_mgr.tenant_migrate('globex');
SELECT name, version, latest, pending FROM tenant_mgr.tenants;

\echo
\echo '==> 9. What tenant_mgr did (latest 15 steps), and a consistency check'
\echo
SELECT id, run_id, tenant, action, version, migration, status, duration
  FROM (SELECT * FROM tenant_mgr.history ORDER BY id DESC LIMIT 15) h
 ORDER BY id;
\echo 'verify() compares the catalog with the schemas, the databases and their ledgers'
\echo '(an executor reads the ledger inside each database tenant); no rows means consistent.'
SELECT * FROM tenant_mgr.verify();
SELECT pg_temp.expect(count(*) = 0, 'verify() found no problem') FROM tenant_mgr.verify();

\echo
\echo '==> 9b. Sign-ups from a warm pool'
\echo
\echo 'With tenant_mgr.pool_schema set, the launcher keeps that many spare schema'
\echo 'tenants built and at the latest migration; tenant_create claims one in the'
\echo 'caller\'s transaction (a rename), and the launcher builds the next.'
ALTER SYSTEM SET tenant_mgr.pool_schema = 2;
SELECT pg_reload_conf();
DO $$
BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN (SELECT count(*) FROM tenant_mgr.pool WHERE state = 'ready' AND version = latest) = 2;
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT object_name, state, version, latest FROM tenant_mgr.pool;
SELECT pg_temp.expect(count(*) = 2, 'two spares are ready')
  FROM tenant_mgr.pool WHERE state = 'ready' AND version = latest;
CREATE TEMP TABLE spares AS SELECT object_oid FROM tenant_mgr.spare;
SELECT name, object_name, version FROM tenant_mgr.tenant_create('hooli');
SELECT pg_temp.expect(object_oid IN (SELECT object_oid FROM spares), 'hooli is a claimed spare')
  FROM tenant_mgr.tenant WHERE name = 'hooli';
SELECT tenant_mgr.tenant_drop('hooli');
\echo 'Setting the pool back to 0 makes the launcher remove the spares.'
ALTER SYSTEM RESET tenant_mgr.pool_schema;
SELECT pg_reload_conf();
DO $$
BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN NOT EXISTS (SELECT FROM tenant_mgr.pool);
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT pg_temp.expect(NOT EXISTS (SELECT FROM tenant_mgr.pool)
                      AND NOT EXISTS (SELECT FROM pg_namespace WHERE nspname LIKE 'tenant\_mgr\_spare\_%'),
                      'the pool is empty');

\echo
\echo '==> 10. Mistakes get clear errors (these two are expected)'
\echo
\set ON_ERROR_STOP 0
SELECT tenant_mgr.tenant_create('Bad Name');
SELECT tenant_mgr.tenant_use('contoso');
\set ON_ERROR_STOP 1

\echo
\echo '==> 11. Drop tenants: through the application table, and by hand'
\echo
\echo 'Deleting customers drops their tenants through the trigger.  The schema of'
\echo 'umbrella and its owner role go with the transaction; the database of wayne is'
\echo 'detached (renamed out of the way, closed to connections) and dropped by the'
\echo 'launcher after COMMIT, with its owner role.'
BEGIN;
DELETE FROM customers WHERE slug IN ('umbrella', 'wayne');
SELECT datname AS tenant_databases_inside_the_transaction FROM pg_database
 WHERE datname LIKE 'tenant\_%' ORDER BY 1;
SELECT id, tenant, action, state FROM tenant_mgr.jobs WHERE tenant = 'wayne';
COMMIT;
SELECT tenant_mgr.tenant_wait('wayne');
SELECT id, tenant, action, state, attempts, duration, sqlstate, message
  FROM tenant_mgr.jobs;
SELECT (SELECT count(*) FROM pg_database
         WHERE datname = 'tenant_wayne' OR datname LIKE 'tenant\_mgr\_drop\_%') AS wayne_databases,
       (SELECT count(*) FROM pg_roles WHERE rolname = 'tenant_wayne') AS wayne_roles,
       (SELECT count(*) FROM tenant_mgr.tenants WHERE name = 'wayne') AS wayne_tenants;
SELECT pg_temp.expect(NOT EXISTS (SELECT FROM pg_database
                                   WHERE datname = 'tenant_wayne'
                                      OR datname LIKE 'tenant\_mgr\_drop\_%')
                      AND NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenant_wayne')
                      AND NOT EXISTS (SELECT FROM tenant_mgr.tenants WHERE name = 'wayne'),
                      'database tenant_wayne and role tenant_wayne are gone');
SELECT pg_temp.expect(state = 'done', 'the drop job of wayne is done')
  FROM tenant_mgr.jobs WHERE tenant = 'wayne' AND action = 'drop';
SELECT tenant_mgr.tenant_drop('acme');
SELECT name, isolation, object_name, version FROM tenant_mgr.tenants;
SELECT nspname AS remaining_schemas, nspowner::regrole AS owner FROM pg_namespace
 WHERE nspname IN ('tenant_acme', 'tenant_globex', 'tenant_initech',
                   'tenant_initech_corp', 'tenant_umbrella')
 ORDER BY 1;
SELECT pg_temp.expect(array_agg(nspname ORDER BY nspname) = '{tenant_globex,tenant_initech_corp}',
                      'schemas tenant_acme and tenant_umbrella are gone')
  FROM pg_namespace
 WHERE nspname IN ('tenant_acme', 'tenant_globex', 'tenant_initech',
                   'tenant_initech_corp', 'tenant_umbrella');
\echo 'Their owner roles went with them:'
SELECT rolname AS remaining_tenant_roles FROM pg_roles
 WHERE rolname LIKE 'tenant\_%' ORDER BY 1;
SELECT pg_temp.expect(array_agg(rolname ORDER BY rolname)
                      = '{tenant_contoso,tenant_globex,tenant_initech_corp}',
                      'roles tenant_acme, tenant_umbrella and tenant_wayne are gone')
  FROM pg_roles WHERE rolname LIKE 'tenant\_%';
\echo 'The database tenant contoso stays; verify() still finds nothing wrong:'
SELECT datname AS remaining_tenant_databases FROM pg_database
 WHERE datname LIKE 'tenant\_%' ORDER BY 1;
SELECT * FROM tenant_mgr.verify();
SELECT pg_temp.expect(count(*) = 0, 'verify() found no problem at the end') FROM tenant_mgr.verify();
