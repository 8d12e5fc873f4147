/* tenant_mgr--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION tenant_mgr UPDATE TO '1.1'" to load this file. \quit

/*
 * The job and intent queue looks intents up in two ways: by job (an
 * executor finds the intent of a queued create it retries, the launcher
 * removes a job's intent when the job ends) and by object name (a new
 * database tenant is refused while an intent holds its database name).
 * Without these indexes each lookup reads the whole intent table.
 */
CREATE INDEX intent_job_id_idx ON tenant_mgr.intent (job_id)
    WHERE job_id IS NOT NULL;
CREATE INDEX intent_object_name_idx ON tenant_mgr.intent (object_name);

/*
 * Identity by security label.  Every tenant gets a random id, and every
 * schema, database and role tenant_mgr makes carries the security label
 * "tenant <name> <id>" (a login role: "login <name> <id>") of provider
 * tenant_mgr.  The library registers the provider, which lets only
 * superusers set such labels by SQL (restores do; tenant_mgr sets its own
 * directly).  pg_dump, pg_restore and pg_upgrade keep labels where OIDs
 * change, and a tenant's own roles can forge or move none, as they could a
 * comment.  Comments stay, for people.
 */
ALTER TABLE tenant_mgr.tenant
    ADD COLUMN tenant_id uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid() UNIQUE;
COMMENT ON COLUMN tenant_mgr.tenant.tenant_id IS
    'random id of the tenant, in the security labels of its schema or database and roles';
ALTER TABLE tenant_mgr.intent ADD COLUMN tenant_id uuid;

-- the label provider is registered by the library
LOAD 'MODULE_PATHNAME';

-- Tenants made by 1.0 get their labels now, found by the marks 1.0 went
-- by: the OID recorded at creation, else the object of that name carrying
-- 1.0's comment (and a schema, its ledger).  Nothing else is labelled.
DO $$
DECLARE
    t record;
    obj name;
BEGIN
    FOR t IN SELECT * FROM tenant_mgr.tenant ORDER BY name LOOP
        obj := NULL;
        IF t.isolation = 'schema' THEN
            SELECT n.nspname INTO obj
              FROM pg_catalog.pg_namespace n
             WHERE (n.oid OPERATOR(pg_catalog.=) t.object_oid
                    OR (n.nspname OPERATOR(pg_catalog.=) t.object_name
                        AND pg_catalog.obj_description(n.oid, 'pg_namespace')
                            OPERATOR(pg_catalog.=) ('tenant_mgr tenant ' OPERATOR(pg_catalog.||) t.name)))
               AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                            WHERE c.relnamespace OPERATOR(pg_catalog.=) n.oid
                              AND c.relname OPERATOR(pg_catalog.=) 'tenant_mgr_ledger')
             ORDER BY n.oid OPERATOR(pg_catalog.=) t.object_oid DESC
             LIMIT 1;
            IF obj IS NOT NULL THEN
                EXECUTE pg_catalog.format('SECURITY LABEL FOR tenant_mgr ON SCHEMA %I IS %L',
                                          obj, pg_catalog.concat('tenant ', t.name, ' ', t.tenant_id));
            END IF;
        ELSE
            SELECT d.datname INTO obj
              FROM pg_catalog.pg_database d
             WHERE d.oid OPERATOR(pg_catalog.=) t.object_oid
                OR (d.datname OPERATOR(pg_catalog.=) t.object_name
                    AND pg_catalog.shobj_description(d.oid, 'pg_database')
                        OPERATOR(pg_catalog.=) ('tenant_mgr tenant ' OPERATOR(pg_catalog.||) t.name))
             ORDER BY d.oid OPERATOR(pg_catalog.=) t.object_oid DESC
             LIMIT 1;
            IF obj IS NOT NULL THEN
                EXECUTE pg_catalog.format('SECURITY LABEL FOR tenant_mgr ON DATABASE %I IS %L',
                                          obj, pg_catalog.concat('tenant ', t.name, ' ', t.tenant_id));
            END IF;
        END IF;
        -- the owner role and the login role tenant_mgr made, by their comments
        FOR obj IN
            SELECT r.rolname FROM pg_catalog.pg_roles r
             WHERE (r.rolname OPERATOR(pg_catalog.=) t.owner
                    AND pg_catalog.shobj_description(r.oid, 'pg_authid')
                        OPERATOR(pg_catalog.=) ('tenant_mgr tenant ' OPERATOR(pg_catalog.||) t.name))
        LOOP
            EXECUTE pg_catalog.format('SECURITY LABEL FOR tenant_mgr ON ROLE %I IS %L',
                                      obj, pg_catalog.concat('tenant ', t.name, ' ', t.tenant_id));
        END LOOP;
        FOR obj IN
            SELECT r.rolname FROM pg_catalog.pg_roles r
             WHERE r.rolname OPERATOR(pg_catalog.=) (t.object_name OPERATOR(pg_catalog.||) '_login')
               AND pg_catalog.shobj_description(r.oid, 'pg_authid')
                   OPERATOR(pg_catalog.=) ('tenant_mgr login ' OPERATOR(pg_catalog.||) t.name)
        LOOP
            EXECUTE pg_catalog.format('SECURITY LABEL FOR tenant_mgr ON ROLE %I IS %L',
                                      obj, pg_catalog.concat('login ', t.name, ' ', t.tenant_id));
            -- 1.1 gives a schema tenant's login role its tenant's search_path
            IF t.isolation = 'schema' THEN
                EXECUTE pg_catalog.format('ALTER ROLE %I SET search_path = %I', obj, t.object_name);
            END IF;
        END LOOP;
    END LOOP;
