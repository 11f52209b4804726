/*
 * crefinder.c
 *		Module entry point: defines the settings when the library loads.
 *
 * The library is meant to be loaded through shared_preload_libraries so
 * that later the dispatcher background worker can be registered here too;
 * loaded on demand by a backend, it still defines its settings.
 */
#include "postgres.h"

#include "fmgr.h"

#include "guc.h"
#include "miscadmin.h"
#include "dispatcher.h"
#include "shared.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	crefinder_define_gucs();
	if (!process_shared_preload_libraries_in_progress)
		return;
	crefinder_shared_init();
	crefinder_register_dispatcher();
}
