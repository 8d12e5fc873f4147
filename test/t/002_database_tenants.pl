# Database tenants through background workers: crashes, kills and aborts at
# every point of create, migrate and drop end with the catalog, pg_database
# and the ledgers in agreement (verify() returns nothing), no orphan, and no
# migration applied twice or half.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $fixtures = abs_path(dirname(__FILE__) . '/../fixtures');

my $node = PostgreSQL::Test::Cluster->new('database_tenants');
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

# what must hold whenever nothing is in flight
sub consistent
{
	my ($what) = @_;
	$node->poll_query_until('postgres',
		'SELECT count(*) = 0 FROM tenant_mgr.intent')
	  or diag('intents left: ' . run_sql('SELECT * FROM tenant_mgr.intent'));
	is(run_sql('SELECT count(*) FROM tenant_mgr.verify()'), '0',
		"verify() is empty $what")
	  or diag(run_sql('SELECT * FROM tenant_mgr.verify()'));
}

sub ledger
{
	my ($tenant) = @_;
	return $node->safe_psql("tenant_$tenant",
		'SELECT string_agg(version::text, \',\' ORDER BY version) FROM tenant_mgr_ledger');
}

# restart after a crash and wait until the launcher is back
sub wait_for_launcher
{
	$node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'tenant_mgr launcher'})
	  or die 'launcher did not come back';
}

run_sql('CREATE EXTENSION tenant_mgr');
is(run_sql("SELECT tenant_mgr.migrations_load('$fixtures')"), '11', 'fixtures registered');
wait_for_launcher();

# --- create, migrate, drop -------------------------------------------------

is(run_sql("SELECT state || ':' || version FROM tenant_mgr.tenant_create('alpha', 'database')"),
	'ready:11', 'interactive create returns the finished tenant');
is(ledger('alpha'), '1,2,3,4,5,6,7,8,9,10,11', 'ledger inside the new database');
is($node->safe_psql('tenant_alpha', q{SELECT count(*) FROM settings}), '2',
	'migrations ran inside the database');
consistent('after a create');

# --- a caller that rolls back after an interactive create returned ----------

my $bg = $node->background_psql('postgres', on_error_stop => 1);
$bg->query_safe('BEGIN');
$bg->query_safe(q{SELECT tenant_mgr.tenant_create('rolledback', 'database')});
is(run_sql(q{SELECT count(*) FROM pg_database WHERE datname = 'tenant_rolledback'}), '1',
	'the database exists while the caller has not committed');
$bg->query_safe('ROLLBACK');
$bg->quit;
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_database WHERE datname = 'tenant_rolledback'}),
	'the orphan database of a rolled-back create is removed');
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_roles WHERE rolname = 'tenant_rolledback'}),
	'and its owner role');
consistent('after a rolled-back create');

# --- a queued create in a transaction that rolls back -------------------------

run_sql(q{BEGIN; SELECT tenant_mgr.tenant_create('never', 'database', wait => false); ROLLBACK;});
run_sql(q{SELECT tenant_mgr.tenant_create('later', 'database', wait => false)});
is(run_sql(q{SELECT tenant_mgr.tenant_wait('later', '60 s')}), 't', 'a queued create finishes');
is(run_sql(q{SELECT count(*) FROM pg_database WHERE datname = 'tenant_never'}), '0',
	'a queued create rolled back never happens');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.job WHERE tenant = 'never'}), '0',
	'and left no job');

# --- a migration that fails in one database tenant -----------------------------

run_sql(q{SELECT tenant_mgr.tenant_create('beta', 'database')});
run_sql(q{SELECT tenant_mgr.migration_add(12, 'picky',
	$$DO $b$ BEGIN IF current_database() = 'tenant_beta' THEN
	  RAISE EXCEPTION USING ERRCODE = '22012', MESSAGE = 'beta refuses'; END IF; END $b$;
	  CREATE TABLE picky (id int)$$)});
is( run_sql(q{SELECT string_agg(tenant || ':' || status || ':' || coalesce(sqlstate, ''), ',' ORDER BY tenant)
	FROM tenant_mgr.tenant_migrate()}),
	'alpha:applied:,beta:failed:22012,later:applied:',
	'one tenant fails with its SQLSTATE, the others go on');
is(ledger('beta'), '1,2,3,4,5,6,7,8,9,10,11', 'the failing tenant\'s ledger is untouched');
is(run_sql(q{SELECT version || ':' || last_error FROM tenant_mgr.tenant WHERE name = 'beta'}),
	'11:beta refuses', 'the failure is recorded on the tenant');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.history WHERE tenant = 'beta' AND status = 'failed' AND sqlstate = '22012'}),
	'1', 'and in the history');
consistent('after a failed migration');

# --- kill -9 of an executor in the middle of a migration -----------------------

