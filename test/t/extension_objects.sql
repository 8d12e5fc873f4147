-- test/t/extension_objects.sql: everything CREATE EXTENSION tenant_mgr or
-- ALTER EXTENSION tenant_mgr UPDATE leaves in the current database, one
-- sorted line per fact, without OIDs, so that two databases can be compared
-- as text (003_upgrade.pl: an updated installation against a fresh one).
-- Objects are named by pg_identify_object; newlines inside definitions are
-- written as \n so that every fact stays on one line.
WITH ext AS (
    SELECT e.oid, e.extname, e.extversion, e.extnamespace, e.extrelocatable,
           e.extconfig, e.extcondition
      FROM pg_extension e
     WHERE e.extname = 'tenant_mgr'
),
-- the members: what the scripts created, and DROP EXTENSION drops
member AS (
    SELECT d.classid, d.objid, d.objsubid
      FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid
       AND d.deptype = 'e'
),
rel AS (
    SELECT c.*, (pg_identify_object('pg_class'::regclass, c.oid, 0)).identity AS ident
      FROM pg_class c
      JOIN member m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
),
fn AS (
    SELECT p.*, l.lanname,
           (pg_identify_object('pg_proc'::regclass, p.oid, 0)).identity AS ident
      FROM pg_proc p
      JOIN pg_language l ON l.oid = p.prolang
      JOIN member m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
),
-- what belongs to member relations without being a member itself
idx AS (
    SELECT i.indexrelid, i.indrelid FROM pg_index i JOIN rel ON rel.oid = i.indrelid
),
con AS (
    SELECT c.oid, c.conname, c.conrelid FROM pg_constraint c JOIN rel ON rel.oid = c.conrelid
),
trg AS (
    SELECT t.oid FROM pg_trigger t JOIN rel ON rel.oid = t.tgrelid WHERE NOT t.tgisinternal
),
-- every object above, for comments and initial privileges
obj AS (
    SELECT classid, objid FROM member
    UNION SELECT 'pg_class'::regclass::oid, indexrelid FROM idx
    UNION SELECT 'pg_constraint'::regclass::oid, oid FROM con
    UNION SELECT 'pg_trigger'::regclass::oid, oid FROM trg
),
facts AS (
    -- the extension itself, its configuration tables (pg_dump) and schema
    SELECT format('extension %s version %s schema %s relocatable %s',
                  ext.extname, ext.extversion, ext.extnamespace::regnamespace,
                  ext.extrelocatable) AS line
      FROM ext
    UNION ALL
    SELECT format('extension depends on %s (%s)',
                  pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), d.deptype)
      FROM pg_depend d, ext
     WHERE d.classid = 'pg_extension'::regclass AND d.objid = ext.oid
    UNION ALL
    SELECT format('config %s condition %L', c.tab::regclass, c.cond)
      FROM ext, unnest(ext.extconfig, ext.extcondition) AS c(tab, cond)
    UNION ALL
    SELECT format('schema %I owner %s acl %s', n.nspname, n.nspowner::regrole,
                  coalesce(n.nspacl::text, '-'))
      FROM pg_namespace n, ext
     WHERE n.oid = ext.extnamespace
    UNION ALL
    -- every member
    SELECT format('member %s %s', o.type, o.identity)
      FROM member m, pg_identify_object(m.classid, m.objid, m.objsubid) o
    UNION ALL
    -- functions
    SELECT format('function %s kind %s language %s arguments (%s) identity (%s) result %s'
                  ' secdef %s volatile %s strict %s leakproof %s parallel %s cost %s rows %s'
                  ' config %s owner %s acl %s bin %s src %s',
                  p.ident, p.prokind, p.lanname, pg_get_function_arguments(p.oid),
                  pg_get_function_identity_arguments(p.oid),
                  pg_get_function_result(p.oid), p.prosecdef, p.provolatile,
                  p.proisstrict, p.proleakproof, p.proparallel, p.procost, p.prorows,
                  coalesce(p.proconfig::text, '-'), p.proowner::regrole,
                  coalesce(p.proacl::text, '-'), coalesce(p.probin, '-'),
                  replace(p.prosrc, E'\n', '\n'))
      FROM fn p
    UNION ALL
    -- relations: tables, views, sequences
    SELECT format('relation %s kind %s persistence %s owner %s acl %s options %s'
                  ' rowsecurity %s', r.ident, r.relkind, r.relpersistence,
                  r.relowner::regrole, coalesce(r.relacl::text, '-'),
                  coalesce(r.reloptions::text, '-'), r.relrowsecurity)
      FROM rel r
    UNION ALL
    -- columns of tables and views, numbered by position among the live ones
    SELECT format('column %s.%I position %s type %s notnull %s default %s collation %s'
                  ' identity %s generated %s acl %s',
                  r.ident, a.attname,
                  row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum),
                  format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-'),
                  coalesce((SELECT c.collname FROM pg_collation c
                             WHERE c.oid = a.attcollation AND a.attcollation <> 0), '-'),
                  coalesce(nullif(a.attidentity, ''), '-'),
                  coalesce(nullif(a.attgenerated, ''), '-'),
                  coalesce(a.attacl::text, '-'))
      FROM rel r
      JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     WHERE r.relkind <> 'S'
    UNION ALL
    SELECT format('constraint %s %I %s', r.ident, c.conname, pg_get_constraintdef(c.oid))
      FROM con c JOIN rel r ON r.oid = c.conrelid
    UNION ALL
    SELECT format('index %s', pg_get_indexdef(i.indexrelid))
      FROM idx i
    UNION ALL
    SELECT format('trigger %s', pg_get_triggerdef(t.oid))
      FROM trg t
    UNION ALL
    SELECT format('policy %s %I %s %s roles %s using %s check %s', r.ident, p.polname,
                  p.polcmd, p.polpermissive, p.polroles::regrole[],
                  coalesce(pg_get_expr(p.polqual, p.polrelid), '-'),
                  coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '-'))
      FROM pg_policy p JOIN rel r ON r.oid = p.polrelid
    UNION ALL
    SELECT format('view %s %s', r.ident, replace(pg_get_viewdef(r.oid, true), E'\n', '\n'))
      FROM rel r
     WHERE r.relkind IN ('v', 'm')
    UNION ALL
    SELECT format('sequence %s type %s start %s increment %s min %s max %s cache %s cycle %s'
                  ' owned by %s', r.ident, s.seqtypid::regtype, s.seqstart, s.seqincrement,
                  s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
                  coalesce((SELECT pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)
                              FROM pg_depend d
                             WHERE d.classid = 'pg_class'::regclass AND d.objid = r.oid
                               AND d.deptype IN ('a', 'i')
                               AND d.refclassid = 'pg_class'::regclass), '-'))
      FROM rel r JOIN pg_sequence s ON s.seqrelid = r.oid
    UNION ALL
    -- comments on all of it, columns included
    SELECT format('comment on %s %s: %s', o.type, o.identity,
                  replace(d.description, E'\n', '\n'))
      FROM pg_description d
      JOIN obj ON obj.classid = d.classoid AND obj.objid = d.objoid,
           pg_identify_object(d.classoid, d.objoid, d.objsubid) o
    UNION ALL
    -- the privileges pg_dump takes as the extension's own
    SELECT format('initial privileges %s %s (%s): %s', o.type, o.identity, p.privtype,
                  p.initprivs)
      FROM pg_init_privs p
      JOIN obj ON obj.classid = p.classoid AND obj.objid = p.objoid,
           pg_identify_object(p.classoid, p.objoid, p.objsubid) o
)
SELECT line FROM facts ORDER BY line COLLATE "C";
