/*
 * template.c
 *		Message templates: {{variable}} placeholders filled from a JSON
 *		object, and nothing else.
 *
 * SQL: crefinder.render(template text, vars jsonb, html boolean) and
 * crefinder.template_variables(template text).
 *
 * A placeholder is "{{", optional spaces, a name ([A-Za-z_][A-Za-z0-9_]*,
 * at most NAMEDATALEN - 1 bytes), optional spaces, optionally "|" and a
 * fallback (at most 200 bytes without "}}", spaces around it trimmed), and
 * "}}"; a template names at most 100 distinct variables.  Both functions
 * are linear in the template and can be cancelled.
 * A variable that is missing, JSON null, or only white space takes the
 * fallback (or nothing).  Values are inserted as they are, never read
 * again as a template, so a value holding "{{x}}" stays that text; with
 * html, values and fallbacks are HTML-escaped.  Text that is not a
 * placeholder is copied unchanged; template_variables() refuses it when it
 * starts like one ("{{" without a well-formed end), so that a template with
 * a typo is refused when a sequence is created, not sent half-filled.
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(crefinder_render);
PG_FUNCTION_INFO_V1(crefinder_template_variables);

/* A fallback is short text; a longer run after "|" is no placeholder. */
#define FALLBACK_MAX_BYTES 200
/* A template names at most this many distinct variables. */
#define VARIABLES_MAX 100

/* One placeholder found at a position of the template. */
typedef struct Placeholder
{
	const char *name;			/* not terminated */
	int			name_len;
	const char *fallback;		/* not terminated; NULL without "|" */
	int			fallback_len;
	int			length;			/* bytes from "{{" to the end of "}}" */
} Placeholder;

static bool
IsNameStart(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool
IsNameChar(char c)
{
	return IsNameStart(c) || (c >= '0' && c <= '9');
}

static bool
IsBlank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * ParsePlaceholder reads a placeholder at s (which starts with "{{"),
 * within end; false when the text there is not one.
 */
static bool
ParsePlaceholder(const char *s, const char *end, Placeholder *ph)
{
	const char *p = s + 2;
	const char *close;

	while (p < end && IsBlank(*p))
		p++;
	if (p >= end || !IsNameStart(*p))
		return false;
	ph->name = p;
	while (p < end && IsNameChar(*p))
		p++;
	ph->name_len = (int) (p - ph->name);
	if (ph->name_len >= NAMEDATALEN)
		return false;
	while (p < end && IsBlank(*p))
		p++;
	ph->fallback = NULL;
	ph->fallback_len = 0;
	if (p < end && *p == '|')
	{
		const char *f = p + 1;
		const char *f_end;

		for (close = f; close + 1 < end && close - f <= FALLBACK_MAX_BYTES; close++)
			if (close[0] == '}' && close[1] == '}')
				break;
		if (close + 1 >= end || close - f > FALLBACK_MAX_BYTES)
			return false;
		f_end = close;
		while (f < f_end && IsBlank(*f))
			f++;
		while (f_end > f && IsBlank(f_end[-1]))
			f_end--;
		/* a fallback is plain text: no placeholder inside one */
		for (const char *q = f; q + 1 < f_end; q++)
			if (q[0] == '{' && q[1] == '{')
				return false;
		ph->fallback = f;
		ph->fallback_len = (int) (f_end - f);
		ph->length = (int) (close + 2 - s);
		return true;
	}
	if (p + 1 < end && p[0] == '}' && p[1] == '}')
	{
		ph->length = (int) (p + 2 - s);
		return true;
	}
	return false;
}

static void
AppendEscaped(StringInfo out, const char *s, int len, bool html)
{
	if (!html)
	{
		appendBinaryStringInfo(out, s, len);
		return;
	}
	for (int i = 0; i < len; i++)
	{
		switch (s[i])
		{
			case '&':
				appendStringInfoString(out, "&amp;");
				break;
			case '<':
				appendStringInfoString(out, "&lt;");
				break;
			case '>':
				appendStringInfoString(out, "&gt;");
				break;
			case '"':
				appendStringInfoString(out, "&quot;");
				break;
			case '\'':
				appendStringInfoString(out, "&#39;");
				break;
			default:
				appendStringInfoChar(out, s[i]);
		}
	}
}

/*
 * VariableText is the text of variable name in vars, or NULL when it is
 * missing, null or only white space.
 */
static char *
VariableText(Jsonb *vars, const char *name, int name_len)
{
	JsonbValue	value;
	char	   *text;

	if (vars == NULL || !JB_ROOT_IS_OBJECT(vars))
		return NULL;
	if (getKeyJsonValueFromContainer(&vars->root, name, name_len, &value) == NULL)
		return NULL;
	switch (value.type)
	{
		case jbvString:
			text = pnstrdup(value.val.string.val, value.val.string.len);
			break;
		case jbvNumeric:
			text = DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(value.val.numeric)));
			break;
		case jbvBool:
			text = pstrdup(value.val.boolean ? "true" : "false");
			break;
		case jbvBinary:
			text = JsonbToCString(NULL, value.val.binary.data, value.val.binary.len);
			break;
		default:
			return NULL;
	}
	for (const char *p = text; *p; p++)
		if (!isspace((unsigned char) *p))
			return text;
	return NULL;
}

