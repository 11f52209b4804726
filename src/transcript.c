/*
 * transcript.c
 *		What an AI phone call's transcript says about the owner: interest
 *		on a scale of 1 to 5, whether to follow up, wrong number, opt-out,
 *		and a one-sentence summary.
 *
 * SQL: crefinder.analyze_transcript(text).  A transcript is lines
 * "Speaker: words"; the assistant's lines start with AI:, Assistant:,
 * Bot:, Agent: or Caller:, the owner's with User:, Customer:, Owner: and
 * the like, and a line without a known prefix is the owner's.  Each of
 * the owner's utterances goes through the reply engine (classify.c); a
 * bare "yes" or "no" is read against the assistant's last question ("is
 * this John?" makes a "no" a wrong number, "would you consider an offer?"
 * makes it not interested).  The owner's last stand counts: interest
 * after a refusal is interest, a refusal after interest is a refusal.
 *
 * At most TRANSCRIPT_MAX_BYTES bytes are read.  The summary is composed,
 * never copied: at most a short quote of an unanswered question.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "classify.h"

PG_FUNCTION_INFO_V1(crefinder_analyze_transcript);

#define TRANSCRIPT_MAX_BYTES	65536
#define QUOTE_MAX_BYTES			60

typedef enum Speaker
{
	SPEAKER_AI,
	SPEAKER_OWNER
} Speaker;

static const char *const AiLabels[] = {
	"ai", "assistant", "bot", "agent", "caller", "rep", "representative", "ai assistant",
	"voice assistant",
};

static const char *const OwnerLabels[] = {
	"user", "customer", "owner", "human", "prospect", "lead", "client", "seller",
	"homeowner", "property owner", "callee", "contact", "recipient", "person",
};

static bool
LabelIn(const char *label, int len, const char *const *labels, int nlabels)
{
	for (int i = 0; i < nlabels; i++)
		if (strlen(labels[i]) == (size_t) len && pg_strncasecmp(labels[i], label, len) == 0)
			return true;
	return false;
}

/*
 * ParseLine finds a line's speaker and where its words start: an optional
 * "[00:12]" time, then a known label and ":".
 */
static Speaker
ParseLine(const char *line, int len, int *words)
{
	int			i = 0;
	int			start;
	int			end;

	*words = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '*' || line[i] == '-'))
		i++;
	if (i < len && line[i] == '[')
	{
		int			j = i + 1;

		while (j < len && j - i < 24 && line[j] != ']')
			j++;
		if (j < len && line[j] == ']')
			i = j + 1;
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
	}
	start = i;
	while (i < len && i - start < 24 && (isalpha((unsigned char) line[i]) || line[i] == ' '))
		i++;
	end = i;
	while (end > start && line[end - 1] == ' ')
		end--;
	while (i < len && line[i] == '*')
		i++;
	if (i >= len || line[i] != ':' || end == start)
		return SPEAKER_OWNER;
	if (LabelIn(line + start, end - start, AiLabels, lengthof(AiLabels)))
	{
		*words = i + 1;
		return SPEAKER_AI;
	}
	if (LabelIn(line + start, end - start, OwnerLabels, lengthof(OwnerLabels)))
	{
		*words = i + 1;
		return SPEAKER_OWNER;
	}
	return SPEAKER_OWNER;
}

