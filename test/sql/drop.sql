-- tenant_drop removes what tenant_mgr created, and nothing else.
-- Tenants "acme" and "owned" exist.

-- objects outside the schema that depend on it block the drop
CREATE VIEW public.acme_accounts AS SELECT * FROM tenant_acme.accounts;
SELECT tenant_mgr.tenant_drop('acme');
\echo :LAST_ERROR_SQLSTATE
DROP VIEW public.acme_accounts;
CREATE TABLE public.acme_refs (account_id bigint REFERENCES tenant_acme.accounts (id));
SELECT tenant_mgr.tenant_drop('acme');
\echo :LAST_ERROR_SQLSTATE
DROP TABLE public.acme_refs;
SELECT count(*) AS acme_schema FROM pg_namespace WHERE nspname = 'tenant_acme';

-- a drop rolled back restores everything
BEGIN;
SELECT tenant_mgr.tenant_drop('acme');
SELECT count(*) AS inside FROM pg_namespace WHERE nspname = 'tenant_acme';
ROLLBACK;
SELECT count(*) AS after_rollback FROM pg_namespace WHERE nspname = 'tenant_acme';
SELECT name, version FROM tenant_mgr.tenant WHERE name = 'acme';

-- the drop
SELECT tenant_mgr.tenant_drop('acme');
SELECT count(*) AS schemas FROM pg_namespace WHERE nspname = 'tenant_acme';
SELECT count(*) AS catalog_rows FROM tenant_mgr.tenant WHERE name = 'acme';
SELECT tenant, action, status FROM tenant_mgr.history WHERE tenant = 'acme' AND action = 'drop';
SELECT tenant_mgr.tenant_drop('acme');
\echo :LAST_ERROR_SQLSTATE

-- a schema that lost tenant_mgr's ledger is not dropped: the catalog row
-- goes, the schema stays
DROP TABLE tenant_owned.tenant_mgr_ledger;
SELECT * FROM tenant_mgr.verify();
SELECT tenant_mgr.tenant_drop('owned');
SELECT count(*) AS owned_schema FROM pg_namespace WHERE nspname = 'tenant_owned';
SET client_min_messages = warning;
DROP SCHEMA tenant_owned CASCADE;
RESET client_min_messages;

-- a schema replaced behind tenant_mgr's back: the impostor with the same
-- name is never dropped
SELECT name FROM tenant_mgr.tenant_create('replaced');
SET client_min_messages = warning;
DROP SCHEMA tenant_replaced CASCADE;
RESET client_min_messages;
CREATE SCHEMA tenant_replaced;
CREATE TABLE tenant_replaced.keep (id int);
SELECT * FROM tenant_mgr.verify();
-- the impostor is neither migrated nor used
SELECT * FROM tenant_mgr.tenant_migrate('replaced');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_use('replaced');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.tenant_drop('replaced');
SELECT count(*) AS impostor_kept FROM tenant_replaced.keep;
DROP SCHEMA tenant_replaced CASCADE;

-- a renamed schema is still recognized by the OID recorded at creation
SELECT name FROM tenant_mgr.tenant_create('moved');
ALTER SCHEMA tenant_moved RENAME TO moved_elsewhere;
SELECT * FROM tenant_mgr.verify();
SELECT tenant_mgr.tenant_drop('moved');
SELECT count(*) AS moved_schema FROM pg_namespace WHERE nspname = 'moved_elsewhere';

SELECT count(*) AS tenants FROM tenant_mgr.tenant;
SELECT * FROM tenant_mgr.verify();

-- tenants are not members of the extension: dropping it leaves them alone
SELECT name FROM tenant_mgr.tenant_create('survivor');

-- but not while work is in flight: a queued create would be left half made
\set VERBOSITY sqlstate
BEGIN;
SELECT name, state FROM tenant_mgr.tenant_create('inflight', 'database', wait => false);
DROP EXTENSION tenant_mgr;
ROLLBACK;
BEGIN;
SELECT name, state FROM tenant_mgr.tenant_create('inflight_schema', wait => false);
DROP SCHEMA tenant_mgr CASCADE;
ROLLBACK;
\set VERBOSITY default
BEGIN;
SELECT name FROM tenant_mgr.tenant_create('inflight', 'database', wait => false);
DROP EXTENSION tenant_mgr;
ROLLBACK;
SELECT count(*) AS extension_kept FROM pg_extension WHERE extname = 'tenant_mgr';
SELECT count(*) AS jobs FROM tenant_mgr.job;
SELECT name, state FROM tenant_mgr.tenants ORDER BY name;

DROP EXTENSION tenant_mgr;
SELECT count(*) AS survivor_tables FROM pg_tables WHERE schemaname = 'tenant_survivor';
SET client_min_messages = warning;
DROP SCHEMA tenant_survivor CASCADE;
RESET client_min_messages;
DROP ROLE tenant_survivor;
SELECT count(*) AS tenant_roles_left FROM pg_roles WHERE rolname LIKE 'tenant\_%';
DROP ROLE regress_tm_owner;
