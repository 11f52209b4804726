/*
 * proportion_test.c
 *		The two-proportion z-test that ab_test_results reports.
 *
 * SQL: crefinder.proportion_test(successes1, trials1, successes2, trials2)
 *		-> (z float8, p_value float8)
 *
 * z = (p1 - p2) / sqrt(p (1 - p) (1/n1 + 1/n2)), p the pooled proportion;
 * the p-value is two-sided, from the standard normal distribution
 * (erfc(|z| / sqrt 2)).  Both are NULL when either arm has no trials or
 * the pooled proportion is 0 or 1 (no variance: the test says nothing).
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"

PG_FUNCTION_INFO_V1(crefinder_proportion_test);

Datum
crefinder_proportion_test(PG_FUNCTION_ARGS)
{
	int64		x1 = PG_GETARG_INT64(0);
	int64		n1 = PG_GETARG_INT64(1);
	int64		x2 = PG_GETARG_INT64(2);
	int64		n2 = PG_GETARG_INT64(3);
	TupleDesc	tupdesc;
	Datum		values[2];
	bool		nulls[2] = {true, true};
	double		pooled;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "proportion_test must return a composite type");
	if (x1 < 0 || x2 < 0 || n1 < 0 || n2 < 0 || x1 > n1 || x2 > n2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("successes must be between 0 and the trials"),
				 errdetail("Got %lld of %lld and %lld of %lld.",
						   (long long) x1, (long long) n1, (long long) x2, (long long) n2)));
	if (n1 > 0 && n2 > 0)
	{
		pooled = (double) (x1 + x2) / (double) (n1 + n2);
		if (pooled > 0.0 && pooled < 1.0)
		{
			double		se = sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2));
			double		z = ((double) x1 / n1 - (double) x2 / n2) / se;

			values[0] = Float8GetDatum(z);
			values[1] = Float8GetDatum(erfc(fabs(z) / M_SQRT2));
			nulls[0] = nulls[1] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
