-- Who may do what, and attempts to escalate privileges through tenant_mgr.
-- Each attempt is refused, and no role becomes superuser.
CREATE EXTENSION tenant_mgr;
SELECT tenant_mgr.migration_add(1, 'accounts', 'CREATE TABLE accounts (id int, secret text)');

-- an administrator as the README recommends: EXECUTE on the functions and
-- SELECT on the views; no attribute (CREATEROLE and CREATEDB reach superuser
-- on PostgreSQL 15), no CREATE on the database, nothing on the catalog
CREATE ROLE regress_admin;
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
-- the admin can act as the owners it created, and holds no attribute
SELECT pg_has_role('regress_admin', 'tenant_alpha', 'MEMBER') AS admin_member,
       rolsuper, rolcreaterole, rolcreatedb
  FROM pg_roles WHERE rolname = 'regress_admin';

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
-- operation: they cannot change role, nor make anyone superuser; a plain
-- RESET ROLE or SET SESSION AUTHORIZATION is refused at registration, and
-- what registration cannot see (set_config, dynamic SQL) fails when it runs
SELECT tenant_mgr.migration_add(2, 'reset_role', 'RESET ROLE; ALTER ROLE tenant_alpha SUPERUSER');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(2, 'reset_role', 'SELECT pg_catalog.set_config(''role'', ''none'', false); ALTER ROLE tenant_alpha SUPERUSER');
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
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(2, 'session_auth', 'DO $$BEGIN EXECUTE ''SET SESSION AUTHORIZATION DEFAULT''; END$$');
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

