-- tenant_migrate: up, down, failures, fleet runs, and the ledger as truth.
-- Tenants "acme" and "owned" exist at version 11.

SELECT tenant_mgr.migration_add(12, 'task_estimate',
    'ALTER TABLE tasks ADD COLUMN estimate_hours numeric',
    'ALTER TABLE tasks DROP COLUMN estimate_hours');
SELECT tenant, version, migration, action, status, duration IS NOT NULL AS timed, sqlstate
  FROM tenant_mgr.tenant_migrate() ORDER BY tenant, version;
SELECT name, version, pending FROM tenant_mgr.tenants;

-- nothing to do: answered from the catalog, no tenant touched
SELECT max(updated_at) AS before FROM tenant_mgr.tenant \gset
SELECT count(*) AS steps FROM tenant_mgr.tenant_migrate();
SELECT max(updated_at) = :'before' AS untouched FROM tenant_mgr.tenant;
SELECT count(*) AS steps FROM tenant_mgr.tenant_migrate('acme');

-- down to a target, with the ledger row removed in the same transaction
SELECT tenant, version, action, status FROM tenant_mgr.tenant_migrate('acme', target => 11);
SELECT count(*) AS estimate_columns FROM information_schema.columns
 WHERE table_schema = 'tenant_acme' AND table_name = 'tasks' AND column_name = 'estimate_hours';
SELECT max(version) AS ledger_version FROM tenant_acme.tenant_mgr_ledger;
SELECT version FROM tenant_mgr.tenant WHERE name = 'acme';
-- and up again, to an explicit target
SELECT tenant, version, action, status FROM tenant_mgr.tenant_migrate('acme', target => 12);

-- down past a migration without down SQL: an error, nothing reverted
SELECT * FROM tenant_mgr.tenant_migrate('acme', target => 5);
\echo :LAST_ERROR_SQLSTATE
SELECT max(version) AS ledger_version FROM tenant_acme.tenant_mgr_ledger;
-- bad targets
SELECT * FROM tenant_mgr.tenant_migrate('acme', target => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM tenant_mgr.tenant_migrate('acme', target => 99);
\echo :LAST_ERROR_SQLSTATE

-- a migration that fails: for one tenant the error reaches the caller and
-- nothing changes, not even the migration before it in the same call
SELECT count(*) AS reverted FROM tenant_mgr.tenant_migrate('acme', target => 11);
SELECT tenant_mgr.migration_add(13, 'broken', 'ALTER TABLE no_such_table ADD COLUMN x int');
SELECT * FROM tenant_mgr.tenant_migrate('acme');
\echo :LAST_ERROR_SQLSTATE
SELECT max(version) AS ledger_version FROM tenant_acme.tenant_mgr_ledger;
SELECT version, last_error FROM tenant_mgr.tenant WHERE name = 'acme';

-- for the fleet, each migration commits in its own subtransaction: the
-- failure is recorded, the tenant keeps what succeeded, the others go on
SELECT tenant, version, action, status, sqlstate, message
  FROM tenant_mgr.tenant_migrate() ORDER BY tenant, version;
SELECT name, version, latest, last_error FROM tenant_mgr.tenants;
SELECT (SELECT max(version) FROM tenant_acme.tenant_mgr_ledger) AS acme_ledger,
       (SELECT max(version) FROM tenant_owned.tenant_mgr_ledger) AS owned_ledger;
SELECT tenant, action, version, status, sqlstate, message
  FROM tenant_mgr.history WHERE status <> 'ok' ORDER BY id;

-- stop_on_error: the run ends at the first tenant that fails
SELECT tenant, version, status FROM tenant_mgr.tenant_migrate(stop_on_error => true);

-- the fix: a migration applied nowhere can be replaced
SELECT tenant_mgr.migration_remove(13);
SELECT tenant_mgr.migration_add(13, 'task_flag', 'ALTER TABLE tasks ADD COLUMN flagged boolean NOT NULL DEFAULT false');
SELECT tenant, version, status FROM tenant_mgr.tenant_migrate() ORDER BY tenant;
SELECT name, version, last_error FROM tenant_mgr.tenants;
-- once applied, it can neither change nor go
SELECT tenant_mgr.migration_add(13, 'task_flag', 'ALTER TABLE tasks ADD COLUMN flagged int');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_remove(13);
\echo :LAST_ERROR_SQLSTATE

-- reality wins: verify() compares the catalog with every ledger
SELECT * FROM tenant_mgr.verify();
UPDATE tenant_acme.tenant_mgr_ledger SET checksum = 'tampered' WHERE version = 4;
SELECT * FROM tenant_mgr.verify();
SELECT * FROM tenant_mgr.tenant_migrate('acme', target => 12);
\echo :LAST_ERROR_SQLSTATE
UPDATE tenant_acme.tenant_mgr_ledger l SET checksum = m.checksum
  FROM tenant_mgr.migration m WHERE m.version = l.version AND l.version = 4;
-- a stale catalog copy is corrected from the ledger without applying anything
UPDATE tenant_mgr.tenant SET version = 7 WHERE name = 'owned';
SELECT * FROM tenant_mgr.verify();
SELECT count(*) AS steps FROM tenant_mgr.tenant_migrate('owned');
SELECT version FROM tenant_mgr.tenant WHERE name = 'owned';
-- a ledger in a schema the catalog does not know is reported, never adopted
CREATE SCHEMA tenant_ghost;
CREATE TABLE tenant_ghost.tenant_mgr_ledger (version bigint PRIMARY KEY);
SELECT * FROM tenant_mgr.verify();
SELECT count(*) AS steps FROM tenant_mgr.tenant_migrate();
DROP SCHEMA tenant_ghost CASCADE;
SELECT * FROM tenant_mgr.verify();
