# Tenants keep who they are when moved to another cluster: by pg_dumpall
# --roles-only and pg_dump/pg_restore --create with OIDs made to collide on
# purpose (every OID recorded in the source names another object in the
# target: another tenant's schema or database, or an unrelated one), and by
# pg_upgrade 15 -> 15 with 120 schema and 3 database tenants.  tenant_mgr
# finds each tenant by its security label, so verify() is empty and
# tenant_use, tenant_migrate and tenant_drop reach exactly the tenant's own
# objects.  A tenant's login role can rewrite its comment and its ledger but
# cannot set or remove a label; a ledger row it deletes is reported and
# refused, never applied again: below the latest it leaves a gap, and the
# latest is recorded in the label of the schema or database holding the
# ledger (the catalog cannot tell: a rolled-back caller leaves it ahead of
# a database tenant's ledger).
use strict;
use warnings;
use Cwd qw(abs_path getcwd);
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $fixtures = abs_path(dirname(__FILE__) . '/../fixtures');
my $dumps = PostgreSQL::Test::Utils::tempdir;

# A cluster configured as the README says: preloaded, control database app.
sub new_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'tenant_mgr'
tenant_mgr.database = 'app'
tenant_mgr.poll_interval = 1
max_worker_processes = 16
});
	return $node;
}

# Registers fixture migration NNN_name.sql with its text.
sub add_fixture
{
	my ($node, $version) = @_;
	my ($file) = glob(sprintf('%s/%03d_*.sql', $fixtures, $version));
	die "no fixture migration $version" unless $file;
	my ($name) = $file =~ m{/\d+_(\w+)\.sql$};
	my $sql = slurp_file($file);
	die "fixture $file contains the quote \$m\$" if $sql =~ /\$m\$/;
	return $node->safe_psql('app',
		"SELECT tenant_mgr.migration_add($version, '$name', \$m\$$sql\$m\$)");
}

# Takes $count OIDs from the cluster-wide OID counter: each large object
# takes the next one.
sub use_oids
{
	my ($node, $count) = @_;
	$node->safe_psql('postgres',
		"SELECT count(lo_create(0)) FROM generate_series(1, $count)");
}

# Makes $target the next OID the cluster assigns (nothing else here takes
# OIDs meanwhile: the launcher only reads).  Dies when the counter is
# already past it.
sub next_oid_is
{
	my ($node, $target) = @_;
	my $next = $node->safe_psql('postgres', 'SELECT lo_create(0)');
	die "the OID counter of " . $node->name . " is at $next, past $target"
	  if $next >= $target;
	use_oids($node, $target - $next - 1) if $target - $next > 1;
}

# name => value from the rows (name, value) of $sql
sub pairs
{
	my ($node, $db, $sql) = @_;
	return map { split /\|/, $_, 2 } split /\n/, $node->safe_psql($db, $sql);
}

# psql output and error for $sql in $db, as $role if given; errors verbose
# (with their SQLSTATE)
sub try_sql
{
	my ($node, $db, $sql, $role) = @_;
	my ($rc, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\n$sql",
		extra_params => $role ? [ '-U', $role ] : []);
	return ($rc, $out, $err);
}

# The search_path tenant_use sets in a transaction, and what the table
# accounts it then finds holds.
sub data_via_tenant_use
{
	my ($node, $t) = @_;
	return $node->safe_psql('app',
		"BEGIN; SELECT tenant_mgr.tenant_use('$t', true); SELECT string_agg(name, ',') FROM accounts; COMMIT;");
}