-- 7. an owner chosen at creation may be anyone: an administrator cannot
-- choose one it cannot act as, nor have SQL run as it through a migration;
-- it may still drop the tenant, which tenant_mgr made (EXECUTE on
-- tenant_drop is the right to drop tenant_mgr's tenants, and nothing else)
CREATE ROLE regress_other_owner;
SELECT name, owner FROM tenant_mgr.tenant_create('foreign', owner => 'regress_other_owner');
SET ROLE regress_admin;
SELECT tenant_mgr.tenant_create('mine', owner => 'regress_other_owner');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM tenant_mgr.tenant_migrate('foreign');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_drop('foreign');
RESET ROLE;
SELECT count(*) AS foreign_schema FROM pg_namespace WHERE nspname = 'tenant_foreign';
SELECT count(*) AS other_owner_kept FROM pg_roles WHERE rolname = 'regress_other_owner';

-- 8. database tenants: no tenant's role may connect to another's database
SELECT name FROM tenant_mgr.tenant_create('dbone', 'database');
SELECT name FROM tenant_mgr.tenant_create('dbtwo', 'database');
SELECT has_database_privilege('tenant_dbone', 'tenant_dbtwo', 'CONNECT') AS one_connects_two,
       has_database_privilege('public', 'tenant_dbone', 'CONNECT') AS public_connects_one,
       (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'tenant_dbone') AS owner_can_login;

-- 9. queued work is checked again when it runs: a requester that lost
-- EXECUTE on tenant_create before the launcher got to its job gets nothing
CREATE ROLE regress_creator;
GRANT USAGE ON SCHEMA tenant_mgr TO regress_creator;
GRANT EXECUTE ON FUNCTION tenant_mgr.tenant_create(text, text, name, jsonb, boolean) TO regress_creator;
BEGIN;
SET LOCAL ROLE regress_creator;
SELECT name, state FROM tenant_mgr.tenant_create('revoked', 'database', wait => false);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION tenant_mgr.tenant_create(text, text, name, jsonb, boolean) FROM regress_creator;
COMMIT;
SELECT tenant_mgr.tenant_wait('revoked', '2 minutes') AS succeeded;
SELECT tenant, action, state, sqlstate, message FROM tenant_mgr.jobs WHERE tenant = 'revoked';
SELECT name, state, last_error FROM tenant_mgr.tenants WHERE name = 'revoked';
SELECT count(*) AS revoked_databases FROM pg_database WHERE datname = 'tenant_revoked';
SELECT count(*) AS revoked_roles FROM pg_roles WHERE rolname = 'tenant_revoked';

-- 10. the recommended roles try to reach superuser by themselves: the
-- administrator, a provisioning definer (EXECUTE on tenant_create and
-- tenant_drop), an application role (INSERT on its table) and a tenant's
-- login role.  Each attempt fails with 42501.
CREATE ROLE regress_definer;
GRANT EXECUTE ON FUNCTION tenant_mgr.tenant_create(text, text, name, jsonb, boolean),
                          tenant_mgr.tenant_drop(text, boolean, boolean) TO regress_definer;
CREATE ROLE regress_app;
SELECT tenant_mgr.tenant_login_role('alpha') AS login;
CREATE FUNCTION pg_temp.regress_try(who text) RETURNS TABLE (attempt text, code text)
LANGUAGE plpgsql AS $$
DECLARE
    stmt text;
BEGIN
    FOREACH stmt IN ARRAY ARRAY[
        format('ALTER ROLE %I SUPERUSER', who),
        format('GRANT pg_execute_server_program TO %I', who),
        format('GRANT pg_read_server_files, pg_write_server_files TO %I', who),
        format('ALTER ROLE %I CREATEROLE', who),
        'CREATE ROLE regress_evil SUPERUSER',
        'CREATE ROLE regress_evil',
        'COPY (SELECT 1) TO PROGRAM ''true''',
        format('GRANT tenant_beta TO %I', who)]
    LOOP
        BEGIN
            EXECUTE format('SET LOCAL ROLE %I', who);
            EXECUTE stmt;
            attempt := stmt; code := '00000';
        EXCEPTION WHEN OTHERS THEN
            attempt := stmt; code := SQLSTATE;
        END;
        RESET ROLE;
        RETURN NEXT;
    END LOOP;
END $$;
BEGIN;
SELECT who, t.attempt, t.code
  FROM unnest(ARRAY['regress_admin', 'regress_definer', 'regress_app', 'tenant_alpha_login']) who,
       LATERAL pg_temp.regress_try(who) t
 ORDER BY who, t.attempt;
ROLLBACK;

-- 11. tenant_create(..., grant_to => role) gives the application's role the
-- new tenant and no other.  The caller must be able to act as grant_to; a
-- superuser, a tenant's role, or a role with one among its members is
-- refused (a tenant would reach another), and a refusal changes nothing
CREATE ROLE regress_webapp;
GRANT regress_webapp TO regress_admin;
SET ROLE regress_admin;
SELECT name, owner, version FROM tenant_mgr.tenant_create('epsilon', grant_to => 'regress_webapp');
RESET ROLE;
SET ROLE regress_webapp;
INSERT INTO tenant_epsilon.accounts VALUES (1, 'epsilon only');
SELECT * FROM tenant_epsilon.accounts;
SELECT secret FROM tenant_alpha.accounts;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT t.name, pg_has_role('regress_webapp', t.owner, 'MEMBER') AS webapp_member
  FROM tenant_mgr.tenant t WHERE t.state = 'ready' ORDER BY 1;
-- a role the caller cannot act as
SET ROLE regress_admin;
SELECT tenant_mgr.tenant_create('zeta', grant_to => 'regress_app');
\echo :LAST_ERROR_SQLSTATE
-- a tenant's owner role (the administrator can act as it)
SELECT tenant_mgr.tenant_create('zeta', grant_to => 'tenant_alpha');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- a tenant's login role, a role a tenant's owner is a member of, a superuser
SELECT tenant_mgr.tenant_create('zeta', grant_to => 'tenant_alpha_login');
\echo :LAST_ERROR_SQLSTATE
CREATE ROLE regress_group;
GRANT regress_group TO tenant_beta;
SELECT tenant_mgr.tenant_create('zeta', grant_to => 'regress_group');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('zeta', grant_to => current_user::regrole);
\echo :LAST_ERROR_SQLSTATE
-- no such role, NULL, an owner chosen with owner =>
SELECT tenant_mgr.tenant_create('zeta', grant_to => 'regress_no_such_role');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('zeta', grant_to => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('zeta', grant_to => 'regress_webapp', owner => 'regress_other_owner');
\echo :LAST_ERROR_SQLSTATE
SELECT (SELECT count(*) FROM tenant_mgr.tenant WHERE name = 'zeta') AS zeta_rows,
       (SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_zeta') AS zeta_schemas,
       (SELECT count(*) FROM pg_roles WHERE rolname = 'tenant_zeta') AS zeta_roles;
-- the caller needs EXECUTE on the plain tenant_create too: queued work
-- re-checks that one
GRANT USAGE ON SCHEMA tenant_mgr TO regress_webapp;
GRANT EXECUTE ON FUNCTION tenant_mgr.tenant_create(text, regrole, text, name, jsonb, boolean)
   TO regress_webapp;
SET ROLE regress_webapp;
SELECT tenant_mgr.tenant_create('zeta', grant_to => 'regress_webapp');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
REVOKE ALL ON FUNCTION tenant_mgr.tenant_create(text, regrole, text, name, jsonb, boolean)
  FROM regress_webapp;
REVOKE USAGE ON SCHEMA tenant_mgr FROM regress_webapp;
-- calls without grant_to still mean the plain tenant_create
SELECT name, isolation FROM tenant_mgr.tenant_create('eta', 'schema');
SELECT tenant_mgr.tenant_drop('eta');
-- a queued database tenant carries the grant to the launcher
SELECT name, state FROM tenant_mgr.tenant_create('dbthree', grant_to => 'regress_webapp',
                                                 isolation => 'database', wait => false);
SELECT tenant_mgr.tenant_wait('dbthree', '2 minutes') AS succeeded;
SELECT pg_has_role('regress_webapp', 'tenant_dbthree', 'MEMBER') AS webapp_member,
       has_database_privilege('regress_webapp', 'tenant_dbthree', 'CONNECT') AS webapp_connects,
       has_database_privilege('regress_webapp', 'tenant_dbone', 'CONNECT') AS webapp_connects_other;

-- nothing above made anyone a superuser
SELECT rolname, rolsuper, rolcreaterole, rolcreatedb,
       pg_has_role(oid, 'pg_execute_server_program', 'MEMBER') AS server_program
  FROM pg_roles
 WHERE rolname IN ('regress_admin', 'regress_nobody', 'regress_other_owner', 'regress_creator',
                   'regress_definer', 'regress_app', 'tenant_alpha', 'tenant_alpha_login',
                   'tenant_beta', 'tenant_dbone', 'tenant_dbtwo')
 ORDER BY 1;
SELECT count(*) AS evil_roles FROM pg_roles WHERE rolname = 'regress_evil';
SELECT * FROM tenant_mgr.verify();

-- clean up
SELECT count(*) AS dropped FROM tenant_mgr.tenants t, LATERAL tenant_mgr.tenant_drop(t.name) d;
SELECT bool_and(tenant_mgr.tenant_wait(n, '2 minutes')) AS drops_done
  FROM unnest(ARRAY['dbone', 'dbtwo', 'dbthree']) n;
DROP SCHEMA regress_evil CASCADE;
DROP EXTENSION tenant_mgr;
DROP OWNED BY regress_admin, regress_nobody, regress_other_owner, regress_creator,
              regress_definer, regress_app, regress_webapp, regress_group;
DROP ROLE regress_admin, regress_nobody, regress_other_owner, regress_creator,
          regress_definer, regress_app, regress_webapp, regress_group;
SELECT count(*) AS tenant_roles_left FROM pg_roles WHERE rolname LIKE 'tenant\_%';