END
$$;

/*
 * Safe behind a connection pooler: tenant_use() now points the search_path
 * of the current transaction only, unless asked for the session, and
 * refuses to run outside a transaction block, where it would last for its
 * own statement only.  A session-wide search_path follows the server
 * connection, not the client, through a pooler in transaction mode.
 */
CREATE OR REPLACE FUNCTION tenant_mgr.tenant_use(name text, is_local boolean DEFAULT true)
RETURNS text
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_use';
COMMENT ON FUNCTION tenant_mgr.tenant_use(text, boolean) IS
    'points the search_path of this transaction (or, with is_local => false, of the session) at a schema tenant';

/*
 * What an application needs to reach one tenant, and never a secret.
 */
CREATE FUNCTION tenant_mgr.tenant_connection(
    name text,
    OUT database name,
    OUT schema name,
    OUT login_role name,
    OUT search_path text)
RETURNS record
LANGUAGE C STRICT STABLE
AS 'MODULE_PATHNAME', 'tenant_connection';
COMMENT ON FUNCTION tenant_mgr.tenant_connection(text) IS
    'the database, schema, login role (if made) and search_path by which a client reaches a tenant';
REVOKE ALL ON FUNCTION tenant_mgr.tenant_connection(text) FROM PUBLIC;

/*
 * Erasure and retention: a dropped customer's name leaves the history and
 * the finished jobs, and old history can be pruned (by hand, or by the
 * launcher under tenant_mgr.history_retention_days).
 */
CREATE FUNCTION tenant_mgr.tenant_purge(name text)
RETURNS bigint
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_purge';
COMMENT ON FUNCTION tenant_mgr.tenant_purge(text) IS
    'removes every event and finished job naming a dropped tenant; returns how many rows went';

CREATE FUNCTION tenant_mgr.history_prune(older_than interval)
RETURNS bigint
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'history_prune';
COMMENT ON FUNCTION tenant_mgr.history_prune(interval) IS
    'removes events and finished jobs older than older_than; returns how many rows went';

REVOKE ALL ON FUNCTION tenant_mgr.tenant_purge(text), tenant_mgr.history_prune(interval) FROM PUBLIC;

/*
 * A provisioning trigger's grant=<role>: the application's role is granted
 * the owner role of each tenant the trigger creates, also when the launcher
 * builds it later.
 */
ALTER TABLE tenant_mgr.job ADD COLUMN grant_to name;

-- provisioning_trigger(..., grant_to => role): the same trigger, with grant=<role>
CREATE FUNCTION tenant_mgr.provisioning_trigger(
    customers regclass,
    name_column name,
    isolation text,
    on_delete text,
    mode text,
    definer regrole,
    grant_to regrole)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn text;
