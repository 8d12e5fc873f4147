# The template database (tenant_mgr.database_template): database tenants
# cloned from a template kept at the latest migration are indistinguishable
# from tenants built from scratch (pg_dump --schema-only, data, ledger,
# owner, grants, labels); the template follows migrations registered,
# removed or replaced; a kill during its maintenance leaves nothing
# half-done; it is never connectable, never a tenant, never an orphan for
# verify(), and a database merely named like it is never used.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $fixtures = abs_path(dirname(__FILE__) . '/../fixtures');

my $node = PostgreSQL::Test::Cluster->new('template');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'tenant_mgr'
tenant_mgr.database = 'postgres'
tenant_mgr.poll_interval = 1
max_worker_processes = 16
restart_after_crash = on
});
$node->start;

sub run_sql { return $node->safe_psql('postgres', shift); }

sub set_template
{
	my ($on) = @_;
	run_sql("ALTER SYSTEM SET tenant_mgr.database_template = $on");
	run_sql('SELECT pg_reload_conf()');
}

# the template's label, "version digest", or '' when there is none
sub template_label
{
	return run_sql(q{SELECT coalesce(max(substr(l.label, 10)), '')
		FROM pg_shseclabel l JOIN pg_database d ON d.oid = l.objoid
		WHERE l.provider = 'tenant_mgr' AND l.classoid = 'pg_database'::regclass
		  AND l.label LIKE 'template %'});
}

sub template_oid
{
	return run_sql(q{SELECT coalesce(max(l.objoid), 0) FROM pg_shseclabel l
		WHERE l.provider = 'tenant_mgr' AND l.classoid = 'pg_database'::regclass
		  AND l.label LIKE 'template %'});
}

# waits until the template is at version (and, if given, not database $old)
sub template_at
{
	my ($version, $old) = @_;
	my $cond = "split_part(l.label, ' ', 2) = '$version'";
	$cond .= " AND l.objoid <> $old" if defined $old;
	return $node->poll_query_until('postgres', qq{SELECT count(*) = 1
		FROM pg_shseclabel l JOIN pg_database d ON d.oid = l.objoid
		WHERE l.provider = 'tenant_mgr' AND l.classoid = 'pg_database'::regclass
		  AND l.label LIKE 'template %' AND $cond});
}

sub consistent
{
	my ($what) = @_;
	$node->poll_query_until('postgres', 'SELECT count(*) = 0 FROM tenant_mgr.intent')
	  or diag('intents left: ' . run_sql('SELECT * FROM tenant_mgr.intent'));
	is(run_sql('SELECT count(*) FROM tenant_mgr.verify()'), '0', "verify() is empty $what")
	  or diag(run_sql('SELECT * FROM tenant_mgr.verify()'));
}

sub ledger
{
	my ($tenant) = @_;
	return $node->safe_psql("tenant_$tenant",
		q{SELECT string_agg(version::text, ',' ORDER BY version) FROM tenant_mgr_ledger});
}

# migrations the tenant's history says were applied to it (none for a clone
# of a template at the latest version)
sub ups
{
	my ($tenant) = @_;
	return run_sql(qq{SELECT count(*) FROM tenant_mgr.history
		WHERE tenant = '$tenant' AND action = 'up'});
}

sub create_db
{
	my ($name) = @_;
	return run_sql("SELECT state || ':' || version FROM tenant_mgr.tenant_create('$name', 'database')");
}

sub wait_for_launcher
{
	$node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'tenant_mgr launcher'})
	  or die 'launcher did not come back';
}

# what a tenant database looks like, with its own names replaced by X
sub normalised
{
	my ($tenant, @args) = @_;
	my ($out, $err) = run_command([ 'pg_dump', @args, '-d', $node->connstr("tenant_$tenant") ]);
	die "pg_dump of tenant_$tenant failed: $err" if $err ne '';
	$out =~ s/\btenant_$tenant\b/X/g;
	# pg_dump's random \restrict key differs from one dump to the next
	$out =~ s/^\\(un)?restrict .*$//mg;
	return $out;
}

