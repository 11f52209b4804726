/*
 * dnc.c
 *		crefinder.dnc_load(path, source): stream a Do-Not-Call registry file
 *		into crefinder.dnc_numbers.
 *
 * The National Do Not Call Registry publishes numbers as
 * "areacode,number" lines (3 + 7 digits); older files have one 10-digit
 * number per line.  Both are read; blank and malformed lines are skipped
 * and counted.  Numbers are added in batches through one prepared
 * statement; a number already on the list is left as it is.
 *
 * Who may load: superusers and roles with the privileges of
 * pg_read_server_files (and EXECUTE on the function, which the operator
 * grants: it is revoked from PUBLIC).  The file is read as the server;
 * the registry lists (user_id NULL) are written as the extension's owner,
 * since row-level security lets ordinary roles write only their tenant's
 * internal lists, with search_path set to pg_catalog so that the caller's
 * schemas cannot put their own functions or operators into those queries.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"

#include "validate.h"

PG_FUNCTION_INFO_V1(crefinder_dnc_load);

#define DNC_BATCH 100000
#define DNC_LINE_MAX 256

/*
 * ParseDncLine reads one registry line into the E.164 digits of a NANP
 * number (13055550123).  Returns 0 for a blank line, -1 for a malformed one.
 */
static int64
ParseDncLine(const char *line)
{
	char		digits[16];
	int			n = 0;
	int			area_digits = -1;
	const char *p = line;

	while (isspace((unsigned char) *p) || *p == '"')
		p++;
	if (*p == '\0')
		return 0;
	for (; *p; p++)
	{
		if (isdigit((unsigned char) *p))
		{
			if (n >= 10)
				return -1;
			digits[n++] = *p;
		}
		else if (*p == ',' && area_digits < 0)
			area_digits = n;
		else if (!(isspace((unsigned char) *p) || *p == '"'))
			return -1;
	}
	if (n != 10 || (area_digits >= 0 && area_digits != 3))
		return -1;
	if (digits[0] < '2' || digits[3] < '2')
		return -1;				/* area code or exchange starting with 0 or 1 */
	digits[n] = '\0';
	return 10000000000LL + strtoll(digits, NULL, 10);
}

/*
 * ListOfSource is the list a source names: "national", "state" or
 * "litigator", optionally followed by ":" and a detail ("state:FL").
 */
static char *
ListOfSource(const char *source)
{
	static const char *const lists[] = {"national", "state", "litigator"};
	size_t		len = strcspn(source, ":");

	for (int i = 0; i < (int) lengthof(lists); i++)
		if (strlen(lists[i]) == len && strncmp(source, lists[i], len) == 0)
			return pnstrdup(source, len);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown Do-Not-Call list in source \"%s\"", crefinder_quote_input(source)),
			 errhint("A source starts with national, state or litigator, optionally followed by \":\" and a detail, as in \"state:FL\" or \"national:2026-11\".")));
	return NULL;				/* keep compiler quiet */
}

/*
 * RegistryList returns the id of the registry list named source (of kind
 * list), creating it when new, and locks it for the rest of the
 * transaction.  Runs inside SPI.
 */
static int32
RegistryList(const char *list, const char *source)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	bool		isnull;
	int			rc;

	args[0] = CStringGetTextDatum(list);
	args[1] = CStringGetTextDatum(source);
	rc = SPI_execute_with_args("INSERT INTO crefinder.dnc_lists (kind, user_id, source) "
							   "VALUES ($1, NULL, $2) ON CONFLICT DO NOTHING",
							   2, argtypes, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not create Do-Not-Call list: %s", SPI_result_code_string(rc));
	rc = SPI_execute_with_args("SELECT id FROM crefinder.dnc_lists "
							   "WHERE user_id IS NULL AND source = $2 AND kind = $1 FOR UPDATE",
							   2, argtypes, args, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not find Do-Not-Call list: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("Do-Not-Call list \"%s\" exists with another kind",
						crefinder_quote_input(source))));
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* CompareInt64 orders int64 values for qsort. */
static int
CompareInt64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * InsertBatch adds a batch of numbers (sorted and de-duplicated here, which
 * also makes the index insertions sequential) and returns how many were new.
 */
static uint64
InsertBatch(SPIPlanPtr plan, int64 *numbers, int count, int32 list_id)
{
	Datum	   *elems = palloc(sizeof(Datum) * count);
	Datum		args[2];
	int			rc;
	int			unique = 0;

	qsort(numbers, count, sizeof(int64), CompareInt64);
	for (int i = 0; i < count; i++)
		if (i == 0 || numbers[i] != numbers[i - 1])
			elems[unique++] = Int64GetDatum(numbers[i]);
	count = unique;
	args[0] = PointerGetDatum(construct_array(elems, count, INT8OID, 8, true, TYPALIGN_DOUBLE));
	args[1] = Int32GetDatum(list_id);
	rc = SPI_execute_plan(plan, args, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not add Do-Not-Call numbers: %s", SPI_result_code_string(rc));
	pfree(DatumGetPointer(args[0]));
	pfree(elems);
	return SPI_processed;
}

/*
 * ExtensionOwner returns the role that owns the crefinder extension.
 */
static Oid
ExtensionOwner(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("crefinder"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		owner = ((Form_pg_extension) GETSTRUCT(tuple))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"crefinder\" is not installed in this database")));
	return owner;
}

