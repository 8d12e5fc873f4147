/* tenant_mgr--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION tenant_mgr" to load this file. \quit

/*
 * Catalog.  These tables are a cache of reality: the truth about a tenant's
 * version is the ledger inside the tenant, written in the same transaction as
 * the DDL it records.  Nothing here is writable by ordinary roles; people read
 * the views at the end of this file.
 */

CREATE TABLE tenant_mgr.tenant (
    name        text PRIMARY KEY,
    isolation   text NOT NULL CHECK (isolation IN ('schema', 'database')),
    object_name name NOT NULL,
    object_oid  oid NOT NULL,
    owner       name NOT NULL,
    state       text NOT NULL DEFAULT 'ready'
                CHECK (state IN ('creating', 'ready', 'failed', 'detached')),
    version     bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    last_error  text,
    metadata    jsonb NOT NULL DEFAULT '{}',
    UNIQUE (isolation, object_name)
);
COMMENT ON TABLE tenant_mgr.tenant IS
    'one row per tenant created by tenant_mgr; object_oid is the marker of the schema or database it created';

CREATE TABLE tenant_mgr.migration (
    version       bigint PRIMARY KEY CHECK (version > 0),
    name          text NOT NULL CHECK (name <> ''),
    up_sql        text NOT NULL,
    down_sql      text,
    transactional boolean NOT NULL DEFAULT true,
    checksum      text NOT NULL,
    registered_by name NOT NULL DEFAULT current_user,
    registered_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tenant_mgr.migration IS
    'registered migrations; checksum is the SHA-256 of the normalized up_sql';

CREATE SEQUENCE tenant_mgr.event_id_seq;
CREATE SEQUENCE tenant_mgr.run_id_seq;

CREATE TABLE tenant_mgr.event (
    id        bigint PRIMARY KEY DEFAULT nextval('tenant_mgr.event_id_seq'),
    run_id    bigint NOT NULL,
    tenant    text NOT NULL,
    action    text NOT NULL CHECK (action IN ('create', 'up', 'down', 'drop', 'rename',
                                          'detach', 'attach')),
    version   bigint,
    status    text NOT NULL CHECK (status IN ('ok', 'failed', 'skipped')),
    sqlstate  text,
    message   text,
    duration  interval,
    run_by    name NOT NULL DEFAULT current_user,
    at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
ALTER SEQUENCE tenant_mgr.event_id_seq OWNED BY tenant_mgr.event.id;
CREATE INDEX ON tenant_mgr.event (tenant, id);
CREATE INDEX ON tenant_mgr.event (run_id);
COMMENT ON TABLE tenant_mgr.event IS
    'what tenant_mgr did to each tenant, one row per step, failures included';

CREATE SEQUENCE tenant_mgr.job_id_seq;

CREATE TABLE tenant_mgr.job (
    id           bigint PRIMARY KEY DEFAULT nextval('tenant_mgr.job_id_seq'),
    tenant       text NOT NULL,
    action       text NOT NULL CHECK (action IN ('create', 'drop')),
    state        text NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'running', 'done', 'failed')),
    object_name  name NOT NULL,
    database_oid oid,
    owner        name NOT NULL,
    own_role     boolean NOT NULL DEFAULT true,
    force        boolean NOT NULL DEFAULT false,
    requested_by name NOT NULL DEFAULT current_user,
    attempts     integer NOT NULL DEFAULT 0,
    not_before   timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    sqlstate     text,
    message      text
);
ALTER SEQUENCE tenant_mgr.job_id_seq OWNED BY tenant_mgr.job.id;
CREATE INDEX ON tenant_mgr.job (tenant, id);
CREATE INDEX ON tenant_mgr.job (state) WHERE state IN ('queued', 'running');
COMMENT ON TABLE tenant_mgr.job IS
    'work queued for the launcher, committed with the transaction that asked';

CREATE SEQUENCE tenant_mgr.intent_id_seq;

