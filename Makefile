# Makefile for crefinder (PGXS).
#
#   make               build the module with -Wall -Wextra -Werror
#   make install       install into the server found by pg_config
#   make test          set up (tools/setup), build, install, and run every test (test/run)
#   make demo          set up, build, install, and run the demo (test/demo)
#   make installcheck  pg_regress against an already running server

EXTENSION   = crefinder
EXTVERSION  = 0.1.0
MODULE_big  = crefinder
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# The install script is assembled from sql/install/*.sql in name order,
# one file per concern.
INSTALL_PARTS = $(sort $(wildcard sql/install/*.sql))
EXTENSION_SQL = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA_built  = $(EXTENSION_SQL)
DATA        = $(filter-out $(EXTENSION_SQL),$(wildcard sql/$(EXTENSION)--*--*.sql))

REGRESS     = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/[0-9][0-9]_*.sql)))

PG_CONFIG  ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src
# PostgreSQL's own headers have unused parameters, hence -Wno-unused-parameter.
PG_CFLAGS   = -Wall -Wextra -Werror -Wno-unused-parameter
SHLIB_LINK  = -lcurl -lssl -lcrypto -lm

# On a fresh machine pg_config is not there yet: "make test" and "make demo"
# install it (tools/setup) before they build.
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
else ifneq ($(filter-out test demo,$(or $(MAKECMDGOALS),all)),)
$(error $(PG_CONFIG) not found: install postgresql-server-dev-15, or run "make test" or "make demo", which install what is missing)
endif

# Every object depends on every header of the project (PGXS tracks no
# header dependencies unless the server was configured with them).
$(OBJS): $(wildcard src/*.h)

$(EXTENSION_SQL): $(INSTALL_PARTS)
	cat $^ > $@

# README's two commands set up what is missing first (Debian packages, as
# root or through sudo -n), then build, install and run.  The scripts run
# under Debian's interpreter, which sees python3-psycopg2 (a python3 on
# PATH may be another one).
PYTHON = /usr/bin/python3

.PHONY: test demo
test:
	sh tools/setup
	$(PYTHON) test/run

demo:
	sh tools/setup
	$(PYTHON) test/demo
