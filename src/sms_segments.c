/*
 * sms_segments.c
 *		How many SMS segments a text takes, as carriers count them.
 *
 * SQL: crefinder.sms_segments(text).
 *
 * A text whose every character is in the GSM 03.38 alphabet goes as GSM-7:
 * 160 septets in one segment, else 153 per segment (the rest carries the
 * concatenation header); the extension characters ^ { } \ [ ] ~ | and the
 * euro sign (and form feed) take two septets, and an escape pair is never
 * split across segments.  Any other character makes the whole text UCS-2:
 * 70 UTF-16 code units in one segment, else 67 per segment, a surrogate
 * pair (an emoji) never split.  The empty text takes no segment.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(crefinder_sms_segments);

/* The GSM 03.38 basic alphabet's characters outside printable ASCII. */
static const pg_wchar gsm_basic_extra[] = {
	0x00A3, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC, 0x00F2, 0x00C7,	/* £ ¥ è é ù ì ò Ç */
	0x00D8, 0x00F8, 0x00C5, 0x00E5, 0x0394, 0x03A6, 0x0393, 0x039B,	/* Ø ø Å å Δ Φ Γ Λ */
	0x03A9, 0x03A0, 0x03A8, 0x03A3, 0x0398, 0x039E, 0x00C6, 0x00E6,	/* Ω Π Ψ Σ Θ Ξ Æ æ */
	0x00DF, 0x00C9, 0x00A4, 0x00A1, 0x00C4, 0x00D6, 0x00D1, 0x00DC,	/* ß É ¤ ¡ Ä Ö Ñ Ü */
	0x00A7, 0x00BF, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0			/* § ¿ ä ö ñ ü à */
};

/*
 * GsmSeptets is how many septets c takes in GSM-7: 1 or 2, or 0 when it
 * has no GSM-7 form.
 */
static int
GsmSeptets(pg_wchar c)
{
	if (c == '^' || c == '{' || c == '}' || c == '\\' || c == '[' || c == ']' ||
		c == '~' || c == '|' || c == 0x20AC || c == '\f')
		return 2;
	if (c == '\n' || c == '\r')
		return 1;
	if (c >= 0x20 && c < 0x7F)
		return c == '`' ? 0 : 1;
	for (size_t i = 0; i < lengthof(gsm_basic_extra); i++)
		if (gsm_basic_extra[i] == c)
			return 1;
	return 0;
}

/* Segments of units units each, none of the items (of 1 or 2 units) split. */
static int
Pack(const int *sizes, int n, int single, int per_segment)
{
	int			total = 0;
	int			segments = 1;
	int			used = 0;

	for (int i = 0; i < n; i++)
		total += sizes[i];
	if (total == 0)
		return 0;
	if (total <= single)
		return 1;
	for (int i = 0; i < n; i++)
	{
		if (used + sizes[i] > per_segment)
		{
			segments++;
			used = 0;
		}
		used += sizes[i];
	}
	return segments;
}

Datum
crefinder_sms_segments(PG_FUNCTION_ARGS)
{
	text	   *body = PG_GETARG_TEXT_PP(0);
	int			len = VARSIZE_ANY_EXHDR(body);
	const unsigned char *s = (const unsigned char *) VARDATA_ANY(body);
	pg_wchar   *chars = palloc(sizeof(pg_wchar) * (len + 1));
	int			n;
	int		   *sizes;
	bool		gsm = true;

	/* code points in a UTF-8 database (what crefinder's texts are in) */
	n = pg_mb2wchar_with_len((const char *) s, chars, len);
	sizes = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n && gsm; i++)
		gsm = (sizes[i] = GsmSeptets(chars[i])) > 0;
	if (gsm)
		PG_RETURN_INT32(Pack(sizes, n, 160, 153));
	for (int i = 0; i < n; i++)
		sizes[i] = chars[i] > 0xFFFF ? 2 : 1;
	PG_RETURN_INT32(Pack(sizes, n, 70, 67));
}
