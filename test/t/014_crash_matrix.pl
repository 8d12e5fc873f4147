# The crash matrix: every step boundary of create (inline, built outside,
# queued; schema and database), drop, pool refill and claim, template
# rebuild and clone, and fleet runs (transactional and not) is paused at
# through tenant_mgr.pause_at, and there the server is stopped with
# stop('immediate'), the paused process killed with kill -9 (crash
# restart) or terminated (pg_terminate_backend), or the launcher killed
# with kill -9.  Once the server is back and the launcher has settled, the
# invariants hold: verify() is empty, every ledger holds each registered
# migration up to its tenant's version once (and its DDL whole), nothing
# tenant_mgr made is left outside the catalog (schemas, databases, roles),
# every job is done or failed with a message, and the interrupted request
# ended as it must (an uncommitted caller's tenant gone, a queued one
# ready, a drop finished or undone).  Also: a migration failing to write
# (temp_file_limit exceeded, a real write failure), the launcher
# terminated repeatedly (never two), and a restart with a full queue (every
# job runs once).
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $fixtures = abs_path(dirname(__FILE__) . '/../fixtures');

my $node = PostgreSQL::Test::Cluster->new('crash_matrix');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'tenant_mgr'
tenant_mgr.database = 'postgres'
tenant_mgr.poll_interval = 1
max_worker_processes = 24
restart_after_crash = on
fsync = off
});
$node->start;

sub run_sql { return $node->safe_psql('postgres', shift); }

sub wait_for
{
	my ($query, $what) = @_;
	$node->poll_query_until('postgres', $query) or die "timed out waiting for $what";
}

sub wait_for_launcher
{
	wait_for(q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'tenant_mgr launcher'},
		'the launcher');
}

# a setting changed for every process; returns once new processes have it
sub set_system
{
	my ($name, $value) = @_;
	run_sql("ALTER SYSTEM SET $name = '$value'");
	run_sql('SELECT pg_reload_conf()');
	wait_for("SELECT current_setting('$name') = '$value'", "$name to be $value");
}

sub pause_at { set_system('tenant_mgr.pause_at', shift); }

sub unpause
{
	run_sql('ALTER SYSTEM RESET tenant_mgr.pause_at');
	run_sql('SELECT pg_reload_conf()');
}

# the pid of the process paused at point (waits for it)
sub paused_pid
{
	my ($point) = @_;
	my $q = qq{SELECT pid FROM pg_stat_activity WHERE query = 'tenant_mgr: paused at "$point"'};
	wait_for("SELECT EXISTS ($q)", "a process paused at $point");
	return (split /\n/, run_sql("$q ORDER BY pid"))[0];
}

# a request from a client of its own, left running
sub start_client
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-c', $sql ],
		'<', \undef, '>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return { h => $h, out => \$out, err => \$err };
}

sub finish_client
{
	my ($c) = @_;
	return unless $c;
	$c->{h}->finish;
	return ${ $c->{err} };
}

# the fault, with the process paused at $point as $pid; the pause is
# cleared, and the server is back with its launcher, when this returns
sub fault
{
	my ($kind, $pid) = @_;
	if ($kind eq 'immediate')
	{
		run_sql('ALTER SYSTEM RESET tenant_mgr.pause_at');
		$node->stop('immediate');
		$node->start;
	}
	elsif ($kind eq 'kill9' || $kind eq 'launcher')
	{
		my $victim = $pid;
		$victim = run_sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'tenant_mgr launcher'})
		  if $kind eq 'launcher';
		my $offset = -s $node->logfile;
		kill 'KILL', $victim;
		$node->wait_for_log(qr/database system is ready to accept connections/, $offset);
		unpause();
	}
	elsif ($kind eq 'term')
	{
		run_sql("SELECT pg_terminate_backend($pid)");
		unpause();
	}
	else
	{
		die "unknown fault $kind";
	}
	wait_for_launcher();
}