# Drops a database tenant, waiting for other sessions to leave its database
# first and for the launcher to remove it after commit.
sub drop_database_tenant
{
	my ($node, $t) = @_;
	$node->poll_query_until('app',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = 'tenant_$t'")
	  or diag("sessions in tenant_$t stay");
	is($node->safe_psql('app', "SELECT tenant_mgr.tenant_drop('$t')"), 't', "tenant_drop($t)");
	ok( $node->poll_query_until('app',
			q{SELECT count(*) = 0 FROM pg_database WHERE datname LIKE 'tenant\_mgr\_drop\_%'}),
		"the database of $t goes after commit");
	ok( $node->poll_query_until('app',
			q{SELECT count(*) = 0 FROM tenant_mgr.jobs WHERE state IN ('queued', 'running')}),
		'no job is left');
}

# every tenant as name:isolation:state:version
my $tenants_sql = q{SELECT string_agg(name || ':' || isolation || ':' || state || ':' || version,
	',' ORDER BY name) FROM tenant_mgr.tenants};

# ============================================================================
# pg_dump/pg_restore into a fresh cluster whose OIDs collide
# ============================================================================
#
# Both clusters' OID counters start at the same value after initdb.  In the
# source, OIDs taken between the tenants spread the OIDs they record:
# d1 < s1 < d2 < s2..s5.  In the target, each is made the next OID just
# before the object that is to get it:
#   d1's OID      unrelated_db1, created before the restore
#   s1's OID      tenant_s2's schema, restored with app
#   d2's OID      tenant_d1's database, restored after app
#   s2..s5's OIDs unrelated_s2..unrelated_s5 in app, created after the
#                 restore (app does not exist before)
# so that anything going by a recorded OID would use, migrate, rename or
# drop another tenant's object or an unrelated one.

my $src = new_node('dump_source');
$src->start;
$src->safe_psql('postgres', 'CREATE DATABASE app');
$src->safe_psql('app', 'CREATE EXTENSION tenant_mgr');
is(join(',', map { add_fixture($src, $_) } 1 .. 3), 't,t,t', 'migrations 1..3 registered');

$src->safe_psql('app', q{SELECT tenant_mgr.tenant_create('d1', 'database')});
use_oids($src, 3000);
$src->safe_psql('app', q{SELECT tenant_mgr.tenant_create('s1')});
use_oids($src, 3000);
$src->safe_psql('app', q{SELECT tenant_mgr.tenant_create('d2', 'database')});
use_oids($src, 3000);
$src->safe_psql('app',
	q{SELECT count(tenant_mgr.tenant_create(n)) FROM unnest(ARRAY['s2', 's3', 's4', 's5']) n});
is($src->safe_psql('app', $tenants_sql),
	'd1:database:ready:3,d2:database:ready:3,s1:schema:ready:3,s2:schema:ready:3,'
	  . 's3:schema:ready:3,s4:schema:ready:3,s5:schema:ready:3',
	'source: 5 schema and 2 database tenants at version 3');

my @schema_tenants = qw(s1 s2 s3 s4 s5);
my @db_tenants = qw(d1 d2);
foreach my $t (@schema_tenants)
{
	$src->safe_psql('app', "INSERT INTO tenant_$t.accounts (name) VALUES ('$t')");
}
foreach my $t (@db_tenants)
{
	$src->safe_psql("tenant_$t", "INSERT INTO accounts (name) VALUES ('$t')");
}
is($src->safe_psql('app', 'SELECT count(*) FROM tenant_mgr.verify()'), '0',
	'source: verify() is empty');

my %id = pairs($src, 'app', 'SELECT name, tenant_id FROM tenant_mgr.tenant');
my %oid = pairs($src, 'app', 'SELECT name, object_oid FROM tenant_mgr.tenant');

# --- what the dumps carry -----------------------------------------------------

$src->command_ok(
	[ 'pg_dumpall', '--roles-only', '-d', $src->connstr('postgres'), '-f', "$dumps/roles.sql" ],
	'pg_dumpall --roles-only');
my $roles = slurp_file("$dumps/roles.sql");
is( scalar(grep { $roles =~ /^SECURITY LABEL FOR tenant_mgr ON ROLE tenant_$_ IS 'tenant $_ $id{$_}';\n/m }
		  sort keys %id),
	7, "pg_dumpall --roles-only emits every owner role's label");

$src->command_ok(
	[ 'pg_dump', '-d', $src->connstr('app'), '-f', "$dumps/app.sql" ],
	'pg_dump of app, plain, without --create');
my $app_sql = slurp_file("$dumps/app.sql");
is( scalar(grep { $app_sql =~ /^SECURITY LABEL FOR tenant_mgr ON SCHEMA tenant_$_ IS 'tenant $_ $id{$_} 3';\n/m }
		  @schema_tenants),
	5, "pg_dump without --create emits every tenant schema's label, with its ledger's version");

$src->command_ok(
	[ 'pg_dump', '-d', $src->connstr('tenant_d1'), '-f', "$dumps/d1.sql" ],
	'pg_dump of a tenant database, plain, without --create');
unlike(slurp_file("$dumps/d1.sql"), qr/ON DATABASE/,
	"without --create the database's own label is not dumped");
$src->command_ok(
	[ 'pg_dump', '--create', '-d', $src->connstr('tenant_d1'), '-f', "$dumps/d1_create.sql" ],
	'pg_dump --create of a tenant database, plain');
like(slurp_file("$dumps/d1_create.sql"),
	qr/^SECURITY LABEL FOR tenant_mgr ON DATABASE tenant_d1 IS 'tenant d1 $id{d1} 3';\n/m,
	"with --create it is");

foreach my $db ('app', map { "tenant_$_" } @db_tenants)
{
	$src->command_ok(
		[ 'pg_dump', '-Fc', '--create', '-d', $src->connstr($db), '-f', "$dumps/$db.dump" ],
		"pg_dump -Fc --create of $db");
}
my ($script) = run_command([ 'pg_restore', '--create', '-f', '-', "$dumps/tenant_d2.dump" ]);
like($script, qr/^SECURITY LABEL FOR tenant_mgr ON DATABASE tenant_d2 IS 'tenant d2 $id{d2} 3';\n/m,
	'pg_restore --create restores the label of a tenant database');
($script) = run_command([ 'pg_restore', '-f', '-', "$dumps/tenant_d2.dump" ]);
unlike($script, qr/ON DATABASE/, 'pg_restore without --create leaves it out');

$src->stop;

# --- the target: unrelated databases first, then the restore -----------------

my $dst = new_node('restore_target');
$dst->start;
my $super = $dst->safe_psql('postgres', 'SELECT current_user');

# unrelated databases with data, one of them on the OID recorded for d1
$dst->safe_psql('postgres', 'CREATE DATABASE unrelated_db0');
next_oid_is($dst, $oid{d1});
$dst->safe_psql('postgres', 'CREATE DATABASE unrelated_db1');
foreach my $db (qw(unrelated_db0 unrelated_db1))
{
	$dst->safe_psql($db,
		"CREATE TABLE accounts (id int, name text); INSERT INTO accounts VALUES (1, '$db')");
}

# roles: the bootstrap superuser exists already
my $roles_filtered = $roles =~ s/^CREATE ROLE \Q$super\E;\n//mr;
isnt($roles_filtered, $roles, 'the dump of roles creates the bootstrap superuser, left out');
append_to_file("$dumps/roles_filtered.sql", $roles_filtered);
$dst->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $dst->connstr('postgres'),
		'-f', "$dumps/roles_filtered.sql" ],
	'roles restored');
