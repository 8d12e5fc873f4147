# One customer's data out and back in: a schema tenant exported with
# pg_dump -n, dropped, restored with --no-owner and taken back with
# tenant_import() (same server, same name: its id and data), and imported on
# another server under a new name (a new id).  A database tenant exported
# with pg_dump --create and its owner role from pg_dumpall --roles-only,
# dropped, restored and taken back under its name, then again under a new
# one.  A restored schema or database whose ledger disagrees with the
# registry, a look-alike without tenant_mgr's label, or a name in use is
# refused, changing nothing.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $here = abs_path(dirname(__FILE__));
my $fixtures = "$here/../fixtures";

sub new_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'tenant_mgr'
tenant_mgr.database = 'app'
});
	$node->start;
	$node->safe_psql('postgres', 'CREATE DATABASE app');
	$node->safe_psql('app', 'CREATE EXTENSION tenant_mgr');
	foreach my $v (1 .. 3)
	{
		my ($file) = glob(sprintf('%s/%03d_*.sql', $fixtures, $v));
		my ($mname) = $file =~ m{/\d+_(\w+)\.sql$};
		my $sql = slurp_file($file);
		$node->safe_psql('app', "SELECT tenant_mgr.migration_add($v, '$mname', \$m\$$sql\$m\$)");
	}
	return $node;
}

my $a = new_node('export_a');
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $dump = "$tmp/acme.dump";

$a->safe_psql('app', q{SELECT tenant_mgr.tenant_create('acme')});
$a->safe_psql('app', q{INSERT INTO tenant_acme.accounts (name) VALUES ('acme data')});
my $id = $a->safe_psql('app', q{SELECT tenant_id FROM tenant_mgr.tenant WHERE name = 'acme'});

# --- export: the tenant's schema, with its label and ledger -------------------
$a->command_ok([ 'pg_dump', '-Fc', '-n', 'tenant_acme', '-f', $dump, '-d', $a->connstr('app') ],
	'pg_dump -n exports one schema tenant');

