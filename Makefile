# pg_lambdaguard: built with PGXS
MODULE_big = pg_lambdaguard
OBJS = \
	pg_lambdaguard.o \
	src/common/lg_match.o \
	lg_history.o \
	lg_locks.o \
	lg_names.o \
	lg_orphan.o \
	lg_pinning.o \
	lg_planwalk.o \
	lg_plpgsql.o \
	lg_session.o \
	lg_session_state.o \
	lg_state.o \
	lg_utility.o \
	lg_views.o \
	lg_worker.o

EXTENSION = pg_lambdaguard
DATA = pg_lambdaguard--1.0.sql pg_lambdaguard--1.0--1.1.sql
PGFILEDESC = "pg_lambdaguard - orphan guard and pinning reporter for serverless clients"

# pg_regress and isolation tests start their own preloaded server
REGRESS = settings functions pinning pinning_state privileges
REGRESS_OPTS = --temp-config=$(srcdir)/test/lambdaguard.conf --temp-instance=./tmp_check
ISOLATION = session_state
ISOLATION_OPTS = --temp-config=$(srcdir)/test/lambdaguard.conf --temp-instance=./tmp_check_iso
TAP_TESTS = 1

PG_CPPFLAGS = -I$(srcdir)/include

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(OBJS): pg_lambdaguard.h lg_pinning.h $(wildcard $(srcdir)/include/*.h)
