-- The extension installs into schema tenant_mgr and needs preloading only
-- for background work.
CREATE EXTENSION tenant_mgr;
\dx tenant_mgr

-- what \df shows: every function, with its arguments and result
SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result, p.prosecdef
  FROM pg_proc p
 WHERE p.pronamespace = 'tenant_mgr'::regnamespace
 ORDER BY 1, 2;

-- catalog tables are not readable or writable by PUBLIC, functions that
-- change things are not executable by PUBLIC
SELECT c.relname, c.relkind,
       has_table_privilege('public', c.oid, 'SELECT') AS public_select,
       has_table_privilege('public', c.oid, 'INSERT,UPDATE,DELETE') AS public_write
  FROM pg_class c
 WHERE c.relnamespace = 'tenant_mgr'::regnamespace AND c.relkind IN ('r', 'v', 'S')
 ORDER BY 1;
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'tenant_mgr'::regnamespace
 ORDER BY 1;

-- catalog data survives pg_dump
SELECT unnest(extconfig)::regclass AS dumped
  FROM pg_extension WHERE extname = 'tenant_mgr' ORDER BY 1;

-- settings
SHOW tenant_mgr.prefix;
SHOW tenant_mgr.shared_schemas;
SET tenant_mgr.prefix = 'Bad-Prefix';
SET tenant_mgr.prefix = 'pg_x';
SET tenant_mgr.prefix = '9x';
SET tenant_mgr.shared_schemas = 'a,,b';
SET tenant_mgr.database = 'other';
SET tenant_mgr.no_such_setting = 'x';
