# tenant_mgr: schema- and database-per-tenant management for PostgreSQL
#
# Tests need a server started with shared_preload_libraries = 'tenant_mgr';
# test/check.sh runs them all against throwaway clusters as an unprivileged
# user (initdb refuses root).

MODULE_big = tenant_mgr
OBJS = \
	$(WIN32RES) \
	src/api.o \
	src/tenantops.o \
	src/import.o \
	src/trigger.o \
	src/schematenant.o \
	src/build.o \
	src/citus.o \
	src/pool.o \
	src/dbtenant.o \
	src/template.o \
	src/roles.o \
	src/marker.o \
	src/names.o \
	src/registry.o \
	src/ledger.o \
	src/migrate.o \
	src/fleet.o \
	src/run.o \
	src/queue.o \
	src/launcher.o \
	src/jobs.o \
	src/dispatch.o \
	src/executor.o \
	src/shmem.o \
	src/catalog.o \
	src/spi.o \
	src/verify.o \
	src/guard.o \
	src/history.o \
	src/pause.o \
	src/tenant_mgr.o

EXTENSION = tenant_mgr
DATA = tenant_mgr--1.0.sql tenant_mgr--1.0--1.1.sql
PGFILEDESC = "tenant_mgr - schema- and database-per-tenant management"

# Every test lives under test/: pg_regress reads test/sql/NAME.sql and
# test/expected/NAME.out, isolation test/specs/NAME.spec and
# test/expected/NAME.out; results go to results/ and output_iso/.
# test/check.sh runs a subset by setting REGRESS, ISOLATION or PROVE_TESTS
# on the make command line (an empty list skips that suite).
REGRESS = setup names migrations schema_tenants migrate drop database_tenants triggers security tampering lifecycle runs bad_input
REGRESS_OPTS = --inputdir=test --temp-instance=tmp_check_regress --temp-config=test/regress.conf

ISOLATION = tenant_locks customers ledger_lock fleet_locks create_races tenant_races fleet_races pool_races
ISOLATION_OPTS = --inputdir=test --temp-instance=tmp_check_iso --temp-config=test/isolation.conf

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

# -Wextra for our code; the server headers are searched as system headers so
# that their own unused parameters (lib/ilist.h, storage/bufpage.h) stay quiet
PG_CPPFLAGS = -Wall -Wextra -Wmissing-prototypes -Wpointer-arith -Werror=vla \
	-isystem $(shell $(PG_CONFIG) --includedir-server)
EXTRA_CLEAN = tmp_check_regress

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies; every object sees the private header
$(OBJS): src/tenant_mgr.h
