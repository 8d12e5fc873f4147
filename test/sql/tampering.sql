-- A tenant's own roles own its ledger, and may alter or replace it.  Nothing
-- they do to it makes tenant_mgr run their code with more than the tenant
-- owner's rights: a ledger that is not the table tenant_mgr made is reported
-- as tampered and the tenant skipped; the others go on.  Every attempt below
-- tries to make the tenant's login role a superuser.
CREATE EXTENSION tenant_mgr;
SELECT tenant_mgr.migration_add(1, 'accounts', 'CREATE TABLE accounts (id int, secret text)');

-- an administrator that is not a superuser, as in the security test
CREATE ROLE regress_admin;
GRANT USAGE ON SCHEMA tenant_mgr TO regress_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tenant_mgr TO regress_admin;

SET ROLE regress_admin;
SELECT name FROM unnest(ARRAY['victim', 'bystander']) n, LATERAL tenant_mgr.tenant_create(n);
SELECT tenant_mgr.tenant_login_role('victim') AS attacker;
RESET ROLE;
-- the application may call tenant_use()
GRANT USAGE ON SCHEMA tenant_mgr TO tenant_victim_login;
GRANT EXECUTE ON FUNCTION tenant_mgr.tenant_use(text, boolean) TO tenant_victim_login;

-- the attacker's code: when it runs as a superuser, it makes its own role one
SET ROLE tenant_victim_login;
CREATE FUNCTION tenant_victim.escalate() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE tenant_victim_login SUPERUSER';
    END IF;
    RETURN true;
END $$;
CREATE FUNCTION tenant_victim.escalate_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tenant_victim.escalate();
    RETURN NEW;
