# Makefile for crefinder (PGXS).
#
#   make               build the module with -Wall -Wextra -Werror
#   make install       install into the server found by pg_config
#   make test          build, install, and run every test (test/run)
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
SHLIB_LINK  = -lcurl -lssl -lcrypto

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Every object depends on every header of the project (PGXS tracks no
# header dependencies unless the server was configured with them).
$(OBJS): $(wildcard src/*.h)

$(EXTENSION_SQL): $(INSTALL_PARTS)
	cat $^ > $@

.PHONY: test demo
test:
	test/run

demo:
	test/demo
