-- Registering migrations: checked, checksummed, immutable once applied.
\getenv abs_srcdir PG_ABS_SRCDIR
\set fixtures :abs_srcdir '/fixtures'

-- bad input; nothing is registered
SELECT tenant_mgr.migration_add(NULL, 'x', 'SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, NULL, 'SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(0, 'x', 'SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(-5, 'x', 'SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, '  ', 'SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', '');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', E'  -- only a comment\n');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', E'CREATE TABLE t (id int);\nCREATE TABLE u (id int');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TABLE t (id int); COMMIT;');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'BEGIN; CREATE TABLE t (id int); END;');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'SAVEPOINT a');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'ROLLBACK');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE DATABASE evil');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'DROP DATABASE postgres');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'VACUUM');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE INDEX CONCURRENTLY i ON t (id)');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TABLE t (id int)', down_sql => 'DROP INDEX CONCURRENTLY i');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'REINDEX (CONCURRENTLY) TABLE t');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'REINDEX TABLE CONCURRENTLY t');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TABLE t (id int)', down_sql => ' ');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TABLE t (id int)', down_sql => 'DROP TABLE t; COMMIT');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TABLE t (id int)', transactional => false);
\echo :LAST_ERROR_SQLSTATE
-- what cannot run where every migration runs (inside the transaction of its
-- ledger row, through SPI, as the tenant's owner in a security-restricted
-- operation, in whichever backend applies it) would fail on every tenant:
-- it is refused at registration, named
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TABLE t (id int); DISCARD ALL');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'REINDEX DATABASE contrib_regression');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'REINDEX SYSTEM contrib_regression');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'REINDEX SCHEMA public');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CLUSTER');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'ALTER DATABASE contrib_regression SET TABLESPACE pg_default');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'ALTER SYSTEM SET work_mem = ''8MB''');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TABLESPACE evil LOCATION ''/tmp''');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'DROP TABLESPACE pg_default');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'PREPARE TRANSACTION ''x''');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'COMMIT PREPARED ''x''');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'SET TRANSACTION SNAPSHOT ''00000003-0000001B-1''');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'DISCARD PLANS');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'LISTEN t');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'UNLISTEN *');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'PREPARE p AS SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'DEALLOCATE ALL');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CLOSE ALL');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'SET ROLE postgres');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'SET LOCAL ROLE NONE');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'RESET ROLE');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'SET SESSION AUTHORIZATION DEFAULT');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CHECKPOINT');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'LOAD ''auto_explain''');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TABLE t (id int); COPY t FROM STDIN');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'COPY (SELECT 1) TO STDOUT');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TEMP TABLE t (id int)');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TABLE pg_temp.t (id int)');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TEMP VIEW v AS SELECT 1');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TEMP SEQUENCE s');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TEMP TABLE t AS SELECT 1 AS id');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'SELECT 1 AS id INTO TEMP t');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'SELECT 1 AS id INTO TEMP t UNION SELECT 2');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TABLE t (id int)', down_sql => 'DROP TABLE t; LISTEN t');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS registered FROM tenant_mgr.migration;
-- ANALYZE and REINDEX without CONCURRENTLY run inside a transaction block
BEGIN;
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TABLE t (id int); ANALYZE t; REINDEX (CONCURRENTLY false) TABLE t') AS added;
ROLLBACK;
-- and these are not refused: one table clustered or reindexed, NOTIFY (sent
-- at commit), SET LOCAL, a cursor, COPY of a server file
BEGIN;
SELECT tenant_mgr.migration_add(1, 'x', 'CREATE TABLE t (id int PRIMARY KEY); CLUSTER t USING t_pkey; REINDEX TABLE t; NOTIFY t; SET LOCAL work_mem = ''8MB''; DECLARE c CURSOR FOR SELECT 1; COPY t FROM ''/dev/null''') AS added;
ROLLBACK;

