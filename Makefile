# pg_lambdaguard: built with PGXS
MODULE_big = pg_lambdaguard
# The composition root, then the layers from the bottom up
OBJS = \
	pg_lambdaguard.o \
	$(patsubst %.c,%.o,$(sort $(wildcard src/common/*.c))) \
	$(patsubst %.c,%.o,$(sort $(wildcard src/shmem/*.c))) \
	$(patsubst %.c,%.o,$(sort $(wildcard src/orphan/*.c))) \
	$(patsubst %.c,%.o,$(sort $(wildcard src/pinning/*.c))) \
	$(patsubst %.c,%.o,$(sort $(wildcard src/sql/*.c)))

EXTENSION = pg_lambdaguard
DATA = pg_lambdaguard--1.0.sql pg_lambdaguard--1.0--1.1.sql pg_lambdaguard--1.1--1.2.sql
PGFILEDESC = "pg_lambdaguard - orphan guard and pinning reporter for serverless clients"

# pg_regress and isolation tests start their own preloaded server
REGRESS = settings functions pinning pinning_state privileges row_shapes invocation
REGRESS_OPTS = --temp-config=$(srcdir)/test/lambdaguard.conf --temp-instance=./tmp_check
ISOLATION = session_state
ISOLATION_OPTS = --temp-config=$(srcdir)/test/lambdaguard.conf --temp-instance=./tmp_check_iso
TAP_TESTS = 1

PG_CPPFLAGS = -I$(srcdir)/include
# -Wall -Wextra, less what PostgreSQL's own headers trip; the test command
# builds with -Werror (COPT), so a warning fails it
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The library's calls between its own files bind within it, as direct calls
# (no PLT stub on the hooks' path); ELF platforms
ifneq (,$(filter linux freebsd netbsd openbsd,$(PORTNAME)))
SHLIB_LINK += -Wl,-Bsymbolic
endif

$(OBJS): $(wildcard $(srcdir)/include/*.h)
