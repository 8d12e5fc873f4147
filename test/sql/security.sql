-- Who may do what, and attempts to escalate privileges through tenant_mgr.
-- Each attempt is refused, and no role becomes superuser.
CREATE EXTENSION tenant_mgr;
SELECT tenant_mgr.migration_add(1, 'accounts', 'CREATE TABLE accounts (id int, secret text)');

-- an administrator that is not a superuser: EXECUTE on the functions, the
-- right to create roles (owner roles) and schemas, nothing on the catalog
CREATE ROLE regress_admin CREATEROLE;
SELECT format('GRANT CREATE ON DATABASE %I TO regress_admin', current_database()) \gexec
GRANT USAGE ON SCHEMA tenant_mgr TO regress_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tenant_mgr TO regress_admin;
GRANT SELECT ON tenant_mgr.tenants, tenant_mgr.history, tenant_mgr.jobs TO regress_admin;
-- a role with no grants at all
CREATE ROLE regress_nobody;

SET ROLE regress_admin;
SELECT name, owner, version FROM tenant_mgr.tenant_create('alpha');
SELECT name, owner, version FROM tenant_mgr.tenant_create('beta');
INSERT INTO tenant_alpha.accounts VALUES (1, 'alpha only');
RESET ROLE;
-- the admin can act as the owners it created, and is not a superuser
SELECT pg_has_role('regress_admin', 'tenant_alpha', 'MEMBER') AS admin_member,
       (SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_admin') AS admin_super;

-- 1. the catalog and the queue are not writable directly
SET ROLE regress_admin;
INSERT INTO tenant_mgr.job (tenant, action, object_name, owner) VALUES ('x', 'create', 'tenant_x', 'postgres');
\echo :LAST_ERROR_SQLSTATE
UPDATE tenant_mgr.tenant SET owner = 'postgres';
\echo :LAST_ERROR_SQLSTATE
INSERT INTO tenant_mgr.migration (version, name, up_sql, checksum) VALUES (99, 'evil', 'ALTER ROLE regress_admin SUPERUSER', 'x');
\echo :LAST_ERROR_SQLSTATE
DELETE FROM tenant_mgr.event;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- 2. a hostile search_path: functions and operators planted ahead of
-- pg_catalog, which tenant_mgr's catalog statements (run as the catalog's
-- owner) must never pick
CREATE SCHEMA regress_evil AUTHORIZATION regress_admin;
SET ROLE regress_admin;
CREATE FUNCTION regress_evil.now() RETURNS timestamptz LANGUAGE plpgsql AS
  $$ BEGIN EXECUTE 'ALTER ROLE regress_admin SUPERUSER'; RETURN pg_catalog.now(); END $$;
CREATE FUNCTION regress_evil.texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN EXECUTE 'ALTER ROLE regress_admin SUPERUSER'; RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR regress_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_evil.texteq);
CREATE FUNCTION regress_evil.count(anyelement) RETURNS bigint LANGUAGE sql AS 'SELECT 1::bigint';
SET search_path = regress_evil, pg_catalog;
SELECT name FROM tenant_mgr.tenant_create('gamma');
SELECT count(*) AS steps FROM tenant_mgr.tenant_migrate();
SELECT tenant_mgr.tenant_drop('gamma');
RESET search_path;
RESET ROLE;
SELECT rolname, rolsuper FROM pg_roles WHERE rolname = 'regress_admin';

-- 3. functions planted in pg_temp are never called implicitly either
SET ROLE regress_admin;
CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE plpgsql AS
  $$ BEGIN EXECUTE 'ALTER ROLE regress_admin SUPERUSER'; RETURN pg_catalog.now(); END $$;
SELECT name FROM tenant_mgr.tenant_create('delta');
SELECT tenant_mgr.tenant_drop('delta');
RESET ROLE;
SELECT rolname, rolsuper FROM pg_roles WHERE rolname = 'regress_admin';

-- 4. migrations run as the tenant's owner in a security-restricted
-- operation: they cannot change role, nor make anyone superuser
SELECT tenant_mgr.migration_add(2, 'reset_role', 'RESET ROLE; ALTER ROLE tenant_alpha SUPERUSER');
SET ROLE regress_admin;
SELECT * FROM tenant_mgr.tenant_migrate('alpha');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT tenant_mgr.migration_remove(2);
SELECT tenant_mgr.migration_add(2, 'become_super', 'ALTER ROLE tenant_alpha SUPERUSER');
SET ROLE regress_admin;
SELECT * FROM tenant_mgr.tenant_migrate('alpha');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT tenant_mgr.migration_remove(2);
SELECT tenant_mgr.migration_add(2, 'session_auth', 'SET SESSION AUTHORIZATION DEFAULT');
SET ROLE regress_admin;
SELECT * FROM tenant_mgr.tenant_migrate('alpha');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT tenant_mgr.migration_remove(2);
SELECT rolname, rolsuper FROM pg_roles WHERE rolname IN ('tenant_alpha', 'regress_admin') ORDER BY 1;