/* IsNote: whether a line is only a bracketed note ("[call ended]"). */
static bool
IsNote(const char *s, int len)
{
	while (len > 0 && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
		len--;
	return len >= 2 && s[0] == '[' && s[len - 1] == ']' && memchr(s + 1, ']', len - 2) == NULL;
}

/* HasWords: whether s has a letter or a digit (a line of "..." has none). */
static bool
HasWords(const char *s, int len)
{
	for (int i = 0; i < len; i++)
		if (isalnum((unsigned char) s[i]) || ((unsigned char) s[i]) >= 0x80)
			return true;
	return false;
}

typedef struct CallFacts
{
	bool		owner_spoke;
	bool		opted_out;
	bool		hostile;
	bool		wrong_number;
	bool		lead;			/* a wrong number that passes the offer on */
	bool		voicemail;
	bool		interest;		/* an interested utterance after the last refusal */
	int			interest_score; /* its strength */
	bool		any_interest;	/* any sign of interest, even tentative */
	bool		strong;			/* with it: an offer asked for, a price named */
	bool		meeting;		/* a meeting, a visit, a written offer */
	bool		refused;		/* the last stand is a refusal */
	bool		callback;		/* a call back asked for after the last refusal */
	bool		question_open;	/* the owner's last word is an unanswered question */
	const char *question;		/* that question */
	int			question_len;
} CallFacts;

static void
ReadTranscript(const char *text, int len, CallFacts *f)
{
	ReplyContext ctx = RCTX_OTHER;
	int			pos = 0;
	bool		after_question = false;

	memset(f, 0, sizeof(*f));
	while (pos < len)
	{
		int			eol = pos;
		int			words;
		Speaker		speaker;
		const char *line;
		int			linelen;
		ReplyAnalysis a;

		while (eol < len && text[eol] != '\n')
			eol++;
		line = text + pos;
		linelen = eol - pos;
		pos = eol + 1;
		if (IsNote(line, linelen))
			continue;			/* "[call ended]" */
		speaker = ParseLine(line, linelen, &words);
		line += words;
		linelen -= words;
		if (!HasWords(line, linelen))
			continue;

		if (speaker == SPEAKER_AI)
		{
			ctx = crefinder_question_context(line, linelen);
			crefinder_analyze_reply(line, linelen, RCTX_OTHER, &a);
			/* An answer that defers ("someone will get back to you") leaves it open. */
			if (after_question && a.scores[RC_CALLBACK_LATER] == 0)
				f->question_open = false;
			after_question = false;
			continue;
		}

		crefinder_analyze_reply(line, linelen, ctx, &a);
		ctx = RCTX_OTHER;
		f->owner_spoke = true;
		if (a.flags & RF_VOICEMAIL)
			f->voicemail = true;
		if (a.flags & RF_HOSTILE)
			f->hostile = true;
		if (a.flags & RF_LEAD)
			f->lead = true;
		switch (a.cls)
		{
			case RC_OPT_OUT:
				f->opted_out = true;
				/* "wrong number, don't call again" is both */
				if (a.scores[RC_WRONG_NUMBER] >= 4)
					f->wrong_number = true;
				break;
			case RC_WRONG_NUMBER:
				f->wrong_number = true;
				break;
			case RC_NOT_INTERESTED:
				f->refused = true;
				f->interest = f->callback = false;
				f->strong = f->meeting = false;
				f->interest_score = 0;
				break;
			case RC_INTERESTED:
				f->interest = f->any_interest = true;
				f->interest_score = Max(f->interest_score, a.scores[RC_INTERESTED]);
				f->refused = false;
				break;
			case RC_CALLBACK_LATER:
				f->callback = true;
				f->refused = false;
				/* "we might think about selling next year"; a bare "call me" is not */
				if (a.scores[RC_INTERESTED] >= 2)
					f->any_interest = true;
				break;
			case RC_QUESTION:
				f->question_open = after_question = true;
				f->question = line;
				f->question_len = linelen;
				break;
			default:
				break;
		}
		if (a.cls != RC_QUESTION && a.cls != RC_UNKNOWN)
			f->question_open = after_question = false;
		if (f->interest && a.cls != RC_NOT_INTERESTED)
		{
			f->strong |= (a.flags & (RF_STRONG | RF_PRICE)) != 0;
			f->meeting |= (a.flags & RF_MEETING) != 0;
		}
	}
}

/* AppendQuote appends at most QUOTE_MAX_BYTES of s, trimmed, whole characters. */
static void
AppendQuote(StringInfo buf, const char *s, int len)
{
	int			cut;

	while (len > 0 && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\r' || s[len - 1] == '\t'))
		len--;
	/* whole characters only, and never past the line (which may end cut short) */
	cut = pg_encoding_verifymbstr(GetDatabaseEncoding(), s, Min(len, QUOTE_MAX_BYTES));
	for (int i = 0; i < cut; i++)
	{
		unsigned char c = (unsigned char) s[i];

		appendStringInfoChar(buf, (c < 0x20) ? ' ' : (char) c);
	}
	if (cut < len)
		appendStringInfoString(buf, "...");
}

/*
 * crefinder.analyze_transcript(transcript text) returns jsonb
 * {interest_level, needs_follow_up, contains_interest, wrong_number,
 * opted_out, summary}.
 */
Datum
crefinder_analyze_transcript(PG_FUNCTION_ARGS)
{
	text	   *transcript;
	CallFacts	f;
	int			level;
	bool		follow;
	bool		interest;
	StringInfoData summary;
	StringInfoData json;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	transcript = PG_GETARG_TEXT_P_SLICE(0, 0, TRANSCRIPT_MAX_BYTES);
	ReadTranscript(VARDATA_ANY(transcript), VARSIZE_ANY_EXHDR(transcript), &f);

	/*
	 * 1: opted out, wrong number, hostile; 2: not interested; 3: neutral,
	 * unsure, call back later, no answer; 4: interested; 5: interested
	 * and asks for a meeting, a visit or a written offer.  Every call that
	 * may go on (3 and up, or a wrong number that passes the offer on)
	 * needs a follow-up, unless the owner opted out.
	 */
	initStringInfo(&summary);
	interest = false;
	if (f.opted_out)
	{
		level = 1;
		appendStringInfoString(&summary, f.hostile ?
							   "Owner was hostile and asked not to be contacted again." :
							   "Owner asked not to be called again.");
	}
	else if (f.wrong_number)
	{
		level = 1;
		appendStringInfoString(&summary, f.lead ?
							   "Wrong number: the person reached does not own the property, but will pass the offer on." :
							   "Wrong number: the person reached does not own the property.");
	}
	else if (!f.owner_spoke || (f.voicemail && !f.interest && !f.refused && !f.callback))
	{
		level = 3;
		appendStringInfoString(&summary, f.voicemail ? "No answer from the owner (voicemail)." :
							   "No answer from the owner.");
	}
	else if (f.interest && (f.interest_score >= 2 || f.strong || f.meeting))
	{
		interest = true;
		level = f.meeting ? 5 : 4;
		appendStringInfoString(&summary, "Owner is interested");
		if (f.meeting)
			appendStringInfoString(&summary, " and wants a meeting or a written offer");
		else if (f.strong)
			appendStringInfoString(&summary, " and asked for an offer");
		else if (f.callback)
			appendStringInfoString(&summary, " and asked to be called back later");
		appendStringInfoChar(&summary, '.');
	}
	else if (f.refused || f.hostile)
	{
		level = f.hostile ? 1 : 2;
		appendStringInfoString(&summary, f.hostile ? "Owner was hostile and is not interested." :
							   "Owner is not interested.");
	}
	else if (f.callback)
	{
		level = 3;
		appendStringInfoString(&summary, f.any_interest ?
							   "Owner may be interested later and asked to be called back." :
							   "Owner asked to be called back later.");
	}
	else if (f.question_open)
	{
		level = 3;
		appendStringInfoString(&summary, "Owner asked a question that needs an answer: \"");
		AppendQuote(&summary, f.question, f.question_len);
		appendStringInfoString(&summary, "\"");
	}
	else
	{
		level = 3;
		appendStringInfoString(&summary, f.any_interest ? "Owner is unsure but did not say no." :
							   "Owner was neutral or unsure; no clear interest.");
	}
	interest = !f.opted_out && !f.wrong_number && (level >= 4 || (level == 3 && f.any_interest));
	follow = !f.opted_out && (level >= 3 || (f.wrong_number && f.lead) || f.question_open);

	initStringInfo(&json);
	appendStringInfo(&json, "{\"interest_level\": %d, \"needs_follow_up\": %s, "
					 "\"contains_interest\": %s, \"wrong_number\": %s, \"opted_out\": %s, "
					 "\"summary\": ",
					 level, follow ? "true" : "false", interest ? "true" : "false",
					 f.wrong_number ? "true" : "false",
					 f.opted_out ? "true" : "false");
	escape_json(&json, summary.data);
	appendStringInfoChar(&json, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data)));
}