# the customer leaves: dropped with its role
$a->safe_psql('app', q{SELECT tenant_mgr.tenant_drop('acme')});
is($a->safe_psql('app', q{SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_acme'}), '0',
	'the tenant is dropped');

# --- a look-alike and an altered ledger are refused -----------------------------
$a->safe_psql('app', q{CREATE SCHEMA tenant_acme; COMMENT ON SCHEMA tenant_acme IS 'tenant_mgr tenant acme'});
my ($rc, $out, $err) = $a->psql('app', q{SELECT tenant_mgr.tenant_import('acme')});
like($err, qr/no schema or database carries tenant_mgr's label for tenant "acme"/,
	'a schema without the label is never adopted');
$a->safe_psql('app', q{DROP SCHEMA tenant_acme});

$a->command_ok([ 'pg_restore', '--no-owner', '-d', $a->connstr('app'), $dump ],
	'pg_restore --no-owner brings the schema back');
is($a->safe_psql('app', q{SELECT label FROM pg_seclabels WHERE provider = 'tenant_mgr' AND objtype = 'schema' AND objname = 'tenant_acme'}),
	"tenant acme $id 3", "with its label, which records its ledger's version");

$a->safe_psql('app', q{UPDATE tenant_acme.tenant_mgr_ledger SET checksum = 'forged' WHERE version = 2});
($rc, $out, $err) = $a->psql('app', q{SELECT tenant_mgr.tenant_import('acme')});
like($err, qr/migration 2 applied to tenant "acme" differs from the registered one/,
	'a ledger that disagrees with the registry is refused');
is( $a->safe_psql('app',
		q{SELECT (SELECT count(*) FROM tenant_mgr.tenant) || ',' || (SELECT count(*) FROM pg_roles WHERE rolname = 'tenant_acme')}),
	'0,0', 'and nothing changed: no catalog row, no owner role');
$a->safe_psql('app', q{UPDATE tenant_acme.tenant_mgr_ledger l SET checksum = m.checksum
	FROM tenant_mgr.migration m WHERE m.version = l.version});

# --- import: same server, same name -----------------------------------------------
is($a->safe_psql('app', q{SELECT name || ':' || state || ':' || version || ':' || owner FROM tenant_mgr.tenant_import('acme')}),
	'acme:ready:3:tenant_acme', 'tenant_import takes the tenant back, ready at version 3');
is($a->safe_psql('app', q{SELECT tenant_id FROM tenant_mgr.tenant WHERE name = 'acme'}), $id,
	'with the id it had');
is( $a->safe_psql('app',
		q{SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'tenant_acme'::regnamespace
		   AND c.relkind IN ('r', 'S', 'v') AND c.relowner <> 'tenant_acme'::regrole}),
	'0', 'its owner role owns every table, sequence and view of the schema');
is($a->safe_psql('app', q{SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'tenant_acme'}),
	'tenant_acme', 'and the schema');
is($a->safe_psql('app', q{SELECT name FROM tenant_acme.accounts}), 'acme data', 'its data is intact');
is($a->safe_psql('app', q{SELECT count(*) FROM tenant_mgr.verify()}), '0', 'verify() is empty');
($rc, $out, $err) = $a->psql('app', q{SELECT tenant_mgr.tenant_import('acme')});
like($err, qr/tenant "acme" already exists/, 'importing it twice is refused');
my ($file4) = glob("$fixtures/004_*.sql");
my $sql4 = slurp_file($file4);
$a->safe_psql('app', "SELECT tenant_mgr.migration_add(4, 'tasks', \$m\$$sql4\$m\$)");
is($a->safe_psql('app', q{SELECT string_agg(tenant || ':' || version || ':' || status, ',') FROM tenant_mgr.tenant_migrate()}),
	'acme:4:applied', 'the imported tenant migrates');
is($a->safe_psql('app', q{SELECT string_agg(tenant || ':' || action, ',' ORDER BY id) FROM tenant_mgr.history
	WHERE action IN ('drop', 'import')}), 'acme:drop,acme:import', 'the history shows the drop and the import');

# --- import on another server, under a new name ----------------------------------
my $b = new_node('import_b');
$b->command_ok([ 'pg_restore', '--no-owner', '-d', $b->connstr('app'), $dump ],
	'the same export restored on another server');
is($b->safe_psql('app', q{SELECT name || ':' || version FROM tenant_mgr.tenant_import('acme', new_name => 'globex')}),
	'globex:3', 'tenant_import takes it as a new tenant');
is($b->safe_psql('app', q{SELECT string_agg(nspname, ',') FROM pg_namespace WHERE nspname LIKE 'tenant\_%' AND nspname <> 'tenant_mgr'}),
	'tenant_globex', 'its schema carries the new name');
my $newid = $b->safe_psql('app', q{SELECT tenant_id FROM tenant_mgr.tenant WHERE name = 'globex'});
isnt($newid, $id, 'and a new id');
is($b->safe_psql('app', q{SELECT label FROM pg_seclabels WHERE provider = 'tenant_mgr' AND objtype = 'schema' AND objname = 'tenant_globex'}),
	"tenant globex $newid 3", 'which its label says');
is($b->safe_psql('app', q{SELECT name FROM tenant_globex.accounts}), 'acme data', 'the data came along');
is($b->safe_psql('app', q{SELECT count(*) FROM tenant_mgr.verify()}), '0', 'verify() is empty there too');

# ============================================================================
# a database tenant
# ============================================================================

# Waits until nobody is connected to database $db.
sub no_sessions
{
	my ($node, $db) = @_;
	$node->poll_query_until('app', "SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = '$db'")
	  or diag("sessions in $db stay");
}

# Drops database tenant $t and waits for the launcher to remove it.
sub drop_db_tenant
{
	my ($node, $t) = @_;
	no_sessions($node, "tenant_$t");
	is($node->safe_psql('app', "SELECT tenant_mgr.tenant_drop('$t')"), 't', "tenant_drop('$t')");
	ok( $node->poll_query_until('app',
			"SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenant_$t')"
			  . " AND NOT EXISTS (SELECT FROM pg_database WHERE datname LIKE 'tenant\\_mgr\\_drop\\_%')"),
		"the launcher removed the database and owner role of $t");
}

# The export: its owner role's lines of pg_dumpall --roles-only, its
# database with pg_dump --create (which alone keeps the database's label).
sub restore_db_tenant
{
	my ($node, $roles, $dump) = @_;
	$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
			'-f', $roles ], 'the owner role restored from its pg_dumpall lines');
	$node->command_ok([ 'pg_restore', '--create', '--exit-on-error', '-d', $node->connstr('postgres'), $dump ],
		'pg_restore --create brings the database back with its owners');
}

