-- Provisioning from a customers table: INSERT creates the tenant, DELETE
-- drops it, UPDATE of the name renames it.
\getenv abs_srcdir PG_ABS_SRCDIR
\set fixtures :abs_srcdir '/fixtures'
CREATE EXTENSION tenant_mgr;
SELECT tenant_mgr.migrations_load(:'fixtures') AS loaded;

CREATE TABLE customers (id serial PRIMARY KEY, slug text UNIQUE, plan text);
CREATE TRIGGER provision
  AFTER INSERT OR UPDATE OF slug OR DELETE ON customers
  FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug');

-- a schema tenant is created inside the inserting transaction
BEGIN;
INSERT INTO customers (slug) VALUES ('acme');
SELECT name, state, version FROM tenant_mgr.tenants;
COMMIT;
SELECT n.nspname, n.nspowner::regrole AS owner FROM pg_namespace n WHERE nspname = 'tenant_acme';

-- rolled back: no schema, no role, no catalog row
BEGIN;
INSERT INTO customers (slug) VALUES ('hooli');
ROLLBACK;
SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_hooli') AS schemas,
       (SELECT count(*) FROM pg_roles WHERE rolname = 'tenant_hooli') AS roles,
       (SELECT count(*) FROM tenant_mgr.tenant WHERE name = 'hooli') AS catalog_rows;

-- inserted and deleted in one transaction: nothing is left
BEGIN;
INSERT INTO customers (slug) VALUES ('flash');
DELETE FROM customers WHERE slug = 'flash';
COMMIT;
SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_flash') AS schemas,
       (SELECT count(*) FROM pg_roles WHERE rolname = 'tenant_flash') AS roles,
       (SELECT count(*) FROM tenant_mgr.tenant WHERE name = 'flash') AS catalog_rows;
SELECT tenant, action, status FROM tenant_mgr.history WHERE tenant = 'flash' AND action IN ('create', 'drop') ORDER BY id;

-- UPDATE of the name renames schema, owner role, marks and catalog row
UPDATE customers SET slug = 'acme_corp' WHERE slug = 'acme';
SELECT name, object_name, owner, version FROM tenant_mgr.tenants;
SELECT nspname, nspowner::regrole AS owner, obj_description(oid, 'pg_namespace') AS comment
  FROM pg_namespace WHERE nspname LIKE 'tenant_acme%';
SELECT count(*) AS ledger_rows FROM tenant_acme_corp.tenant_mgr_ledger;
SELECT tenant, action, status FROM tenant_mgr.history WHERE action = 'rename';
-- other columns do not matter
UPDATE customers SET plan = 'pro';
SELECT * FROM tenant_mgr.verify();

-- bad names fail the INSERT, with tenant_create's errors
INSERT INTO customers (slug) VALUES ('Bad Name');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO customers (slug) VALUES (NULL);
\echo :LAST_ERROR_SQLSTATE
UPDATE customers SET slug = 'Acme-Corp' WHERE slug = 'acme_corp';
\echo :LAST_ERROR_SQLSTATE
SET tenant_mgr.prefix = '';
INSERT INTO customers (slug) VALUES ('public');
\echo :LAST_ERROR_SQLSTATE
RESET tenant_mgr.prefix;
SELECT count(*) AS customers, (SELECT count(*) FROM tenant_mgr.tenant) AS tenants FROM customers;

-- misconfigured triggers say what is wrong
CREATE TABLE odd (slug text);
CREATE TRIGGER odd1 AFTER INSERT ON odd FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('slug');
INSERT INTO odd VALUES ('x');
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER odd1 ON odd;
CREATE TRIGGER odd2 AFTER INSERT ON odd FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('name=nope');
INSERT INTO odd VALUES ('x');
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER odd2 ON odd;
CREATE TRIGGER odd3 BEFORE INSERT ON odd FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug');
INSERT INTO odd VALUES ('x');
\echo :LAST_ERROR_SQLSTATE
DROP TABLE odd;

