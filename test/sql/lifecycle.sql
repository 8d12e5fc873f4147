-- Detach and attach (data kept aside, then back or dropped), and the
-- application's login role of a tenant.
\getenv abs_srcdir PG_ABS_SRCDIR
\set fixtures :abs_srcdir '/fixtures'
CREATE EXTENSION tenant_mgr;
SELECT tenant_mgr.migrations_load(:'fixtures') AS loaded;
SELECT name FROM tenant_mgr.tenant_create('acme');
SELECT name FROM tenant_mgr.tenant_create('bigco', 'database');
SELECT name FROM tenant_mgr.tenant_create('neighbor');
INSERT INTO tenant_acme.accounts (name) VALUES ('kept while detached');

-- a login role for the application: LOGIN, a member of the owner role
SELECT tenant_mgr.tenant_login_role('acme') AS login;
SELECT tenant_mgr.tenant_login_role('acme') AS same_again;
-- a pool of its connections sees only its tenant: its search_path is set
SELECT rolname, rolconfig FROM pg_roles WHERE rolname = 'tenant_acme_login';
SELECT rolname, rolcanlogin, rolsuper, pg_has_role(oid, 'tenant_acme', 'MEMBER') AS owner_member,
       shobj_description(oid, 'pg_authid') AS comment
  FROM pg_roles WHERE rolname = 'tenant_acme_login';
SET ROLE tenant_acme_login;
SELECT name FROM tenant_acme.accounts;
SELECT count(*) FROM tenant_neighbor.accounts;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT tenant_mgr.tenant_drop('neighbor');
SELECT tenant_mgr.tenant_login_role('bigco') AS login;
SELECT has_database_privilege('tenant_bigco_login', 'tenant_bigco', 'CONNECT') AS bigco_login_connects,
       has_database_privilege('tenant_acme_login', 'tenant_bigco', 'CONNECT') AS acme_login_connects;
SELECT tenant_mgr.tenant_login_role('nobody');
\echo :LAST_ERROR_SQLSTATE
-- what a client needs to reach a tenant (never a secret)
SELECT * FROM tenant_mgr.tenant_connection('acme');
SELECT * FROM tenant_mgr.tenant_connection('bigco');
SELECT tenant_mgr.tenant_connection('nobody');
\echo :LAST_ERROR_SQLSTATE
CREATE ROLE tenant_squat_login;
SELECT name FROM tenant_mgr.tenant_create('squat');
SELECT tenant_mgr.tenant_login_role('squat');
\echo :LAST_ERROR_SQLSTATE
DROP ROLE tenant_squat_login;
SELECT login_role IS NULL AS no_login FROM tenant_mgr.tenant_connection('squat');
SELECT tenant_mgr.tenant_drop('squat');

-- the login role follows a rename
SELECT name FROM tenant_mgr.tenant_rename('acme', 'acme_co');
SELECT rolname, shobj_description(oid, 'pg_authid') AS comment, rolconfig
  FROM pg_roles WHERE rolname LIKE 'tenant_acme%login' ORDER BY 1;
SELECT name FROM tenant_mgr.tenant_rename('acme_co', 'acme');
-- names are checked, never truncated: a rename to the longest name (object
-- name 63 bytes) keeps the login role's name, and tenant_login_role returns
-- that role rather than measuring <object>_login; one byte more is 42622 and
-- changes nothing, nor does a login role whose name would be too long
SELECT name, object_name, owner FROM tenant_mgr.tenant_rename('acme', repeat('a', 56));
SELECT tenant_mgr.tenant_login_role(repeat('a', 56)) AS kept_login;
SELECT md5(string_agg(r, ',' ORDER BY r)) AS fingerprint FROM (
  SELECT format('%s', t) FROM tenant_mgr.tenant t UNION ALL
  SELECT nspname FROM pg_namespace UNION ALL
  SELECT rolname || ' ' || coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_roles UNION ALL
  SELECT datname FROM pg_database) AS f(r) \gset
SELECT tenant_mgr.tenant_rename(repeat('a', 56), repeat('b', 57));
\echo :LAST_ERROR_SQLSTATE
SELECT name FROM tenant_mgr.tenant_create(repeat('c', 56));
SELECT tenant_mgr.tenant_login_role(repeat('c', 56));
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_drop(repeat('c', 56));
SELECT md5(string_agg(r, ',' ORDER BY r)) = :'fingerprint' AS unchanged FROM (
  SELECT format('%s', t) FROM tenant_mgr.tenant t UNION ALL
  SELECT nspname FROM pg_namespace UNION ALL
  SELECT rolname || ' ' || coalesce(shobj_description(oid, 'pg_authid'), '') FROM pg_roles UNION ALL
  SELECT datname FROM pg_database) AS f(r);