is($dst->safe_psql('postgres',
		q{SELECT count(*) FROM pg_shseclabel
		   WHERE provider = 'tenant_mgr' AND classoid = 'pg_authid'::regclass}),
	'7', 'the owner roles carry their labels in the target');

# pg_restore --create makes app, then its schemas in the order of its table
# of contents, one OID each: tenant_s2's schema is to get the OID recorded
# for s1
my ($toc) = run_command([ 'pg_restore', '-l', "$dumps/app.dump" ]);
my @schemas = $toc =~ /^\d+; 2615 \d+ SCHEMA - (\S+) /mg;
my ($before_s2) = grep { $schemas[$_] eq 'tenant_s2' } 0 .. $#schemas;
next_oid_is($dst, $oid{s1} - 1 - $before_s2);
$dst->command_ok(
	[ 'pg_restore', '--create', '--exit-on-error', '-d', $dst->connstr('postgres'), "$dumps/app.dump" ],
	'app restored with pg_restore --create');

# tenant_d1's database on the OID recorded for d2, then tenant_d2's
next_oid_is($dst, $oid{d2});
foreach my $t (@db_tenants)
{
	$dst->command_ok(
		[ 'pg_restore', '--create', '--exit-on-error', '-d', $dst->connstr('postgres'),
			"$dumps/tenant_$t.dump" ],
		"tenant_$t restored with pg_restore --create");
}

# unrelated schemas with data on the OIDs recorded for s2..s5
foreach my $t (qw(s2 s3 s4 s5))
{
	next_oid_is($dst, $oid{$t});
	$dst->safe_psql('app', "CREATE SCHEMA unrelated_$t");
}
foreach my $t (qw(s2 s3 s4 s5))
{
	$dst->safe_psql('app',
		"CREATE TABLE unrelated_$t.accounts (id int, name text); INSERT INTO unrelated_$t.accounts VALUES (1, 'unrelated_$t')");
}

is( $dst->safe_psql('app',
		q{SELECT string_agg(t.name || '=' || t.object_oid, ',' ORDER BY t.name) FROM tenant_mgr.tenant t}),
	join(',', map { "$_=$oid{$_}" } sort keys %oid),
	'the restored catalog records the OIDs of the source');
is( $dst->safe_psql('app',
		q{SELECT string_agg(t.name || ':' || coalesce(n.nspname, d.datname, '-'), ',' ORDER BY t.name)
			FROM tenant_mgr.tenant t
			LEFT JOIN pg_namespace n ON t.isolation = 'schema' AND n.oid = t.object_oid
			LEFT JOIN pg_database d ON t.isolation = 'database' AND d.oid = t.object_oid}),
	'd1:unrelated_db1,d2:tenant_d1,s1:tenant_s2,s2:unrelated_s2,s3:unrelated_s3,'
	  . 's4:unrelated_s4,s5:unrelated_s5',
	"in the target every recorded OID names another tenant's object or an unrelated one");
is( $dst->safe_psql('app',
		q{SELECT count(*) FROM pg_seclabels WHERE provider = 'tenant_mgr'}),
	'14', 'the target has the 14 labels: 5 schemas, 2 databases, 7 roles');

# --- in the target, every tenant is found by its label ---------------------------

is($dst->safe_psql('app', $tenants_sql),
	'd1:database:ready:3,d2:database:ready:3,s1:schema:ready:3,s2:schema:ready:3,'
	  . 's3:schema:ready:3,s4:schema:ready:3,s5:schema:ready:3',
	'target: the catalog is restored');
is($dst->safe_psql('app', 'SELECT count(*) FROM tenant_mgr.verify()'), '0',
	'target: verify() is empty')
  or diag($dst->safe_psql('app', 'SELECT * FROM tenant_mgr.verify()'));

foreach my $t (@schema_tenants)
{
	like(data_via_tenant_use($dst, $t), qr/\Atenant_$t\b.*\n$t\z/s,
		"tenant_use('$t') sets its own schema and reads its own data");
}
foreach my $t (@db_tenants)
{
	is($dst->safe_psql("tenant_$t", 'SELECT string_agg(name, \',\') FROM accounts'), $t,
		"database tenant $t keeps its data");
}