-- queued: a bulk insert only records the tenants and queues jobs; the
-- launcher creates them after commit
CREATE TABLE signups (slug text);
CREATE TRIGGER provision AFTER INSERT ON signups
  FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug', 'mode=queued');
BEGIN;
INSERT INTO signups SELECT 'bulk' || g FROM generate_series(1, 20) g;
SELECT count(*) AS tenant_locks FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid();
SELECT state, count(*) FROM tenant_mgr.tenants WHERE name LIKE 'bulk%' GROUP BY state;
SELECT count(*) AS bulk_schemas FROM pg_namespace WHERE nspname LIKE 'tenant\_bulk%';
COMMIT;
SELECT bool_and(tenant_mgr.tenant_wait('bulk' || g, '5 minutes')) AS all_ready
  FROM generate_series(1, 20) g;
SELECT state, version, count(*) FROM tenant_mgr.tenants WHERE name LIKE 'bulk%' GROUP BY 1, 2;
SELECT count(*) AS bulk_schemas FROM pg_namespace WHERE nspname LIKE 'tenant\_bulk%';
INSERT INTO signups VALUES ('bulk1');
\echo :LAST_ERROR_SQLSTATE
-- a queued tenant deleted before the launcher got to it is called off
CREATE TRIGGER deprovision AFTER DELETE ON signups
  FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug');