CREATE TABLE tenant_mgr.intent (
    id           bigint PRIMARY KEY DEFAULT nextval('tenant_mgr.intent_id_seq'),
    tenant       text NOT NULL,
    object_name  name NOT NULL,
    owner        name NOT NULL,
    database_oid oid,
    requested_by name NOT NULL,
    xid          xid8,
    job_id       bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (xid IS NOT NULL OR job_id IS NOT NULL)
);
ALTER SEQUENCE tenant_mgr.intent_id_seq OWNED BY tenant_mgr.intent.id;
COMMENT ON TABLE tenant_mgr.intent IS
    'a database an executor is creating, committed before it exists, for the transaction (xid) or job that asked';

-- pg_dump keeps what users put in the catalog
SELECT pg_catalog.pg_extension_config_dump('tenant_mgr.tenant', '');
SELECT pg_catalog.pg_extension_config_dump('tenant_mgr.migration', '');
SELECT pg_catalog.pg_extension_config_dump('tenant_mgr.event', '');
SELECT pg_catalog.pg_extension_config_dump('tenant_mgr.event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('tenant_mgr.run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('tenant_mgr.job', '');
SELECT pg_catalog.pg_extension_config_dump('tenant_mgr.job_id_seq', '');


/*
 * Migrations
 */

CREATE FUNCTION tenant_mgr.migration_add(
    version bigint,
    name text,
    up_sql text,
    down_sql text DEFAULT NULL,
    transactional boolean DEFAULT true)
RETURNS boolean
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'migration_add';
COMMENT ON FUNCTION tenant_mgr.migration_add(bigint, text, text, text, boolean) IS
    'registers a migration; true if new, false if the same migration was already registered';

CREATE FUNCTION tenant_mgr.migration_remove(version bigint)
RETURNS boolean
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'migration_remove';
COMMENT ON FUNCTION tenant_mgr.migration_remove(bigint) IS
    'removes a registered migration that no tenant has applied';

CREATE FUNCTION tenant_mgr.migrations_load(directory text)
RETURNS integer
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'migrations_load';
COMMENT ON FUNCTION tenant_mgr.migrations_load(text) IS
    'registers every NNN_name.sql file (and NNN_name.down.sql) of a server directory; returns how many were new';

/*
 * Tenants
 */

CREATE FUNCTION tenant_mgr.tenant_create(
    name text,
    isolation text DEFAULT 'schema',
    owner name DEFAULT NULL,
    metadata jsonb DEFAULT '{}',
    wait boolean DEFAULT true)
RETURNS tenant_mgr.tenant
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_create';
COMMENT ON FUNCTION tenant_mgr.tenant_create(text, text, name, jsonb, boolean) IS
    'creates a tenant and applies every registered migration to it (a database tenant without wait: queued)';

CREATE FUNCTION tenant_mgr.tenant_migrate(
    name text DEFAULT NULL,
    target bigint DEFAULT NULL,
    stop_on_error boolean DEFAULT false)
RETURNS TABLE (tenant text, version bigint, migration text, action text,
               status text, duration interval, sqlstate text, message text)
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_migrate';
COMMENT ON FUNCTION tenant_mgr.tenant_migrate(text, bigint, boolean) IS
    'brings one tenant, or every tenant when name is null, up or down to target (default: latest)';

CREATE FUNCTION tenant_mgr.tenant_drop(
    name text,
    if_exists boolean DEFAULT false,
    force boolean DEFAULT false)
RETURNS boolean
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_drop';
COMMENT ON FUNCTION tenant_mgr.tenant_drop(text, boolean, boolean) IS
    'drops a tenant created by tenant_mgr, and nothing else (a database tenant: after commit)';

CREATE FUNCTION tenant_mgr.tenant_rename(name text, new_name text)
RETURNS tenant_mgr.tenant
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_rename';
COMMENT ON FUNCTION tenant_mgr.tenant_rename(text, text) IS
    'renames a tenant: its schema or database, its owner role and its catalog row';

CREATE FUNCTION tenant_mgr.tenant_detach(
    name text,
    if_exists boolean DEFAULT false,
    force boolean DEFAULT false)
RETURNS boolean
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_detach';
COMMENT ON FUNCTION tenant_mgr.tenant_detach(text, boolean, boolean) IS
    'moves a tenant aside, keeping its data: tenant_attach brings it back, tenant_drop removes it';

CREATE FUNCTION tenant_mgr.tenant_attach(name text)
RETURNS tenant_mgr.tenant
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_attach';
COMMENT ON FUNCTION tenant_mgr.tenant_attach(text) IS
    'gives a detached tenant its schema or database back';

CREATE FUNCTION tenant_mgr.tenant_login_role(name text)
RETURNS name
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_login_role';
COMMENT ON FUNCTION tenant_mgr.tenant_login_role(text) IS
    'creates (or returns) the LOGIN role <object>_login for the application, a member of the tenant''s owner role';

CREATE FUNCTION tenant_mgr.customers_trigger()
RETURNS trigger
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'customers_trigger';
COMMENT ON FUNCTION tenant_mgr.customers_trigger() IS
    'AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW trigger: arguments name=<column>, isolation=schema|database, on_delete=drop|detach|keep, mode=inline|queued';

CREATE FUNCTION tenant_mgr.provisioning_trigger(
    customers regclass,
    name_column name,
    isolation text DEFAULT 'schema',
    on_delete text DEFAULT 'drop',
    mode text DEFAULT 'inline',
    definer regrole DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel name;
    nsp name;
    wrapper text;
    fn text := 'tenant_mgr.customers_trigger';
    args text;
BEGIN
    IF customers IS NULL OR name_column IS NULL OR isolation IS NULL
       OR on_delete IS NULL OR mode IS NULL THEN
        RAISE EXCEPTION 'arguments of provisioning_trigger must not be null'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF isolation NOT IN ('schema', 'database') OR on_delete NOT IN ('drop', 'detach', 'keep')
       OR mode NOT IN ('inline', 'queued') THEN
        RAISE EXCEPTION 'invalid provisioning options: isolation %, on_delete %, mode %',
                        isolation, on_delete, mode
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'isolation is schema or database, on_delete drop, detach or keep, mode inline or queued.';
    END IF;
    SELECT c.relname, n.nspname INTO rel, nsp
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = customers;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                    WHERE attrelid = customers AND attname = name_column
                      AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'column "%" of relation "%" does not exist', name_column, rel
            USING ERRCODE = 'undefined_column';
    END IF;
    args := format('%L, %L, %L, %L', 'name=' || name_column, 'isolation=' || isolation,
                   'on_delete=' || on_delete, 'mode=' || mode);

    -- a SECURITY DEFINER wrapper owned by the definer does the privileged part
    IF definer IS NOT NULL THEN
        wrapper := rel || '_provision';
        IF octet_length(wrapper) > 63 THEN
            RAISE EXCEPTION 'function name "%" would be too long', wrapper
                USING ERRCODE = 'name_too_long';
        END IF;
        fn := format('%I.%I', nsp, wrapper);
        EXECUTE format('CREATE FUNCTION %s() RETURNS trigger LANGUAGE C VOLATILE'
                       ' SECURITY DEFINER SET search_path = pg_catalog, pg_temp'
                       ' AS %L, %L', fn, 'MODULE_PATHNAME', 'customers_trigger');
        EXECUTE format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', fn);
        EXECUTE format('ALTER FUNCTION %s() OWNER TO %s', fn, definer);
    END IF;
    EXECUTE format('CREATE TRIGGER tenant_mgr_provisioning'
                   ' AFTER INSERT OR UPDATE OF %I OR DELETE ON %s'
                   ' FOR EACH ROW EXECUTE FUNCTION %s(%s)',
                   name_column, customers, fn, args);
    RETURN fn;
END
$$;
COMMENT ON FUNCTION tenant_mgr.provisioning_trigger(regclass, name, text, text, text, regrole) IS
    'attaches the provisioning trigger to a customers table, through a SECURITY DEFINER wrapper owned by definer if given';

CREATE FUNCTION tenant_mgr.tenant_wait(name text, timeout interval DEFAULT '5 minutes')
RETURNS boolean
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_wait';
COMMENT ON FUNCTION tenant_mgr.tenant_wait(text, interval) IS
    'waits until no job of the tenant is queued or running; true if the last one succeeded';

CREATE FUNCTION tenant_mgr.tenant_use(name text, is_local boolean DEFAULT false)
RETURNS text
LANGUAGE C CALLED ON NULL INPUT VOLATILE
AS 'MODULE_PATHNAME', 'tenant_use';
COMMENT ON FUNCTION tenant_mgr.tenant_use(text, boolean) IS
    'points the search_path of this session (or transaction) at a schema tenant';

CREATE FUNCTION tenant_mgr.verify()
RETURNS TABLE (tenant text, problem text, detail text)
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'verify';
COMMENT ON FUNCTION tenant_mgr.verify() IS
    'compares the catalog with pg_namespace and every ledger; no rows means consistent';

REVOKE ALL ON FUNCTION
    tenant_mgr.migration_add(bigint, text, text, text, boolean),
    tenant_mgr.migration_remove(bigint),
    tenant_mgr.migrations_load(text),
    tenant_mgr.tenant_create(text, text, name, jsonb, boolean),
    tenant_mgr.tenant_migrate(text, bigint, boolean),
    tenant_mgr.tenant_drop(text, boolean, boolean),
    tenant_mgr.tenant_wait(text, interval),
    tenant_mgr.tenant_rename(text, text),
    tenant_mgr.tenant_detach(text, boolean, boolean),
    tenant_mgr.tenant_attach(text),
    tenant_mgr.tenant_login_role(text),
    tenant_mgr.customers_trigger(),
    tenant_mgr.provisioning_trigger(regclass, name, text, text, text, regrole),
    tenant_mgr.tenant_use(text, boolean),
    tenant_mgr.verify()
FROM PUBLIC;

/*
 * Views: what a psql user reads.
 */

CREATE VIEW tenant_mgr.tenants AS
SELECT t.name,
       t.isolation,
       t.object_name,
       t.owner,
       t.state,
       t.version,
       l.latest,
       (SELECT count(*) FROM tenant_mgr.migration m
         WHERE m.version > t.version) AS pending,
       t.created_at,
       t.updated_at,
       t.last_error,
       t.metadata
  FROM tenant_mgr.tenant t,
       LATERAL (SELECT coalesce(max(m.version), 0) AS latest
                  FROM tenant_mgr.migration m) l
 ORDER BY t.name;
COMMENT ON VIEW tenant_mgr.tenants IS 'every tenant, its version and how many migrations it lacks';

CREATE VIEW tenant_mgr.migrations AS
SELECT m.version,
       m.name,
       m.transactional,
       m.down_sql IS NOT NULL AS reversible,
       (SELECT count(*) FROM tenant_mgr.tenant t
         WHERE t.version >= m.version) AS applied_to,
       (SELECT count(*) FROM tenant_mgr.tenant t
         WHERE t.version < m.version) AS pending_on,
       left(m.checksum, 12) AS checksum,
       m.registered_by,
       m.registered_at
  FROM tenant_mgr.migration m
 ORDER BY m.version;
COMMENT ON VIEW tenant_mgr.migrations IS 'registered migrations and how far they are rolled out';

CREATE VIEW tenant_mgr.history AS
SELECT e.id,
       e.run_id,
       e.at,
       e.tenant,
       e.action,
       e.version,
       m.name AS migration,
       e.status,
       e.duration,
       e.sqlstate,
       e.message,
       e.run_by
  FROM tenant_mgr.event e
  LEFT JOIN tenant_mgr.migration m ON m.version = e.version
 ORDER BY e.id;
COMMENT ON VIEW tenant_mgr.history IS 'every step tenant_mgr took, newest last; failures carry their SQLSTATE';

CREATE VIEW tenant_mgr.jobs AS
SELECT j.id,
       j.tenant,
       j.action,
       j.state,
       j.attempts,
       j.requested_by,
       j.created_at,
       j.finished_at - j.started_at AS duration,
       j.sqlstate,
       j.message
  FROM tenant_mgr.job j
 ORDER BY j.id;
COMMENT ON VIEW tenant_mgr.jobs IS 'queued, running and finished work of the launcher';

-- nothing here is for PUBLIC; see the README for granting access
REVOKE ALL ON ALL TABLES IN SCHEMA tenant_mgr FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA tenant_mgr FROM PUBLIC;