BEGIN
    IF grant_to IS NULL THEN
        RAISE EXCEPTION 'grant_to of provisioning_trigger must not be null'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Leave it out to grant nothing.';
    END IF;
    fn := tenant_mgr.provisioning_trigger(customers, name_column, isolation, on_delete,
                                          mode, definer);
    EXECUTE format('DROP TRIGGER tenant_mgr_provisioning ON %s', customers);
    EXECUTE format('CREATE TRIGGER tenant_mgr_provisioning'
                   ' AFTER INSERT OR UPDATE OF %I OR DELETE ON %s'
                   ' FOR EACH ROW EXECUTE FUNCTION %s(%L, %L, %L, %L, %L)',
                   name_column, customers, fn, 'name=' || name_column,
                   'isolation=' || isolation, 'on_delete=' || on_delete, 'mode=' || mode,
                   'grant=' || (SELECT r.rolname FROM pg_catalog.pg_roles r WHERE r.oid = grant_to));
    RETURN fn;
END
$$;
COMMENT ON FUNCTION tenant_mgr.provisioning_trigger(regclass, name, text, text, text, regrole, regrole) IS
    'provisioning_trigger, and grant_to is granted the owner role of each tenant the trigger creates';
REVOKE ALL ON FUNCTION tenant_mgr.provisioning_trigger(regclass, name, text, text, text, regrole, regrole)
    FROM PUBLIC;

/*
 * tenant_import: a schema tenant restored from a per-tenant pg_dump is taken
 * back, found by its security label, under its name or a new one.
 */
ALTER TABLE tenant_mgr.event DROP CONSTRAINT event_action_check;
ALTER TABLE tenant_mgr.event ADD CONSTRAINT event_action_check
    CHECK (action IN ('create', 'up', 'down', 'drop', 'rename', 'detach', 'attach', 'import'));

CREATE FUNCTION tenant_mgr.tenant_import(name text, new_name text DEFAULT NULL)
RETURNS tenant_mgr.tenant
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_import';
COMMENT ON FUNCTION tenant_mgr.tenant_import(text, text) IS
    'takes back a schema tenant restored from its pg_dump, found by its security label, as new_name if given';
REVOKE ALL ON FUNCTION tenant_mgr.tenant_import(text, text) FROM PUBLIC;

/*
 * tenant_create(..., grant_to => role): the application's role is granted
 * the new tenant's owner role, as a trigger's grant=<role> does.  An
 * overload rather than a new parameter of tenant_create, so that the
 * EXECUTE grants on tenant_create(text, text, name, jsonb, boolean) stay
 * valid; grant_to comes second and has no default, so that every call
 * without it still means the plain tenant_create.
 */
CREATE FUNCTION tenant_mgr.tenant_create(
    name text,
    grant_to regrole,
    isolation text DEFAULT 'schema',
    owner name DEFAULT NULL,
    metadata jsonb DEFAULT '{}',
    wait boolean DEFAULT true)
RETURNS tenant_mgr.tenant
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_create_grant';
COMMENT ON FUNCTION tenant_mgr.tenant_create(text, regrole, text, name, jsonb, boolean) IS
    'tenant_create, and grant_to is granted the new tenant''s owner role';
REVOKE ALL ON FUNCTION tenant_mgr.tenant_create(text, regrole, text, name, jsonb, boolean)
    FROM PUBLIC;

-- tenant_import takes back database tenants too (restored with their owner role)
COMMENT ON FUNCTION tenant_mgr.tenant_import(text, text) IS
    'takes back a schema or database tenant restored from its pg_dump, found by its security label, as new_name if given';

/*
 * Fleet runs.  A run of tenant_migrate over many tenants is carried out by
 * background executors, one transaction per migration per tenant, and
 * recorded here as it goes: the run (who, when, target, options, state) and
 * each tenant's outcome in it.  Executors claim the pending rows of
 * run_tenant, so a run interrupted by a crash is resumed by the launcher
 * from where it stood, and the progress of a run can be read from another
 * session while it goes on.
 */
CREATE TABLE tenant_mgr.run (
    id           bigint PRIMARY KEY,
    requested_by name NOT NULL,
    target       bigint NOT NULL,
    options      jsonb NOT NULL DEFAULT '{}',
    state        text NOT NULL DEFAULT 'running'
                 CHECK (state IN ('running', 'stopping', 'done', 'failed',
                                  'cancelled', 'interrupted')),
    cancelled_by name,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    message      text
);
COMMENT ON TABLE tenant_mgr.run IS
    'fleet runs of tenant_migrate: who asked, the target, the options and how the run ended';