SELECT name FROM tenant_mgr.tenant_rename(repeat('a', 56), 'acme');

-- detach: the schema moves aside with its data, the tenant cannot be used
SELECT tenant_mgr.tenant_detach('acme');
SELECT name, state FROM tenant_mgr.tenants ORDER BY name;
SELECT count(*) AS acme_schema FROM pg_namespace WHERE nspname = 'tenant_acme';
SELECT count(*) AS detached_schemas FROM pg_namespace WHERE nspname LIKE 'tenant_mgr_detached_%';
SELECT tenant_mgr.tenant_use('acme');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM tenant_mgr.tenant_migrate('acme');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_detach('acme');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('acme');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM tenant_mgr.verify();
-- attach: back under its name, data intact
SELECT name, state FROM tenant_mgr.tenant_attach('acme');
SELECT name FROM tenant_acme.accounts;
SELECT tenant_mgr.tenant_attach('acme');
\echo :LAST_ERROR_SQLSTATE

-- a database tenant detaches too: renamed and closed to connections
SELECT tenant_mgr.tenant_detach('bigco');
SELECT datname LIKE 'tenant_mgr_detached_%' AS detached, datallowconn
  FROM pg_database d JOIN tenant_mgr.tenant t ON t.object_oid = d.oid WHERE t.name = 'bigco';
SELECT name, state FROM tenant_mgr.tenant_attach('bigco');
SELECT datname, datallowconn FROM pg_database WHERE datname = 'tenant_bigco';
-- a detach rolled back leaves the tenant as it was
BEGIN;
SELECT tenant_mgr.tenant_detach('bigco');
ROLLBACK;
SELECT name, state FROM tenant_mgr.tenants WHERE name = 'bigco';

-- the trigger can detach instead of dropping
CREATE TABLE customers (slug text);
CREATE TRIGGER provision AFTER INSERT OR DELETE ON customers
  FOR EACH ROW EXECUTE FUNCTION tenant_mgr.customers_trigger('name=slug', 'on_delete=detach');
INSERT INTO customers VALUES ('gdpr');
INSERT INTO tenant_gdpr.accounts (name) VALUES ('to be erased later');
DELETE FROM customers WHERE slug = 'gdpr';
SELECT name, state FROM tenant_mgr.tenants WHERE name = 'gdpr';
SELECT count(*) AS gdpr_rows_kept FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid
 WHERE n.nspname LIKE 'tenant_mgr_detached_%' AND c.relname = 'accounts';
-- a detached tenant is dropped for good, with its roles
SELECT tenant_mgr.tenant_drop('gdpr');
SELECT tenant_mgr.tenant_drop('acme');
SELECT tenant_mgr.tenant_detach('bigco');
SELECT tenant_mgr.tenant_drop('bigco');
SELECT tenant_mgr.tenant_wait('bigco', '2 minutes') AS bigco_dropped;
SELECT count(*) AS schemas_left FROM pg_namespace
 WHERE nspname LIKE 'tenant\_%' AND nspname <> 'tenant_mgr';
SELECT count(*) AS databases_left FROM pg_database WHERE datname LIKE 'tenant\_%';
SELECT rolname FROM pg_roles WHERE rolname LIKE 'tenant\_%' ORDER BY 1;
SELECT tenant, action, status FROM tenant_mgr.history
 WHERE action IN ('detach', 'attach') ORDER BY id;
SELECT * FROM tenant_mgr.verify();

-- erasure: once dropped, a customer's name leaves the history and the jobs
SELECT name FROM tenant_mgr.tenant_create('keeper');
SELECT tenant_mgr.tenant_purge('keeper');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) > 0 AS gdpr_in_history FROM tenant_mgr.history WHERE tenant = 'gdpr';
SELECT tenant_mgr.tenant_purge('gdpr') > 0 AS gdpr_purged;
SELECT tenant_mgr.tenant_purge('bigco') > 0 AS bigco_purged;
SELECT (SELECT count(*) FROM tenant_mgr.history WHERE tenant IN ('gdpr', 'bigco')) AS purged_events,
       (SELECT count(*) FROM tenant_mgr.jobs WHERE tenant IN ('gdpr', 'bigco')) AS purged_jobs,
       (SELECT count(*) > 0 FROM tenant_mgr.history WHERE tenant = 'keeper') AS keeper_kept;
-- retention: what is older than the given age goes, the rest stays
SELECT tenant_mgr.history_prune('1 day') AS pruned_old;
SELECT count(*) > 0 AS recent_history_kept FROM tenant_mgr.history;
SELECT tenant_mgr.history_prune('-1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_drop('keeper');
SELECT tenant_mgr.history_prune('0') > 0 AS pruned_all;
SELECT count(*) AS history_left FROM tenant_mgr.history;
DROP TABLE customers;
DROP EXTENSION tenant_mgr;