# everything about a tenant's database that must not depend on its origin
sub facts
{
	my ($tenant) = @_;
	my $db = "tenant_$tenant";
	my $facts = run_sql(qq{SELECT d.datdba::regrole::text, d.datacl::text, d.datallowconn,
		  d.datistemplate, regexp_replace(l.label, '^tenant [a-z0-9_]+ [0-9a-f-]{36} ', 'tenant N ID '),
		  (SELECT count(*) FROM pg_shdepend s WHERE s.dbid = d.oid),
		  (SELECT count(*) FROM pg_db_role_setting s WHERE s.setdatabase = d.oid)
		FROM pg_database d LEFT JOIN pg_shseclabel l ON l.objoid = d.oid
		  AND l.classoid = 'pg_database'::regclass AND l.provider = 'tenant_mgr'
		WHERE d.datname = '$db'});
	$facts .= "\n" . $node->safe_psql($db, q{SELECT version, name, checksum,
		applied_by = (SELECT datdba::regrole::name FROM pg_database WHERE datname = current_database())
		FROM tenant_mgr_ledger ORDER BY version});
	$facts .= "\n" . $node->safe_psql($db, q{SELECT n.nspname, n.nspowner::regrole, n.nspacl
		FROM pg_namespace n WHERE n.nspname NOT LIKE 'pg\_%' ORDER BY 1});
	$facts .= "\n" . $node->safe_psql($db, q{SELECT count(*) FROM pg_class c
		WHERE c.relnamespace = 'public'::regnamespace
		  AND c.relowner <> (SELECT datdba FROM pg_database WHERE datname = current_database())});
	$facts =~ s/\b$db\b/X/g;
	return $facts;
}

# 001..010 only: 011 is registered later
my $dir = PostgreSQL::Test::Utils::tempdir;
foreach my $f (glob("$fixtures/0*.sql"))
{
	next if $f =~ m{/011_};
	copy($f, $dir) or die "copy $f: $!";
}
run_sql('CREATE EXTENSION tenant_mgr');
is(run_sql("SELECT tenant_mgr.migrations_load('$dir')"), '10', 'fixtures 001..010 registered');
wait_for_launcher();

# --- off (the default): today's behaviour, no template --------------------------

is(run_sql('SHOW tenant_mgr.database_template'), 'off', 'the template is off by default');
is(create_db('scratch'), 'ready:10', 'a database tenant built from scratch');
is(ups('scratch'), '10', 'from scratch, every migration is applied to the tenant');
sleep 2;
is(run_sql(q{SELECT count(*) FROM pg_database WHERE datname = 'tenant_mgr_template'}), '0',
	'no template database while the setting is off');

# --- on: the launcher builds the template ---------------------------------------

set_template('on');
ok(template_at(10), 'the launcher builds the template at the latest migration');
is( run_sql(q{SELECT d.datallowconn, d.datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user),
		d.datacl::text NOT LIKE '%=c%' AND d.datacl::text NOT LIKE '%=Tc%',
		d.datistemplate FROM pg_database d WHERE d.datname = 'tenant_mgr_template'}),
	'f|t|t|f',
	'the template refuses connections, belongs to the extension owner, not to its role, and PUBLIC may not connect');
is( run_sql(q{SELECT r.rolcanlogin, l.label FROM pg_roles r JOIN pg_shseclabel l ON l.objoid = r.oid
		AND l.classoid = 'pg_authid'::regclass AND l.provider = 'tenant_mgr'
		WHERE r.rolname = 'tenant_mgr_template'}),
	'f|template', 'its objects belong to a NOLOGIN role labelled "template"');
my ($rc, $out, $err) = $node->psql('tenant_mgr_template', 'SELECT 1');
isnt($rc, 0, 'nobody connects to the template');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenants WHERE object_name = 'tenant_mgr_template'}),
	'0', 'the template is not a tenant');
consistent('with a template (it is no orphan)');

# --- a clone is indistinguishable from a tenant built from scratch --------------

