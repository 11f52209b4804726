/*
 * phone.c
 *		Phone numbers as people type them, turned into E.164, and what the
 *		shipped data (tzdata.c) says about where a number or ZIP may be.
 *
 * SQL: crefinder.normalize_phone(), phone_timezones(), phone_region(),
 * zip_timezone().  A NANP number's zones are every zone of its area code
 * (a number keeps its area code when its owner moves); other countries'
 * numbers take the zones of their longest known prefix.
 *
 * The SQL functions are STRICT, and answer NULL for a NULL argument
 * themselves as well.  Errors quote at most a short prefix of the input
 * (crefinder_quote_input).
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "phone.h"
#include "tzdata.h"
#include "validate.h"

PG_FUNCTION_INFO_V1(crefinder_normalize_phone);
PG_FUNCTION_INFO_V1(crefinder_phone_timezones);
PG_FUNCTION_INFO_V1(crefinder_phone_region_sql);
PG_FUNCTION_INFO_V1(crefinder_zip_timezone);

/*
 * LongestPrefix returns the zone set of the longest known non-NANP prefix
 * of digits, or -1.  crefinder_prefixes is sorted by length, then value.
 */
static int
LongestPrefix(const char *digits)
{
	size_t		len = strlen(digits);

	for (size_t plen = Min(len, (size_t) 9); plen > 0; plen--)
	{
		int			lo = 0;
		int			hi = crefinder_prefix_count - 1;

		while (lo <= hi)
		{
			int			mid = (lo + hi) / 2;
			const char *p = crefinder_prefixes[mid].prefix;
			size_t		mlen = strlen(p);
			int			cmp;

			cmp = (mlen < plen) ? -1 : (mlen > plen) ? 1 : strncmp(p, digits, plen);
			if (cmp == 0)
				return crefinder_prefixes[mid].zone_set;
			if (cmp < 0)
				lo = mid + 1;
			else
				hi = mid - 1;
		}
	}
	return -1;
}

/*
 * crefinder_parse_phone reads a phone number in the forms people type
 * ("(305) 555-0123", "305.555.0123", "1-305-555-0123", "+44 20 7946 0958")
 * into E.164.  A number without "+" must be a NANP number.  Returns NULL
 * on success, else why the input cannot be a real number.
 */