# a new migration reaches every tenant and only them
add_fixture($dst, 4);
is( $dst->safe_psql('app',
		q{SELECT string_agg(tenant || ':' || version || ':' || status, ',' ORDER BY tenant)
			FROM tenant_mgr.tenant_migrate()}),
	'd1:4:applied,d2:4:applied,s1:4:applied,s2:4:applied,s3:4:applied,s4:4:applied,s5:4:applied',
	'target: migration 4 reaches every tenant');
foreach my $t (@schema_tenants)
{
	is($dst->safe_psql('app',
			"SELECT string_agg(version::text, ',' ORDER BY version) FROM tenant_$t.tenant_mgr_ledger"),
		'1,2,3,4', "the ledger of $t records 1..4");
}
foreach my $t (@db_tenants)
{
	is($dst->safe_psql("tenant_$t",
			"SELECT string_agg(version::text, ',' ORDER BY version) FROM public.tenant_mgr_ledger"),
		'1,2,3,4', "the ledger of $t records 1..4");
}
is( $dst->safe_psql('app',
		q{SELECT string_agg(n.nspname, ',' ORDER BY n.nspname) FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'tasks'}),
	'tenant_s1,tenant_s2,tenant_s3,tenant_s4,tenant_s5',
	'migration 4 built its table in the tenant schemas only');
foreach my $db (qw(unrelated_db0 unrelated_db1))
{
	is($dst->safe_psql($db, q{SELECT count(*) FROM pg_class WHERE relname IN ('tasks', 'tenant_mgr_ledger')}),
		'0', "and not in $db");
}
is($dst->safe_psql('app', 'SELECT count(*) FROM tenant_mgr.verify()'), '0',
	'target: verify() is empty after the migration');

# --- what a tenant's login role can forge: its comment and ledger, no label ------

$dst->safe_psql('app',
	q{SELECT tenant_mgr.migration_add(5, 'count_runs',
		'CREATE TABLE IF NOT EXISTS runs (at timestamptz DEFAULT now()); INSERT INTO runs DEFAULT VALUES')});
is( $dst->safe_psql('app',
		q{SELECT count(*) FILTER (WHERE status = 'applied') FROM tenant_mgr.tenant_migrate()}),
	'7', 'migration 5 (it counts its runs) reaches every tenant');
is($dst->safe_psql('app', q{SELECT tenant_mgr.tenant_login_role('s4')}), 'tenant_s4_login',
	'a login role for s4');
my $login = 'tenant_s4_login';

# a comment is the owner's to write; it decides nothing
my ($rc, $out, $err) = try_sql($dst, 'app',
	q{COMMENT ON SCHEMA tenant_s4 IS 'tenant_mgr tenant s5'}, $login);
is($rc, 0, "the login role rewrites its schema's comment to name s5");
like(data_via_tenant_use($dst, 's5'), qr/\ns5\z/, 'tenant_use(s5) still reaches s5');
like(data_via_tenant_use($dst, 's4'), qr/\ns4\z/, 'and tenant_use(s4) s4');
is($dst->safe_psql('app', 'SELECT count(*) FROM tenant_mgr.verify()'), '0',
	'verify() ignores the comment');
$dst->safe_psql('app', q{COMMENT ON SCHEMA tenant_s4 IS 'tenant_mgr tenant s4'});

# labels: neither removed nor copied
($rc, $out, $err) = try_sql($dst, 'app',
	q{SECURITY LABEL FOR tenant_mgr ON SCHEMA tenant_s4 IS NULL}, $login);
like($err, qr/ERROR:  42501: permission denied to set a security label of provider "tenant_mgr"/,
	"the login role cannot remove its schema's label (42501)");
($rc, $out, $err) = try_sql($dst, 'app',
	"SECURITY LABEL FOR tenant_mgr ON SCHEMA tenant_s4 IS 'tenant s5 $id{s5}'", $login);
like($err, qr/ERROR:  42501: permission denied to set a security label of provider "tenant_mgr"/,
	"nor copy s5's label onto it (42501)");
($rc, $out, $err) = try_sql($dst, 'app',
	q{SECURITY LABEL FOR tenant_mgr ON ROLE tenant_s4 IS NULL}, $login);
like($err, qr/ERROR:  42501: /, "nor remove its owner role's label (42501)");
is( $dst->safe_psql('app',
		q{SELECT label FROM pg_seclabels WHERE provider = 'tenant_mgr' AND objtype = 'schema' AND objname = 'tenant_s4'}),
	"tenant s4 $id{s4} 5", 'the label of tenant_s4 is unchanged (its ledger at 5)');

# the ledger: its latest row deleted.  The label of its schema records 5.
$dst->safe_psql('app', 'CREATE TABLE public.s4_ledger AS TABLE tenant_s4.tenant_mgr_ledger');
($rc, $out, $err) = try_sql($dst, 'app',
	q{DELETE FROM tenant_s4.tenant_mgr_ledger WHERE version = 5}, $login);
is($rc, 0, 'the login role deletes the row of migration 5 from its ledger');
my $problems_sql = q{SELECT string_agg(tenant || ':' || problem, ',' ORDER BY tenant, problem)
	FROM tenant_mgr.verify()};