$a->safe_psql('app', q{SELECT tenant_mgr.tenant_create('initech', 'database')});
$a->safe_psql('tenant_initech', q{INSERT INTO accounts (name) VALUES ('initech data')});
my $dbid = $a->safe_psql('app', q{SELECT tenant_id FROM tenant_mgr.tenant WHERE name = 'initech'});
my $labels_sql = q{SELECT string_agg(objtype || ' ' || objname || ': ' || label, ', ' ORDER BY objtype)
	FROM pg_seclabels WHERE provider = 'tenant_mgr' AND objname::text LIKE 'tenant_initech%'};
is($a->safe_psql('app', $labels_sql),
	"database tenant_initech: tenant initech $dbid 4, role tenant_initech: tenant initech $dbid",
	'the database label records its ledger version 4; the owner role carries the label too');

# --- export ---------------------------------------------------------------------
$a->command_ok([ 'pg_dumpall', '--roles-only', '-f', "$tmp/roles.sql", '-d', $a->connstr('postgres') ],
	'pg_dumpall --roles-only');
my $role_lines = join('', grep { /\btenant_initech\b/ } split /^/m, slurp_file("$tmp/roles.sql"));
append_to_file("$tmp/initech_roles.sql", $role_lines);
like($role_lines, qr/^SECURITY LABEL FOR tenant_mgr ON ROLE tenant_initech IS 'tenant initech $dbid';$/m,
	"the owner role's lines carry its label");
$a->command_ok([ 'pg_dump', '-Fc', '--create', '-f', "$tmp/initech.dump", '-d', $a->connstr('tenant_initech') ],
	'pg_dump -Fc --create exports the database tenant');
my ($script) = run_command([ 'pg_restore', '--create', '-f', '-', "$tmp/initech.dump" ]);
like($script, qr/^SECURITY LABEL FOR tenant_mgr ON DATABASE tenant_initech IS 'tenant initech $dbid 4';$/m,
	"with --create the dump keeps the database's label");

drop_db_tenant($a, 'initech');
is($a->safe_psql('app', q{SELECT count(*) FROM pg_database WHERE datname = 'tenant_initech'}), '0',
	'the database tenant is dropped');

# --- refused: no label, a name in use, a ledger ahead of the registry -----------
$a->safe_psql('postgres', 'CREATE DATABASE tenant_fake');
($rc, $out, $err) = $a->psql('app', "\\set VERBOSITY verbose\nSELECT tenant_mgr.tenant_import('fake')");
like($err, qr/ERROR:  3F000: no schema or database carries tenant_mgr's label for tenant "fake"/,
	'a database without the label is never adopted (3F000)');
$a->safe_psql('postgres', 'DROP DATABASE tenant_fake');

restore_db_tenant($a, "$tmp/initech_roles.sql", "$tmp/initech.dump");
($rc, $out, $err) = $a->psql('app', "\\set VERBOSITY verbose\nSELECT tenant_mgr.tenant_import('initech', 'acme')");
like($err, qr/ERROR:  42710: tenant "acme" already exists/, 'a name in use is refused (42710)');
$a->safe_psql('tenant_initech',
	q{INSERT INTO public.tenant_mgr_ledger (version, name, checksum) VALUES (99, 'future', 'x')});
($rc, $out, $err) = $a->psql('app', "\\set VERBOSITY verbose\nSELECT tenant_mgr.tenant_import('initech')");
like($err, qr/ERROR:  55000: ledger of tenant "initech" disagrees with the registered migrations/,
	'a ledger ahead of the registry is refused (55000)');