CREATE TABLE tenant_mgr.run_tenant (
    run_id       bigint NOT NULL REFERENCES tenant_mgr.run ON DELETE CASCADE,
    tenant       text NOT NULL,
    ord          integer NOT NULL,
    isolation    text NOT NULL CHECK (isolation IN ('schema', 'database')),
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'running', 'migrated', 'checked',
                                   'failed', 'skipped', 'stopped')),
    from_version bigint NOT NULL,
    to_version   bigint,
    attempts     integer NOT NULL DEFAULT 0,
    not_before   timestamptz NOT NULL DEFAULT '-infinity',
    started_at   timestamptz,
    finished_at  timestamptz,
    duration     interval,
    sqlstate     text,
    message      text,
    PRIMARY KEY (run_id, tenant)
);
CREATE INDEX run_tenant_pending_idx ON tenant_mgr.run_tenant (run_id, ord)
    WHERE status = 'pending';
COMMENT ON TABLE tenant_mgr.run_tenant IS
    'each tenant of a fleet run and its outcome: from and to which version, SQLSTATE and message';

SELECT pg_catalog.pg_extension_config_dump('tenant_mgr.run', '');
SELECT pg_catalog.pg_extension_config_dump('tenant_mgr.run_tenant', '');
REVOKE ALL ON tenant_mgr.run, tenant_mgr.run_tenant FROM PUBLIC;

-- tenant_migrate gains the options of fleet runs and says which run it was;
-- the old one is renamed first, so that the EXECUTE rights granted on it
-- pass to the new one (not as initial privileges: pg_dump keeps them)
ALTER FUNCTION tenant_mgr.tenant_migrate(text, bigint, boolean) RENAME TO tenant_migrate_1_0;
CREATE FUNCTION tenant_mgr.tenant_migrate(
    name text DEFAULT NULL,
    target bigint DEFAULT NULL,
    stop_on_error boolean DEFAULT false,
    wait boolean DEFAULT true,
    canary integer DEFAULT 0,
    names text[] DEFAULT NULL,
    pattern text DEFAULT NULL,
    metadata jsonb DEFAULT NULL,
    dry_run boolean DEFAULT false)
RETURNS TABLE (tenant text, version bigint, migration text, action text,
               status text, duration interval, sqlstate text, message text,
               run_id bigint)
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_migrate';
COMMENT ON FUNCTION tenant_mgr.tenant_migrate(text, bigint, boolean, boolean, integer, text[], text, jsonb, boolean) IS
    'brings one tenant, or every tenant (or a subset) when name is null, up or down to target (default: latest); a fleet runs in executors, one transaction per migration per tenant';
REVOKE ALL ON FUNCTION tenant_mgr.tenant_migrate(text, bigint, boolean, boolean, integer, text[], text, jsonb, boolean)
    FROM PUBLIC;
UPDATE pg_catalog.pg_proc
   SET proacl = (SELECT o.proacl FROM pg_catalog.pg_proc o
                  WHERE o.oid OPERATOR(pg_catalog.=)
                        'tenant_mgr.tenant_migrate_1_0(text, bigint, boolean)'::pg_catalog.regprocedure)
 WHERE oid OPERATOR(pg_catalog.=)
       'tenant_mgr.tenant_migrate(text, bigint, boolean, boolean, integer, text[], text, jsonb, boolean)'::pg_catalog.regprocedure;
DROP FUNCTION tenant_mgr.tenant_migrate_1_0(text, bigint, boolean);

CREATE FUNCTION tenant_mgr.run_cancel(run_id bigint)
RETURNS boolean
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'run_cancel';
COMMENT ON FUNCTION tenant_mgr.run_cancel(bigint) IS
    'stops a fleet run: its executors finish the migration they are in and take no more; true if the run was going on';
REVOKE ALL ON FUNCTION tenant_mgr.run_cancel(bigint) FROM PUBLIC;

