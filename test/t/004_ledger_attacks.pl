# A database tenant attacked through its ledger (public.tenant_mgr_ledger,
# owned by the tenant's owner) by its own login role, a member of the owner
# connected to the tenant's database.  Every attack plants code that, when a
# superuser runs it, makes the login role a superuser and grants it
# pg_execute_server_program.  No path that reads or writes the ledger may run
# that code with more than the owner's rights, and the other database tenant
# must go on.
#
# Escalation attempts: 24 = 6 attacks (1. the ledger replaced by a view,
# 2. a BEFORE INSERT trigger, 3. an ON INSERT rule, 4. row-level security
# with a policy, 5. an expression index, 6. a column default) x 4 paths that
# read the ledger (verify(), a single tenant_migrate(name), a fleet
# tenant_migrate(), a server restart, after which the launcher reconciles
# every ready database tenant from its ledger).  Attacks 1-5 change the
# ledger's shape: the tenant is reported "tampered" and skipped.  Attack 6
# keeps it: the ledger row is written, as the owner in a security-restricted
# operation.  Stall attempts besides: 7. the ledger kept locked (verify(),
# single and fleet tenant_migrate(): 3); 8. the ledger locked between a
# migration's ledger read and its ledger write (a fleet run: 1).
# 9. Drift, by a superuser in the tenant's database: a checksum that differs
# from the registered one, and a row above the latest registered version,
# each reported by verify().
#
# After every attempt: no role but the bootstrap superuser has rolsuper or
# membership in pg_execute_server_program, pg_read_server_files or
# pg_write_server_files; the attacker's code ran in tenant_mgr's processes
# not at all (1-5) or as the owner (6); the tenant's data and ledger are
# unchanged.  Once the ledger is restored, the tenant catches up and
# verify() is empty.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('ledger_attacks');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'tenant_mgr'
tenant_mgr.database = 'postgres'
tenant_mgr.poll_interval = 1
max_worker_processes = 16
});
$node->start;

sub control { return $node->safe_psql('postgres', shift); }

# --- helpers ------------------------------------------------------------------

# roles that reached superuser or the server-access roles: must stay ''
sub escalated
{
	return control(
		q{SELECT coalesce(string_agg(r.rolname, ',' ORDER BY r.rolname), '')
		    FROM pg_roles r
		   WHERE r.oid <> 10 AND r.rolname !~ '^pg_'
		     AND (r.rolsuper
		          OR pg_has_role(r.oid, 'pg_execute_server_program', 'MEMBER')
		          OR pg_has_role(r.oid, 'pg_read_server_files', 'MEMBER')
		          OR pg_has_role(r.oid, 'pg_write_server_files', 'MEMBER'))});
}

sub nobody_escalated
{
	my ($what) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is(escalated(), '', "nobody escalated $what");
}

# the next migration, registered for every tenant; returns its version
sub next_migration
{
	my ($up) = @_;
	my $v = control('SELECT coalesce(max(version), 0) + 1 FROM tenant_mgr.migration');
	$up //= "CREATE TABLE step_$v (id int)";
	control(qq{SELECT tenant_mgr.migration_add($v, 'step_$v', \$m\$$up\$m\$)});
	return $v;
}

sub latest { return control('SELECT max(version) FROM tenant_mgr.migration'); }

sub catalog_version
{
	my ($tenant) = @_;
	return control("SELECT version FROM tenant_mgr.tenant WHERE name = '$tenant'");
}

# verify()'s rows, one a line: tenant|problem|detail
sub verify_rows
{
	return control('SELECT tenant, problem, detail FROM tenant_mgr.verify() ORDER BY 1, 2, 3');
}

# a fleet run's rows: tenant:version:status:sqlstate, '-' for null
sub fleet
{
	return control(
		q{SELECT coalesce(string_agg(tenant || ':' || coalesce(version::text, '-') || ':'
		                             || status || ':' || coalesce(sqlstate, '-'), ','
		                             ORDER BY tenant, version), '')
		    FROM tenant_mgr.tenant_migrate()});
}

