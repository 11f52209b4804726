/*
 * owner_name.c
 *		An owner's first and last name, from the owner name of a property
 *		record, for templates ({{first_name}}, {{last_name}}).
 *
 * SQL: crefinder.split_owner_name(owner_name text, OUT first_name text,
 * OUT last_name text).
 *
 * Property records come from county rolls and skip tracing, in several
 * shapes:
 *	"John Smith", "John A. Smith Jr."		first last (mixed case)
 *	"SMITH JOHN A", "SMITH JOHN & MARY"		LAST FIRST MIDDLE (all capitals:
 *											the county roll's order)
 *	"Smith, John A"							last, first
 *	"John & Mary Smith"						the first owner, the shared last name
 *	"ACME HOLDINGS LLC", "Smith Family Trust", "Estate of John Smith"
 *											an entity: no first or last name
 *											(the template's fallback is used)
 * Titles (Mr, Mrs, Dr...) and suffixes (Jr, III, Esq...) are dropped, and
 * a name in capitals comes back capitalized ("O'BRIEN" is "O'Brien").
 * Anything else gives what it can: one word is a first name (a last name
 * in capitals), and no letters at all give nothing.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(crefinder_split_owner_name);

#define MAX_WORDS 16

/* Words that make a name an organization's, trust's or estate's. */
static const char *const entity_words[] = {
	"LLC", "L.L.C.", "INC", "INC.", "INCORPORATED", "CORP", "CORP.", "CORPORATION",
	"CO", "CO.", "COMPANY", "LP", "L.P.", "LLP", "LTD", "LTD.", "PLLC", "PC", "TRUST", "TR",
	"TRS", "TRUSTEE", "TRUSTEES", "ESTATE", "EST", "HOLDINGS", "HOLDING", "PROPERTIES",
	"PROPERTY", "INVESTMENTS", "INVESTMENT", "INVESTORS", "PARTNERS", "PARTNERSHIP",
	"GROUP", "REALTY", "BANK", "CHURCH", "MINISTRIES", "ASSOCIATION", "ASSN", "ASSOC",
	"FUND", "FOUNDATION", "VENTURES", "ENTERPRISES", "CAPITAL", "MANAGEMENT", "MGMT",
	"DEVELOPMENT", "CITY", "COUNTY", "AUTHORITY", "UNIVERSITY", "SCHOOL", "DISTRICT",
	"HOA", "REVOCABLE", "LIVING", "IRREVOCABLE", "CLUB", "SOCIETY", "LEASING", "RENTALS",
	"HOUSING", "HOMES", "REIT", "&CO", NULL
};

/* Titles before a name and suffixes after it. */
static const char *const dropped_words[] = {
	"MR", "MR.", "MRS", "MRS.", "MS", "MS.", "MISS", "DR", "DR.", "JR", "JR.", "SR", "SR.",
	"II", "III", "IV", "ESQ", "ESQ.", "MD", "M.D.", "DDS", "PHD", "PH.D.", "ETAL", "ET.AL.",
	"ETUX", "H/W", "HW", "JT", "JTWROS", NULL
};

static bool
WordIn(const char *word, const char *const *list)
{
	for (int i = 0; list[i] != NULL; i++)
		if (pg_strcasecmp(word, list[i]) == 0)
			return true;
	return false;
}

/* A word that joins two owners: "&", "and", "/", "+". */
static bool
IsJoiner(const char *word)
{
	return strcmp(word, "&") == 0 || strcmp(word, "/") == 0 || strcmp(word, "+") == 0
		|| pg_strcasecmp(word, "and") == 0 || pg_strcasecmp(word, "y") == 0;
}

static bool
HasLetter(const char *word)
{
	for (const char *p = word; *p; p++)
		if (isalpha((unsigned char) *p) || (unsigned char) *p >= 0x80)
			return true;
	return false;
}

/* One letter, with or without a period: an initial. */
static bool
IsInitial(const char *word)
{
	return isalpha((unsigned char) word[0]) && (word[1] == '\0' || (word[1] == '.' && word[2] == '\0'));
}

/*
 * Capitalized: a word in capitals becomes "Smith", "O'Brien",
 * "Smith-Jones"; a word with lower-case letters is kept as written.
 */
static char *
Capitalized(const char *word, bool all_capitals)
{
	char	   *out = pstrdup(word);
	bool		start = true;

	if (!all_capitals)
		return out;
	for (char *p = out; *p; p++)
	{
		unsigned char c = (unsigned char) *p;

		if (c >= 'A' && c <= 'Z' && !start)
			*p = (char) (c - 'A' + 'a');
		start = !(isalpha(c) || c >= 0x80);
	}
	return out;
}

/*
 * Words splits s at white space (and after a comma, which is kept as a
 * word of its own), at most MAX_WORDS words.
 */
