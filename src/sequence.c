/*
 * sequence.c
 *		A/B variant assignment for campaign steps: deterministic per
 *		enrollment and step, so that a re-run of a tick, a preview and the
 *		analytics all see the same choice.
 *
 * SQL: crefinder.variant_index(enrollment_id bigint, step integer,
 * weights float8[], holdout float8) returns integer: 0 for the holdout,
 * else the 1-based index of the variant.
 *
 * A hash of (enrollment id, step) gives a point in [0, 100).  Below
 * holdout (a percentage) the enrollment is held out of the step; the rest
 * of the range is shared among the variants in proportion to their
 * weights.  The hash is PostgreSQL's hash_bytes_extended, so the same
 * server gives the same answer every time.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "utils/array.h"

PG_FUNCTION_INFO_V1(crefinder_variant_index);

Datum
crefinder_variant_index(PG_FUNCTION_ARGS)
{
	int64		enrollment = PG_GETARG_INT64(0);
	int32		step = PG_GETARG_INT32(1);
	ArrayType  *weights = PG_GETARG_ARRAYTYPE_P(2);
	float8		holdout = PG_GETARG_FLOAT8(3);
	unsigned char key[12];
	uint64		hash;
	float8		point;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	float8		total = 0;
	float8		upto = 0;

	memcpy(key, &enrollment, 8);
	memcpy(key + 8, &step, 4);
	hash = hash_bytes_extended(key, sizeof(key), 0x637265);
	point = (float8) (hash >> 11) / (float8) (UINT64CONST(1) << 53) * 100.0;
	if (point < holdout)
		PG_RETURN_INT32(0);
	if (ARR_NDIM(weights) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("weights must be a one-dimensional array")));
	deconstruct_array(weights, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
	if (n == 0)
		PG_RETURN_INT32(0);
	for (int i = 0; i < n; i++)
		if (!nulls[i] && DatumGetFloat8(elems[i]) > 0)
			total += DatumGetFloat8(elems[i]);
	if (total <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("variant weights must include a positive one")));
	/* the point within the variants' share of the range, scaled to total */
	point = holdout >= 100 ? 0 : (point - holdout) / (100.0 - holdout) * total;
	for (int i = 0; i < n; i++)
	{
		if (nulls[i] || DatumGetFloat8(elems[i]) <= 0)
			continue;
		upto += DatumGetFloat8(elems[i]);
		if (point < upto)
			PG_RETURN_INT32(i + 1);
	}
	PG_RETURN_INT32(n);
}
