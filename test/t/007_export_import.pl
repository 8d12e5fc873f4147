# One customer's data out and back in: a schema tenant exported with
# pg_dump -n, dropped, restored with --no-owner and taken back with
# tenant_import() (same server, same name: its id and data), and imported on
# another server under a new name (a new id).  A restored schema whose
# ledger was altered, or a look-alike without tenant_mgr's label, is
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
like($err, qr/no schema carries tenant_mgr's label for tenant "acme"/,
	'a schema without the label is never adopted');
$a->safe_psql('app', q{DROP SCHEMA tenant_acme});

$a->command_ok([ 'pg_restore', '--no-owner', '-d', $a->connstr('app'), $dump ],
	'pg_restore --no-owner brings the schema back');
is($a->safe_psql('app', q{SELECT label FROM pg_seclabels WHERE provider = 'tenant_mgr' AND objtype = 'schema' AND objname = 'tenant_acme'}),
	"tenant acme $id", 'with its label');

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
	"tenant globex $newid", 'which its label says');
is($b->safe_psql('app', q{SELECT name FROM tenant_globex.accounts}), 'acme data', 'the data came along');
is($b->safe_psql('app', q{SELECT count(*) FROM tenant_mgr.verify()}), '0', 'verify() is empty there too');

$a->stop;
$b->stop;
done_testing();
