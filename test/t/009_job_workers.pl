# Queued creates and drops run on job workers, several at once: a create
# stuck in one worker does not hold up the others; a job worker terminated
# in the middle of a job (its transaction rolled back) has the job queued
# and run again; a launcher terminated while a worker runs a job does not
# run that job a second time; queued database drops run on workers too; and
# the workers exit once the queue is empty.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('job_workers');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'tenant_mgr'
tenant_mgr.database = 'postgres'
tenant_mgr.poll_interval = 1
tenant_mgr.max_workers = 4
max_worker_processes = 16
});
$node->start;

sub run_sql { return $node->safe_psql('postgres', shift); }

sub wait_for
{
	my ($query, $what) = @_;
	$node->poll_query_until('postgres', $query) or die "timed out waiting for $what";
}

run_sql('CREATE EXTENSION tenant_mgr');
run_sql(q{SELECT tenant_mgr.migration_add(1, 'accounts',
	$$CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL)$$)});
# tenant "slow" waits in its second migration while a session holds 4242
run_sql(q{SELECT tenant_mgr.migration_add(2, 'gate',
	$$DO $b$ BEGIN
	    IF current_schema() IN ('tenant_slow', 'tenant_slow2') THEN PERFORM pg_advisory_xact_lock_shared(4242); END IF;
	  END $b$;
	  ALTER TABLE accounts ADD COLUMN plan text$$)});

my $gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(4242)');

# --- one stuck create does not hold up the others -----------------------------

run_sql(q{SELECT tenant_mgr.tenant_create('slow', wait => false)});
run_sql(q{SELECT tenant_mgr.tenant_create('p' || g, wait => false) FROM generate_series(1, 12) g});
wait_for(q{SELECT count(*) = 12 FROM tenant_mgr.tenants WHERE name ~ '^p[0-9]+$' AND state = 'ready'},
	'the other creates');
is(run_sql(q{SELECT state || ':' || attempts FROM tenant_mgr.job WHERE tenant = 'slow'}),
	'running:1', 'the stuck create still runs while the twelve others are done');
is(run_sql(q{SELECT count(*) FROM pg_namespace WHERE nspname ~ '^tenant_p[0-9]+$'}),
	'12', 'their twelve schemas exist');
my $slow_pid = run_sql(q{SELECT pid FROM pg_stat_activity
	WHERE backend_type = 'tenant_mgr job worker' AND query LIKE '%tenant "slow"%'});
like($slow_pid, qr/^\d+$/, 'a job worker shows the job it runs in pg_stat_activity');

# --- a terminated job worker: its job goes back to the queue -----------------------

run_sql("SELECT pg_terminate_backend($slow_pid)");
wait_for(q{SELECT state = 'running' AND attempts = 2 FROM tenant_mgr.job WHERE tenant = 'slow'},
	'the interrupted job to run again');
is(run_sql(q{SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_slow'}),
	'0', 'nothing of the interrupted attempt was left');
like(slurp_file($node->logfile), qr/tenant_mgr job \d+ was interrupted and goes back to the queue/,
	'the log says the job was requeued');

# --- a terminated launcher does not take a job its worker still runs ----------------

my $launcher = run_sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'tenant_mgr launcher'});
run_sql("SELECT pg_terminate_backend($launcher)");
wait_for(qq{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'tenant_mgr launcher' AND pid <> $launcher},
	'a new launcher');
# a few iterations of the new launcher (poll_interval is 1 s)
run_sql('SELECT pg_sleep(3)');
is(run_sql(q{SELECT state || ':' || attempts FROM tenant_mgr.job WHERE tenant = 'slow'}),
	'running:2', 'the new launcher left the running job to its worker');
is(run_sql(q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'tenant_mgr job worker' AND query LIKE '%tenant "slow"%'}),
	'1', 'one worker runs it');

$gate->query_safe('SELECT pg_advisory_unlock(4242)');
$gate->quit;
is(run_sql(q{SELECT tenant_mgr.tenant_wait('slow', '60 s')}), 't', 'the stuck create finishes');
is(run_sql(q{SELECT state || ':' || version FROM tenant_mgr.tenants WHERE name = 'slow'}),
	'ready:2', 'at the latest version');
is(run_sql(q{SELECT string_agg(version::text, ',' ORDER BY version) FROM tenant_slow.tenant_mgr_ledger}),
	'1,2', 'each migration recorded once');
is(run_sql(q{SELECT count(*) FROM pg_attribute
	WHERE attrelid = 'tenant_slow.accounts'::regclass AND attname = 'plan'}),
	'1', 'and applied');

# --- queued database creates and drops run on workers too ----------------------

run_sql(q{SELECT tenant_mgr.tenant_create('d' || g, 'database', wait => false) FROM generate_series(1, 4) g});
foreach my $i (1 .. 4)
{
	is(run_sql("SELECT tenant_mgr.tenant_wait('d$i', '120 s')"), 't', "database tenant d$i is ready");
}
run_sql(q{SELECT tenant_mgr.tenant_drop('d' || g) FROM generate_series(1, 4) g});
wait_for(q{SELECT count(*) = 0 FROM pg_database WHERE datname ~ '^tenant_mgr_drop_|^tenant_d[0-9]$'},
	'the queued drops');
is(run_sql(q{SELECT count(*) FROM pg_roles WHERE rolname ~ '^tenant_d[0-9]$'}),
	'0', 'the owner roles of the dropped database tenants are gone');

# --- a queued drop outlives its requester ------------------------------------------