-- migrations_load reads the layouts of the common tools (test/layouts);
-- load() shows its result, or its error with the directory written $DIR
\set layouts :abs_srcdir '/layouts'
CREATE FUNCTION pg_temp.load(dir text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    n int;
    s text;
    m text;
    d text;
    h text;
    c text;
BEGIN
    n := tenant_mgr.migrations_load(dir);
    RETURN NEXT 'loaded ' || n;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT,
        d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT, c = PG_EXCEPTION_CONTEXT;
    RETURN NEXT 'ERROR ' || s || ': ' || replace(m, dir, '$DIR');
    IF d <> '' THEN
        RETURN NEXT 'DETAIL: ' || replace(d, dir, '$DIR');
    END IF;
    IF h <> '' THEN
        RETURN NEXT 'HINT: ' || replace(h, dir, '$DIR');
    END IF;
    RETURN QUERY SELECT 'CONTEXT: ' || replace(l, dir, '$DIR')
                   FROM regexp_split_to_table(c, E'\n') l
                  WHERE l !~ '^(PL/pgSQL function|SQL statement)';
END $$;
-- golang-migrate, River, sqlx: NNN_name.up.sql with NNN_name.down.sql
BEGIN;
SELECT pg_temp.load(:'layouts' || '/updown');
SELECT version, name, down_sql IS NOT NULL AS reversible FROM tenant_mgr.migration ORDER BY 1;
ROLLBACK;
-- NNNN-name.sql, with a down file
BEGIN;
SELECT pg_temp.load(:'layouts' || '/dash');
SELECT version, name, down_sql IS NOT NULL AS reversible FROM tenant_mgr.migration ORDER BY 1;
ROLLBACK;
-- Flyway: V<n>__name.sql and the undo U<n>__name.sql, in numeric order;
-- README.md and .gitkeep are ignored; a trailing slash is fine
BEGIN;
SELECT pg_temp.load(:'layouts' || '/flyway/');
SELECT version, name, down_sql IS NOT NULL AS reversible FROM tenant_mgr.migration ORDER BY 1;
ROLLBACK;
-- directories with something it does not understand are refused whole
SELECT pg_temp.load(:'layouts' || '/stray');
SELECT pg_temp.load(:'layouts' || '/two_ups');
SELECT pg_temp.load(:'layouts' || '/orphan_down');
SELECT pg_temp.load(:'layouts' || '/name_mismatch');
SELECT pg_temp.load(:'layouts' || '/subdir');
SELECT pg_temp.load(:'layouts' || '/bad_sql');
SELECT pg_temp.load(:'layouts' || '/version_zero');
SELECT pg_temp.load(:'layouts' || '/version_range');
-- a FIFO is refused without being opened (opening it would block); git
-- cannot hold one, so it is made in a temporary directory
CREATE TEMP TABLE regress_fifo_dir (path text);
COPY regress_fifo_dir FROM PROGRAM 'mktemp -d';
SELECT format('echo "CREATE TABLE a (id int);" > %1$s/001_a.sql && mkfifo %1$s/002_b.sql', path) AS make_fifo,
       path AS fifo_dir
  FROM regress_fifo_dir \gset
COPY (SELECT 1 WHERE false) TO PROGRAM :'make_fifo';
SELECT pg_temp.load(:'fifo_dir');
-- symbolic links are followed: to a FIFO refused the same way, to a regular
-- file read, dangling an error naming the entry
SELECT format('rm %1$s/002_b.sql && mkfifo %1$s.fifo && ln -s %1$s.fifo %1$s/002_b.sql', :'fifo_dir') AS link_fifo,
       format('rm %1$s/002_b.sql && ln -s 001_a.sql %1$s/002_b.sql', :'fifo_dir') AS link_file,
       format('ln -s nowhere.sql %1$s/003_c.sql', :'fifo_dir') AS link_nowhere \gset
COPY (SELECT 1 WHERE false) TO PROGRAM :'link_fifo';
SELECT pg_temp.load(:'fifo_dir');
COPY (SELECT 1 WHERE false) TO PROGRAM :'link_file';
BEGIN;
SELECT pg_temp.load(:'fifo_dir');
SELECT version, name FROM tenant_mgr.migration ORDER BY 1;
ROLLBACK;
COPY (SELECT 1 WHERE false) TO PROGRAM :'link_nowhere';
SELECT pg_temp.load(:'fifo_dir');
SELECT format('rm -r %1$s %1$s.fifo', :'fifo_dir') AS remove_fifo \gset
COPY (SELECT 1 WHERE false) TO PROGRAM :'remove_fifo';
SELECT count(*) AS registered FROM tenant_mgr.migration;

-- a directory of NNN_name.sql files, in version order
SELECT tenant_mgr.migrations_load(:'fixtures') AS loaded;
SELECT version, name, transactional, reversible, applied_to, pending_on, checksum
  FROM tenant_mgr.migrations;
-- the checksum is the SHA-256 of the text without trailing blanks
SELECT checksum = encode(sha256(convert_to(rtrim(up_sql, E'\n'), 'UTF8')), 'hex') AS sha256
  FROM tenant_mgr.migration WHERE version = 1;

-- loading again, or adding the same migration again, is a no-op
SELECT tenant_mgr.migrations_load(:'fixtures') AS loaded_again;
SELECT up_sql AS m11 FROM tenant_mgr.migration WHERE version = 11 \gset
SELECT tenant_mgr.migration_add(11, 'new', :'m11') AS added;
-- whitespace at line ends and around the text does not make another migration
SELECT tenant_mgr.migration_add(11, 'new', E'\n' || replace(:'m11', E'\n', E'   \r\n') || E'\n\n') AS added;
-- anything else under an existing version is an error
SELECT tenant_mgr.migration_add(11, 'new', 'SELECT 2');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(11, 'renamed', :'m11');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant_mgr.migration_add(11, 'new', :'m11', down_sql => 'SELECT 1');
\echo :LAST_ERROR_SQLSTATE
-- versions only grow
SELECT tenant_mgr.migration_add(30, 'later', 'SELECT 1');
SELECT tenant_mgr.migration_add(20, 'too_late', 'SELECT 1');
\echo :LAST_ERROR_SQLSTATE
-- a migration no tenant has applied can be removed
SELECT tenant_mgr.migration_remove(30);
SELECT tenant_mgr.migration_remove(30);
\echo :LAST_ERROR_SQLSTATE
SELECT max(version) AS latest FROM tenant_mgr.migration;

-- loading files needs pg_read_server_files
\set VERBOSITY sqlstate
SELECT tenant_mgr.migrations_load(:'fixtures' || '/no_such_dir');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
CREATE ROLE regress_tm_loader;
GRANT USAGE ON SCHEMA tenant_mgr TO regress_tm_loader;
SET ROLE regress_tm_loader;
SELECT tenant_mgr.migration_add(12, 'x', 'SELECT 1');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
GRANT EXECUTE ON FUNCTION tenant_mgr.migrations_load(text) TO regress_tm_loader;
SET ROLE regress_tm_loader;
SELECT tenant_mgr.migrations_load(:'fixtures');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP OWNED BY regress_tm_loader;
DROP ROLE regress_tm_loader;
SELECT count(*) AS registered FROM tenant_mgr.migration;