/*
 * crefinder.render(template text, vars jsonb, html boolean, max_bytes
 * integer) returns text: NULL when the result would be longer than
 * max_bytes (NULL: no limit), so that a bulk path can refuse one message
 * instead of failing them all.
 */
Datum
crefinder_render(PG_FUNCTION_ARGS)
{
	text	   *template;
	Jsonb	   *vars;
	bool		html;
	int64		max_bytes;
	const char *s;
	const char *end;
	StringInfoData out;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	template = PG_GETARG_TEXT_PP(0);
	vars = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	html = PG_ARGISNULL(2) ? false : PG_GETARG_BOOL(2);
	max_bytes = (PG_NARGS() < 4 || PG_ARGISNULL(3)) ? MaxAllocSize / 2 : Max(PG_GETARG_INT32(3), 0);
	s = VARDATA_ANY(template);
	end = s + VARSIZE_ANY_EXHDR(template);

	initStringInfo(&out);
	while (s < end)
	{
		const char *open = s;
		Placeholder ph;
		char	   *value;

		CHECK_FOR_INTERRUPTS();
		if (out.len > max_bytes)
			PG_RETURN_NULL();
		while (open + 1 < end && !(open[0] == '{' && open[1] == '{'))
			open++;
		if (open + 1 >= end)
		{
			appendBinaryStringInfo(&out, s, (int) (end - s));
			break;
		}
		appendBinaryStringInfo(&out, s, (int) (open - s));
		if (!ParsePlaceholder(open, end, &ph))
		{
			appendBinaryStringInfo(&out, open, 2);
			s = open + 2;
			continue;
		}
		value = VariableText(vars, ph.name, ph.name_len);
		if (value != NULL)
		{
			if ((int64) out.len + (int64) strlen(value) > max_bytes)
				PG_RETURN_NULL();
			AppendEscaped(&out, value, strlen(value), html);
		}
		else if (ph.fallback != NULL)
			AppendEscaped(&out, ph.fallback, ph.fallback_len, html);
		s = open + ph.length;
	}
	if (out.len > max_bytes)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}

/*
 * crefinder.template_variables(template text) returns text[]: the names
 * of its placeholders, each once, in order; 22023 when "{{" starts
 * something that is no placeholder.
 */
Datum
crefinder_template_variables(PG_FUNCTION_ARGS)
{
	text	   *template = PG_GETARG_TEXT_PP(0);
	const char *start = VARDATA_ANY(template);
	const char *s = start;
	const char *end = start + VARSIZE_ANY_EXHDR(template);
	Datum	   *names = NULL;
	int			nnames = 0;
	int			size = 0;

	while (s + 1 < end)
	{
		Placeholder ph;
		bool		seen = false;

		CHECK_FOR_INTERRUPTS();
		if (!(s[0] == '{' && s[1] == '{'))
		{
			s++;
			continue;
		}
		if (!ParsePlaceholder(s, end, &ph))
		{
			int			shown = pg_mbcliplen(s, Min((int) (end - s), 40), 40);

			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("malformed placeholder \"%.*s\"%s",
							shown, s, shown < (int) (end - s) ? "…" : ""),
					 errdetail("A placeholder is {{name}} or {{name | fallback}}; a name is letters, digits and underscores, starting with a letter or underscore."),
					 errhint("Write a literal \"{{\" in another way, e.g. \"{ {\".")));
		}
		for (int i = 0; i < nnames && !seen; i++)
		{
			text	   *known = DatumGetTextPP(names[i]);

			seen = (int) VARSIZE_ANY_EXHDR(known) == ph.name_len
				&& memcmp(VARDATA_ANY(known), ph.name, ph.name_len) == 0;
		}
		if (!seen)
		{
			if (nnames == VARIABLES_MAX)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("a template names at most %d distinct variables", VARIABLES_MAX)));
			if (nnames == size)
			{
				size = Max(8, size * 2);
				names = names == NULL ? palloc(sizeof(Datum) * size)
					: repalloc(names, sizeof(Datum) * size);
			}
			names[nnames++] = PointerGetDatum(cstring_to_text_with_len(ph.name, ph.name_len));
		}
		s += ph.length;
	}
	PG_RETURN_ARRAYTYPE_P(construct_array(names, nnames, TEXTOID, -1, false, TYPALIGN_INT));
}