is(create_db('cloned'), 'ready:10', 'a database tenant cloned from the template');
is(ups('cloned'), '0', 'the clone replayed no migration');
is(ledger('cloned'), '1,2,3,4,5,6,7,8,9,10', 'the clone has the template\'s ledger');
is(normalised('cloned', '--schema-only'), normalised('scratch', '--schema-only'),
	'pg_dump --schema-only of the clone equals that of the tenant built from scratch');
is(normalised('cloned', '--data-only', '--exclude-table=tenant_mgr_ledger'),
	normalised('scratch', '--data-only', '--exclude-table=tenant_mgr_ledger'),
	'so does their data');
is(facts('cloned'), facts('scratch'),
	'and their owner, grants, labels, ledger rows (applied by the owner) and dependencies');
unlike(normalised('cloned', '--schema-only'), qr/tenant_mgr_template/,
	'nothing in the clone names the template or its role');
is( run_sql(q{SELECT count(*) FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid
		WHERE d.datname = 'tenant_cloned' AND s.refobjid = 'tenant_mgr_template'::regrole}),
	'0', 'the clone does not depend on the template role');
is($node->safe_psql('tenant_cloned', q{SELECT count(*) FROM settings}), '2',
	'the seed rows of the migrations are in the clone');
consistent('after a clone');

# queued, through a job worker, the same
run_sql(q{SELECT tenant_mgr.tenant_create('queued', 'database', wait => false)});
is(run_sql(q{SELECT tenant_mgr.tenant_wait('queued')}), 't', 'a queued database tenant');
is(ups('queued'), '0', 'cloned as well');
is(facts('queued'), facts('scratch'), 'and indistinguishable too');

# --- the template follows the registry ------------------------------------------

my $old = template_oid();
run_sql(q{SELECT tenant_mgr.migration_add(11, 'new', $$ALTER TABLE users ADD COLUMN last_login_at timestamptz$$)});
ok(template_at(11, undef), 'a migration registered: the template is migrated to it');
is(template_oid(), $old, 'migrated in place, not rebuilt');
is(create_db('after_add'), 'ready:11', 'a tenant created after migration_add');
is(ledger('after_add'), '1,2,3,4,5,6,7,8,9,10,11', 'has the new migration');
is(ups('after_add'), '0', 'from the template');

# removed before anything applied it: rebuilt without it
run_sql(q{SELECT tenant_mgr.migration_add(12, 'gone', $$CREATE TABLE gone (id int)$$)});
ok(template_at(12), 'the template follows migration 12');
$old = template_oid();
run_sql(q{SELECT tenant_mgr.migration_remove(12)});
ok(template_at(11, $old), 'migration 12 removed: the template is rebuilt at 11');
is(create_db('after_remove'), 'ready:11', 'a tenant created after migration_remove');
is( $node->safe_psql('tenant_after_remove', q{SELECT count(*) FROM pg_class WHERE relname = 'gone'}),
	'0', 'has nothing of the removed migration');
is(ups('after_remove'), '0', 'and comes from the rebuilt template');

# replaced under the same version in one transaction: rebuilt
run_sql(q{SELECT tenant_mgr.migration_add(12, 'first', $$CREATE TABLE first (id int)$$)});
ok(template_at(12), 'the template has migration 12 "first"');
$old = template_oid();
run_sql(q{BEGIN; SELECT tenant_mgr.migration_remove(12);
	SELECT tenant_mgr.migration_add(12, 'second', $$CREATE TABLE second (id int)$$); COMMIT});
ok(template_at(12, $old), 'migration 12 replaced: the template is rebuilt');
is(create_db('after_replace'), 'ready:12', 'a tenant created after the replacement');
is( $node->safe_psql('tenant_after_replace',
		q{SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname IN ('first', 'second')}),
	'second', 'has the new migration 12, not the old one');
is(ups('after_replace'), '0', 'from the rebuilt template');