# a single-tenant run: (psql's exit code, stdout, stderr with SQLSTATEs)
sub migrate_one
{
	my ($tenant) = @_;
	my ($rc, $out, $err) = $node->psql('postgres',
		qq{SELECT tenant || ':' || version || ':' || status FROM tenant_mgr.tenant_migrate('$tenant')},
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($rc, $out, $err);
}

# The launcher reconciles at start before it runs any job, and reruns the
# reconcile until it succeeds: a queued create finishing means it is over.
my $probes = 0;

sub wait_for_reconcile
{
	my $probe = 'probe' . ++$probes;
	control(qq{SELECT tenant_mgr.tenant_create('$probe', 'schema', wait => false)});
	is(control(qq{SELECT tenant_mgr.tenant_wait('$probe', '300 s')}), 't',
		"the launcher reconciled and ran a queued create ($probe)");
	control(qq{SELECT tenant_mgr.tenant_drop('$probe')});
}

# --- two database tenants, the victim's login role, its data --------------------

control('CREATE EXTENSION tenant_mgr');
control(q{SELECT tenant_mgr.migration_add(1, 'accounts',
	'CREATE TABLE accounts (id int PRIMARY KEY, secret text NOT NULL)')});
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'tenant_mgr launcher'})
  or die 'no launcher';
is( control(q{SELECT string_agg(name || ':' || state || ':' || version, ',' ORDER BY name)
	FROM unnest(ARRAY['victim', 'bystander']) n, LATERAL tenant_mgr.tenant_create(n, 'database')}),
	'bystander:ready:1,victim:ready:1', 'two database tenants');
my $db = control(q{SELECT object_name FROM tenant_mgr.tenant WHERE name = 'victim'});
my $owner = control(q{SELECT owner FROM tenant_mgr.tenant WHERE name = 'victim'});
my $login = control(q{SELECT tenant_mgr.tenant_login_role('victim')});
die "unexpected names $db $owner $login"
  unless "$db $owner $login" =~ /^[a-z_0-9]+ [a-z_0-9]+ [a-z_0-9]+$/;

# the attacker: the login role, connected to its own database
sub attacker
{
	my ($sql) = @_;
	return $node->safe_psql($db, $sql, extra_params => [ '-U', $login ]);
}

