# Load: 8 concurrent clients create (inline and queued), migrate (one
# tenant, and small fleet runs, up and down), rename and drop schema and
# database tenants among 500 names for a few minutes, while pgbench reads
# and writes one tenant's table through its login role.  Counts vary from
# run to run; what is asserted does not: every error a client gets is one
# the README documents for that function, pgbench has no failed
# transaction, the job workers and each run's executors never exceed
# tenant_mgr.max_workers, and once the queue has drained verify() is
# empty, the catalog matches pg_namespace, pg_database and pg_roles (no
# orphans), and every tenant's ledger and schema are at its catalog version.
#
# TM_LOAD_SECONDS sets the length of the load (default 120 s, as in CI);
# TM_LOAD_SEED replays a run's choice of operations.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time usleep);

my $seconds = $ENV{TM_LOAD_SECONDS} || 120;
my $seed = $ENV{TM_LOAD_SEED} || int(time * 1000) % 1000000;
my $n_clients = 8;
my $n_names = 500;
my $max_workers = 4;
srand($seed);
diag("load: $seconds s, $n_clients clients, $n_names names, seed $seed (TM_LOAD_SEED)");

my $node = PostgreSQL::Test::Cluster->new('load');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'tenant_mgr'
tenant_mgr.database = 'postgres'
tenant_mgr.poll_interval = 1
tenant_mgr.max_workers = $max_workers
max_worker_processes = 48
max_connections = 100
});
$node->start;

sub run_sql { return $node->safe_psql('postgres', shift); }

run_sql('CREATE EXTENSION tenant_mgr');
run_sql(q{SELECT tenant_mgr.migration_add(1, 'accounts',
	'CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL DEFAULT 0)')});
run_sql(q{SELECT tenant_mgr.migration_add(2, 'notes',
	'ALTER TABLE accounts ADD COLUMN note text', 'ALTER TABLE accounts DROP COLUMN note')});
run_sql(q{SELECT tenant_mgr.migration_add(3, 'balance_index',
	'CREATE INDEX accounts_balance ON accounts (balance)', 'DROP INDEX accounts_balance')});

# --- the tenant pgbench works on, through its login role --------------------

run_sql(q{SELECT tenant_mgr.tenant_create('bench')});
my $login = run_sql(q{SELECT tenant_mgr.tenant_login_role('bench')});
run_sql(q{INSERT INTO tenant_bench.accounts (id) SELECT g FROM generate_series(1, 1000) g});
is($node->safe_psql('postgres', 'SELECT count(*) FROM accounts', extra_params => [ '-U', $login ]),
	'1000', "the login role $login reaches the tenant's table by its search_path");

my $script = $node->basedir . '/bench.sql';
append_to_file(
	$script, q{\set id random(1, 1000)
BEGIN;
UPDATE accounts SET balance = balance + 1 WHERE id = :id;
SELECT balance FROM accounts WHERE id = :id;
END;
});

# --- the clients' operations -------------------------------------------------

# errors the README's SQL reference documents for each function (argument
# errors left out: the clients pass none)
my %documented = (
	create => [qw(42710 42P06 42P04 55P03 55000 55006 53000)],
	drop => [qw(42704 55P03 2BP01 42501 55006 55000)],
	rename => [qw(42704 55000 55P03 42710 42P06 42P04 3F000 3D000 55006 42501)],
	migrate => [qw(42704 55000 55P03 42501 3D000 53000 57014)],);