static int
Words(char *s, char **words)
{
	int			n = 0;
	char	   *p = s;

	while (*p && n < MAX_WORDS)
	{
		char	   *start;

		while (*p && (isspace((unsigned char) *p)))
			p++;
		if (*p == '\0')
			break;
		if (*p == ',')
		{
			words[n++] = ",";
			p++;
			continue;
		}
		start = p;
		while (*p && !isspace((unsigned char) *p) && *p != ',')
			p++;
		if (*p == ',')
		{
			/* "Smith," is "Smith" and "," */
			size_t		len = p - start;
			char	   *word = pnstrdup(start, len);

			words[n++] = word;
			continue;
		}
		if (*p)
			*p++ = '\0';
		words[n++] = start;
	}
	return n;
}

/*
 * SplitOwnerName sets *first and *last (either may be NULL) for name.
 */
static void
SplitOwnerName(const char *name, char **first, char **last)
{
	char	   *copy = pstrdup(name);
	char	   *all[MAX_WORDS];
	char	   *words[MAX_WORDS];
	int			nall;
	int			n = 0;
	int			comma = -1;
	int			joiner = -1;
	bool		capitals = true;
	bool		letters = false;

	*first = NULL;
	*last = NULL;
	for (const char *p = name; *p; p++)
	{
		if (*p >= 'a' && *p <= 'z')
			capitals = false;
		if (isalpha((unsigned char) *p))
			letters = true;
	}
	if (!letters)
		return;

	nall = Words(copy, all);
	for (int i = 0; i < nall; i++)
	{
		if (WordIn(all[i], entity_words))
			return;
		/* "Estate of John Smith", "c/o" */
		if (pg_strcasecmp(all[i], "of") == 0 || pg_strcasecmp(all[i], "c/o") == 0)
			return;
	}
	/* the words that name people: no titles, suffixes or stray symbols */
	for (int i = 0; i < nall; i++)
	{
		if (strcmp(all[i], ",") == 0)
		{
			if (comma < 0 && joiner < 0 && n > 0)
				comma = n;
			continue;
		}
		if (IsJoiner(all[i]))
		{
			if (joiner < 0 && n > 0)
				joiner = n;
			continue;
		}
		/* "ET AL", "ET UX" (and others, and wife) */
		if (pg_strcasecmp(all[i], "et") == 0 && i + 1 < nall &&
			(pg_strncasecmp(all[i + 1], "al", 2) == 0 || pg_strncasecmp(all[i + 1], "ux", 2) == 0))
		{
			i++;
			continue;
		}
		if (WordIn(all[i], dropped_words) || !HasLetter(all[i]))
			continue;
		words[n++] = all[i];
	}
	if (n == 0)
		return;

	if (comma > 0)
	{
		/* "Smith, John A": the last name, then the first */
		*last = Capitalized(words[comma - 1], capitals);
		if (comma < n && (joiner < 0 || joiner > comma))
			*first = Capitalized(words[comma], capitals);
		return;
	}
	if (capitals)
	{
		/* the county roll: LAST FIRST [MIDDLE] [& FIRST2] */
		int			owner_end = joiner > 0 ? joiner : n;

		*last = Capitalized(words[0], true);
		if (owner_end >= 2)
		{
			int			f = 1;

			if (IsInitial(words[1]) && owner_end >= 3 && !IsInitial(words[2]))
				f = 2;
			*first = Capitalized(words[f], true);
		}
		else if (joiner > 0 && joiner < n)
		{
			/* "JOHN & MARY SMITH" in capitals: first names, then the last */
			*first = *last;
			*last = Capitalized(words[n - 1], true);
			if (n - 1 == joiner)
				*first = NULL;
		}
		return;
	}
	/* First [Middle] Last; "John & Mary Smith" shares the last name */
	{
		int			f = 0;

		if (IsInitial(words[0]) && n >= 3)
			f = 1;
		*first = Capitalized(words[f], false);
		if (n >= 2 && n - 1 != f)
			*last = Capitalized(words[n - 1], false);
	}
}

/*
 * crefinder.split_owner_name(owner_name text) returns (first_name text,
 * last_name text).
 */
Datum
crefinder_split_owner_name(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {true, true};
	char	   *first = NULL;
	char	   *last = NULL;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "split_owner_name must return a record");
	desc = BlessTupleDesc(desc);
	if (!PG_ARGISNULL(0))
	{
		text	   *name = PG_GETARG_TEXT_PP(0);

		/* owner names are short; a long one is read for its first words */
		SplitOwnerName(text_to_cstring(name), &first, &last);
	}
	if (first != NULL)
	{
		values[0] = CStringGetTextDatum(first);
		nulls[0] = false;
	}
	if (last != NULL)
	{
		values[1] = CStringGetTextDatum(last);
		nulls[1] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