is($dst->safe_psql('app', $problems_sql), 's4:missing_migration,s4:version_mismatch',
	'verify() reports s4: missing_migration (by its label) and version_mismatch');
like($dst->safe_psql('app', q{SELECT detail FROM tenant_mgr.verify() WHERE problem = 'missing_migration'}),
	qr/lacks migration 5, which its label records as applied; its latest row is 4/,
	'naming the version its label records');
($rc, $out, $err) = try_sql($dst, 'app',
	q{SELECT tenant || ':' || version || ':' || status FROM tenant_mgr.tenant_migrate('s4')});
like($err, qr/ERROR:  55000: ledger of tenant "s4" lacks its latest migration 5\n/,
	"tenant_migrate('s4') refuses (55000)");
like($err, qr/HINT:  Put the deleted rows back into tenant_s4.tenant_mgr_ledger if their migrations are in effect./,
	'with a hint to put the row back');
($rc, $out, $err) = try_sql($dst, 'app',
	q{SELECT tenant || ':' || status FROM tenant_mgr.tenant_migrate('s4', target => 4)});
like($err, qr/ERROR:  55000: ledger of tenant "s4" lacks its latest migration 5\n/,
	'and refuses to revert from there too');
is($dst->safe_psql('app', 'SELECT count(*) FROM tenant_s4.runs'), '1', 'migration 5 is not applied again');
is($dst->safe_psql('app', q{SELECT version FROM tenant_mgr.tenant WHERE name = 's4'}), '5',
	'the catalog keeps version 5');
$dst->safe_psql('app',
	'DELETE FROM tenant_s4.tenant_mgr_ledger; INSERT INTO tenant_s4.tenant_mgr_ledger SELECT * FROM public.s4_ledger');
is($dst->safe_psql('app', 'SELECT count(*) FROM tenant_mgr.verify()'), '0',
	'verify() is empty with the row put back');

# the same in a database tenant, whose label is on its database
is($dst->safe_psql('app', q{SELECT tenant_mgr.tenant_login_role('d1')}), 'tenant_d1_login',
	'a login role for d1');
is( $dst->safe_psql('app',
		q{SELECT label FROM pg_seclabels WHERE provider = 'tenant_mgr' AND objtype = 'database' AND objname = 'tenant_d1'}),
	"tenant d1 $id{d1} 5", "the label of tenant_d1 records its ledger's version 5");
$dst->safe_psql('tenant_d1', 'CREATE TABLE public.d1_ledger AS TABLE public.tenant_mgr_ledger');
($rc, $out, $err) = try_sql($dst, 'tenant_d1',
	q{DELETE FROM public.tenant_mgr_ledger WHERE version = 5}, 'tenant_d1_login');
is($rc, 0, 'the login role of d1 deletes the row of migration 5 from its ledger');
is($dst->safe_psql('app', $problems_sql), 'd1:missing_migration,d1:version_mismatch',
	'verify() reports d1: missing_migration (by its label) and version_mismatch');
($rc, $out, $err) = try_sql($dst, 'app', q{SELECT * FROM tenant_mgr.tenant_migrate('d1')});
like($err, qr/ERROR:  55000: ledger of tenant "d1" lacks its latest migration 5\n/,
	"tenant_migrate('d1') refuses (55000)");
is($dst->safe_psql('tenant_d1', 'SELECT count(*) FROM runs'), '1', 'migration 5 is not applied again in d1');
$dst->safe_psql('tenant_d1',
	'INSERT INTO public.tenant_mgr_ledger SELECT * FROM public.d1_ledger WHERE version = 5; DROP TABLE public.d1_ledger');
is($dst->safe_psql('app', 'SELECT count(*) FROM tenant_mgr.verify()'), '0',
	'verify() is empty with the row put back');

# a label is checked for its form, even for a superuser
($rc, $out, $err) = try_sql($dst, 'app',
	"SECURITY LABEL FOR tenant_mgr ON SCHEMA tenant_s4 IS 'tenant s4 $id{s4} 5 x'");
like($err, qr/ERROR:  22023: invalid security label/, 'a label tenant_mgr does not write is refused (22023)');

# the ledger: a row in the middle deleted
($rc, $out, $err) = try_sql($dst, 'app',
	q{DELETE FROM tenant_s4.tenant_mgr_ledger WHERE version = 2}, $login);
is($rc, 0, 'the login role deletes the row of migration 2 from its ledger');
my $problems = $dst->safe_psql('app',
	q{SELECT string_agg(tenant || ':' || problem, ',' ORDER BY tenant) FROM tenant_mgr.verify()});
is($problems, 's4:missing_migration', 'verify() reports the gap in the ledger of s4');
($rc, $out, $err) = try_sql($dst, 'app', q{SELECT * FROM tenant_mgr.tenant_migrate('s4')});
like($err, qr/ERROR:  55000: ledger of tenant "s4" lacks migration 2, below its latest/,
	'tenant_migrate(s4) refuses to apply migration 2 again (55000)');

# the ledger as it was
$dst->safe_psql('app',
	'DELETE FROM tenant_s4.tenant_mgr_ledger; INSERT INTO tenant_s4.tenant_mgr_ledger SELECT * FROM public.s4_ledger; DROP TABLE public.s4_ledger');
