/*
 * crefinder.c
 *		Module entry point: defines the settings, the shared memory and the
 *		dispatcher background workers when the library loads.
 *
 * The library must be loaded through shared_preload_libraries: the
 * dispatcher is registered at server start, and some settings can only be
 * defined then.  Loaded any other way (CREATE EXTENSION or LOAD in a
 * server that does not preload it) it refuses with an error that says
 * what to change, instead of letting PostgreSQL end the connection.
 */
#include "postgres.h"

#include "fmgr.h"

#include "guc.h"
#include "miscadmin.h"
#include "dispatcher.h"
#include "lock_guard.h"
#include "shared.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("crefinder must be loaded through shared_preload_libraries"),
				 errdetail("Its dispatcher background workers and some of its settings are set up when the server starts."),
				 errhint("Add crefinder to shared_preload_libraries in postgresql.conf (for example shared_preload_libraries = 'pg_cron,crefinder') and restart the server.")));
	crefinder_define_gucs();
	crefinder_shared_init();
	crefinder_install_lock_guard();
	crefinder_register_dispatcher();
}