# slow only where a test needs time to strike; elsewhere instant
run_sql(q{SELECT tenant_mgr.migration_add(13, 'slow',
	$$DO $b$ BEGIN IF current_database() IN ('tenant_alpha', 'tenant_later') THEN
	  PERFORM pg_sleep(3); END IF; END $b$; CREATE TABLE slow (id int)$$)});
$bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/start/, q{\echo start
SELECT * FROM tenant_mgr.tenant_migrate('alpha');
});
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity
	   WHERE backend_type = 'tenant_mgr executor' AND datname = 'tenant_alpha'})
  or die 'no executor appeared';
my $pid = run_sql(q{SELECT pid FROM pg_stat_activity
	WHERE backend_type = 'tenant_mgr executor' AND datname = 'tenant_alpha'});
kill 'KILL', $pid;
$bg->{run}->kill_kill;
$node->poll_query_until('postgres', 'SELECT 1', '1') or die 'server did not come back';
wait_for_launcher();
is(ledger('alpha'), '1,2,3,4,5,6,7,8,9,10,11,12', 'the killed migration left no trace in the ledger');
is($node->safe_psql('tenant_alpha', q{SELECT count(*) FROM pg_class WHERE relname = 'slow'}),
	'0', 'nor half of its DDL');
$node->poll_query_until('postgres',
	q{SELECT version = 12 FROM tenant_mgr.tenant WHERE name = 'alpha'})
  or diag('catalog version not corrected');
consistent('after kill -9 of an executor');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenant_migrate('alpha')}), '1',
	'the migration runs once afterwards');
is(ledger('alpha'), '1,2,3,4,5,6,7,8,9,10,11,12,13', 'and is recorded once');

# --- immediate shutdown during a migration ---------------------------------------

$bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/start/, q{\echo start
SELECT * FROM tenant_mgr.tenant_migrate('later');
});
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity
	   WHERE backend_type = 'tenant_mgr executor' AND datname = 'tenant_later'})
  or die 'no executor appeared';
$node->stop('immediate');
$bg->{run}->kill_kill;
$node->start;
wait_for_launcher();
$node->poll_query_until('postgres',
	q{SELECT version = 12 FROM tenant_mgr.tenant WHERE name = 'later'});
is(ledger('later'), '1,2,3,4,5,6,7,8,9,10,11,12', 'a crash during a migration keeps the ledger whole');
consistent('after a crash during a migration');
run_sql(q{SELECT count(*) FROM tenant_mgr.tenant_migrate()});
is(run_sql(q{SELECT string_agg(name || ':' || version, ',' ORDER BY name) FROM tenant_mgr.tenants}),
	'alpha:13,beta:11,later:13', 'the fleet catches up after the crash');

# --- immediate shutdown during CREATE DATABASE ----------------------------------

# a large template makes CREATE DATABASE slow enough to be caught in the act
$node->safe_psql('template1',
	q{CREATE TABLE ballast AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 150000) g});

# interactive: the caller's transaction never commits, so everything goes
$bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/start/, q{\echo start
BEGIN;
SELECT tenant_mgr.tenant_create('crashcreate', 'database');
});
$node->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM tenant_mgr.intent WHERE tenant = 'crashcreate'});
$node->stop('immediate');
$bg->{run}->kill_kill;
$node->start;
wait_for_launcher();
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_database WHERE datname = 'tenant_crashcreate'}),
	'no database left by a crash during an interactive create');
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_roles WHERE rolname = 'tenant_crashcreate'}),
	'no role left either');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenant WHERE name = 'crashcreate'}), '0',
	'no catalog row');
consistent('after a crash during an interactive create');

# queued: the job was committed, so the launcher finishes it after restart
run_sql(q{SELECT tenant_mgr.tenant_create('crashqueued', 'database', wait => false)});
$node->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM tenant_mgr.intent WHERE tenant = 'crashqueued'});
$node->stop('immediate');
$node->start;
wait_for_launcher();
is(run_sql(q{SELECT tenant_mgr.tenant_wait('crashqueued', '120 s')}), 't',
	'a queued create interrupted by a crash is finished after restart');
is(run_sql(q{SELECT state || ':' || version FROM tenant_mgr.tenant WHERE name = 'crashqueued'}),
	'ready:13', 'and the tenant is ready and migrated');
is(ledger('crashqueued'), '1,2,3,4,5,6,7,8,9,10,11,12,13', 'its ledger is complete');
consistent('after a crash during a queued create');
$node->safe_psql('template1', 'DROP TABLE ballast');

# --- immediate shutdown around DROP DATABASE -----------------------------------