BEGIN;
INSERT INTO signups VALUES ('fleeting');
DELETE FROM signups WHERE slug = 'fleeting';
COMMIT;
SELECT (SELECT count(*) FROM tenant_mgr.tenant WHERE name = 'fleeting') AS catalog_rows,
       (SELECT count(*) FROM tenant_mgr.job WHERE tenant = 'fleeting') AS jobs,
       (SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_fleeting') AS schemas;

-- database tenants from a trigger are always queued, and start after commit
CREATE TABLE db_customers (slug text);
CREATE TRIGGER provision AFTER INSERT OR DELETE ON db_customers
  FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug', 'isolation=database');
BEGIN;
INSERT INTO db_customers VALUES ('bigco');
SELECT name, state FROM tenant_mgr.tenants WHERE name = 'bigco';
SELECT count(*) AS bigco_databases FROM pg_database WHERE datname = 'tenant_bigco';
COMMIT;
SELECT tenant_mgr.tenant_wait('bigco', '2 minutes');
SELECT name, isolation, state, version FROM tenant_mgr.tenants WHERE name = 'bigco';
DELETE FROM db_customers;
SELECT tenant_mgr.tenant_wait('bigco', '2 minutes');
SELECT count(*) AS bigco_databases FROM pg_database WHERE datname LIKE '%bigco%' OR datname LIKE 'tenant_mgr_drop_%';

-- an application role with only INSERT (and SELECT, DELETE) on its table provisions
-- tenants through a SECURITY DEFINER wrapper owned by a role the DBA chose
-- (the definer holds EXECUTE on what the trigger does, and no attribute)
CREATE ROLE regress_provisioner NOLOGIN;
GRANT EXECUTE ON FUNCTION tenant_mgr.tenant_create(text, text, name, jsonb, boolean),
                          tenant_mgr.tenant_drop(text, boolean, boolean) TO regress_provisioner;
CREATE ROLE regress_app;
CREATE TABLE app_customers (slug text PRIMARY KEY);
GRANT INSERT, SELECT, DELETE ON app_customers TO regress_app;
SELECT tenant_mgr.provisioning_trigger('app_customers', 'slug', definer => 'regress_provisioner');
SELECT proname, prosecdef, proowner::regrole, proconfig,
       has_function_privilege('regress_app', oid, 'EXECUTE') AS app_execute
  FROM pg_proc WHERE proname = 'app_customers_provision';
SET ROLE regress_app;
INSERT INTO app_customers VALUES ('viaapp');
INSERT INTO app_customers VALUES ('Not Valid');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_drop('viaapp');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('direct');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT name, owner, state, version FROM tenant_mgr.tenants WHERE name = 'viaapp';
SELECT nspowner::regrole AS owner FROM pg_namespace WHERE nspname = 'tenant_viaapp';
SET ROLE regress_app;
DELETE FROM app_customers WHERE slug = 'viaapp';
RESET ROLE;
SELECT count(*) AS viaapp_left FROM pg_namespace WHERE nspname = 'tenant_viaapp';
-- grant_to: the application role uses the tenants it provisions, inline or
-- queued, and no other
CREATE TABLE served (slug text PRIMARY KEY);
CREATE TABLE served_later (slug text PRIMARY KEY);
GRANT INSERT ON served, served_later TO regress_app;
SELECT tenant_mgr.provisioning_trigger('served', 'slug', 'schema', 'drop', 'inline',
                                       'regress_provisioner', 'regress_app') AS wrapper;
SELECT tenant_mgr.provisioning_trigger('served_later', 'slug', 'schema', 'drop', 'queued',
                                       'regress_provisioner', 'regress_app') AS wrapper;
SELECT tgname, pg_catalog.encode(tgargs, 'escape') AS args FROM pg_trigger
 WHERE tgrelid = 'served'::regclass;
SET ROLE regress_app;
INSERT INTO served VALUES ('mine');
INSERT INTO served_later VALUES ('later');
RESET ROLE;
SELECT tenant_mgr.tenant_wait('later', '2 minutes') AS later_ready;
SELECT n.nspname, has_schema_privilege('regress_app', n.oid, 'USAGE') AS app_uses
  FROM pg_namespace n WHERE n.nspname IN ('tenant_mine', 'tenant_later', 'tenant_acme_corp')
 ORDER BY 1;
SELECT tenant_mgr.provisioning_trigger('served', 'slug', 'schema', 'drop', 'inline',
                                       'regress_provisioner', NULL);
\echo :LAST_ERROR_SQLSTATE
-- a superuser or an unknown role is refused, and the row with it
CREATE TRIGGER granting AFTER INSERT ON served
    FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug', 'grant=postgres');
INSERT INTO served VALUES ('tosuper');
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER granting ON served;
CREATE TRIGGER granting AFTER INSERT ON served
    FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug', 'grant=regress_nobody_here');
INSERT INTO served VALUES ('tonobody');
\echo :LAST_ERROR_SQLSTATE
DROP TRIGGER granting ON served;
SELECT count(*) AS refused_rows FROM served WHERE slug IN ('tosuper', 'tonobody');
-- a definer that may not create tenants (no EXECUTE) provisions nothing
REVOKE EXECUTE ON FUNCTION tenant_mgr.tenant_create(text, text, name, jsonb, boolean) FROM regress_provisioner;
SET ROLE regress_app;
INSERT INTO app_customers VALUES ('refused');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS refused FROM tenant_mgr.tenants WHERE name = 'refused';
SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles
 WHERE rolname IN ('regress_app', 'regress_provisioner') ORDER BY 1;
SELECT * FROM tenant_mgr.verify();

-- clean up
DROP TABLE app_customers, customers, signups, db_customers, served, served_later;
DROP FUNCTION served_provision(), served_later_provision();
SELECT count(*) AS dropped FROM tenant_mgr.tenants t, LATERAL tenant_mgr.tenant_drop(t.name) d;
REVOKE EXECUTE ON FUNCTION tenant_mgr.tenant_create(text, text, name, jsonb, boolean),
                           tenant_mgr.tenant_drop(text, boolean, boolean) FROM regress_provisioner;
DROP FUNCTION app_customers_provision();
DROP ROLE regress_app, regress_provisioner;
DROP EXTENSION tenant_mgr;
SELECT count(*) AS tenant_roles_left FROM pg_roles WHERE rolname LIKE 'tenant\_%';
SELECT count(*) AS tenant_schemas_left FROM pg_namespace WHERE nspname LIKE 'tenant\_%' AND nspname <> 'tenant_mgr';