CREATE VIEW tenant_mgr.runs AS
SELECT r.id,
       r.state,
       r.requested_by,
       r.target,
       r.options,
       r.started_at,
       coalesce(r.finished_at, now()) - r.started_at AS elapsed,
       count(rt.tenant) AS tenants,
       count(rt.tenant) FILTER (WHERE rt.status IN ('migrated', 'checked')) AS done,
       count(rt.tenant) FILTER (WHERE rt.status = 'failed') AS failed,
       count(rt.tenant) FILTER (WHERE rt.status = 'skipped') AS skipped,
       count(rt.tenant) FILTER (WHERE rt.status IN ('pending', 'running', 'stopped')) AS not_done,
       r.cancelled_by,
       r.message
  FROM tenant_mgr.run r
  LEFT JOIN tenant_mgr.run_tenant rt ON rt.run_id = r.id
 GROUP BY r.id
 ORDER BY r.id;
COMMENT ON VIEW tenant_mgr.runs IS 'every fleet run and how many of its tenants are done, failed, skipped or not done';

CREATE VIEW tenant_mgr.run_tenants AS
SELECT rt.run_id,
       rt.tenant,
       rt.isolation,
       rt.status,
       rt.from_version,
       rt.to_version,
       rt.attempts,
       rt.duration,
       rt.sqlstate,
       rt.message,
       rt.started_at,
       rt.finished_at
  FROM tenant_mgr.run_tenant rt
 ORDER BY rt.run_id, rt.ord;
COMMENT ON VIEW tenant_mgr.run_tenants IS 'each tenant of each fleet run: its outcome, versions, SQLSTATE and message';

CREATE VIEW tenant_mgr.progress AS
SELECT r.id AS run_id,
       r.state,
       r.target,
       now() - r.started_at AS elapsed,
       c.tenants,
       c.done,
       c.failed,
       c.skipped,
       c.tenants - c.done - c.failed - c.skipped AS remaining,
       CASE WHEN c.done + c.failed + c.skipped > 0
            THEN (now() - r.started_at) / (c.done + c.failed + c.skipped)
                 * (c.tenants - c.done - c.failed - c.skipped)
       END AS estimated_left,
       (SELECT pg_catalog.array_agg(a.query ORDER BY a.pid)
          FROM pg_catalog.pg_stat_activity a
         WHERE a.application_name = 'tenant_mgr run ' || r.id) AS executors
  FROM tenant_mgr.run r,
       LATERAL (SELECT count(*) AS tenants,
                       count(*) FILTER (WHERE rt.status IN ('migrated', 'checked')) AS done,
                       count(*) FILTER (WHERE rt.status = 'failed') AS failed,
                       count(*) FILTER (WHERE rt.status = 'skipped') AS skipped
                  FROM tenant_mgr.run_tenant rt
                 WHERE rt.run_id = r.id) c
 WHERE r.state IN ('running', 'stopping')
 ORDER BY r.id;
COMMENT ON VIEW tenant_mgr.progress IS
    'fleet runs going on: tenants done, failed and left, an estimate of the time left, and what each executor is doing';
REVOKE ALL ON tenant_mgr.runs, tenant_mgr.run_tenants, tenant_mgr.progress FROM PUBLIC;

/*
 * Waiting for a run without holding a snapshot: a run's CREATE INDEX
 * CONCURRENTLY on schema tenants waits for every older snapshot of the
 * control database, so a run with one is started with wait => false and
 * waited for with CALL, which commits between its looks at the run.
 */
CREATE PROCEDURE tenant_mgr.run_wait(
    run_id bigint,
    timeout interval DEFAULT NULL,
    INOUT state text DEFAULT NULL)
LANGUAGE C
AS 'MODULE_PATHNAME', 'run_wait';
COMMENT ON PROCEDURE tenant_mgr.run_wait(bigint, interval, text) IS
    'waits (CALL, outside a transaction block) until a fleet run is over or the timeout has passed; returns its state';
REVOKE ALL ON PROCEDURE tenant_mgr.run_wait(bigint, interval, text) FROM PUBLIC;

/*
 * Schema tenants whose migrations cannot share one transaction (an enum
 * value added in one and used in the next) are built by an executor, each
 * migration committed on its own, under an intent naming the caller's
 * transaction, and claimed by the caller.  An intent now says what kind
 * of object it stands for.
 */
ALTER TABLE tenant_mgr.intent
    ADD COLUMN isolation text NOT NULL DEFAULT 'database'
        CHECK (isolation IN ('schema', 'database'));
COMMENT ON TABLE tenant_mgr.intent IS
    'a database or schema an executor is building, committed before it exists, for the transaction (xid) or job that asked';

