-- Tenant names are validated, never truncated, never adopted.  Every bad
-- name fails with an SQLSTATE and changes nothing.
\set VERBOSITY default

-- NULL, empty, blank
SELECT tenant_mgr.tenant_create(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('   ');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create(E'\t');
\echo :LAST_ERROR_SQLSTATE

-- characters outside ^[a-z][a-z0-9_]*$
SELECT tenant_mgr.tenant_create('Acme');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('acme corp');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('acme"; DROP SCHEMA public; --');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('acme;drop');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('acme--x');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('o''brien');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('café');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('1acme');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('_acme');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('acme-corp');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('acme.corp');
\echo :LAST_ERROR_SQLSTATE

-- too long: 64 bytes on its own, and 60 bytes that only overflow with the
-- 7-byte prefix "tenant_"
SELECT tenant_mgr.tenant_create(repeat('a', 64));
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create(repeat('b', 60));
\echo :LAST_ERROR_SQLSTATE
-- 56 bytes + prefix = 63: the longest name that fits
SELECT name, object_name, length(object_name) FROM tenant_mgr.tenant_create(repeat('c', 56));
SELECT tenant_mgr.tenant_drop(repeat('c', 56));

-- reserved object names; with an empty prefix the name is the object name
SET tenant_mgr.prefix = '';
SELECT tenant_mgr.tenant_create('public');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('pg_toast');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('information_schema');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('tenant_mgr');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('template1');
\echo :LAST_ERROR_SQLSTATE
RESET tenant_mgr.prefix;
-- tenant_mgr's own names (detached databases are tenant_mgr_drop_<oid>)
SELECT tenant_mgr.tenant_create('mgr_drop_16384');
\echo :LAST_ERROR_SQLSTATE
-- the prefix alone
SELECT tenant_mgr.tenant_create('tenant');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('tenant_');
\echo :LAST_ERROR_SQLSTATE

-- an existing schema that tenant_mgr did not create is never adopted
CREATE SCHEMA tenant_squatter;
CREATE TABLE tenant_squatter.precious (id int);
SELECT tenant_mgr.tenant_create('squatter');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_drop('squatter');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS precious_still_there FROM tenant_squatter.precious;
DROP SCHEMA tenant_squatter CASCADE;

-- an existing tenant
SELECT name, version FROM tenant_mgr.tenant_create('dupe');
SELECT tenant_mgr.tenant_create('dupe');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_drop('dupe');

-- isolation, owner and metadata
SELECT tenant_mgr.tenant_create('acme', isolation => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('acme', isolation => 'cluster');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('acme', isolation => 'database', owner => current_user);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('acme', owner => 'no_such_role');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('acme', metadata => '[1, 2]');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_create('acme', metadata => '"plan"');
\echo :LAST_ERROR_SQLSTATE

-- drop and use of tenants that do not exist
SELECT tenant_mgr.tenant_drop(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_drop('nobody');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_drop('nobody', if_exists => true);
SELECT tenant_mgr.tenant_use('nobody');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_use(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM tenant_mgr.tenant_migrate('nobody');
\echo :LAST_ERROR_SQLSTATE

-- nothing above changed anything
SELECT count(*) AS tenants FROM tenant_mgr.tenant;
SELECT action, count(*) FROM tenant_mgr.event GROUP BY 1 ORDER BY 1;
SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\_%' ORDER BY 1;