-- 5. tenant A's owner cannot see, read, alter or drop tenant B
SET ROLE tenant_alpha;
SELECT count(*) FROM tenant_beta.accounts;
\echo :LAST_ERROR_SQLSTATE
ALTER TABLE tenant_beta.accounts ADD COLUMN x int;
\echo :LAST_ERROR_SQLSTATE
DROP SCHEMA tenant_beta CASCADE;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE tenant_beta;
SELECT secret FROM tenant_alpha.accounts;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT has_schema_privilege('tenant_alpha', 'tenant_beta', 'USAGE') AS alpha_sees_beta,
       has_schema_privilege('public', 'tenant_alpha', 'USAGE') AS public_sees_alpha;

-- 6. a role without grants can call nothing that changes tenants
SET ROLE regress_nobody;
SELECT tenant_mgr.tenant_drop('alpha');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM tenant_mgr.tenants;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT USAGE ON SCHEMA tenant_mgr TO regress_nobody;
SET ROLE regress_nobody;
SELECT tenant_mgr.tenant_drop('alpha');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('sneaky');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(5, 'x', 'SELECT 1');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
REVOKE USAGE ON SCHEMA tenant_mgr FROM regress_nobody;

-- 7. an administrator cannot drop a tenant whose owner it cannot act as
CREATE ROLE regress_other_owner;
SELECT name, owner FROM tenant_mgr.tenant_create('foreign', owner => 'regress_other_owner');
SET ROLE regress_admin;
SELECT tenant_mgr.tenant_drop('foreign');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('mine', owner => 'regress_other_owner');
\echo :LAST_ERROR_SQLSTATE
-- nor have SQL run as that owner through a migration
SELECT * FROM tenant_mgr.tenant_migrate('foreign');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS foreign_schema FROM pg_namespace WHERE nspname = 'tenant_foreign';

-- 8. database tenants: no tenant's role may connect to another's database
SELECT name FROM tenant_mgr.tenant_create('dbone', 'database');
SELECT name FROM tenant_mgr.tenant_create('dbtwo', 'database');
SELECT has_database_privilege('tenant_dbone', 'tenant_dbtwo', 'CONNECT') AS one_connects_two,
       has_database_privilege('public', 'tenant_dbone', 'CONNECT') AS public_connects_one,
       (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'tenant_dbone') AS owner_can_login;

-- 9. queued work is checked again when it runs: a requester that lost
-- CREATEDB before the launcher got to its job gets nothing
CREATE ROLE regress_creator CREATEDB CREATEROLE;
GRANT USAGE ON SCHEMA tenant_mgr TO regress_creator;
GRANT EXECUTE ON FUNCTION tenant_mgr.tenant_create(text, text, name, jsonb, boolean) TO regress_creator;
BEGIN;
SET LOCAL ROLE regress_creator;
SELECT name, state FROM tenant_mgr.tenant_create('revoked', 'database', wait => false);
RESET ROLE;
ALTER ROLE regress_creator NOCREATEDB;
COMMIT;
SELECT tenant_mgr.tenant_wait('revoked', '2 minutes') AS succeeded;
SELECT tenant, action, state, sqlstate, message FROM tenant_mgr.jobs WHERE tenant = 'revoked';
SELECT name, state, last_error FROM tenant_mgr.tenants WHERE name = 'revoked';
SELECT count(*) AS revoked_databases FROM pg_database WHERE datname = 'tenant_revoked';

-- nothing above made anyone a superuser
SELECT rolname, rolsuper FROM pg_roles
 WHERE rolname IN ('regress_admin', 'regress_nobody', 'regress_other_owner', 'regress_creator',
                   'tenant_alpha', 'tenant_beta', 'tenant_dbone', 'tenant_dbtwo')
 ORDER BY 1;
SELECT * FROM tenant_mgr.verify();

-- clean up
SELECT count(*) AS dropped FROM tenant_mgr.tenants t, LATERAL tenant_mgr.tenant_drop(t.name) d;
SELECT bool_and(tenant_mgr.tenant_wait(n, '2 minutes')) AS drops_done
  FROM unnest(ARRAY['dbone', 'dbtwo']) n;
DROP SCHEMA regress_evil CASCADE;
SELECT format('REVOKE CREATE ON DATABASE %I FROM regress_admin', current_database()) \gexec
DROP EXTENSION tenant_mgr;
DROP OWNED BY regress_admin, regress_nobody, regress_other_owner, regress_creator;
DROP ROLE regress_admin, regress_nobody, regress_other_owner, regress_creator;
SELECT count(*) AS tenant_roles_left FROM pg_roles WHERE rolname LIKE 'tenant\_%';