# one job worker, kept busy by a gated create, so that the drop stays queued
run_sql(q{ALTER SYSTEM SET tenant_mgr.max_workers = 1});
run_sql(q{SELECT pg_reload_conf()});
run_sql(q{CREATE ROLE regress_leaver LOGIN;
	GRANT USAGE ON SCHEMA tenant_mgr TO regress_leaver;
	GRANT EXECUTE ON FUNCTION tenant_mgr.tenant_create(text, text, name, jsonb, boolean),
	  tenant_mgr.tenant_drop(text, boolean, boolean) TO regress_leaver});
$node->safe_psql('postgres', q{SELECT count(*) FROM tenant_mgr.tenant_create('gone', 'database')},
	extra_params => [ '-U', 'regress_leaver' ]);
$gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(4242)');
run_sql(q{SELECT count(*) FROM tenant_mgr.tenant_create('slow2', wait => false)});
wait_for(q{SELECT count(*) = 1 FROM tenant_mgr.job WHERE tenant = 'slow2' AND state = 'running'},
	'the gated create to hold the worker');
$node->safe_psql('postgres', q{SELECT tenant_mgr.tenant_drop('gone')},
	extra_params => [ '-U', 'regress_leaver' ]);
is(run_sql(q{SELECT state FROM tenant_mgr.job WHERE tenant = 'gone' AND action = 'drop'}), 'queued',
	'the drop is queued behind the busy worker');
run_sql(q{DROP OWNED BY regress_leaver; DROP ROLE regress_leaver});
$gate->query_safe('SELECT pg_advisory_unlock(4242)');
$gate->quit;
is(run_sql(q{SELECT tenant_mgr.tenant_wait('gone', '120 s')}), 't',
	'the drop job of a requester dropped meanwhile finishes');
is(run_sql(q{SELECT count(*) FROM pg_database WHERE datname = 'tenant_gone' OR datname LIKE 'tenant_mgr_drop_%'})
	  . run_sql(q{SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tenant_gone%'}),
	'00', 'and leaves no database and no role');
run_sql(q{ALTER SYSTEM RESET tenant_mgr.max_workers});
run_sql(q{SELECT pg_reload_conf()});
is(run_sql(q{SELECT tenant_mgr.tenant_wait('slow2', '60 s')}), 't', 'the gated create finishes too');

# --- DROP EXTENSION waits for work in flight -----------------------------------

run_sql(q{SELECT tenant_mgr.migration_add(9000, 'gate for held', $m$
	DO $d$ BEGIN
	    IF current_schema() = 'tenant_held' THEN PERFORM pg_advisory_xact_lock_shared(4242); END IF;
	END $d$ $m$)});
$gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(4242)');
run_sql(q{SELECT count(*) FROM tenant_mgr.tenant_create('held', wait => false)});
wait_for(q{SELECT count(*) = 1 FROM tenant_mgr.job WHERE tenant = 'held' AND state = 'running'},
	'the gated create to run');
my ($rc, $out, $err) = $node->psql('postgres', 'DROP EXTENSION tenant_mgr');
like($err, qr/cannot drop extension tenant_mgr while it has work in progress/,
	'DROP EXTENSION is refused while a job runs');
like($err, qr/In progress: 1 queued or running job\./,
	'and says what is in flight');
is(run_sql(q{SELECT count(*) FROM pg_extension WHERE extname = 'tenant_mgr'}), '1',
	'the extension is still there');
$gate->query_safe('SELECT pg_advisory_unlock(4242)');
$gate->quit;
is(run_sql(q{SELECT tenant_mgr.tenant_wait('held', '60 s')}), 't', 'the gated create finishes');
run_sql(q{SELECT tenant_mgr.tenant_drop('held')});
is(run_sql(q{SELECT tenant_mgr.migration_remove(9000)}), 't', 'the gate migration goes');

# --- in the end ----------------------------------------------------------------

is(run_sql(q{SELECT string_agg(DISTINCT state, ',') FROM tenant_mgr.job}), 'done',
	'every job is done');
is(run_sql('SELECT count(*) FROM tenant_mgr.verify()'), '0', 'verify() finds nothing');
wait_for(q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'tenant_mgr job worker'},
	'the job workers to exit');
pass('job workers exit once the queue is empty');

# --- tenant_drop right after a failed queued database create ----------------------

# what the failed creation left is the launcher's to remove: a drop racing it
# waits for it and finds the database gone, or sets it aside first
run_sql(q{SELECT tenant_mgr.migration_add(9001, 'fails in bad tenants', $m$
	DO $d$ BEGIN
	    IF current_database() LIKE 'tenant_bad%' THEN RAISE EXCEPTION 'bad tenant'; END IF;
	END $d$ $m$)});
foreach my $i (1 .. 5)
{
	run_sql("SELECT count(*) FROM tenant_mgr.tenant_create('bad$i', 'database', wait => false)");
	is(run_sql("SELECT tenant_mgr.tenant_wait('bad$i', '120 s')"), 'f', "bad$i failed");
	is(run_sql("SELECT tenant_mgr.tenant_drop('bad$i')"), 't', "and is dropped at once");
}
wait_for(q{SELECT count(*) = 0 FROM pg_database WHERE datname ~ '^tenant_mgr_drop_|^tenant_bad'},
	'the failed creations\' databases to go');
wait_for(q{SELECT count(*) = 0 FROM tenant_mgr.intent}, 'the intents to go');
is(run_sql(q{SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tenant_bad%'})
	  . run_sql(q{SELECT count(*) FROM tenant_mgr.tenant WHERE name LIKE 'bad%'}),
	'00', 'no role and no catalog row of them is left');
is(run_sql(q{SELECT tenant_mgr.migration_remove(9001)}), 't', 'the failing migration goes');
is(run_sql('SELECT count(*) FROM tenant_mgr.verify()'), '0', 'verify() still finds nothing');

$node->stop;
done_testing();