attacker(q{INSERT INTO public.accounts VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma')});
my $data = q{SELECT string_agg(id || ':' || secret, ',' ORDER BY id) FROM public.accounts};
my $victim_data = attacker($data);
is($victim_data, '1:alpha,2:beta,3:gamma', 'the victim has data');
my $ledger_full = q{SELECT string_agg(version || ':' || name || ':' || checksum || ':' || applied_by, ','
	ORDER BY version) FROM public.tenant_mgr_ledger};
my $ledger_versions =
  q{SELECT string_agg(version::text, ',' ORDER BY version) FROM public.tenant_mgr_ledger};
nobody_escalated('before any attack');

# The attacker's code: run by a superuser, it makes the login role one and
# grants it pg_execute_server_program; in any case it notes who ran it, in
# whose session, in a table anyone may insert into.
attacker(qq{
CREATE TABLE public.attempts (usr name, superuser boolean, session_usr name,
                              at timestamptz DEFAULT clock_timestamp());
GRANT INSERT ON public.attempts TO PUBLIC;
CREATE FUNCTION public.escalate() RETURNS boolean LANGUAGE plpgsql AS \$f\$
DECLARE
    su boolean;
BEGIN
    SELECT rolsuper INTO su FROM pg_catalog.pg_roles WHERE rolname = current_user;
    IF su THEN
        EXECUTE 'ALTER ROLE $login SUPERUSER';
        EXECUTE 'GRANT pg_execute_server_program TO $login';
    END IF;
    BEGIN
        INSERT INTO public.attempts (usr, superuser, session_usr)
        VALUES (current_user, su, session_user);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'attempt not noted: %', SQLERRM;
    END;
    RETURN true;
END \$f\$;
CREATE FUNCTION public.escalate_trigger() RETURNS trigger LANGUAGE plpgsql AS \$f\$
BEGIN
    PERFORM public.escalate();
    RETURN NEW;
END \$f\$;
CREATE FUNCTION public.escalate_int(bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS \$f\$
BEGIN
    PERFORM public.escalate();
    RETURN \$1;
END \$f\$;
});
is(attacker(q{SELECT public.escalate(); SELECT usr || ':' || superuser || ':' || session_usr FROM public.attempts}),
	"t\n$login:false:$login", 'the attacker\'s code runs and notes who ran it');
attacker('TRUNCATE public.attempts');

# who ran the attacker's code (user:superuser:session user) in sessions not
# the attacker's: tenant_mgr's executors, connected as the bootstrap superuser
my $bootstrap = control('SELECT rolname FROM pg_roles WHERE oid = 10');
my $in_tenant_mgr = qq{SELECT coalesce(string_agg(DISTINCT usr || ':' || superuser || ':' || session_usr, ','), '')
	FROM public.attempts WHERE session_usr <> '$login'};

# --- 1-6: the ledger's shape, and what each path makes of it --------------------

my @attacks = (
	{
		name => 'a view replacing the ledger',
		attack => q{ALTER TABLE public.tenant_mgr_ledger RENAME TO real_ledger;
			CREATE VIEW public.tenant_mgr_ledger AS
			    SELECT * FROM public.real_ledger WHERE public.escalate()},
		restore => q{DROP VIEW public.tenant_mgr_ledger;
			ALTER TABLE public.real_ledger RENAME TO tenant_mgr_ledger},
		problem => 'it is not a plain table',
	},
	{
		name => 'a BEFORE INSERT trigger',
		attack => q{CREATE TRIGGER escalate BEFORE INSERT ON public.tenant_mgr_ledger
			FOR EACH ROW EXECUTE FUNCTION public.escalate_trigger()},
		restore => q{DROP TRIGGER escalate ON public.tenant_mgr_ledger},
		problem => 'it has triggers',
	},
	{
		name => 'an ON INSERT rule',
		attack => q{CREATE RULE escalate AS ON INSERT TO public.tenant_mgr_ledger
			DO ALSO SELECT public.escalate()},
		restore => q{DROP RULE escalate ON public.tenant_mgr_ledger},
		problem => 'it has rules',
	},
	{
		name => 'row-level security with a policy',
		attack => q{ALTER TABLE public.tenant_mgr_ledger ENABLE ROW LEVEL SECURITY;
			CREATE POLICY escalate ON public.tenant_mgr_ledger USING (public.escalate())},
		restore => q{DROP POLICY escalate ON public.tenant_mgr_ledger;
			ALTER TABLE public.tenant_mgr_ledger DISABLE ROW LEVEL SECURITY},
		problem => 'it has row-level security enabled',
	},
	{
		name => 'an expression index',
		attack => q{CREATE INDEX escalate ON public.tenant_mgr_ledger (public.escalate_int(version))},
		restore => q{DROP INDEX public.escalate},
		problem => 'its indexes are not the primary key tenant_mgr made',
	},
	{
		name => 'a column default',
		attack => q{ALTER TABLE public.tenant_mgr_ledger
			ALTER applied_by SET DEFAULT CASE WHEN public.escalate() THEN current_user END},
		restore => q{ALTER TABLE public.tenant_mgr_ledger ALTER applied_by SET DEFAULT current_user},
		problem => undef,
	},
);

my $attempts = 0;
my $n = 0;
foreach my $atk (@attacks)
{
	$n++;
	my $what = "($n. $atk->{name})";
	my $ledger_before = attacker($ledger_full);
	my $version_before = catalog_version('victim');

	attacker($atk->{attack});
	my $v = next_migration();

	if (defined $atk->{problem})
	{
		# verify()
		is(verify_rows(),
			"victim|tampered|the ledger is not the table tenant_mgr made: $atk->{problem}",
			"verify() reports the tenant tampered $what");
		$attempts++;
		nobody_escalated("after verify() $what");

		# a single tenant_migrate
		my ($rc, $out, $err) = migrate_one('victim');
		isnt($rc, 0, "a single tenant_migrate fails $what");
		like($err, qr/ERROR:  55000: ledger of tenant "victim" is not the table tenant_mgr made/,
			"with 55000 $what");
		like($err, qr/DETAIL:  In public\.tenant_mgr_ledger, \Q$atk->{problem}\E\./,
			"saying what is wrong $what");
		$attempts++;
		nobody_escalated("after a single tenant_migrate $what");

		# a fleet run
		is(fleet(), "bystander:$v:applied:-,victim:-:failed:55000",
			"a fleet run migrates the other tenant and fails this one $what");
		$attempts++;
		nobody_escalated("after a fleet run $what");
		is(attacker("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'step_$v'"),
			'0', "no migration ran in the tenant $what");

		# a restart: the launcher's reconcile reads every ready database tenant's ledger
		my $offset = -s $node->logfile;
		$node->restart;
		wait_for_reconcile();
		$attempts++;
		nobody_escalated("after a restart $what");
		is(catalog_version('victim'), $version_before,
			"the reconcile left the tenant's version alone $what");
		ok(!$node->log_contains(qr/corrected the version of tenant "victim"/, $offset),
			"and corrected nothing from its ledger $what");
	}
	else
	{
		# the shape is tenant_mgr's: the ledger row is written, as the
		# owner in a security-restricted operation, where the code gains
		# nothing
		is(verify_rows(), '', "verify() finds nothing wrong $what");
		$attempts++;
		nobody_escalated("after verify() $what");

		# the single run in a transaction that rolls back: the migration and
		# its ledger row stay in the tenant's database, the catalog forgets
		# them (README, "Limits"), so the restart below must read this
		# ledger to correct the version
		is( control(qq{BEGIN;
			SELECT tenant || ':' || version || ':' || status FROM tenant_mgr.tenant_migrate('victim');
			ROLLBACK;}),
			"victim:$v:applied", "a single tenant_migrate applies the migration $what");
		$attempts++;
		nobody_escalated("after a single tenant_migrate $what");
		is(attacker("SELECT applied_by FROM public.tenant_mgr_ledger WHERE version = $v"),
			$owner, "the ledger row was written as the tenant's owner $what");
		is(verify_rows(),
			"victim|version_mismatch|the catalog says version $version_before, the ledger says $v",
			"the rolled-back caller left the catalog behind $what");

		my $offset = -s $node->logfile;
		$node->restart;
		wait_for_reconcile();
		$attempts++;
		nobody_escalated("after a restart $what");
		ok( $node->log_contains(
				qr/corrected the version of tenant "victim" from $version_before to $v from its ledger/,
				$offset),
			"the reconcile read the tenant's ledger $what");
		is(catalog_version('victim'), $v, "and corrected the catalog $what");

		is(fleet(), "bystander:$v:applied:-", "a fleet run migrates the other tenant $what");
		$attempts++;
		nobody_escalated("after a fleet run $what");
		is(attacker($in_tenant_mgr), "$owner:false:$bootstrap",
			"the attacker's code ran in tenant_mgr's processes only as the owner $what");
	}

	if (defined $atk->{problem})
	{
		is(attacker($in_tenant_mgr), '',
			"the attacker's code never ran in tenant_mgr's processes $what");
	}
	is(attacker('SELECT count(*) FROM public.attempts WHERE superuser'), '0',
		"nor ever as a superuser $what");
	is(attacker($data), $victim_data, "the tenant's data is unchanged $what");

	# restore the ledger: the tenant catches up
	attacker($atk->{restore});
	attacker('TRUNCATE public.attempts');
	if (defined $atk->{problem})
	{
		is(attacker($ledger_full), $ledger_before, "the ledger is unchanged $what");
		is(fleet(), "victim:$v:applied:-", "once restored, the tenant catches up $what");
	}
	is(attacker($ledger_versions), join(',', 1 .. $v), "its ledger is complete $what");
	is(catalog_version('victim'), latest(), "and the catalog at the latest version $what");
	is(verify_rows(), '', "verify() is empty after the restore $what");
	nobody_escalated("after the restore $what");
}
is($attempts, 24, 'escalation attempts: 6 attacks x 4 paths that read the ledger');

# --- 7. the ledger kept locked ----------------------------------------------------

my $holder = $node->background_psql($db, on_error_stop => 1, extra_params => [ '-U', $login ]);
$holder->query_safe('BEGIN');
$holder->query_safe('LOCK TABLE public.tenant_mgr_ledger');
my $v = next_migration();

like(verify_rows(),
	qr/^victim\|locked\|the ledger could not be read: [^\n]*lock timeout[^\n]*$/,
	'verify() finishes and reports the locked tenant, only it (7)');
my ($rc, $out, $err) = migrate_one('victim');
isnt($rc, 0, 'a single tenant_migrate fails (7)');
like($err, qr/ERROR:  55P03: /, 'with 55P03 (7)');
like(fleet(), qr/^bystander:$v:applied:-,victim:-:(failed:55P03|skipped:[^,]*)$/,
	'a fleet run migrates the other tenant and fails or skips the locked one (7)');
nobody_escalated('while the ledger is locked (7)');

$holder->query_safe('COMMIT');
$holder->quit;
is(fleet(), "victim:$v:applied:-", 'once the lock is gone, the tenant catches up (7)');
is(verify_rows(), '', 'verify() is empty (7)');

# --- 8. the ledger locked between a migration's ledger read and its write -----------

# An application transaction of the tenant reads accounts while a migration
# alters it: the migration waits for it (after its ledger read, which
# committed on its own).  Meanwhile the tenant locks its ledger, then lets
# the migration go, which now needs the ledger for its row.
my $reader = $node->background_psql($db, on_error_stop => 1, extra_params => [ '-U', $login ]);
$reader->query_safe('BEGIN');
$reader->query_safe('SELECT count(*) FROM public.accounts');
$v = next_migration("ALTER TABLE accounts ADD COLUMN note_$v text");
my ($accounts, $ledger) = split /\|/,
  attacker(q{SELECT 'public.accounts'::regclass::oid, 'public.tenant_mgr_ledger'::regclass::oid});
my $dboid = control("SELECT oid FROM pg_database WHERE datname = '$db'");
my $executor_waits_for = sub {
	my ($rel) = @_;
	return qq{SELECT EXISTS (SELECT FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
		WHERE a.backend_type = 'tenant_mgr executor' AND a.datname = '$db'
		  AND NOT l.granted AND l.database = $dboid AND l.relation = $rel)};
};

my $runner = $node->background_psql('postgres', on_error_stop => 0);
my $runner_pid = $runner->query_safe('SELECT pg_backend_pid()');
$runner->query_until(qr/started/, q{\echo started
SELECT 'fleet:' || string_agg(tenant || ':' || coalesce(version::text, '-') || ':' || status
       || ':' || coalesce(sqlstate, '-'), ',' ORDER BY tenant) FROM tenant_mgr.tenant_migrate();
\echo finished
});
ok($node->poll_query_until('postgres', $executor_waits_for->($accounts)),
	'the migration is held up by the application\'s transaction (8)');
my $locker = $node->background_psql($db, on_error_stop => 1, extra_params => [ '-U', $login ]);
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE public.tenant_mgr_ledger');
$reader->query_safe('COMMIT');
$reader->quit;
ok( $node->poll_query_until('postgres',
		$executor_waits_for->($ledger)
		  . qq{ OR (SELECT state = 'idle' FROM pg_stat_activity WHERE pid = $runner_pid)}),
	'then it goes on to write its ledger row (8)');

# The fleet run should come back after the ledger's lock timeout (1 s) and
# the run's retries (tenant_mgr.lock_retries) with this tenant skipped.  Wait until it has, or until the executor has waited
# fifteen times that long.
$node->poll_query_until('postgres',
	qq{SELECT (SELECT state FROM pg_stat_activity WHERE pid = $runner_pid) = 'idle'
	       OR EXISTS (SELECT FROM pg_locks WHERE database = $dboid AND relation = $ledger
	                     AND NOT granted AND now() - waitstart > interval '15 s')});
my $returned = control("SELECT state FROM pg_stat_activity WHERE pid = $runner_pid") eq 'idle';
ok($returned, 'a fleet run does not wait for a ledger its tenant keeps locked (8)');
$locker->query_safe('COMMIT');
$locker->quit;
pump_until($runner->{run}, $runner->{timeout}, \$runner->{stdout}, qr/finished/);
like($runner->{stdout}, qr/^fleet:bystander:$v:applied:-,victim:-:skipped:55P03$/m,
	'the fleet run migrates the other tenant, and skips the tenant holding its ledger (8)');
$runner->quit;
nobody_escalated('after the ledger was locked during a migration (8)');
fleet();
is(attacker($ledger_versions), join(',', 1 .. $v), 'the tenant catches up (8)');
is(verify_rows(), '', 'verify() is empty (8)');
is(attacker($data), $victim_data, 'the tenant\'s data is unchanged at the end');

# --- 9. drift: a ledger of the right shape that disagrees with the registry ----------

# A superuser edits a checksum in the tenant's database; the executor counts
# the rows that differ.
sub tenant_db { return $node->safe_psql($db, shift); }
my $checksum1 = control('SELECT checksum FROM tenant_mgr.migration WHERE version = 1');
tenant_db(q{UPDATE public.tenant_mgr_ledger SET checksum = 'edited' WHERE version = 1});
is(verify_rows(),
	'victim|checksum_mismatch|1 migration was applied with another checksum than the registered one',
	'verify() reports a checksum that differs from the registered one (9)');
tenant_db(qq{UPDATE public.tenant_mgr_ledger SET checksum = '$checksum1' WHERE version = 1});

# a row for a version above the latest registered one: ahead of the registry
my $ahead = $v + 5;
tenant_db(qq{INSERT INTO public.tenant_mgr_ledger (version, name, checksum)
	VALUES ($ahead, 'from_a_newer_release', 'x')});
is( verify_rows(),
	join("\n",
		"victim|ledger_ahead|the ledger's latest migration is $ahead, above the latest registered version $v",
		'victim|unknown_migration|the ledger records 1 migration that is not registered',
		"victim|version_mismatch|the catalog says version $v, the ledger says $ahead"),
	'verify() reports a ledger ahead of the registry (9)');
tenant_db(qq{DELETE FROM public.tenant_mgr_ledger WHERE version = $ahead});
is(verify_rows(), '', 'verify() is empty once the ledger agrees again (9)');

$node->stop;
done_testing();