# kind => [weight, function, SQL maker]
sub rname { return 't' . (1 + int(rand($n_names))); }
my @ops = (
	[ 'create schema', 25, 'create', sub { sprintf q{SELECT tenant_mgr.tenant_create('%s')}, rname() } ],
	[ 'create schema queued', 10, 'create',
		sub { sprintf q{SELECT tenant_mgr.tenant_create('%s', wait => false)}, rname() } ],
	[ 'create database', 2, 'create',
		sub { sprintf q{SELECT tenant_mgr.tenant_create('%s', 'database')}, rname() } ],
	[ 'create database queued', 2, 'create',
		sub { sprintf q{SELECT tenant_mgr.tenant_create('%s', 'database', wait => false)}, rname() } ],
	[ 'drop', 20, 'drop', sub { sprintf q{SELECT tenant_mgr.tenant_drop('%s')}, rname() } ],
	[ 'rename', 10, 'rename', sub { sprintf q{SELECT tenant_mgr.tenant_rename('%s', '%s')}, rname(), rname() } ],
	[ 'migrate one', 15, 'migrate',
		sub { sprintf q{SELECT count(*) FROM tenant_mgr.tenant_migrate('%s', target => %s)}, rname(),
			rand() < 0.5 ? 2 : 'NULL' } ],
	[ 'migrate fleet', 5, 'migrate',
		sub {
			sprintf q{SELECT count(*) FROM tenant_mgr.tenant_migrate(names => ARRAY(
				SELECT name FROM tenant_mgr.tenant WHERE name ~ '^t[0-9]+$' AND state = 'ready'
				ORDER BY random() LIMIT %d), target => %s)}, 4 + int(rand(8)), rand() < 0.5 ? 2 : 'NULL';
		} ],
	[ 'migrate all', 1, 'migrate',
		sub { sprintf q{SELECT count(*) FROM tenant_mgr.tenant_migrate(pattern => 't%%', target => %s)},
			rand() < 0.5 ? 2 : 'NULL' } ],
	[ 'migrate bench', 1, 'migrate',
		sub { sprintf q{SELECT count(*) FROM tenant_mgr.tenant_migrate('bench', target => %s)},
			rand() < 0.5 ? 2 : 'NULL' } ],);
my $total_weight = 0;
$total_weight += $_->[1] for @ops;
my %op_by_kind = map { $_->[0] => $_ } @ops;

sub pick_op
{
	my $r = rand($total_weight);
	for my $op (@ops)
	{
		return $op if ($r -= $op->[1]) < 0;
	}
	return $ops[-1];
}

my (%ok, %failed, @unexpected);

# --- clients, pgbench and the sampler, all started together --------------------

my @psql = ('psql', '-X', '-q', '-h', $node->host, '-p', $node->port, '-d', 'postgres');
my @clients;
for my $i (1 .. $n_clients)
{
	my $c = { id => $i, in => "\\o /dev/null\n\\set VERBOSITY terse\n", out => '', err => '', seq => 0 };
	$c->{h} = IPC::Run::start(\@psql, '<', \$c->{in}, '>', \$c->{out}, '2>', \$c->{err});
	push @clients, $c;
}
my $sampler = { in => '', out => '', err => '' };
$sampler->{h} = IPC::Run::start([ @psql, '-At' ], '<', \$sampler->{in}, '>', \$sampler->{out}, '2>', \$sampler->{err});
my ($bench_out, $bench_err) = ('', '');
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '2', '-j', '1', '-T', $seconds, '-f', $script,
	  '-h', $node->host, '-p', $node->port, '-U', $login, 'postgres' ],
	'>', \$bench_out, '2>', \$bench_err);

# each client's first operation is fixed, so that both kinds of database
# creation happen in every run
my @first = ('create database', 'create database queued');

sub issue
{
	my ($c) = @_;
	my $op = @first ? $op_by_kind{ shift @first } : pick_op();
	$c->{op} = $op;
	$c->{sql} = $op->[3]->();
	$c->{seq}++;
	$c->{since} = time;
	$c->{in} .= "$c->{sql};\n\\echo '\@\@' $c->{seq} :ERROR :LAST_ERROR_SQLSTATE\n";
	return;
}

