/*
 * lock_guard.c
 *		LOCK TABLE on crefinder's tables is for their owner only.
 *
 * Every tenant shares each crefinder table, so a table lock taken by one
 * tenant is a lock on all of them.  PostgreSQL lets anyone with UPDATE,
 * DELETE or TRUNCATE on a table lock it in any mode, and tenants may write
 * property_records: a tenant's open transaction holding ACCESS EXCLUSIVE
 * on it would stall every other tenant's sends and the dispatcher.  This
 * utility hook refuses an explicit LOCK TABLE on any relation of schema
 * crefinder unless the current user owns the relation (the extension's
 * owner, superusers).  Row locks are unaffected: they hold only the rows
 * a tenant can see, its own.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"

#include "lock_guard.h"

static ProcessUtility_hook_type previous_utility_hook = NULL;

/* CheckLock refuses a LOCK statement naming a crefinder relation the user does not own. */
static void
CheckLock(LockStmt *stmt)
{
	ListCell   *lc;
	Oid			schema = get_namespace_oid("crefinder", true);

	if (!OidIsValid(schema) || superuser())
		return;
	foreach(lc, stmt->relations)
	{
		RangeVar   *rv = (RangeVar *) lfirst(lc);
		Oid			relid = RangeVarGetRelid(rv, NoLock, true);

		if (!OidIsValid(relid) || get_rel_namespace(relid) != schema)
			continue;
		if (!pg_class_ownercheck(relid, GetUserId()))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to lock table %s", rv->relname),
					 errdetail("crefinder's tables are shared by every tenant: a table lock would hold up the others."),
					 errhint("Lock rows instead (SELECT ... FOR UPDATE).")));
	}
}

static void
GuardUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			 ProcessUtilityContext context, ParamListInfo params,
			 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (IsA(pstmt->utilityStmt, LockStmt))
		CheckLock((LockStmt *) pstmt->utilityStmt);
	if (previous_utility_hook)
		previous_utility_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

/* crefinder_install_lock_guard installs the hook; called once from _PG_init. */
void
crefinder_install_lock_guard(void)
{
	previous_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = GuardUtility;
}