const char *
crefinder_parse_phone(const char *input, CrefinderPhone *phone)
{
	char		digits[64];
	int			ndigits = 0;
	bool		plus = false;
	bool		seen_digit = false;
	const char *p = input;

	memset(phone, 0, sizeof(*phone));
	if (input == NULL)
		return "is empty";
	while (isspace((unsigned char) *p))
		p++;
	if (*p == '\0')
		return "is empty";
	for (; *p; p++)
	{
		unsigned char c = (unsigned char) *p;

		if (isdigit(c))
		{
			if (ndigits >= (int) sizeof(digits) - 1)
				return "has too many digits";
			digits[ndigits++] = c;
			seen_digit = true;
		}
		else if (c == '+')
		{
			if (plus || seen_digit)
				return "has a \"+\" that is not at the start";
			plus = true;
		}
		else if (isalpha(c))
			return "contains letters";
		else if (!(c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/' || c == '\t'))
			return "contains characters that are not part of a phone number";
	}
	digits[ndigits] = '\0';
	if (ndigits == 0)
		return "has no digits";

	if (!plus)
	{
		if (ndigits == 10)
		{
			memmove(digits + 1, digits, ndigits + 1);
			digits[0] = '1';
			ndigits++;
		}
		else if (!(ndigits == 11 && digits[0] == '1'))
			return "has no country code and is not a 10-digit North American number";
	}

	if (digits[0] == '0')
		return "has a country code starting with 0";
	if (ndigits > CREFINDER_E164_MAX)
		return "has more than 15 digits (the E.164 limit)";

	if (digits[0] == '1')
	{
		if (ndigits != 11)
			return "is a North American number without exactly 10 digits after the country code";
		if (digits[1] == '0' || digits[1] == '1')
			return "has an area code starting with 0 or 1";
		if (digits[2] == '1' && digits[3] == '1')
			return "has an N11 service code as area code";
		if (digits[4] == '0' || digits[4] == '1')
			return "has an exchange code starting with 0 or 1";
		phone->nanp = true;
		phone->npa = (digits[1] - '0') * 100 + (digits[2] - '0') * 10 + (digits[3] - '0');
	}
	else
	{
		if (ndigits < 7)
			return "is too short";
		if (LongestPrefix(digits) < 0)
			return "has an unknown country code";
	}

	phone->e164[0] = '+';
	strcpy(phone->e164 + 1, digits);
	phone->digits = strtoll(digits, NULL, 10);
	return NULL;
}

/*
 * crefinder_area_code returns the shipped facts about a NANP area code, or
 * NULL when the data has none.
 */
const CrefinderAreaCode *
crefinder_area_code(int npa)
{
	int			lo = 0;
	int			hi = crefinder_area_code_count - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (crefinder_area_codes[mid].npa == npa)
			return &crefinder_area_codes[mid];
		if (crefinder_area_codes[mid].npa < npa)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/*
 * crefinder_phone_zone_set returns the zone set a parsed number may be in,
 * or -1 when unknown.
 */
int
crefinder_phone_zone_set(const CrefinderPhone *phone)
{
	if (phone->nanp)
	{
		const CrefinderAreaCode *ac = crefinder_area_code(phone->npa);

		return ac ? ac->zone_set : -1;
	}
	return LongestPrefix(phone->e164 + 1);
}

/*
 * crefinder_phone_region returns the state (US) or province (Canada) of a
 * NANP number's area code, or NULL.
 */
const char *
crefinder_phone_region(const CrefinderPhone *phone)
{
	const CrefinderAreaCode *ac;

	if (!phone->nanp)
		return NULL;
	ac = crefinder_area_code(phone->npa);
	if (ac == NULL || ac->region[0] == '\0')
		return NULL;
	return ac->region;
}

/*
 * crefinder_zip_zone returns the zone index of a US ZIP code ("33101" or
 * "33101-1234"), or -1 when unknown; *valid says whether zip looked like
 * a ZIP code at all.
 */
int
crefinder_zip_zone(const char *zip, bool *valid)
{
	int			value = 0;
	int			lo = 0;
	int			hi = crefinder_zip_count - 1;
	size_t		len = strlen(zip);

	*valid = false;
	if (!(len == 5 || (len == 10 && zip[5] == '-')))
		return -1;
	for (size_t i = 0; i < len; i++)
	{
		if (i == 5)
			continue;
		if (!isdigit((unsigned char) zip[i]))
			return -1;
		if (i < 5)
			value = value * 10 + (zip[i] - '0');
	}
	*valid = true;
	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (crefinder_zips[mid].zip == value)
			return crefinder_zips[mid].zone;
		if (crefinder_zips[mid].zip < value)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* ParseOrRaise parses a SQL argument or raises 22023 saying why not. */
static void
ParseOrRaise(text *arg, CrefinderPhone *phone)
{
	char	   *input = text_to_cstring(arg);
	const char *reason = crefinder_parse_phone(input, phone);

	if (reason != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid phone number \"%s\"", crefinder_quote_input(input)),
				 errdetail("The number %s.", reason)));
}

/*
 * crefinder.normalize_phone(text) returns text: the number in E.164.
 */
Datum
crefinder_normalize_phone(PG_FUNCTION_ARGS)
{
	CrefinderPhone phone;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	ParseOrRaise(PG_GETARG_TEXT_PP(0), &phone);
	PG_RETURN_TEXT_P(cstring_to_text(phone.e164));
}

/*
 * crefinder.phone_timezones(text) returns text[]: every IANA zone the
 * number may be in, or NULL when the data does not know.
 */
Datum
crefinder_phone_timezones(PG_FUNCTION_ARGS)
{
	CrefinderPhone phone;
	int			set;
	const CrefinderZoneSet *zs;
	Datum	   *names;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	ParseOrRaise(PG_GETARG_TEXT_PP(0), &phone);
	set = crefinder_phone_zone_set(&phone);
	if (set < 0)
		PG_RETURN_NULL();
	zs = &crefinder_zone_sets[set];
	names = palloc(sizeof(Datum) * zs->count);
	for (int i = 0; i < zs->count; i++)
		names[i] = CStringGetTextDatum(crefinder_zone_names[crefinder_zone_set_members[zs->first + i]]);
	PG_RETURN_ARRAYTYPE_P(construct_array(names, zs->count, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * crefinder.phone_region(text) returns text: the state or province of a
 * North American number's area code (FL, ON), else NULL.
 */
Datum
crefinder_phone_region_sql(PG_FUNCTION_ARGS)
{
	CrefinderPhone phone;
	const char *region;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	ParseOrRaise(PG_GETARG_TEXT_PP(0), &phone);
	region = crefinder_phone_region(&phone);
	if (region == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(region));
}

/*
 * crefinder.zip_timezone(text) returns text: the IANA zone of a US ZIP
 * code, NULL when unknown; raises 22023 for something that is no ZIP code.
 */
Datum
crefinder_zip_timezone(PG_FUNCTION_ARGS)
{
	char	   *zip;
	bool		valid;
	int			zone;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	zip = text_to_cstring(PG_GETARG_TEXT_PP(0));
	zone = crefinder_zip_zone(zip, &valid);
	if (!valid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ZIP code \"%s\"", crefinder_quote_input(zip)),
				 errhint("A ZIP code is 5 digits, or ZIP+4 as 12345-6789.")));
	if (zone < 0)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(crefinder_zone_names[zone]));
}