is($dst->safe_psql('app', 'SELECT count(*) FROM tenant_mgr.verify()'), '0',
	'verify() is empty with the ledger as it was');

# --- tenant_drop removes exactly the tenant's objects ----------------------------

my $schemas_sql = q{SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace
	WHERE nspname LIKE 'tenant\_s%' OR nspname LIKE 'unrelated%'};
my $dbs_sql = q{SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database
	WHERE datname NOT IN ('postgres', 'template0', 'template1')};
is($dst->safe_psql('app', $schemas_sql),
	'tenant_s1,tenant_s2,tenant_s3,tenant_s4,tenant_s5,unrelated_s2,unrelated_s3,unrelated_s4,unrelated_s5',
	'the schemas before the drops');

# s1's recorded OID names tenant_s2's schema
is($dst->safe_psql('app', q{SELECT tenant_mgr.tenant_drop('s1')}), 't', 'tenant_drop(s1)');
is($dst->safe_psql('app', $schemas_sql),
	'tenant_s2,tenant_s3,tenant_s4,tenant_s5,unrelated_s2,unrelated_s3,unrelated_s4,unrelated_s5',
	"it dropped tenant_s1, not tenant_s2 on the OID it recorded");
like(data_via_tenant_use($dst, 's2'), qr/\ns2\z/, 's2 keeps its data');
is($dst->safe_psql('app',
		q{SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('tenant_s1', 'tenant_s2')}),
	'tenant_s2', "s1's owner role went, s2's stayed");

# s3's recorded OID names unrelated_s3
is($dst->safe_psql('app', q{SELECT tenant_mgr.tenant_drop('s3')}), 't', 'tenant_drop(s3)');
is($dst->safe_psql('app', $schemas_sql),
	'tenant_s2,tenant_s4,tenant_s5,unrelated_s2,unrelated_s3,unrelated_s4,unrelated_s5',
	'it dropped tenant_s3, not unrelated_s3 on the OID it recorded');
is($dst->safe_psql('app', 'SELECT name FROM unrelated_s3.accounts'), 'unrelated_s3',
	'unrelated_s3 keeps its data');

is($dst->safe_psql('app', $dbs_sql), 'app,tenant_d1,tenant_d2,unrelated_db0,unrelated_db1',
	'the databases before the drops');

# d2's recorded OID names tenant_d1's database
drop_database_tenant($dst, 'd2');
is($dst->safe_psql('app', $dbs_sql), 'app,tenant_d1,unrelated_db0,unrelated_db1',
	"it dropped tenant_d2, not tenant_d1 on the OID it recorded");
is($dst->safe_psql('tenant_d1', 'SELECT name FROM accounts'), 'd1', 'd1 keeps its data');

# d1's recorded OID names unrelated_db1: renamed, then dropped
$dst->poll_query_until('app', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = 'tenant_d1'})
  or diag('sessions in tenant_d1 stay');
is($dst->safe_psql('app', q{SELECT object_name FROM tenant_mgr.tenant_rename('d1', 'd1b')}),
	'tenant_d1b', 'tenant_rename(d1, d1b)');
is($dst->safe_psql('app', $dbs_sql), 'app,tenant_d1b,unrelated_db0,unrelated_db1',
	'it renamed tenant_d1, not unrelated_db1 on the OID it recorded');
is($dst->safe_psql('tenant_d1b', 'SELECT name FROM accounts'), 'd1', 'd1b keeps its data');
drop_database_tenant($dst, 'd1b');
is($dst->safe_psql('app', $dbs_sql), 'app,unrelated_db0,unrelated_db1',
	'it dropped tenant_d1b, not unrelated_db1 on the OID it recorded');
is($dst->safe_psql('unrelated_db1', 'SELECT name FROM accounts'), 'unrelated_db1',
	'unrelated_db1 keeps its data');

is($dst->safe_psql('app', $tenants_sql),
	's2:schema:ready:5,s4:schema:ready:5,s5:schema:ready:5', 'the catalog has the other tenants');
is($dst->safe_psql('app', 'SELECT count(*) FROM tenant_mgr.verify()'), '0',
	'target: verify() is empty after the drops')
  or diag($dst->safe_psql('app', 'SELECT * FROM tenant_mgr.verify()'));
is($dst->safe_psql('app',
		q{SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'tenant\_%'}),
	'tenant_s2,tenant_s4,tenant_s4_login,tenant_s5', 'the dropped tenants took their roles only');

# --- a schema that lost its ledger is no tenant's any more ------------------------

# s2's recorded OID names nothing now, s4's still unrelated_s4; the login
# role of s4 drops its own ledger, a superuser that of s2
$dst->safe_psql('app', 'DROP SCHEMA unrelated_s2 CASCADE');
($rc, $out, $err) = try_sql($dst, 'app', 'DROP TABLE tenant_s4.tenant_mgr_ledger', $login);
is($rc, 0, 'the login role of s4 drops its ledger');
$dst->safe_psql('app', 'DROP TABLE tenant_s2.tenant_mgr_ledger');
$problems = $dst->safe_psql('app',
	q{SELECT string_agg(tenant || ':' || problem, ',' ORDER BY tenant) FROM tenant_mgr.verify()});