/*
 * The warm pool: spare schema tenants the launcher keeps built and at the
 * latest migration (tenant_mgr.pool_schema), which tenant_create claims by
 * renaming.  A spare is no tenant: it is in none of the tenant views, only
 * in tenant_mgr.pool.
 */
CREATE SEQUENCE tenant_mgr.spare_seq;
CREATE TABLE tenant_mgr.spare (
    id           uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    isolation    text NOT NULL CHECK (isolation IN ('schema', 'database')),
    object_name  name NOT NULL UNIQUE,
    owner        name NOT NULL,
    object_oid   oid,
    state        text NOT NULL DEFAULT 'building'
                 CHECK (state IN ('building', 'ready', 'failed')),
    version      bigint NOT NULL DEFAULT 0,
    failed_at    bigint,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tenant_mgr.spare IS
    'spare tenants of the warm pool: built (or being brought up to date), ready to be claimed, or failed';
COMMENT ON COLUMN tenant_mgr.spare.failed_at IS
    'the latest registered version when its build failed: no spare is built again until that changes';
SELECT pg_catalog.pg_extension_config_dump('tenant_mgr.spare', '');
SELECT pg_catalog.pg_extension_config_dump('tenant_mgr.spare_seq', '');
REVOKE ALL ON tenant_mgr.spare, tenant_mgr.spare_seq FROM PUBLIC;

CREATE VIEW tenant_mgr.pool AS
SELECT s.isolation,
       s.object_name,
       s.state,
       s.version,
       l.latest,
       s.created_at,
       s.last_error
  FROM tenant_mgr.spare s,
       LATERAL (SELECT coalesce(max(m.version), 0) AS latest
                  FROM tenant_mgr.migration m) l
 ORDER BY s.isolation, s.created_at, s.object_name;
COMMENT ON VIEW tenant_mgr.pool IS
    'spare tenants of the warm pool: ready ones at the latest version are claimed by tenant_create';
REVOKE ALL ON tenant_mgr.pool FROM PUBLIC;

/*
 * Job workers claim the oldest runnable job, one claim at a time: with
 * thousands queued, finding it must not mean reading and sorting them all,
 * nor every job of the tenant (queue.c, TM_JOB_RUNNABLE).
 */
CREATE INDEX job_queued_idx ON tenant_mgr.job (id) WHERE state = 'queued';
CREATE INDEX job_pending_idx ON tenant_mgr.job (tenant, id)
    WHERE state IN ('queued', 'running');

/*
 * NULL arguments: these three answered NULL (STRICT) where every other
 * function refuses NULL with 22004; a NULL reaching them is a mistake that
 * should not read as "nothing happened".
 */
ALTER FUNCTION tenant_mgr.migration_remove(bigint) CALLED ON NULL INPUT;
ALTER FUNCTION tenant_mgr.migrations_load(text) CALLED ON NULL INPUT;
ALTER FUNCTION tenant_mgr.tenant_connection(text) CALLED ON NULL INPUT;

/*
 * Citus mode (citus.c): where each schema tenant lives on a Citus cluster,
 * and moving one to another worker node.
 */
CREATE FUNCTION tenant_mgr.tenant_placement()
RETURNS TABLE (tenant text, schema name, node text, nodeid integer, size bigint)
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_placement';
COMMENT ON FUNCTION tenant_mgr.tenant_placement() IS
    'Citus mode: the worker node (host:port) and shard size of each ready schema tenant';
REVOKE ALL ON FUNCTION tenant_mgr.tenant_placement() FROM PUBLIC;

CREATE VIEW tenant_mgr.placement AS
SELECT p.tenant, p.schema, p.node, p.nodeid, p.size
  FROM tenant_mgr.tenant_placement() p;
COMMENT ON VIEW tenant_mgr.placement IS
    'Citus mode: on which worker node each schema tenant lives, and its size there';
REVOKE ALL ON tenant_mgr.placement FROM PUBLIC;

CREATE FUNCTION tenant_mgr.tenant_move(name text, node text,
                                       transfer_mode text DEFAULT 'block_writes')
RETURNS text
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_move';
COMMENT ON FUNCTION tenant_mgr.tenant_move(text, text, text) IS
    'Citus mode: moves a schema tenant, all its tables together, to another worker node (host:port); returns the node';
REVOKE ALL ON FUNCTION tenant_mgr.tenant_move(text, text, text) FROM PUBLIC;