like($err, qr/DETAIL:  It records 1 unregistered migrations/, 'saying why');
$a->safe_psql('tenant_initech', q{UPDATE public.tenant_mgr_ledger SET checksum = 'forged' WHERE version = 2});
$a->safe_psql('tenant_initech', q{DELETE FROM public.tenant_mgr_ledger WHERE version = 99});
($rc, $out, $err) = $a->psql('app', "\\set VERBOSITY verbose\nSELECT tenant_mgr.tenant_import('initech')");
like($err, qr/ERROR:  55000: ledger of tenant "initech" disagrees with the registered migrations/,
	'a ledger with an altered migration is refused (55000)');
my $checksum2 = $a->safe_psql('app', q{SELECT checksum FROM tenant_mgr.migration WHERE version = 2});
$a->safe_psql('tenant_initech', "UPDATE public.tenant_mgr_ledger SET checksum = '$checksum2' WHERE version = 2");
is( $a->safe_psql('app',
		q{SELECT (SELECT count(*) FROM tenant_mgr.tenant WHERE name = 'initech') || ','
		      || (SELECT count(*) FROM pg_database WHERE datname = 'tenant_initech') || ','
		      || (SELECT count(*) FROM pg_roles WHERE rolname = 'tenant_initech')}),
	'0,1,1', 'and nothing changed: no catalog row, the database and role as restored');
is($a->safe_psql('app', $labels_sql),
	"database tenant_initech: tenant initech $dbid 4, role tenant_initech: tenant initech $dbid",
	'with their labels');

# --- import: same server, same name ------------------------------------------------
is($a->safe_psql('app', q{SELECT name || ':' || isolation || ':' || state || ':' || version || ':' || owner
	FROM tenant_mgr.tenant_import('initech')}),
	'initech:database:ready:4:tenant_initech', 'tenant_import takes the database tenant back, ready at version 4');
is($a->safe_psql('app', q{SELECT tenant_id FROM tenant_mgr.tenant WHERE name = 'initech'}), $dbid,
	'with the id it had');
is($a->safe_psql('tenant_initech', q{SELECT name FROM accounts}), 'initech data', 'its data is intact');
is($a->safe_psql('app', q{SELECT has_database_privilege('public', 'tenant_initech', 'CONNECT')}), 'f',
	'PUBLIC may not connect');
is($a->safe_psql('app', q{SELECT count(*) FROM tenant_mgr.verify()}), '0', 'verify() is empty');
is($a->safe_psql('app', q{SELECT count(*) FROM tenant_mgr.tenant_migrate('initech')}), '0',
	'it is at the latest migration');

# --- again, under a new name --------------------------------------------------------
drop_db_tenant($a, 'initech');
restore_db_tenant($a, "$tmp/initech_roles.sql", "$tmp/initech.dump");
is($a->safe_psql('app', q{SELECT name || ':' || object_name || ':' || owner || ':' || version
	FROM tenant_mgr.tenant_import('initech', new_name => 'hooli')}),
	'hooli:tenant_hooli:tenant_hooli:4', 'tenant_import takes it back as hooli');
my $hooliid = $a->safe_psql('app', q{SELECT tenant_id FROM tenant_mgr.tenant WHERE name = 'hooli'});
isnt($hooliid, $dbid, 'with a new id');
is( $a->safe_psql('app',
		q{SELECT string_agg(objtype || ' ' || objname || ': ' || label, ', ' ORDER BY objtype)
			FROM pg_seclabels WHERE provider = 'tenant_mgr' AND objname::text LIKE 'tenant_hooli%'}),
	"database tenant_hooli: tenant hooli $hooliid 4, role tenant_hooli: tenant hooli $hooliid",
	'the database and owner role renamed, with labels naming hooli');
is($a->safe_psql('app', q{SELECT count(*) FROM pg_database WHERE datname = 'tenant_initech'}), '0',
	'no database keeps the old name');
is($a->safe_psql('tenant_hooli', q{SELECT name FROM accounts}), 'initech data', 'the data came along');
is($a->safe_psql('app', q{SELECT count(*) FROM tenant_mgr.verify()}), '0', 'verify() is empty');
is($a->safe_psql('app', q{SELECT string_agg(tenant || ':' || action, ',' ORDER BY id) FROM tenant_mgr.history
	WHERE action = 'import' AND tenant IN ('initech', 'hooli')}), 'initech:import,hooli:import',
	'the history shows both imports');

$a->stop;
$b->stop;
done_testing();