my $details = $dst->safe_psql('app',
	q{SELECT string_agg(tenant || ': ' || detail, E'\n' ORDER BY tenant) FROM tenant_mgr.verify()});
note("verify() on schemas without their ledger:\n$details");
is($problems, 's2:no_ledger,s4:no_ledger', 'verify() reports s2 and s4: no_ledger');
is( $details,
	qq{s2: schema "tenant_s2" has no table "tenant_mgr_ledger"\n}
	  . qq{s4: schema "tenant_s4" has no table "tenant_mgr_ledger"},
	'naming their own schemas, found by label');
($rc, $out, $err) = try_sql($dst, 'app', q{SELECT tenant_mgr.tenant_use('s4', true)});
like($err, qr/ERROR:  55000: tenant "s4" has no schema created by tenant_mgr/,
	'tenant_use(s4) refuses it (55000)');
($rc, $out, $err) = try_sql($dst, 'app', q{SELECT tenant_mgr.tenant_migrate('s4')});
like($err, qr/ERROR:  55000: /, 'tenant_migrate(s4) too (55000)');
foreach my $t (qw(s2 s4))
{
	($rc, $out, $err) = try_sql($dst, 'app', "SELECT tenant_mgr.tenant_drop('$t')");
	like($err, qr/NOTICE:  00000: schema "tenant_$t" is left in place/,
		"tenant_drop($t) leaves its schema in place");
}
is($dst->safe_psql('app', $schemas_sql),
	'tenant_s2,tenant_s4,tenant_s5,unrelated_s3,unrelated_s4,unrelated_s5',
	'no schema was dropped');
is($dst->safe_psql('app', 'SELECT name FROM unrelated_s4.accounts'), 'unrelated_s4',
	'unrelated_s4 keeps its data');