END $$;
CREATE FUNCTION tenant_victim.escalate_int(bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM tenant_victim.escalate();
    RETURN $1;
END $$;
RESET ROLE;

-- what each attempt is judged by: no role but the bootstrap superuser has
-- superuser or the server-access roles, and what verify() says
CREATE VIEW regress_escalated AS
SELECT r.rolname
  FROM pg_roles r
 WHERE r.oid <> 10 AND r.rolname !~ '^pg_'
   AND (r.rolsuper
        OR pg_has_role(r.oid, 'pg_execute_server_program', 'MEMBER')
        OR pg_has_role(r.oid, 'pg_read_server_files', 'MEMBER')
        OR pg_has_role(r.oid, 'pg_write_server_files', 'MEMBER'))
 ORDER BY 1;
-- a migration to roll out after each attempt
CREATE FUNCTION regress_next_migration() RETURNS bigint LANGUAGE sql AS $$
    SELECT v FROM (SELECT coalesce(max(version), 0) + 1 AS v FROM tenant_mgr.migration) m,
           LATERAL tenant_mgr.migration_add(v, 'step_' || v, format('CREATE TABLE t%s (id int)', v)) a
$$;

-- 1. the ledger replaced by a view whose WHERE calls the attacker's code
SET ROLE tenant_victim_login;
ALTER TABLE tenant_victim.tenant_mgr_ledger RENAME TO real_ledger;
CREATE VIEW tenant_victim.tenant_mgr_ledger AS
    SELECT * FROM tenant_victim.real_ledger WHERE tenant_victim.escalate();
RESET ROLE;
SELECT * FROM tenant_mgr.verify();
SELECT regress_next_migration() AS registered;
SELECT tenant, version, status, sqlstate, message FROM tenant_mgr.tenant_migrate() ORDER BY tenant;
SELECT * FROM tenant_mgr.tenant_migrate('victim');
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_admin;
SELECT * FROM tenant_mgr.verify();
SELECT * FROM tenant_mgr.tenant_migrate('victim');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT * FROM regress_escalated;
-- the tenant is untouched: no migration ran in it
SELECT count(*) AS victim_tables FROM pg_tables WHERE schemaname = 'tenant_victim';
SET ROLE tenant_victim_login;
DROP VIEW tenant_victim.tenant_mgr_ledger;
ALTER TABLE tenant_victim.real_ledger RENAME TO tenant_mgr_ledger;
RESET ROLE;
SELECT tenant, version, status FROM tenant_mgr.tenant_migrate() ORDER BY tenant;
SELECT * FROM tenant_mgr.verify();

-- 2. a trigger on the ledger
SET ROLE tenant_victim_login;
CREATE TRIGGER escalate BEFORE INSERT ON tenant_victim.tenant_mgr_ledger
    FOR EACH ROW EXECUTE FUNCTION tenant_victim.escalate_trigger();
RESET ROLE;
SELECT regress_next_migration() AS registered;
SELECT tenant, version, status, sqlstate, message FROM tenant_mgr.tenant_migrate() ORDER BY tenant;
SELECT * FROM tenant_mgr.verify();
SELECT * FROM regress_escalated;
SET ROLE tenant_victim_login;
DROP TRIGGER escalate ON tenant_victim.tenant_mgr_ledger;
RESET ROLE;

-- 3. a rule on the ledger
SET ROLE tenant_victim_login;
CREATE RULE escalate AS ON INSERT TO tenant_victim.tenant_mgr_ledger
    DO ALSO SELECT tenant_victim.escalate();
RESET ROLE;
SELECT tenant, version, status, sqlstate FROM tenant_mgr.tenant_migrate() ORDER BY tenant;
SELECT * FROM tenant_mgr.verify();
SELECT * FROM regress_escalated;
SET ROLE tenant_victim_login;
DROP RULE escalate ON tenant_victim.tenant_mgr_ledger;
RESET ROLE;

-- 4. a row-level security policy
SET ROLE tenant_victim_login;
ALTER TABLE tenant_victim.tenant_mgr_ledger ENABLE ROW LEVEL SECURITY;
CREATE POLICY escalate ON tenant_victim.tenant_mgr_ledger USING (tenant_victim.escalate());
RESET ROLE;
SELECT tenant, version, status, sqlstate FROM tenant_mgr.tenant_migrate() ORDER BY tenant;
SELECT * FROM tenant_mgr.verify();
SELECT * FROM regress_escalated;
SET ROLE tenant_victim_login;
DROP POLICY escalate ON tenant_victim.tenant_mgr_ledger;
ALTER TABLE tenant_victim.tenant_mgr_ledger DISABLE ROW LEVEL SECURITY;
RESET ROLE;

-- 5. an expression index
SET ROLE tenant_victim_login;
CREATE INDEX escalate ON tenant_victim.tenant_mgr_ledger (tenant_victim.escalate_int(version));
RESET ROLE;
SELECT tenant, version, status, sqlstate FROM tenant_mgr.tenant_migrate() ORDER BY tenant;
SELECT * FROM tenant_mgr.verify();
SELECT * FROM regress_escalated;
SET ROLE tenant_victim_login;
DROP INDEX tenant_victim.escalate;
RESET ROLE;

-- 6. a column default calling the attacker's code: the shape is tenant_mgr's,
-- so the ledger row is written, but as the tenant's owner in a
-- security-restricted operation, where the code gains nothing
SET ROLE tenant_victim_login;
ALTER TABLE tenant_victim.tenant_mgr_ledger
    ALTER applied_by SET DEFAULT CASE WHEN tenant_victim.escalate() THEN current_user END;
RESET ROLE;
SELECT tenant, version, status, sqlstate FROM tenant_mgr.tenant_migrate() ORDER BY tenant;
SELECT * FROM tenant_mgr.verify();
SELECT * FROM regress_escalated;
SET ROLE tenant_victim_login;
ALTER TABLE tenant_victim.tenant_mgr_ledger ALTER applied_by SET DEFAULT current_user;
RESET ROLE;

-- 7. the version column's type changed: verify() reports that tenant and
-- goes on with the others (it used to fail for everyone)
SET ROLE tenant_victim_login;
ALTER TABLE tenant_victim.tenant_mgr_ledger ALTER version TYPE numeric;
RESET ROLE;
SELECT * FROM tenant_mgr.verify();
SELECT tenant, version, status, sqlstate FROM tenant_mgr.tenant_migrate() ORDER BY tenant;
SET ROLE tenant_victim_login;
ALTER TABLE tenant_victim.tenant_mgr_ledger ALTER version TYPE bigint;
RESET ROLE;
SELECT * FROM tenant_mgr.verify();

-- 8. the ledger owned by someone else than the tenant's owner
ALTER TABLE tenant_victim.tenant_mgr_ledger OWNER TO regress_admin;
SELECT * FROM tenant_mgr.verify();
ALTER TABLE tenant_victim.tenant_mgr_ledger OWNER TO tenant_victim;

-- 9. a child table: its rows would be read with the ledger's
SET ROLE tenant_victim_login;
CREATE TABLE tenant_victim.extra () INHERITS (tenant_victim.tenant_mgr_ledger);
RESET ROLE;
SELECT * FROM tenant_mgr.verify();
SET ROLE tenant_victim_login;
DROP TABLE tenant_victim.extra;
RESET ROLE;

-- 10. a caller's temporary table named like the ledger receives nothing:
-- every ledger statement is schema-qualified
SELECT regress_next_migration() AS registered;
SET ROLE regress_admin;
CREATE TEMP TABLE tenant_mgr_ledger (version bigint, name text, checksum text,
    applied_at timestamptz DEFAULT now(), applied_by name DEFAULT current_user, duration interval);
SET search_path = pg_temp, public;
SELECT tenant, version, status FROM tenant_mgr.tenant_migrate('victim');
SELECT count(*) AS temp_rows FROM pg_temp.tenant_mgr_ledger;
RESET search_path;
DROP TABLE pg_temp.tenant_mgr_ledger;
RESET ROLE;
SELECT max(version) AS victim_ledger FROM tenant_victim.tenant_mgr_ledger;
SELECT tenant, version, status FROM tenant_mgr.tenant_migrate() ORDER BY tenant;
SELECT * FROM tenant_mgr.verify();

-- 11. a login role only for a tenant with an owner role of its own: a
-- member of a shared owner would reach every tenant of that owner
CREATE ROLE regress_shared_owner;
GRANT regress_shared_owner TO regress_admin;
SET ROLE regress_admin;
SELECT name, owner FROM tenant_mgr.tenant_create('shared_one', owner => 'regress_shared_owner');
SELECT name, owner FROM tenant_mgr.tenant_create('shared_two', owner => 'regress_shared_owner');
SELECT tenant_mgr.tenant_login_role('shared_one');
\echo :LAST_ERROR_SQLSTATE
SELECT name, owner FROM tenant_mgr.tenant_create('admin_owned', owner => 'regress_admin');
SELECT tenant_mgr.tenant_login_role('admin_owned');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS shared_logins FROM pg_roles
 WHERE rolname IN ('tenant_shared_one_login', 'tenant_admin_owned_login');

-- 12. tenant_use() for a tenant the caller cannot use: refused up front
SET ROLE tenant_victim_login;
SELECT tenant_mgr.tenant_use('bystander');
\echo :LAST_ERROR_SQLSTATE
SHOW search_path;
BEGIN;
SELECT tenant_mgr.tenant_use('victim') IS NOT NULL AS own_tenant;
COMMIT;
RESET ROLE;

REVOKE USAGE ON SCHEMA tenant_mgr FROM tenant_victim_login;
REVOKE EXECUTE ON FUNCTION tenant_mgr.tenant_use(text, boolean) FROM tenant_victim_login;

-- 13. identity is tenant_mgr's security label, which no tenant role can set,
-- move or remove; a forged comment makes nothing a tenant's
SELECT n.nspname, l.provider,
       l.label ~ '^tenant victim [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}( [0-9]+)?$' AS labelled,
       split_part(l.label, ' ', 3) = (SELECT tenant_id::text FROM tenant_mgr.tenant WHERE name = 'victim') AS same_id
  FROM pg_seclabel l JOIN pg_namespace n ON n.oid = l.objoid
 WHERE l.classoid = 'pg_namespace'::regclass AND n.nspname = 'tenant_victim';
SELECT r.rolname, split_part(s.label, ' ', 1) AS kind
  FROM pg_shseclabel s JOIN pg_roles r ON r.oid = s.objoid
 WHERE s.provider = 'tenant_mgr' AND r.rolname LIKE 'tenant_victim%' ORDER BY 1;
SET ROLE tenant_victim_login;
SECURITY LABEL FOR tenant_mgr ON SCHEMA tenant_victim IS NULL;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
DO $$ BEGIN
    EXECUTE format('SECURITY LABEL FOR tenant_mgr ON TABLE tenant_victim.accounts IS %L',
                   (SELECT label FROM pg_seclabels
                     WHERE objname = 'tenant_victim' AND objtype = 'schema' AND provider = 'tenant_mgr'));
END $$;
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
RESET ROLE;
-- the schema is dropped behind tenant_mgr's back and an impostor, with the
-- old name, the old comment and a ledger, takes its place
SET client_min_messages = warning;
DROP SCHEMA tenant_victim CASCADE;
RESET client_min_messages;
CREATE SCHEMA tenant_victim;
COMMENT ON SCHEMA tenant_victim IS 'tenant_mgr tenant victim';
CREATE TABLE tenant_victim.tenant_mgr_ledger (version bigint PRIMARY KEY, name text NOT NULL,
    checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
    applied_by name NOT NULL DEFAULT current_user, duration interval);
SELECT tenant, problem FROM tenant_mgr.verify();
SELECT * FROM tenant_mgr.tenant_migrate('victim');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_drop('victim');
SELECT count(*) AS impostor_kept FROM pg_namespace WHERE nspname = 'tenant_victim';
SET client_min_messages = warning;
DROP SCHEMA tenant_victim CASCADE;
RESET client_min_messages;

-- 14. drift: a ledger of the right shape that disagrees with the registry.
-- A superuser edits a checksum: verify() names the migration and both sums.
UPDATE tenant_bystander.tenant_mgr_ledger SET checksum = 'edited' WHERE version = 2;
SELECT * FROM tenant_mgr.verify();
UPDATE tenant_bystander.tenant_mgr_ledger l SET checksum = m.checksum
  FROM tenant_mgr.migration m WHERE m.version = l.version AND l.version = 2;
-- rows for versions nobody registered: above the latest registered one,
-- the ledger is ahead of the registry (a newer release migrated it)
INSERT INTO tenant_bystander.tenant_mgr_ledger (version, name, checksum)
VALUES (7, 'from_a_newer_release', 'x'), (9, 'from_a_newer_release', 'y');
SELECT * FROM tenant_mgr.verify();
-- once 8 is registered: 7 is unknown but not ahead, 9 alone is ahead, and
-- the ledger lacks 8 below its latest
SELECT tenant_mgr.migration_add(8, 'later', 'CREATE TABLE t8 (id int)') AS registered;
SELECT * FROM tenant_mgr.verify();
SELECT tenant_mgr.migration_remove(8) AS removed;
DELETE FROM tenant_bystander.tenant_mgr_ledger WHERE version IN (7, 9);
SELECT * FROM tenant_mgr.verify();

-- a tenant's roles left behind when its catalog row and schema went by hand:
-- reported, the owner and the login role; roles not marked are not
SELECT name FROM tenant_mgr.tenant_create('leftover');
SELECT tenant_mgr.tenant_login_role('leftover') AS login_role;
CREATE ROLE tenant_lookalike;
DELETE FROM tenant_mgr.tenant WHERE name = 'leftover';
SET client_min_messages = warning;
DROP SCHEMA tenant_leftover CASCADE;
RESET client_min_messages;
SELECT * FROM tenant_mgr.verify();
DROP ROLE tenant_leftover_login, tenant_leftover, tenant_lookalike;
SELECT * FROM tenant_mgr.verify();

-- after all of it: nobody escalated, the catalog agrees with reality
SELECT * FROM regress_escalated;
SELECT * FROM tenant_mgr.verify();
SELECT name, version FROM tenant_mgr.tenants ORDER BY name;

-- clean up
SELECT count(*) AS dropped FROM tenant_mgr.tenants t, LATERAL tenant_mgr.tenant_drop(t.name) d;
DROP VIEW regress_escalated;
DROP FUNCTION regress_next_migration();
DROP EXTENSION tenant_mgr;
DROP OWNED BY regress_admin, regress_shared_owner;
DROP ROLE regress_admin, regress_shared_owner;
SELECT count(*) AS tenant_roles_left FROM pg_roles WHERE rolname LIKE 'tenant\_%';