my $sample_query = q{SELECT 'S',
	(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tenant_mgr job worker'),
	(SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM pg_stat_activity
		WHERE backend_type = 'tenant_mgr executor' AND application_name LIKE 'tenant_mgr run %'
		GROUP BY application_name) r),
	(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tenant_mgr executor'),
	NOT EXISTS (SELECT FROM tenant_mgr.job WHERE state IN ('queued', 'running'))
	AND NOT EXISTS (SELECT FROM tenant_mgr.intent)
	AND NOT EXISTS (SELECT FROM tenant_mgr.tenant WHERE state = 'creating')
	AND NOT EXISTS (SELECT FROM pg_database WHERE datname LIKE 'tenant\_mgr\_drop\_%')
	AND NOT EXISTS (SELECT FROM pg_stat_activity
		WHERE backend_type IN ('tenant_mgr job worker', 'tenant_mgr executor'))};
my %peak = (job_workers => 0, run_executors => 0, executors => 0);
my $samples = 0;
my $sampling = 0;
my $next_sample = 0;
my $drained = 0;
my $sample_sent = 0;
my $quiet_since;    # when the clients and pgbench were all done

$_->{h} && issue($_) for @clients;
my $end = time + $seconds;
my $timeout = $PostgreSQL::Test::Utils::timeout_default;
my $drain_deadline;
my $bench_done = 0;
my $bench_rc;

while (1)
{
	my $now = time;
	my $running = 0;
	for my $c (@clients)
	{
		next if $c->{done};
		$c->{h}->pump_nb;
		while ($c->{out} =~ s/^([^\n]*)\n//)
		{
			my $line = $1;
			next unless $line =~ /^\@\@ (\d+) (\w+) (\w+)$/ && $1 == $c->{seq};
			my ($kind, $function) = ($c->{op}[0], $c->{op}[2]);
			if ($2 eq 'false')
			{
				$ok{$kind}++;
			}
			else
			{
				$failed{$kind}{$3}++;
				push @unexpected, "$kind: $3 from $c->{sql}: " . ($c->{err} =~ s/\s+$//r)
				  unless grep { $_ eq $3 } @{ $documented{$function} };
			}
			$c->{err} = '';
			if ($now < $end)
			{
				issue($c);
			}
			else
			{
				$c->{in} .= "\\q\n";
				$c->{done} = 1;
				$c->{h}->finish;
			}
		}
		if (!$c->{done})
		{
			$running++;
			die "client $c->{id} waited more than ${timeout}s for: $c->{sql}"
			  if $now - $c->{since} > $timeout;
		}
	}

	if (!$bench_done && !$bench->pumpable)
	{
		$bench->finish;
		$bench_rc = $bench->full_result(0);
		$bench_done = 1;
	}
	$bench->pump_nb unless $bench_done;

	# the sampler: one query at a time, every 200 ms
	$sampler->{h}->pump_nb;
	if ($sampling && $sampler->{out} =~ s/^S\|(\d+)\|(\d+)\|(\d+)\|([tf])\n//m)
	{
		$sampling = 0;
		$samples++;
		$peak{job_workers} = $1 if $1 > $peak{job_workers};
		$peak{run_executors} = $2 if $2 > $peak{run_executors};
		$peak{executors} = $3 if $3 > $peak{executors};
		# only a sample taken after the last client's last operation counts
		$drained = ($4 eq 't') if defined $quiet_since && $sample_sent > $quiet_since;
	}
	if (!$sampling && $now >= $next_sample)
	{
		$sampler->{in} .= "$sample_query;\n";
		$sampling = 1;
		$sample_sent = $now;
		$next_sample = $now + 0.2;
	}

	if (!$running && $bench_done)
	{
		$quiet_since //= $now;
		last if $drained;
		$drain_deadline //= $now + $timeout;
		die 'the queue did not drain in time' if $now > $drain_deadline;
	}
	usleep(20_000);
}
$sampler->{in} .= "\\q\n";
$sampler->{h}->finish;

# --- what happened --------------------------------------------------------------

my @kinds = map { $_->[0] } @ops;
my $summary = sprintf("%-24s %7s  %s\n", 'operation', 'ok', 'errors (SQLSTATE: count)');
for my $kind (@kinds)
{
	my $errs = $failed{$kind} || {};
	$summary .= sprintf("%-24s %7d  %s\n", $kind, $ok{$kind} || 0,
		join(', ', map { "$_: $errs->{$_}" } sort keys %$errs));
}
diag("operations of the $n_clients clients in ${seconds}s:\n$summary");
diag(sprintf('peak during the load: %d job workers, %d executors of one run, %d executors in all (%d samples)',
	$peak{job_workers}, $peak{run_executors}, $peak{executors}, $samples));

is(join("\n", @unexpected), '', 'every error a client got is documented for its function');
for my $kind (@kinds)
{
	# at weight 1, these may not come up in a short run
	next if $kind eq 'migrate all' || $kind eq 'migrate bench';
	cmp_ok($ok{$kind} || 0, '>', 0, "\"$kind\" succeeded at least once");
}
ok($samples >= 10, "the workers were sampled ($samples times)");
cmp_ok($peak{job_workers}, '<=', $max_workers, 'job workers never exceeded tenant_mgr.max_workers');
cmp_ok($peak{run_executors}, '<=', $max_workers + 1,
	'the executors of a fleet run never exceeded tenant_mgr.max_workers besides its leader');

# pgbench: no failed transaction
my ($tx) = $bench_out =~ /number of transactions actually processed: (\d+)/;
my ($tx_failed) = $bench_out =~ /number of failed transactions: (\d+)/;
diag("pgbench on tenant bench: " . join(', ', grep { /processed|failed|latency average|tps/ } split /\n/, $bench_out));
is($bench_rc, 0, 'pgbench exited normally') or diag($bench_err);
cmp_ok($tx // 0, '>', 0, 'pgbench processed transactions');
is($tx_failed // 0, 0, 'pgbench had no failed transaction');

# --- the end state: the queue drained, nothing left, everything agrees ------------

is(run_sql(q{SELECT string_agg(coalesce(tenant, '-') || ' ' || problem || ': ' || detail, E'\n') FROM tenant_mgr.verify()}),
	'', 'verify() is empty');
is(run_sql(q{SELECT string_agg(format('%s %s %s: %s %s', id, action, tenant, sqlstate, message), E'\n')
	FROM tenant_mgr.jobs WHERE state <> 'done'}),
	'', 'every job is done');
is(run_sql(q{SELECT string_agg(name || ' ' || state, ', ') FROM tenant_mgr.tenant WHERE state <> 'ready'}),
	'', 'every tenant is ready');
is(run_sql(q{SELECT string_agg(name, ', ') FROM tenant_mgr.tenant t
	WHERE NOT EXISTS (SELECT FROM pg_namespace n WHERE n.nspname = t.object_name AND n.oid = t.object_oid
	                  AND t.isolation = 'schema')
	  AND NOT EXISTS (SELECT FROM pg_database d WHERE d.datname = t.object_name AND d.oid = t.object_oid
	                  AND t.isolation = 'database')}),
	'', "every tenant's schema or database exists under its recorded name and OID");
is(run_sql(q{SELECT string_agg(name, ', ') FROM tenant_mgr.tenant t
	WHERE NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = t.owner)}),
	'', "every tenant's owner role exists");
is(run_sql(q{SELECT string_agg(nspname, ', ') FROM pg_namespace
	WHERE nspname LIKE 'tenant%' AND nspname <> 'tenant_mgr'
	  AND nspname NOT IN (SELECT object_name FROM tenant_mgr.tenant WHERE isolation = 'schema')}),
	'', 'no schema without a tenant');
is(run_sql(q{SELECT string_agg(datname, ', ') FROM pg_database
	WHERE datname LIKE 'tenant%'
	  AND datname NOT IN (SELECT object_name FROM tenant_mgr.tenant WHERE isolation = 'database')}),
	'', 'no database without a tenant');
is(run_sql(q{SELECT string_agg(rolname, ', ') FROM pg_roles
	WHERE rolname LIKE 'tenant%' AND rolname <> } . "'$login'" . q{
	  AND rolname NOT IN (SELECT owner FROM tenant_mgr.tenant)}),
	'', 'no role without a tenant');

# each schema tenant's ledger holds exactly versions 1..version, and its
# table has the columns and index of that version
is(run_sql(q{SELECT string_agg(format('%s: catalog %s, ledger %s, note %s, index %s', name, version, ledger, note, idx), E'\n')
	FROM (SELECT t.name, t.version,
	        (xpath('/row/v/text()', query_to_xml(format(
	           'SELECT count(*) || '':'' || coalesce(max(version), 0) AS v FROM %I.tenant_mgr_ledger',
	           t.object_name), false, true, '')))[1]::text AS ledger,
	        EXISTS (SELECT FROM information_schema.columns c WHERE c.table_schema = t.object_name
	                AND c.table_name = 'accounts' AND c.column_name = 'note') AS note,
	        EXISTS (SELECT FROM pg_indexes i WHERE i.schemaname = t.object_name
	                AND i.indexname = 'accounts_balance') AS idx
	      FROM tenant_mgr.tenant t WHERE t.isolation = 'schema') s
	WHERE ledger <> version || ':' || version OR note <> (version >= 2) OR idx <> (version >= 3)}),
	'', "every schema tenant's ledger and table are at its catalog version");

my @dbs = split /\n/, run_sql(q{SELECT name || ' ' || object_name || ' ' || version
	FROM tenant_mgr.tenant WHERE isolation = 'database' ORDER BY name});
my @db_wrong;
for my $db (@dbs)
{
	my ($name, $object, $version) = split / /, $db;
	my $got = $node->safe_psql($object, q{SELECT count(*) || ':' || coalesce(max(version), 0)
		|| ':' || EXISTS (SELECT FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'note')
		|| ':' || EXISTS (SELECT FROM pg_indexes WHERE indexname = 'accounts_balance')
		FROM public.tenant_mgr_ledger});
	my $want = "$version:$version:" . ($version >= 2 ? 'true' : 'false') . ':' . ($version >= 3 ? 'true' : 'false');
	push @db_wrong, "$name: $got, catalog $want" if $got ne $want;
}
is(join("\n", @db_wrong), '', 'every database tenant\'s ledger and table are at its catalog version ('
	  . scalar(@dbs) . ' database tenants)');

# fleet runs: every tenant of every run ended migrated, or failed or skipped
# with a documented SQLSTATE (57P01: a database tenant dropped meanwhile,
# whose executor the drop terminated)
my $runs = run_sql(q{SELECT status || ' ' || coalesce(sqlstate, '-') || ' ' || count(*)
	FROM tenant_mgr.run_tenants GROUP BY status, sqlstate ORDER BY status, sqlstate});
diag("fleet runs' tenants (status, SQLSTATE, count):\n$runs");
is(run_sql(q{SELECT string_agg(DISTINCT status || ' ' || coalesce(sqlstate, '-'), ', ') FROM tenant_mgr.run_tenants
	WHERE status NOT IN ('migrated')
	  AND NOT (status IN ('failed', 'skipped') AND sqlstate IN ('55P03', '55000', '42704', '3D000'))
	  AND NOT (status = 'failed' AND sqlstate = '57P01' AND isolation = 'database')}),
	'', 'every tenant of a fleet run was migrated, or failed or skipped with a documented SQLSTATE');
# a migration's DDL fails only when it is applied or reverted a second
# time: by a plan made from a ledger read before the previous holder of the
# tenant's lock committed
is(run_sql(q{SELECT string_agg(DISTINCT format('%s %s %s: %s %s', tenant, action, version, sqlstate, message), E'\n')
	FROM tenant_mgr.history WHERE status = 'failed' AND message ~ '"(note|accounts_balance|accounts)"'}),
	'', 'no migration was applied or reverted twice');
is(run_sql(q{SELECT string_agg(state, ', ') FROM tenant_mgr.runs WHERE state NOT IN ('done', 'failed')}),
	'', 'every fleet run is over');

my $counts = run_sql(q{SELECT isolation || ' ' || count(*) FROM tenant_mgr.tenant GROUP BY isolation ORDER BY isolation});
diag("tenants at the end: " . join(', ', split /\n/, $counts));

$node->stop;
done_testing();
