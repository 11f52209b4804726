/*
 * tenant.c
 *		The current tenant: crefinder.current_user_id().
 *
 * A tenant is the uuid in every tenant-owned row's user_id column.  On
 * Supabase it is auth.uid(); elsewhere the application names it per
 * transaction with set_config('crefinder.user_id', ..., true).  When
 * auth.uid() exists it alone decides, so that a client of a Supabase
 * project cannot pick another tenant by setting crefinder.user_id.
 *
 * Only an auth.uid() that a superuser owns (the function or its schema, as
 * on Supabase) counts: a role that may create schemas could otherwise plant
 * one, name any tenant, and have its code run inside crefinder's functions,
 * which run with the extension owner's rights.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/htup_details.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/pg_list.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/uuid.h"

#include "guc.h"
#include "tenant.h"

PG_FUNCTION_INFO_V1(crefinder_current_user_id);

/*
 * crefinder_uuid_text_is_valid says whether uuid_in would accept text:
 * 32 hexadecimal digits, optionally in braces, with a hyphen allowed after
 * any group of four digits.  It never raises an error (GUC check hooks
 * must not).
 */
bool
crefinder_uuid_text_is_valid(const char *text)
{
	const char *p = text;
	bool		braces = false;
	int			digits = 0;

	if (*p == '{')
	{
		braces = true;
		p++;
	}
	while (digits < 32)
	{
		if (!isxdigit((unsigned char) *p))
			return false;
		p++;
		digits++;
		if (digits % 4 == 0 && digits < 32 && *p == '-')
			p++;
	}
	if (braces)
	{
		if (*p != '}')
			return false;
		p++;
	}
	return *p == '\0';
}

/* SchemaOwner: the owner of a schema (InvalidOid when it is gone). */
static Oid
SchemaOwner(Oid nspid)
{
	HeapTuple	tuple = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nspid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		return InvalidOid;
	owner = ((Form_pg_namespace) GETSTRUCT(tuple))->nspowner;
	ReleaseSysCache(tuple);
	return owner;
}

/*
 * LookupSupabaseUid returns the oid of auth.uid() when it exists and a
 * superuser owns it or its schema, else InvalidOid.
 */
static Oid
LookupSupabaseUid(void)
{
	List	   *name = list_make2(makeString("auth"), makeString("uid"));
	Oid			fn = LookupFuncName(name, 0, NULL, true);
	HeapTuple	tuple;
	Oid			owner;
	Oid			schema_owner;

	if (!OidIsValid(fn))
		return InvalidOid;
	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(tuple))
		return InvalidOid;
	owner = ((Form_pg_proc) GETSTRUCT(tuple))->proowner;
	schema_owner = SchemaOwner(((Form_pg_proc) GETSTRUCT(tuple))->pronamespace);
	ReleaseSysCache(tuple);
	if (!superuser_arg(owner) && !superuser_arg(schema_owner))
		return InvalidOid;
	return fn;
}


/*
 * crefinder_current_tenant returns the current tenant as a uuid Datum, or
 * raises an error that says how to name one.
 */
Datum
crefinder_current_tenant(void)
{
	Oid			uid_fn = LookupSupabaseUid();

	if (OidIsValid(uid_fn))
	{
		FmgrInfo	flinfo;
		LOCAL_FCINFO(fcinfo, 0);
		Datum		result;

		if (get_func_rettype(uid_fn) != UUIDOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("auth.uid() does not return uuid"),
					 errdetail("crefinder takes the tenant from auth.uid() when that function exists.")));

		fmgr_info(uid_fn, &flinfo);
		InitFunctionCallInfoData(*fcinfo, &flinfo, 0, InvalidOid, NULL, NULL);
		result = FunctionCallInvoke(fcinfo);
		if (fcinfo->isnull)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("no crefinder tenant: auth.uid() is null"),
					 errdetail("crefinder takes the tenant from auth.uid() when that function exists."),
					 errhint("Call crefinder from an authenticated session.")));
		return result;
	}

	if (crefinder_user_id == NULL || crefinder_user_id[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no crefinder tenant is set"),
				 errhint("Name the tenant with set_config('crefinder.user_id', '<uuid>', true) in the transaction.")));

	return DirectFunctionCall1(uuid_in, CStringGetDatum(crefinder_user_id));
}

/*
 * crefinder.current_user_id() returns uuid: the tenant rows are read and
 * written for.
 */
Datum
crefinder_current_user_id(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(crefinder_current_tenant());
}
