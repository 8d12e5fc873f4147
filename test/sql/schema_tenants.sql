-- Schema tenants: schema, ledger, every migration and the catalog row, all
-- in the caller's transaction.

SELECT name, isolation, object_name, state, version, last_error, metadata
  FROM tenant_mgr.tenant_create('acme', metadata => '{"plan": "pro"}');
-- its own NOLOGIN owner role, marked like the schema
SELECT n.nspname, n.nspowner::regrole AS owner, r.rolcanlogin, r.rolsuper,
       obj_description(n.oid, 'pg_namespace') AS comment,
       shobj_description(r.oid, 'pg_authid') AS role_comment
  FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
 WHERE nspname = 'tenant_acme';
SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'tenant_acme';
SELECT has_schema_privilege('public', 'tenant_acme', 'USAGE') AS public_usage;
-- the marker: the catalog records the OID of the schema it created
SELECT t.object_oid = 'tenant_acme'::regnamespace::oid AS marker_matches
  FROM tenant_mgr.tenant t WHERE name = 'acme';
-- the ledger records every migration with its checksum
SELECT l.version, l.name, l.checksum = m.checksum AS checksum_ok, l.duration IS NOT NULL AS timed
  FROM tenant_acme.tenant_mgr_ledger l JOIN tenant_mgr.migration m USING (version)
 ORDER BY l.version;
SELECT relname FROM pg_class
 WHERE relnamespace = 'tenant_acme'::regnamespace AND relkind = 'r' ORDER BY 1;
SELECT key, value FROM tenant_acme.settings ORDER BY key;
SELECT name, version, latest, pending, state FROM tenant_mgr.tenants;
SELECT tenant, action, version, migration, status FROM tenant_mgr.history ORDER BY id;

-- a rollback leaves nothing: no schema, no catalog row, no event
BEGIN;
SELECT name, version FROM tenant_mgr.tenant_create('rolled_back');
SELECT count(*) AS schemas_inside FROM pg_namespace WHERE nspname = 'tenant_rolled_back';
ROLLBACK;
SELECT count(*) AS schemas_after FROM pg_namespace WHERE nspname = 'tenant_rolled_back';
SELECT count(*) AS catalog_rows FROM tenant_mgr.tenant WHERE name = 'rolled_back';
SELECT count(*) AS events FROM tenant_mgr.event WHERE tenant = 'rolled_back';

-- the same inside a savepoint of a larger transaction
BEGIN;
SAVEPOINT before_create;
SELECT name FROM tenant_mgr.tenant_create('undone');
ROLLBACK TO SAVEPOINT before_create;
SELECT name FROM tenant_mgr.tenant_create('kept');
COMMIT;
SELECT name FROM tenant_mgr.tenant WHERE name IN ('undone', 'kept');
SELECT tenant_mgr.tenant_drop('kept');

-- another owner: everything in the schema belongs to it, and the migrations
-- ran as that role
CREATE ROLE regress_tm_owner NOLOGIN;
SELECT name, owner, version FROM tenant_mgr.tenant_create('owned', owner => 'regress_tm_owner');
SELECT nspowner::regrole AS schema_owner FROM pg_namespace WHERE nspname = 'tenant_owned';
SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'tenant_owned';
SELECT DISTINCT applied_by FROM tenant_owned.tenant_mgr_ledger;

-- a migration cannot change its role: SET ROLE and SET SESSION
-- AUTHORIZATION are refused at registration, and what registration cannot
-- see fails as it runs, in a security-restricted operation; the tenant stays
-- where it was
SELECT tenant_mgr.migration_add(12, 'escape', 'SET ROLE NONE');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(12, 'escape', 'SELECT set_config(''role'', ''none'', false)');
SELECT * FROM tenant_mgr.tenant_migrate('owned');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(12, 'escape', 'SET SESSION AUTHORIZATION DEFAULT');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_remove(12);
SELECT tenant_mgr.migration_add(12, 'escape', 'DO $$BEGIN EXECUTE ''SET SESSION AUTHORIZATION DEFAULT''; END$$');
SELECT * FROM tenant_mgr.tenant_migrate('owned');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_remove(12);
SELECT max(version) AS ledger_version FROM tenant_owned.tenant_mgr_ledger;
SELECT current_user = session_user AS role_unchanged;

-- tenant_rename: schema, owner role, marks and catalog row follow
SELECT name, object_name, owner, version FROM tenant_mgr.tenant_rename('acme', 'acme_co');
SELECT nspname, nspowner::regrole AS owner, obj_description(oid, 'pg_namespace') AS comment
  FROM pg_namespace WHERE nspname LIKE 'tenant_acme%';
SELECT count(*) AS old_role FROM pg_roles WHERE rolname = 'tenant_acme';
SELECT tenant, action, sqlstate, message FROM tenant_mgr.history WHERE action = 'rename';
SELECT tenant_mgr.tenant_rename('acme_co', 'owned');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_rename('acme_co', 'Acme');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_rename('nobody', 'somebody');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_rename('acme_co', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT name FROM tenant_mgr.tenant_rename('acme_co', 'acme');
SELECT * FROM tenant_mgr.verify();

-- tenant_use points the search_path at the tenant, then the shared schemas:
-- by default for the transaction only (safe behind a pooler), so outside a
-- transaction block it refuses, changing nothing
SELECT tenant_mgr.tenant_use('acme');
\echo :LAST_ERROR_SQLSTATE
SHOW search_path;
BEGIN;
SELECT tenant_mgr.tenant_use('acme');
INSERT INTO accounts (name) VALUES ('first customer');
COMMIT;
SHOW search_path;
SELECT count(*) AS acme_accounts FROM tenant_acme.accounts;
-- for the whole session only when asked
SET tenant_mgr.shared_schemas = 'public, "Shared Stuff"';
SELECT tenant_mgr.tenant_use('acme', is_local => false);
BEGIN;
SELECT tenant_mgr.tenant_use('owned');
COMMIT;
SHOW search_path;
RESET tenant_mgr.shared_schemas;
RESET search_path;
-- a tenant's search_path never leaks out of the call that migrated it
SHOW search_path;