run_sql(q{SELECT tenant_mgr.tenant_drop('crashqueued')});
$node->stop('immediate');
$node->start;
wait_for_launcher();
is(run_sql(q{SELECT tenant_mgr.tenant_wait('crashqueued', '60 s')}), 't',
	'a drop interrupted by a crash is finished after restart');
is(run_sql(q{SELECT count(*) FROM pg_database WHERE datname LIKE '%crashqueued%' OR datname LIKE 'tenant_mgr_drop_%'}),
	'0', 'the database is gone');
is(run_sql(q{SELECT count(*) FROM pg_roles WHERE rolname = 'tenant_crashqueued'}), '0',
	'and its role');
consistent('after a crash during a drop');

# --- the launcher, terminated, comes back exactly once ------------------------

my $launcher = run_sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'tenant_mgr launcher'});
run_sql("SELECT pg_terminate_backend($launcher)");
ok( $node->poll_query_until('postgres',
		qq{SELECT count(*) = 1 FROM pg_stat_activity
		    WHERE backend_type = 'tenant_mgr launcher' AND pid <> $launcher}),
	'a terminated launcher is replaced');
run_sql(q{SELECT tenant_mgr.tenant_create('afterterm', 'database', wait => false)});
is(run_sql(q{SELECT tenant_mgr.tenant_wait('afterterm', '60 s')}), 't', 'and work resumes');
is(run_sql(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tenant_mgr launcher'}),
	'1', 'with exactly one launcher');

# --- drop while a migration runs there; drop with a foreign session ----------

run_sql(q{SELECT tenant_mgr.migration_add(14, 'slow2',
	$$DO $b$ BEGIN IF current_database() = 'tenant_afterterm' THEN
	  PERFORM pg_sleep(3); END IF; END $b$ $$)});
$bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/start/, q{\echo start
SELECT * FROM tenant_mgr.tenant_migrate('afterterm');
});
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity
	   WHERE backend_type = 'tenant_mgr executor' AND datname = 'tenant_afterterm'});
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{SELECT tenant_mgr.tenant_drop('afterterm')});
like($stderr, qr/tenant "afterterm" is busy/, 'a drop during a migration fails fast');
$bg->quit;
is(run_sql(q{SELECT version FROM tenant_mgr.tenant WHERE name = 'afterterm'}), '14',
	'the migration finished undisturbed');

my $foreign = $node->background_psql('tenant_afterterm', on_error_stop => 1);
$foreign->query_safe('SELECT 1');
($ret, $stdout, $stderr) = $node->psql('postgres', q{SELECT tenant_mgr.tenant_drop('afterterm')});
like($stderr, qr/is being accessed by other users/, 'a foreign session blocks the drop');
like($stderr, qr/force => true/, 'with a hint');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenant WHERE name = 'afterterm'}), '1',
	'and nothing changed');
run_sql(q{SELECT tenant_mgr.tenant_drop('afterterm', force => true)});
is(run_sql(q{SELECT tenant_mgr.tenant_wait('afterterm', '60 s')}), 't', 'force drops it anyway');
is(run_sql(q{SELECT count(*) FROM pg_database WHERE datname = 'tenant_afterterm'}), '0',
	'the database is gone');
$foreign->{run}->kill_kill;
consistent('after the drops');

# --- few worker slots: queued work waits for one instead of failing ------------

$node->append_conf('postgresql.conf', 'max_worker_processes = 4');
$node->restart;
wait_for_launcher();
# two slots are left for executors; a fleet run's leader and the executor
# migrating one database tenant hold them a while
run_sql(q{SELECT tenant_mgr.migration_add(15, 'slow3',
	$$DO $b$ BEGIN IF current_database() = 'tenant_alpha' THEN
	  PERFORM pg_sleep(5); END IF; END $b$ $$)});
$bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/start/, q{\echo start
SELECT count(*) FROM tenant_mgr.tenant_migrate();
});
run_sql(q{SELECT tenant_mgr.tenant_create('q' || g, 'database', wait => false) FROM generate_series(1, 20) g});
foreach my $i (1 .. 20)
{
	$node->safe_psql('postgres', "SELECT tenant_mgr.tenant_wait('q$i', '300 s')");
}
$bg->quit;
is(run_sql(q{SELECT count(*) FROM tenant_mgr.tenant WHERE name ~ '^q[0-9]+$' AND state = 'ready'}),
	'20', 'all 20 queued creates finish with one worker slot');
is(run_sql(q{SELECT count(*) FROM tenant_mgr.job WHERE tenant ~ '^q[0-9]+$' AND state = 'failed'}),
	'0', 'none failed for lack of slots');
like(slurp_file($node->logfile), qr/could not start a tenant_mgr executor for job .*\n.*All background worker slots are in use; the job stays queued/,
	'the launcher said why it waited');
consistent('after the queued creates');

$node->stop;
done_testing();