# a label that disagrees with the registry (here: set by a superuser) is rebuilt
$old = template_oid();
run_sql(qq{SECURITY LABEL FOR tenant_mgr ON DATABASE tenant_mgr_template IS 'template 12 0123456789abcdef'});
is(create_db('mislabelled'), 'ready:12', 'a tenant while the template\'s label disagrees');
is($node->safe_psql('tenant_mislabelled', q{SELECT count(*) FROM pg_class WHERE relname = 'second'}),
	'1', 'built correctly (from scratch)');
ok(template_at(12, $old), 'a template whose label disagrees with the registry is rebuilt');
consistent('after the template followed the registry');

# --- kill -9 during maintenance ---------------------------------------------------

# slow in the template only, so that the kill strikes in the middle of it
run_sql(q{SELECT tenant_mgr.migration_add(13, 'slow',
	$$DO $b$ BEGIN IF current_database() = 'tenant_mgr_template' THEN PERFORM pg_sleep(10); END IF; END $b$;
	  CREATE TABLE slow (id int)$$)});
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity
	   WHERE backend_type = 'tenant_mgr executor' AND datname = 'tenant_mgr_template'})
  or die 'no executor in the template';

# the template is being maintained: a clone falls back to building from scratch
is(create_db('during'), 'ready:13', 'a tenant created while the template is maintained');
is(ledger('during'), '1,2,3,4,5,6,7,8,9,10,11,12,13', 'is complete');

my $pid = run_sql(q{SELECT pid FROM pg_stat_activity
	WHERE backend_type = 'tenant_mgr executor' AND datname = 'tenant_mgr_template'});
kill 'KILL', $pid;
$node->poll_query_until('postgres', 'SELECT 1', '1') or die 'server did not come back';
wait_for_launcher();
like(template_label(), qr/^1[23] [0-9a-f]{16}$/, 'after the kill the template is whole, at 12 (or at 13)');
# it is slow in the template: the launcher finishes it meanwhile
ok(template_at(13), 'the launcher brings the template to 13 after the crash');
is(create_db('after_kill'), 'ready:13', 'a tenant created after the crash');
is(ups('after_kill'), '0', 'is cloned from the template');
is(ledger('after_kill'), '1,2,3,4,5,6,7,8,9,10,11,12,13', 'with every migration once');
is(facts('after_kill'), facts('during'), 'and indistinguishable from one built from scratch');
is( run_sql(q{SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant_mgr_template%'}),
	'1', 'one template database, nothing half-built');
consistent('after a kill during maintenance');

# --- off again: the launcher drops the template and its role --------------------

set_template('off');
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_database WHERE datname = 'tenant_mgr_template'})
	  && $node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_roles WHERE rolname = 'tenant_mgr_template'}),
	'setting off: the template database and its role are dropped');

# --- a database named like the template, not tenant_mgr's, is never used ----------

run_sql('CREATE DATABASE tenant_mgr_template');
set_template('on');
is( run_sql(q{SELECT problem || ': ' || detail FROM tenant_mgr.verify()}),
	'not_ours: database "tenant_mgr_template" does not carry tenant_mgr\'s template label; tenant_mgr never uses it',
	'verify() reports a foreign tenant_mgr_template');
is(create_db('foreign'), 'ready:13', 'a tenant while a foreign tenant_mgr_template exists');
is(ups('foreign'), '13', 'is built from scratch');
sleep 2;
is( run_sql(q{SELECT count(*) FROM pg_shseclabel WHERE provider = 'tenant_mgr'
		AND label LIKE 'template%' AND classoid = 'pg_database'::regclass}),
	'0', 'the foreign database is never labelled, adopted or used');
ok($node->log_contains('tenant_mgr cannot make its template database'),
	'the launcher says so in the log');
run_sql('DROP DATABASE tenant_mgr_template');
ok(template_at(13), 'once it is gone, the launcher builds the template');
is(create_db('last'), 'ready:13', 'and tenants are cloned again');
is(ups('last'), '0', 'from it');
consistent('at the end');

# drops of cloned tenants leave no trace of the template either
run_sql(q{SELECT tenant_mgr.tenant_drop('cloned')});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_roles WHERE rolname = 'tenant_cloned'}),
	'a cloned tenant is dropped with its owner role');

$node->stop;
done_testing();