/* What a load counted, for its notice. */
typedef struct DncLoadCounts
{
	uint64		added;
	int64		lines;
	int64		blank;
	int64		malformed;
	int64		valid;
} DncLoadCounts;

/*
 * LoadFile streams the registry lines of file into the registry list named
 * source (of kind list), counting in counts.  Runs inside SPI.
 */
static void
LoadFile(FILE *file, const char *path, const char *list, const char *source,
		 DncLoadCounts *counts)
{
	char		line[DNC_LINE_MAX];
	int64	   *batch;
	int			nbatch = 0;
	SPIPlanPtr	plan;
	Oid			argtypes[2] = {INT8ARRAYOID, INT4OID};
	int32		list_id;

	list_id = RegistryList(list, source);
	/*
	 * Numbers already on the list are filtered out by an anti-join rather
	 * than ON CONFLICT, whose speculative insertion costs about twice as
	 * much per row.  Loads into the same list are serialized by the row
	 * lock RegistryList takes, and InsertBatch removes duplicates within
	 * a batch.
	 */
	plan = SPI_prepare("INSERT INTO crefinder.dnc_numbers (phone_number, list_id) "
					   "SELECT n, $2 FROM unnest($1) AS n "
					   "WHERE NOT EXISTS (SELECT 1 FROM crefinder.dnc_numbers d "
					   "                  WHERE d.phone_number = n AND d.list_id = $2)",
					   2, argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare Do-Not-Call insert: %s", SPI_result_code_string(SPI_result));

	batch = palloc(sizeof(int64) * DNC_BATCH);
	while (fgets(line, sizeof(line), file) != NULL)
	{
		int64		number;

		counts->lines++;
		if (strchr(line, '\n') == NULL && !feof(file))
		{
			int			c;

			/* an overlong line: skip the rest of it */
			while ((c = fgetc(file)) != EOF && c != '\n')
				;
			counts->malformed++;
			continue;
		}
		number = ParseDncLine(line);
		if (number == 0)
		{
			counts->blank++;
			continue;
		}
		if (number < 0)
		{
			counts->malformed++;
			continue;
		}
		counts->valid++;
		batch[nbatch++] = number;
		if (nbatch == DNC_BATCH)
		{
			CHECK_FOR_INTERRUPTS();
			counts->added += InsertBatch(plan, batch, nbatch, list_id);
			nbatch = 0;
		}
	}
	if (ferror(file))
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read Do-Not-Call file \"%s\": %m", crefinder_quote_input(path))));
	if (nbatch > 0)
		counts->added += InsertBatch(plan, batch, nbatch, list_id);
	pfree(batch);
}

/*
 * crefinder.dnc_load(path text, source text) returns bigint: the numbers
 * added to the list source names.  Needs superuser or the privileges of
 * pg_read_server_files (it reads a file on the server, as COPY FROM a file
 * does); writes the list as the extension's owner.
 */
Datum
crefinder_dnc_load(PG_FUNCTION_ARGS)
{
	char	   *path;
	char	   *source;
	char	   *list;
	FILE	   *file;
	DncLoadCounts counts;
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;

	crefinder_require_argument(fcinfo, 0, "path");
	crefinder_require_argument(fcinfo, 1, "source");
	if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to load a Do-Not-Call file"),
				 errdetail("Only superusers and roles with privileges of the \"pg_read_server_files\" role may read files on the server."),
				 errhint("Grant pg_read_server_files to the role that loads registry files.")));
	path = text_to_cstring(PG_GETARG_TEXT_PP(0));
	source = text_to_cstring(PG_GETARG_TEXT_PP(1));
	list = ListOfSource(source);

	file = AllocateFile(path, "r");
	if (file == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open Do-Not-Call file \"%s\": %m", crefinder_quote_input(path))));

	/*
	 * Write as the extension's owner, with a search_path of pg_catalog
	 * only.  An error restores both with the (sub)transaction it aborts;
	 * the user is also restored here at once.
	 */
	owner = ExtensionOwner();
	memset(&counts, 0, sizeof(counts));
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	PG_TRY();
	{
		SPI_connect();
		LoadFile(file, path, list, source, &counts);
		SPI_finish();
	}
	PG_CATCH();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
		PG_RE_THROW();
	}
	PG_END_TRY();
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	FreeFile(file);

	ereport(NOTICE,
			(errmsg("added %llu numbers to the %s Do-Not-Call list", (unsigned long long) counts.added, list),
			 errdetail("Read %lld lines: %lld numbers (%lld already listed), %lld blank, %lld malformed.",
					   (long long) counts.lines, (long long) counts.valid,
					   (long long) (counts.valid - counts.added),
					   (long long) counts.blank, (long long) counts.malformed)));
	PG_RETURN_INT64((int64) counts.added);
}