is($dst->safe_psql('app', $tenants_sql), 's5:schema:ready:5', 'the catalog has s5 left');
# their owner roles stay with the schemas, and are leftovers verify() names
is($dst->safe_psql('app',
		q{SELECT string_agg(problem || ': ' || detail, E'\n' ORDER BY detail) FROM tenant_mgr.verify()}),
	qq{orphan: role "tenant_s2" carries tenant_mgr's mark but belongs to no tenant\n}
	  . qq{orphan: role "tenant_s4" carries tenant_mgr's mark but belongs to no tenant},
	'verify() reports only the owner roles of the schemas left in place');
like(data_via_tenant_use($dst, 's5'), qr/\ns5\z/, 'tenant_use(s5) still reaches s5');

$dst->stop;

# ============================================================================
# pg_upgrade 15 -> 15 with 120 schema tenants and 3 database tenants
# ============================================================================

my $old = new_node('upgrade_old');
$old->start;
$old->safe_psql('postgres', 'CREATE DATABASE app');
$old->safe_psql('app', 'CREATE EXTENSION tenant_mgr');
$old->safe_psql('app', q{SELECT tenant_mgr.migration_add(1, 'note', 'CREATE TABLE note (who text NOT NULL)')});
$old->safe_psql('app', q{SELECT tenant_mgr.migration_add(2, 'note_who', 'CREATE INDEX note_who_idx ON note (who)')});
is($old->safe_psql('app',
		q{SELECT count(tenant_mgr.tenant_create('t' || g)) FROM generate_series(1, 120) g}),
	'120', '120 schema tenants');
foreach my $i (1 .. 3)
{
	$old->safe_psql('app', "SELECT tenant_mgr.tenant_create('db$i', 'database')");
	$old->safe_psql("tenant_db$i", "INSERT INTO note VALUES ('db$i')");
}
# each schema tenant's own name in its table
$old->safe_psql('app', q{DO $$
DECLARE r record;
BEGIN
	FOR r IN SELECT name, object_name FROM tenant_mgr.tenants WHERE isolation = 'schema' LOOP
		EXECUTE format('INSERT INTO %I.note VALUES (%L)', r.object_name, r.name);
	END LOOP;
END $$});

# every schema tenant's data read through tenant_use, in one transaction:
# how many tenants, and which do not read their own name
my $check_all = q{
CREATE FUNCTION pg_temp.data_of(tenant text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE result text;
BEGIN
	PERFORM tenant_mgr.tenant_use(tenant, true);
	EXECUTE 'SELECT string_agg(who, '','' ORDER BY who) FROM note' INTO result;
	RETURN result;
END $f$;
BEGIN;
SELECT count(*) || ' ' || coalesce(string_agg(name || '->' || coalesce(data, '?'), ',')
	FILTER (WHERE data IS DISTINCT FROM name), '')
  FROM (SELECT name, pg_temp.data_of(name) AS data FROM tenant_mgr.tenants
         WHERE isolation = 'schema') s;
COMMIT;
};
is($old->safe_psql('app', $check_all), '120 ', 'every schema tenant reads its own data');
is($old->safe_psql('app', 'SELECT count(*) FROM tenant_mgr.verify()'), '0',
	'before pg_upgrade: verify() is empty');

my $labels_sql = q{SELECT objtype || ' ' || objname || ' ' || label FROM pg_seclabels
	WHERE provider = 'tenant_mgr' ORDER BY 1};
my $labels_before = $old->safe_psql('app', $labels_sql);
my $label_rows_sql = q{SELECT (SELECT count(*) FROM pg_seclabel WHERE provider = 'tenant_mgr')
	|| ' ' || (SELECT count(*) FROM pg_shseclabel WHERE provider = 'tenant_mgr')};
is($old->safe_psql('app', $label_rows_sql), '120 126',
	'labels: 120 schemas in pg_seclabel; 123 roles and 3 databases in pg_shseclabel');
my %oids_sql = (
	schema => q{SELECT nspname, oid FROM pg_namespace WHERE nspname LIKE 'tenant\_t%'},
	database => q{SELECT datname, oid FROM pg_database WHERE datname LIKE 'tenant\_%'},
	role => q{SELECT rolname, oid FROM pg_roles WHERE rolname LIKE 'tenant\_%'});
my %oids_before = map { $_ => { pairs($old, 'app', $oids_sql{$_}) } } keys %oids_sql;
$old->stop;

my $new = new_node('upgrade_new');
my $bindir = $new->config_data('--bindir');
my $cwd = getcwd();
chdir $dumps or die "chdir $dumps: $!";
command_ok(
	[
		"$bindir/pg_upgrade", '--no-sync',
		'-d', $old->data_dir, '-D', $new->data_dir,
		'-b', $bindir, '-B', $bindir,
		'-s', $new->host, '-p', $old->port, '-P', $new->port
	],
	'pg_upgrade 15 -> 15');
chdir $cwd or die "chdir $cwd: $!";
$new->start;

is($new->safe_psql('app', $label_rows_sql), '120 126',
	'pg_upgrade keeps the rows of pg_seclabel and pg_shseclabel');
is($new->safe_psql('app', $labels_sql), $labels_before, 'every label is the same after pg_upgrade');
foreach my $kind (sort keys %oids_sql)
{
	my %after = pairs($new, 'app', $oids_sql{$kind});
	my $before = $oids_before{$kind};
	my $changed = grep { !defined $after{$_} || $after{$_} ne $before->{$_} } keys %$before;
	is(scalar(keys %after), scalar(keys %$before), "every tenant $kind is there after pg_upgrade");
	note("pg_upgrade changed the OIDs of $changed of " . scalar(keys %$before) . " tenant ${kind}s");
}

# what the OIDs recorded at creation name now
my $recorded_sql = q{SELECT count(*) FILTER (WHERE n.nspname = t.object_name) || ' own, '
	|| count(*) FILTER (WHERE n.nspname <> t.object_name) || ' another schema, '
	|| count(*) FILTER (WHERE n.oid IS NULL) || ' none'
	FROM tenant_mgr.tenant t LEFT JOIN pg_namespace n ON n.oid = t.object_oid
	WHERE t.isolation = 'schema'};
note('after pg_upgrade, the recorded OIDs of the schema tenants name: '
	  . $new->safe_psql('app', $recorded_sql));

is($new->safe_psql('app', 'SELECT count(*) FROM tenant_mgr.verify()'), '0',
	'after pg_upgrade: verify() is empty')
  or diag($new->safe_psql('app', 'SELECT * FROM tenant_mgr.verify()'));
is($new->safe_psql('app', $check_all), '120 ',
	'after pg_upgrade every schema tenant maps to its own schema and data');
foreach my $i (1 .. 3)
{
	is($new->safe_psql("tenant_db$i", 'SELECT string_agg(who, \',\') FROM note'), "db$i",
		"database tenant db$i keeps its data");
}
$new->safe_psql('app',
	q{SELECT tenant_mgr.migration_add(3, 'note_at', 'ALTER TABLE note ADD COLUMN at timestamptz')});
is( $new->safe_psql('app',
		q{SELECT count(*) FILTER (WHERE status = 'applied') || ' of ' || count(*) FROM tenant_mgr.tenant_migrate()}),
	'123 of 123', 'a new migration reaches all 123 tenants');
is( $new->safe_psql('app',
		q{SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace
		   WHERE c.relname = 'note' AND a.attname = 'at' AND n.nspname LIKE 'tenant\_t%'}),
	'120', 'it changed the 120 tenant schemas');
foreach my $i (1 .. 3)
{
	is($new->safe_psql("tenant_db$i",
			q{SELECT string_agg(version::text, ',' ORDER BY version) FROM public.tenant_mgr_ledger}),
		'1,2,3', "the ledger of db$i records 1..3");
}
is($new->safe_psql('app',
		q{SELECT count(*) FILTER (WHERE state = 'ready' AND version = 3) FROM tenant_mgr.tenants}),
	'123', 'the catalog has all 123 tenants ready at version 3');
is($new->safe_psql('app', 'SELECT count(*) FROM tenant_mgr.verify()'), '0',
	'after the migration: verify() is empty');
is($new->safe_psql('app', $label_rows_sql), '120 126', 'the labels are still there');
note('after the migration, the recorded OIDs of the schema tenants name: '
	  . $new->safe_psql('app', $recorded_sql));

$new->stop;
done_testing();