# nothing in flight: no intent, queued or running job, running run,
# spare being built, executor, job worker or paused process, and the
# pool and template as configured
sub settle
{
	wait_for(
		q{SELECT NOT EXISTS (SELECT FROM tenant_mgr.intent)
		     AND NOT EXISTS (SELECT FROM tenant_mgr.job WHERE state IN ('queued', 'running'))
		     AND NOT EXISTS (SELECT FROM tenant_mgr.run WHERE state IN ('running', 'stopping'))
		     AND NOT EXISTS (SELECT FROM tenant_mgr.spare WHERE state = 'building'
		                       OR (state = 'ready' AND version <> (SELECT coalesce(max(version), 0) FROM tenant_mgr.migration)))
		     AND (SELECT count(*) FROM tenant_mgr.spare WHERE isolation = 'schema' AND state = 'ready')
		         = current_setting('tenant_mgr.pool_schema')::int
		     AND (SELECT count(*) FROM tenant_mgr.spare WHERE isolation = 'database' AND state = 'ready')
		         = current_setting('tenant_mgr.pool_database')::int
		     AND current_setting('tenant_mgr.database_template')::bool
		         = EXISTS (SELECT FROM pg_database d JOIN pg_shseclabel l ON l.objoid = d.oid AND l.provider = 'tenant_mgr'
		                    WHERE d.datname = 'tenant_mgr_template'
		                      AND split_part(l.label, ' ', 2) = (SELECT coalesce(max(version), 0)::text FROM tenant_mgr.migration))
		     AND (current_setting('tenant_mgr.database_template')::bool
		          OR NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenant_mgr_template'))
		     AND NOT EXISTS (SELECT FROM pg_stat_activity
		                      WHERE backend_type IN ('tenant_mgr executor', 'tenant_mgr job worker')
		                         OR query LIKE 'tenant_mgr: paused at %')},
		'tenant_mgr to settle');
}

# schema tenants and spares whose ledger is not the registry's versions up
# to their own, each once, or whose DDL is not whole: 010 inserts two
# settings, 012 builds a valid index, and each migration named fleet_<n>
# a valid index of that name (ns: the schema, or public in a database)
my $ledger_problems_fn = q{CREATE FUNCTION SCHEMA.ledger_problems(kind text, obj name, ns name, v bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	got text;
	want text;
	n bigint;
	m bigint;
BEGIN
	EXECUTE format('SELECT string_agg(version::text, '','' ORDER BY version) FROM %I.tenant_mgr_ledger', ns) INTO got;
	SELECT string_agg(version, ',' ORDER BY version::bigint) INTO want FROM unnest(string_to_array(current_setting('crash.registry'), ',')) version
	 WHERE version::bigint <= v;
	IF got IS DISTINCT FROM want THEN
		RETURN format('%s %s: ledger %s, registry up to %s: %s', kind, obj, got, v, want);
	END IF;
	IF v >= 10 THEN
		EXECUTE format('SELECT count(*) FROM %I.settings', ns) INTO n;
		IF n <> 2 THEN RETURN format('%s %s: %s settings', kind, obj, n); END IF;
	END IF;
	SELECT count(*) INTO n FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	  JOIN pg_namespace s ON s.oid = c.relnamespace
	 WHERE s.nspname = ns AND i.indisvalid AND (c.relname = 'accounts_plan_idx' OR c.relname LIKE 'fleet\_%');
	SELECT count(*) INTO m FROM unnest(string_to_array(current_setting('crash.indexed'), ',')) version
	 WHERE version::bigint <= v;
	IF n <> m THEN
		RETURN format('%s %s: %s valid indexes of migrations, %s expected', kind, obj, n, m);
	END IF;
	RETURN NULL;
END $$};
run_sql(q{CREATE EXTENSION tenant_mgr});
(my $fn = $ledger_problems_fn) =~ s/SCHEMA/public/;
run_sql($fn);

# the registry as the checks see it: every version, and those that build
# an index
sub registry_settings
{
	return "SET crash.registry = '"
	  . run_sql(q{SELECT string_agg(version::text, ',' ORDER BY version) FROM tenant_mgr.migration})
	  . "'; SET crash.indexed = '"
	  . run_sql(q{SELECT coalesce(string_agg(version::text, ',' ORDER BY version), '0') FROM tenant_mgr.migration
	               WHERE version = 12 OR name LIKE 'fleet\_%'})
	  . "';";
}

my $schema_ledgers = q{SELECT string_agg(p, '; ') FROM (
	SELECT public.ledger_problems('tenant', object_name, object_name, version) AS p
	  FROM tenant_mgr.tenant WHERE isolation = 'schema' AND state = 'ready'
	UNION ALL
	SELECT public.ledger_problems('spare', object_name, object_name, version)
	  FROM tenant_mgr.spare WHERE isolation = 'schema' AND state = 'ready') x};

# what tenant_mgr made (by name or by label) that the catalog does not
# account for; a failed tenant accounts for nothing
my $orphans = q{SELECT string_agg(what, ', ' ORDER BY what) FROM (
	SELECT 'schema ' || nspname AS what FROM pg_namespace
	 WHERE (nspname LIKE 'tenant\_%' OR oid IN (SELECT objoid FROM pg_seclabel
	         WHERE provider = 'tenant_mgr' AND classoid = 'pg_namespace'::regclass))
	   AND nspname <> 'tenant_mgr'
	   AND nspname NOT IN (SELECT object_name FROM tenant_mgr.tenant WHERE isolation = 'schema' AND state <> 'failed'
	                       UNION ALL SELECT object_name FROM tenant_mgr.spare WHERE isolation = 'schema')
	UNION ALL
	SELECT 'database ' || datname FROM pg_database
	 WHERE (datname LIKE 'tenant\_%' OR oid IN (SELECT objoid FROM pg_shseclabel
	         WHERE provider = 'tenant_mgr' AND classoid = 'pg_database'::regclass))
	   AND datname NOT IN (SELECT object_name FROM tenant_mgr.tenant WHERE isolation = 'database' AND state <> 'failed'
	                       UNION ALL SELECT object_name FROM tenant_mgr.spare WHERE isolation = 'database'
	                       UNION ALL SELECT 'tenant_mgr_template' WHERE current_setting('tenant_mgr.database_template')::bool)
	UNION ALL
	SELECT 'role ' || rolname FROM pg_roles
	 WHERE (rolname LIKE 'tenant\_%' OR oid IN (SELECT objoid FROM pg_shseclabel
	         WHERE provider = 'tenant_mgr' AND classoid = 'pg_authid'::regclass))
	   AND rolname NOT IN (SELECT owner FROM tenant_mgr.tenant WHERE state <> 'failed'
	                       UNION ALL SELECT owner FROM tenant_mgr.spare
	                       UNION ALL SELECT 'tenant_mgr_template' WHERE current_setting('tenant_mgr.database_template')::bool)) o};

# a database's ledger and DDL, as ledger_problems checks a schema's
sub db_ledger_problem
{
	my ($db, $version) = @_;
	(my $fn = $ledger_problems_fn) =~ s/SCHEMA/pg_temp/;
	return $node->safe_psql($db,
		registry_settings() . "$fn; SELECT pg_temp.ledger_problems('database', '$db', 'public', $version)");
}

# the invariants, after every case; the databases of the tenants named
# (and the spares) are looked into
sub invariants
{
	my ($case, @tenants) = @_;
	settle();
	my @problems;
	my $verify = run_sql(q{SELECT string_agg(tenant || ' ' || problem || ' ' || coalesce(detail, ''), '; ') FROM tenant_mgr.verify()});
	push @problems, "verify(): $verify" if $verify ne '';
	my $ledgers = run_sql(registry_settings() . $schema_ledgers);
	push @problems, $ledgers if $ledgers ne '';
	my $left = run_sql($orphans);
	push @problems, "orphans: $left" if $left ne '';
	my $jobs = run_sql(q{SELECT string_agg(id || ' ' || action || ' ' || tenant || ' ' || state, ', ') FROM tenant_mgr.job
		WHERE state NOT IN ('done', 'failed') OR (state = 'failed' AND coalesce(message, '') = '')});
	push @problems, "jobs: $jobs" if $jobs ne '';
	my $creating = run_sql(q{SELECT string_agg(name, ', ') FROM tenant_mgr.tenant WHERE state = 'creating'});
	push @problems, "tenants still creating: $creating" if $creating ne '';
	my $names = join(',', map { "'$_'" } @tenants) || 'NULL';
	foreach my $row (split /\n/, run_sql(qq{SELECT object_name || ' ' || version FROM tenant_mgr.tenant
		WHERE isolation = 'database' AND state = 'ready' AND name IN ($names)
		UNION ALL SELECT object_name || ' ' || version FROM tenant_mgr.spare WHERE isolation = 'database' AND state = 'ready'}))
	{
		my ($db, $v) = split / /, $row;
		my $p = db_ledger_problem($db, $v);
		push @problems, $p if $p ne '';
	}
	is(join('; ', @problems), '', "$case: invariants hold");
}

# the state of tenant $name: gone (no row), ready (at the latest version),
# failed (a failed row, and its last job failed with a message)
sub outcome
{
	my ($name) = @_;
	my $row = run_sql(qq{SELECT state || ':' || (version = (SELECT max(version) FROM tenant_mgr.migration))
		FROM tenant_mgr.tenant WHERE name = '$name'});
	return 'gone' if $row eq '';
	return 'ready' if $row eq 'ready:true';
	if ($row =~ /^failed:/)
	{
		my $msg = run_sql(qq{SELECT message FROM tenant_mgr.job WHERE tenant = '$name' ORDER BY id DESC LIMIT 1});
		return $msg ne '' ? 'failed' : 'failed without a message';
	}
	return $row;
}

run_sql(q{CREATE TABLE public.case_tenants (name text PRIMARY KEY)});
is(run_sql("SELECT tenant_mgr.migrations_load('$fixtures')"), '11', 'fixtures registered');
run_sql(q{SELECT tenant_mgr.migration_add(12, 'plan_index',
	$$CREATE INDEX CONCURRENTLY accounts_plan_idx ON accounts (plan)$$,
	$$DROP INDEX CONCURRENTLY accounts_plan_idx$$, transactional => false)});
wait_for_launcher();

my $cases = 0;
my $started = time;
my $n = 0;
my %faults;

sub next_name
{
	$n++;
	my $name = "c$n";
	run_sql("INSERT INTO public.case_tenants VALUES ('$name')");
	return $name;
}

# One case: pause at $point, make $trigger happen, apply $fault, and check
# that the request ended as $expect says and the invariants.
#   trigger: a code ref returning (client or undef, tenant name or undef)
#   expect:  a regular expression over outcome() of the tenant
# A tenant that failed cleanly is dropped, and must go without a trace.
sub run_case
{
	my (%c) = @_;
	my $label = "$c{what} at $c{point}, $c{fault}";
	pause_at($c{point});
	my ($client, $tenant) = $c{trigger}->();
	my $pid = paused_pid($c{point});
	fault($c{fault}, $pid);
	finish_client($client);
	settle();
	if (defined $tenant)
	{
		my $got = outcome($tenant);
		like($got, $c{expect}, "$label: tenant $tenant ended " . ($got =~ s/:.*//r));
		if ($got eq 'failed')
		{
			run_sql("SELECT tenant_mgr.tenant_drop('$tenant')");
		}
	}
	invariants($label, defined $tenant ? ($tenant) : ());
	$cases++;
	$faults{ $c{fault} }++;
}

my %trigger = (
	inline_schema => sub {
		my $t = next_name();
		return (start_client("SELECT tenant_mgr.tenant_create('$t')"), $t);
	},
	queued_schema => sub {
		my $t = next_name();
		run_sql("SELECT tenant_mgr.tenant_create('$t', wait => false)");
		return (undef, $t);
	},
	inline_db => sub {
		my $t = next_name();
		return (start_client("SELECT tenant_mgr.tenant_create('$t', 'database')"), $t);
	},
	queued_db => sub {
		my $t = next_name();
		run_sql("SELECT tenant_mgr.tenant_create('$t', 'database', wait => false)");
		return (undef, $t);
	},
);

# a ready tenant to drop
sub ready_tenant
{
	my ($isolation) = @_;
	my $t = next_name();
	run_sql("SELECT tenant_mgr.tenant_create('$t', '$isolation')");
	return $t;
}
$trigger{drop_schema} = sub {
	my $t = ready_tenant('schema');
	return (start_client("SELECT tenant_mgr.tenant_drop('$t')"), $t);
};
$trigger{drop_db} = sub {
	my $t = ready_tenant('database');
	return (start_client("SELECT tenant_mgr.tenant_drop('$t')"), $t);
};

my $gone = qr/^gone$/;
my $ready = qr/^ready$/;
my $ready_or_failed = qr/^(ready|failed)$/;
my $any = qr/./;

# rows of (trigger, point, expected outcome, faults...)
sub run_matrix
{
	foreach my $row (@_)
	{
		my ($what, $point, $expect, @faults) = @$row;
		foreach my $fault (@faults)
		{
			run_case(what => $what, point => $point, fault => $fault,
				expect => $expect, trigger => $trigger{$what});
		}
	}
}

# --- A: schema tenants built in the caller's or the job's transaction,
# database tenants by executors, drops ------------------------------------------

run_matrix(
	[ 'inline_schema', 'schema:after-role',       $gone,  'immediate' ],
	[ 'inline_schema', 'schema:after-schema',     $gone,  'kill9' ],
	[ 'inline_schema', 'schema:after-ledger',     $gone,  'term' ],
	[ 'inline_schema', 'migrate:before-commit',   $gone,  'launcher' ],
	[ 'inline_schema', 'create:before-record',    $gone,  'kill9', 'term' ],
	[ 'queued_schema', 'job:after-claim',         $ready, 'immediate', 'term' ],
	[ 'queued_schema', 'schema:after-role',       $ready, 'kill9' ],
	[ 'queued_schema', 'migrate:before-commit',   $ready, 'term', 'launcher' ],
	[ 'queued_schema', 'job:before-record',       $ready, 'kill9', 'immediate' ],
	[ 'drop_schema',   'drop:after-schema',       $ready, 'immediate', 'term' ],
	[ 'inline_db',     'dbcreate:after-intent',   $gone,  'kill9' ],
	[ 'inline_db',     'dbcreate:after-role',     $gone,  'immediate', 'term' ],
	[ 'inline_db',     'dbcreate:after-database', $gone,  'kill9', 'term' ],
	[ 'inline_db',     'dbcreate:after-marks',    $gone,  'launcher' ],
	[ 'inline_db',     'dbcreate:before-migrate', $gone,  'term' ],
	[ 'inline_db',     'migrate:before-commit',   $gone,  'kill9' ],
	[ 'inline_db',     'migrate:after-commit',    $gone,  'immediate' ],
	[ 'inline_db',     'migrate:nt-before',       $gone,  'term' ],
	[ 'inline_db',     'migrate:nt-after',        $gone,  'kill9' ],
	[ 'inline_db',     'dbcreate:before-record',  $gone,  'immediate', 'term' ],
	[ 'queued_db',     'job:after-claim',         $ready, 'kill9' ],
	[ 'queued_db',     'dbcreate:after-intent',   $ready, 'immediate' ],
	[ 'queued_db',     'dbcreate:after-role',     $ready_or_failed, 'term' ],
	[ 'queued_db',     'dbcreate:after-database', $ready, 'immediate', 'kill9' ],
	[ 'queued_db',     'dbcreate:after-marks',    $ready_or_failed, 'term' ],
	[ 'queued_db',     'dbcreate:before-migrate', $ready, 'launcher' ],
	[ 'queued_db',     'migrate:after-commit',    $ready_or_failed, 'term' ],
	[ 'queued_db',     'migrate:nt-before',       $ready, 'immediate' ],
	[ 'queued_db',     'migrate:nt-after',        $ready, 'kill9' ],
	[ 'queued_db',     'dbcreate:before-record',  $ready, 'immediate', 'term' ],
	[ 'drop_db',       'drop:after-detach',       $ready, 'kill9', 'term' ],
	[ 'drop_db',       'job:after-claim',         $gone,  'immediate' ],
	[ 'drop_db',       'dbdrop:after-database',   $gone,  'kill9', 'term' ],
);

# --- B: schema tenants built outside any transaction, migration by migration ---

set_system('tenant_mgr.build_in_transaction', 'off');
run_matrix(
	[ 'inline_schema', 'build:after-intent',    $gone,  'kill9' ],
	[ 'inline_schema', 'schema:after-role',     $gone,  'term' ],
	[ 'inline_schema', 'build:after-start',     $gone,  'immediate' ],
	[ 'inline_schema', 'migrate:before-commit', $gone,  'launcher' ],
	[ 'inline_schema', 'build:after-migration', $gone,  'kill9', 'term' ],
	[ 'inline_schema', 'create:after-build',    $gone,  'immediate', 'term' ],
	[ 'queued_schema', 'build:after-start',     $ready, 'kill9', 'term' ],
	[ 'queued_schema', 'migrate:before-commit', $ready, 'term' ],
	[ 'queued_schema', 'build:after-migration', $ready, 'immediate', 'launcher' ],
	[ 'queued_schema', 'job:before-record',     $ready, 'immediate' ],
);
set_system('tenant_mgr.build_in_transaction', 'on');

# --- C: the warm pool: spares built, claimed, brought up to date, removed ------

# the first case of a kind sets the pool size; the next ones claim the spare,
# and the launcher builds another
my %pool_set;
foreach my $kind ('schema', 'database')
{
	my $fill = sub {
		if ($pool_set{$kind}++)
		{
			my $t = next_name();
			run_sql("SELECT tenant_mgr.tenant_create('$t', '$kind')");
		}
		else
		{
			set_system("tenant_mgr.pool_$kind", '1');
		}
		return (undef, undef);
	};
	$trigger{"pool_$kind"} = $fill;
}
$trigger{claim_schema} = $trigger{inline_schema};
$trigger{claim_db} = $trigger{inline_db};
$trigger{pool_behind} = sub {
	my $v = run_sql('SELECT max(version) + 1 FROM tenant_mgr.migration');
	run_sql("SELECT tenant_mgr.migration_add($v, 'note_$v', \$\$ALTER TABLE accounts ADD COLUMN note_$v text\$\$)");
	return (undef, undef);
};
$trigger{pool_shrink_schema} = sub { set_system('tenant_mgr.pool_schema', '0'); return (undef, undef); };
$trigger{pool_shrink_database} = sub { set_system('tenant_mgr.pool_database', '0'); return (undef, undef); };

run_matrix(
	[ 'pool_schema',        'pool:after-insert',      $any, 'immediate' ],
	[ 'pool_schema',        'schema:after-role',      $any, 'term' ],
	[ 'pool_schema',        'build:after-start',      $any, 'kill9' ],
	[ 'pool_schema',        'migrate:before-commit',  $any, 'immediate' ],
	[ 'pool_schema',        'build:after-migration',  $any, 'term' ],
	[ 'pool_schema',        'pool:before-ready',      $any, 'kill9' ],
	[ 'claim_schema',       'claim:after-rename',     $gone, 'kill9', 'term' ],
	[ 'pool_behind',        'pool:after-take',        $any, 'immediate' ],
	[ 'pool_shrink_schema', 'pool:after-shrink-drop', $any, 'kill9' ],
	[ 'pool_database',      'dbcreate:after-role',    $any, 'immediate' ],
	[ 'pool_database',      'dbcreate:after-database', $any, 'term' ],
	[ 'pool_database',      'migrate:after-commit',   $any, 'kill9' ],
	[ 'pool_database',      'pool:before-ready',      $any, 'term' ],
	[ 'claim_db',           'claim:after-rename',     $gone, 'immediate' ],
	[ 'pool_shrink_database', 'dbdrop:after-database', $any, 'term' ],
);
is(run_sql(q{SELECT count(*) FROM tenant_mgr.spare}), '0', 'the pool is empty again');

# --- D: the template database, made, migrated, dropped, cloned ---------------------

$trigger{template_on} = sub { set_system('tenant_mgr.database_template', 'on'); return (undef, undef); };
$trigger{template_off} = sub { set_system('tenant_mgr.database_template', 'off'); return (undef, undef); };
run_matrix(
	[ 'template_on',  'template:locked',         $any, 'immediate' ],
	[ 'template_off', 'template:after-drop',     $any, 'kill9' ],
	[ 'template_on',  'template:after-role',     $any, 'term' ],
	[ 'template_off', 'template:after-drop',     $any, 'term' ],
	[ 'template_on',  'template:after-database', $any, 'kill9' ],
	[ 'template_off', 'template:locked',         $any, 'immediate' ],
	[ 'template_on',  'template:after-label',    $any, 'immediate' ],
	[ 'template_off', 'template:after-drop',     $any, 'immediate' ],
	[ 'template_on',  'migrate:after-commit',    $any, 'term' ],
	[ 'inline_db',    'clone:locked',            $gone, 'kill9' ],
	[ 'inline_db',    'clone:after-copy',        $gone, 'term' ],
	[ 'inline_db',    'adopt:before-commit',     $gone, 'immediate' ],
	[ 'queued_db',    'clone:after-copy',        $ready, 'kill9' ],
	[ 'queued_db',    'adopt:before-commit',     $ready_or_failed, 'term' ],
);
set_system('tenant_mgr.database_template', 'off');
invariants('template off again');

# --- E: fleet runs, transactional and not ---------------------------------------

# a migration building index fleet_<n>, then a fleet run of every tenant
sub fleet_trigger
{
	my ($transactional) = @_;
	return sub {
		my $v = run_sql('SELECT max(version) + 1 FROM tenant_mgr.migration');
		if ($transactional)
		{
			run_sql("SELECT tenant_mgr.migration_add($v, 'fleet_$v', \$\$CREATE INDEX fleet_$v ON accounts (name)\$\$)");
		}
		else
		{
			run_sql("SELECT tenant_mgr.migration_add($v, 'fleet_$v', \$\$CREATE INDEX CONCURRENTLY fleet_$v ON accounts (created_at)\$\$, transactional => false)");
		}
		run_sql('SELECT DISTINCT run_id FROM tenant_mgr.tenant_migrate(wait => false)');
		return (undef, undef);
	};
}
$trigger{fleet} = fleet_trigger(1);
$trigger{fleet_nt} = fleet_trigger(0);

# every ready tenant at the latest version, once a run brought the ones
# a failure left behind (they are counted, not failed: a terminated
# executor fails its tenant's step)
sub all_latest
{
	my ($what) = @_;
	my $behind = run_sql(q{SELECT count(*) FROM tenant_mgr.tenant WHERE state = 'ready'
		AND version <> (SELECT max(version) FROM tenant_mgr.migration)});
	if ($behind ne '0')
	{
		note("$what: $behind tenants behind, migrated again");
		run_sql('SELECT DISTINCT run_id FROM tenant_mgr.tenant_migrate(wait => false)');
		settle();
	}
	is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenant WHERE state = 'ready'
		AND version <> (SELECT max(version) FROM tenant_mgr.migration)}), '0', "$what: every tenant at the latest version");
}

foreach my $row (
	[ 'fleet',    'run:after-claim',       'immediate', 'term' ],
	[ 'fleet',    'migrate:before-commit', 'kill9' ],
	[ 'fleet',    'migrate:after-commit',  'term', 'immediate' ],
	[ 'fleet_nt', 'migrate:nt-before',     'kill9' ],
	[ 'fleet_nt', 'migrate:nt-after',      'immediate', 'term' ])
{
	my ($what, $point, @faults) = @$row;
	foreach my $fault (@faults)
	{
		run_case(what => $what, point => $point, fault => $fault, expect => $any, trigger => $trigger{$what});
		all_latest("$what at $point, $fault");
	}
}
my $db_tenants = run_sql(q{SELECT string_agg(name, ' ') FROM tenant_mgr.tenant WHERE isolation = 'database' AND state = 'ready'});
invariants('after the fleet runs, every database tenant looked into', split(/ /, $db_tenants));

# --- F: a write failure: a migration exceeding temp_file_limit -----------------------

# tenants "full" (schema) and "dbfull" (database), and two ready tenants of
# the fleet, spill a sort to disk where temp_file_limit leaves no room
my ($full_schema, $full_db) = split / /, run_sql(q{SELECT
	(SELECT min(object_name) FROM tenant_mgr.tenant WHERE isolation = 'schema' AND state = 'ready')
	|| ' ' ||
	(SELECT min(object_name) FROM tenant_mgr.tenant WHERE isolation = 'database' AND state = 'ready')});
set_system('temp_file_limit', '1MB');
my $spill = run_sql('SELECT max(version) + 1 FROM tenant_mgr.migration');
run_sql(qq{SELECT tenant_mgr.migration_add($spill, 'spill', \$\$
	CREATE TABLE spill (id int);
	DO \$b\$ BEGIN
	  IF current_schema() IN ('tenant_full', '$full_schema')
	     OR (current_schema() = 'public' AND current_database() IN ('tenant_dbfull', '$full_db')) THEN
	    PERFORM count(*) FROM (SELECT g FROM generate_series(1, 500000) g ORDER BY g DESC) s;
	  END IF;
	END \$b\$ \$\$)});

my ($rc, $out, $err) = $node->psql('postgres', q{SELECT tenant_mgr.tenant_create('full')});
like($err, qr/temporary file size exceeds temp_file_limit/, 'write failure: an inline create fails with the error');
run_sql(q{SELECT tenant_mgr.tenant_create('full', wait => false)});
run_sql(q{SELECT tenant_mgr.tenant_create('dbfull', 'database', wait => false)});
settle();
is(run_sql(q{SELECT string_agg(j.tenant || ':' || t.state || ':' || j.sqlstate, ',' ORDER BY j.tenant)
	FROM tenant_mgr.job j JOIN tenant_mgr.tenant t ON t.name = j.tenant WHERE j.tenant IN ('full', 'dbfull')}),
	'dbfull:failed:53400,full:failed:53400', 'write failure: queued creates fail with 53400');
run_sql(q{SELECT tenant_mgr.tenant_drop('full'); SELECT tenant_mgr.tenant_drop('dbfull')});
my $run = run_sql('SELECT DISTINCT run_id FROM tenant_mgr.tenant_migrate(wait => false)');
settle();
my $failed = run_sql(qq{SELECT string_agg(tenant || ':' || coalesce(sqlstate, ''), ',' ORDER BY tenant)
	FROM tenant_mgr.run_tenant WHERE run_id = $run AND status = 'failed'});
my $full_tenants = run_sql(qq{SELECT string_agg(name || ':53400', ',' ORDER BY name) FROM tenant_mgr.tenant
	WHERE object_name IN ('$full_schema', '$full_db')});
is($failed, $full_tenants, 'write failure: a fleet run fails those two tenants with 53400, the others go on');
invariants('write failure', split(/ /, $db_tenants));
is(run_sql(qq{SELECT count(*) FROM tenant_mgr.tenant WHERE state = 'ready' AND version < $spill}), '2',
	'write failure: the two failing tenants stay at the version before');
set_system('temp_file_limit', '-1');
all_latest('write failure, with room again');
invariants('write failure, with room again', split(/ /, $db_tenants));

# --- G: the launcher terminated again and again: never two -------------------------

pause_at('job:after-claim');
my @queued = map { next_name() } 1 .. 4;
run_sql(join(';', map { "SELECT tenant_mgr.tenant_create('$_', wait => false)" } @queued));
wait_for(q{SELECT count(*) > 0 FROM pg_stat_activity WHERE query = 'tenant_mgr: paused at "job:after-claim"'},
	'a job worker to pause');
# a sampler in the server, every 10 ms, across two terminations
my $sampler = start_client(q{DO $$ DECLARE m int := 0; c int; BEGIN
	FOR i IN 1..1400 LOOP
	  PERFORM pg_stat_clear_snapshot();
	  SELECT count(*) INTO c FROM pg_stat_activity WHERE backend_type = 'tenant_mgr launcher';
	  m := greatest(m, c);
	  PERFORM pg_sleep(0.01);
	END LOOP;
	RAISE NOTICE 'launchers at most %', m; END $$});
my $most = 0;
foreach my $round (1 .. 4)
{
	my $old = run_sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'tenant_mgr launcher'});
	if ($round <= 2)
	{
		run_sql("SELECT pg_terminate_backend($old)");
	}
	else
	{
		my $offset = -s $node->logfile;
		kill 'KILL', $old;
		$node->wait_for_log(qr/database system is ready to accept connections/, $offset);
	}
	# sample until a new launcher is there
	for (;;)
	{
		my $pids = run_sql(q{SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE backend_type = 'tenant_mgr launcher'});
		my @pids = split / /, $pids;
		$most = @pids if @pids > $most;
		last if @pids == 1 && $pids[0] ne $old;
		select(undef, undef, undef, 0.05);
	}
	finish_client($sampler) if $round == 2;
}
like(${ $sampler->{err} }, qr/launchers at most 1/, 'launcher terminated twice: the server never saw two');
is($most, 1, 'launcher terminated twice and killed twice: never two launchers');
unpause();
settle();
is(run_sql(q{SELECT count(*) FROM tenant_mgr.event WHERE action = 'create' AND status = 'ok' AND tenant IN ('}
		. join("','", @queued) . q{')}), '4', 'the queued creates ran once each');
invariants('launcher terminated repeatedly', @queued);

# --- H: a restart with a full queue: every job runs once --------------------------

pause_at('job:after-claim');
my @full = map { next_name() } 1 .. 30;
run_sql('BEGIN; '
	  . join('; ', map { "SELECT tenant_mgr.tenant_create('$full[$_]', " . ($_ % 5 == 4 ? "'database', " : '') . 'wait => false)' } 0 .. 29)
	  . '; COMMIT');
wait_for(q{SELECT count(*) > 0 FROM pg_stat_activity WHERE query = 'tenant_mgr: paused at "job:after-claim"'},
	'a job worker to pause');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.job WHERE state = 'queued'}) > 20 ? 'full' : 'not full', 'full',
	'the queue is full when the server stops');
fault('immediate');
settle();
my $in = "'" . join("','", @full) . "'";
is(run_sql(qq{SELECT count(*) FILTER (WHERE state = 'ready' AND version = (SELECT max(version) FROM tenant_mgr.migration))
	FROM tenant_mgr.tenant WHERE name IN ($in)}), '30', 'full queue: every tenant ready at the latest version');
is(run_sql(qq{SELECT count(*) || ':' || count(*) FILTER (WHERE state = 'done') FROM tenant_mgr.job WHERE tenant IN ($in)}),
	'30:30', 'full queue: one job per tenant, each done');
is(run_sql(qq{SELECT count(*) FROM (SELECT tenant FROM tenant_mgr.event WHERE action = 'create' AND status = 'ok'
	AND tenant IN ($in) GROUP BY tenant HAVING count(*) = 1) x}), '30', 'full queue: each created once');
invariants('full queue', @full);

my $elapsed = time - $started;
my @kinds = map { "$faults{$_} $_" } sort keys %faults;
note(sprintf('%d cases (%s) in %.0f s', $cases, join(', ', @kinds), $elapsed));

done_testing();
