/*
 * classify.c
 *		Reply understanding: what a property owner's answer to an outreach
 *		text means (opt_out, not_interested, interested, callback_later,
 *		wrong_number, question or unknown).
 *
 * SQL: crefinder.classify_reply(text).  analyze_transcript() (transcript.c)
 * runs the same engine over each of the owner's utterances of a call.
 *
 * The engine, in three steps, each linear in the input:
 *
 *	1. Normalize: at most REPLY_MAX_BYTES bytes are read; ASCII letters are
 *	   lower-cased, accented Latin letters lose their accents, apostrophes
 *	   join ("don't" is "dont"), sentence punctuation ends a clause, and
 *	   a "#" standing alone is the word "number" ("wrong #"), and
 *	   everything else (emoji, symbols, bytes that are not UTF-8 letters)
 *	   separates words.  Runs of three or more of a letter become two;
 *	   single letters that spell a known word are joined ("S-T-O-P"), and
 *	   so are words said one at a time: a full stop, "!" or ellipsis
 *	   between two clauses of one word each does not end a clause ("Take. Me. Off."
 *	   is "take me off"), unless the word is a bare answer ("No. More.
 *	   Texts." is "no", then "more texts").
 *	2. Canonicalize each word: SMS spellings, abbreviations, Spanish forms
 *	   and common misspellings map to one form (Lexicon: "pls" is "please",
 *	   "rn" is "right now", "intrested" is "interested"); a word that is not
 *	   known is tried as a plural, with its doubled letters made single,
 *	   then against a few cue words with one letter missing, added or
 *	   swapped (FuzzyWords).  A word still unknown is a name when it is
 *	   capitalized inside a clause ("No John here").
 *	3. Match the rules, in table order: each is a phrase over canonical
 *	   words (alternatives a/b, optional [a], a gap * of up to GAP_MAX
 *	   words).  A word used by a rule is not used by a later one, so longer
 *	   and more specific phrases come first.  A negator shortly before a
 *	   phrase, in the same clause, gives the rule's negated class instead
 *	   ("not interested", "don't text me", "not opposed").  Each rule adds
 *	   its weight to its class (double after "but"); any opt-out cue makes
 *	   the reply opt_out, else the highest score wins, ties going to the
 *	   earlier class of ReplyClass.
 *
 * A phone's reaction to our own message ('Liked "..."') is unknown.
 *
 * Opt-out comes first: when a reply carries both a request to stop and
 * something milder ("not interested, stop texting"), it is opt_out.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "classify.h"

PG_FUNCTION_INFO_V1(crefinder_classify_reply);

/* Pseudo-classes of the rule table (besides ReplyClass values). */
#define C_NONE	(-1)			/* consumes its words, scores nothing */
#define C_YES	(-2)			/* a bare yes: depends on ReplyContext */
#define C_NO	(-3)			/* a bare no: depends on ReplyContext */
#define C_KEEP	(-4)			/* (negated class) not negatable */

#define OPT		RC_OPT_OUT
#define WRN		RC_WRONG_NUMBER
#define NOT		RC_NOT_INTERESTED
#define CBK		RC_CALLBACK_LATER
#define INT		RC_INTERESTED
#define QST		RC_QUESTION
#define UNK		RC_UNKNOWN
#define NONE	C_NONE
#define YES		C_YES
#define NO		C_NO
#define KEEP	C_KEEP

/* Rule flags used only while matching (the others are in classify.h). */
#define RX_WHOLE	0x10000		/* the rest of the reply is only fillers */
#define RX_NEEDQ	0x20000		/* only when the reply has a "?" */
#define RX_START	0x40000		/* only at the start of a clause */
#define RX_CLAUSE	0x80000		/* the whole clause */
#define RX_END		0x100000	/* only at the end of a clause */
#define RX_NEAR		0x200000	/* negated only by a negator at most 2 words before */
#define RX_ALL		(RX_WHOLE | RX_NEEDQ | RX_START | RX_CLAUSE | RX_END | RX_NEAR)

#define GAP_MAX		3			/* words a "*" may skip */
#define NEG_MAX		4			/* longest negation scope, in words */
#define MAX_TOKENS	(REPLY_MAX_BYTES + 64)	/* words, expansions included */
#define MAX_WORD	40			/* a longer word is no word we know */

/* Token ids: vocabulary ids are >= 0. */
#define TOK_UNKNOWN		(-1)
#define TOK_BOUNDARY	(-2)

typedef struct Rule
{
	const char *phrase;
	int			cls;			/* class when it matches */
	int			neg;			/* class when negated, or KEEP */
	int			weight;
	int			flags;			/* RF_* and RX_* */
	int			neg_weight;		/* weight when negated, if not weight */
} Rule;

/*
 * The rules, in the order they are tried.  Words are canonical (see
 * Lexicon): "text" stands for text, texts, texting, msg, message; "call"
 * for calls, calling; "#prof" for profanity; "#num" and "#price" for
 * numbers and amounts.  "#unk" is any word not known, "#name" one that is
 * capitalized inside a sentence (a name), "#ing" one ending in -ing, and
 * "#b" a clause boundary (punctuation).  Cues after "but" count double:
 * "not interested in lowball offers, but a fair one I'd look at".
 */
static const Rule Rules[] = {
	/* Automatic replies, voicemail greetings, messages sent to the wrong chat. */
	{"do not disturb * driving", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"dont disturb * driving", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"driving * do not disturb", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"not driving", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"see your text when", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"auto/automatic/automated reply/response/responder/text", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"this is an automated", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"out of * office", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"for urgent matters/inquiries/requests/issues", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"sent from my", UNK, KEEP, 3, RF_AUTOREPLY, 0},
	{"not monitored", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"[no] [longer] monitored/unmonitored", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"main office/line/number/desk", UNK, KEEP, 3, RF_AUTOREPLY, 0},
	{"front desk", UNK, KEEP, 3, RF_AUTOREPLY, 0},
	{"thanks for * text/call/contact/reach", UNK, KEEP, 2, RF_AUTOREPLY, 0},
	{"reply/text/send stop * opt * out", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"reply/text/send stop to unsubscribe/cancel/end/quit", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"reply/text/send stop/unsubscribe/cancel", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"receive/accept * text/call", UNK, KEEP, 4, RF_AUTOREPLY, 0},
	{"sorry [#b] i cant talk right now", UNK, KEEP, 4, RF_AUTOREPLY | RX_WHOLE, 0},
	{"leave * text/name/voicemail", UNK, KEEP, 4, RF_VOICEMAIL, 0},
	{"at/after the tone/beep", UNK, KEEP, 4, RF_VOICEMAIL, 0},
	{"mailbox", UNK, KEEP, 4, RF_VOICEMAIL, 0},
	{"voicemail", UNK, KEEP, 1, RF_VOICEMAIL, 0},
	{"you have reach", UNK, KEEP, 3, RF_VOICEMAIL, 0},
	{"not available * now", UNK, KEEP, 2, RF_VOICEMAIL, 0},
	{"cant * to the phone", UNK, KEEP, 3, RF_VOICEMAIL, 0},
	{"record your", UNK, KEEP, 3, RF_VOICEMAIL, 0},
	{"wrong chat/thread/conversation/group", UNK, KEEP, 4, 0, 0},
	{"meant for my/someone/another", UNK, KEEP, 4, 0, 0},
	{"happy/merry new/holidays/thanksgiving/birthday/christmas/easter/year", UNK, KEEP, 4, 0, 0},

	/* Phrases that hold a cue word but mean something else. */
	{"no problem/worries", UNK, KEEP, 1, 0, 0},
	{"no idea", NONE, KEEP, 0, 0, 0},
	{"not sure", NONE, KEEP, 0, 0, 0},
	{"not saying yes", NONE, KEEP, 0, 0, 0},
	{"no one/body * by that name", WRN, KEEP, 4, 0, 0},
	{"no one/body named", WRN, KEEP, 4, 0, 0},
	{"no #name here", WRN, KEEP, 4, 0, 0},
	{"stop by/in/over", INT, KEEP, 2, RF_MEETING, 0},
	{"stop [#b] wait/hold", NONE, KEEP, 0, 0, 0},
	{"stop #ing me/us/my", OPT, KEEP, 3, 0, 0},
	{"stop #ing", NONE, KEEP, 0, 0, 0},
	{"not not", NONE, KEEP, 0, 0, 0},
	{"never say never", INT, KEEP, 3, 0, 0},
	{"wont/dont mind", INT, KEEP, 2, 0, 0},
	{"you never know", INT, KEEP, 2, 0, 0},
	{"never ever", NOT, KEEP, 3, RX_CLAUSE, 0},
	{"what/how do/does/did [you/that/it/this] mean", QST, KEEP, 3, 0, 0},
	{"what * want with", QST, KEEP, 3, 0, 0},
	{"he/she dont text", NONE, KEEP, 0, 0, 0},
	{"belongs to me/us", NONE, KEEP, 0, 0, 0},
	{"what makes you think", QST, KEEP, 3, 0, 0},
	{"depends who/on who", QST, KEEP, 3, 0, 0},
	{"would * say no", NONE, KEEP, 0, 0, 0},
	{"no promises", NONE, KEEP, 0, 0, 0},
	{"look/looking forward", INT, NOT, 2, 0, 0},
	{"forward * them/it/offer/along/to", NONE, KEEP, 0, RF_LEAD, 0},
	{"pass * along/on", NONE, KEEP, 0, RF_LEAD, 0},
	{"have him/her/them call", NONE, KEEP, 0, RF_LEAD, 0},
	{"talk to him/her/them", NONE, KEEP, 0, RF_LEAD, 0},
	{"handles * that/it/this/property", NONE, KEEP, 0, RF_LEAD, 0},
	{"get a * job/life", NOT, KEEP, 3, RF_HOSTILE, 0},
	{"what kind of number/price/money/offer/figure", INT, KEEP, 3, RF_STRONG, 0},
	{"price * talking", INT, KEEP, 3, RF_STRONG, 0},
	{"offer * in writing/write", INT, KEEP, 3, RF_MEETING, 0},
	{"put * in writing/write", INT, KEEP, 3, RF_MEETING, 0},
	{"written offer", INT, KEEP, 3, RF_MEETING, 0},
	{"offer por escrito", INT, KEEP, 3, RF_MEETING, 0},
	{"send someone/somebody", INT, KEEP, 3, RF_MEETING, 0},
	{"venir a verlo/verla/ver", INT, KEEP, 3, RF_MEETING, 0},
	/* "why would I sell?": a refusal, not a question */
	{"why * would/should * sell/part", NOT, KEEP, 4, 0, 0},
	{"why sell", NOT, KEEP, 3, 0, 0},
	{"why * want", QST, KEEP, 3, 0, 0},
	{"why * think * sell", NONE, KEEP, 0, 0, 0},
	{"i was/been thinking about/of", INT, KEEP, 4, 0, 0},
	{"no #b this is #name", WRN, KEEP, 4, 0, 0},
	{"would * say stop", NONE, KEEP, 0, 0, 0},
	{"bus/pit/truck/one stop", NONE, KEEP, 0, 0, 0},
	{"stop sign/light", NONE, KEEP, 0, 0, 0},
	{"cancel * appointment/meeting/close/contract/listing/deal/escrow/order/showing", NONE, KEEP, 0, 0, 0},
	{"quit my/his/her/the job", NONE, KEEP, 0, 0, 0},
	{"credit report", NONE, KEEP, 0, 0, 0},
	{"the/a/city/that/this block", NONE, KEEP, 0, 0, 0},
	{"dont/not/never $reach * before/after/until/till/today/tonight/mornings/evenings/during/past", NONE, KEEP, 0, 0, 0},
	{"#num/couple/few/many $period ago", NONE, KEEP, 0, 0, 0},
	{"said no * last/before/ago/earlier/then/once", NONE, KEEP, 0, 0, 0},
	{"i/we/already/still [already/always/still] said/say/told/tell [you] no/nope", NOT, KEEP, 4, 0, 0},
	{"would i * consider * offer", NONE, KEEP, 0, 0, 0},
	{"keep me posted/updated/informed", INT, KEEP, 2, 0, 0},
	{"keep * in mind", INT, KEEP, 2, 0, 0},
	{"is this * scam/legit/real/joke", QST, KEEP, 3, 0, 0},
	{"is this about/regarding", QST, KEEP, 3, 0, 0},
	{"wont/not say * not interested", INT, KEEP, 3, 0, 0},
	{"wont/not say * interested", NOT, KEEP, 3, 0, 0},
	{"not/wont/never say/saying no", INT, KEEP, 2, 0, 0},
	{"not a no", INT, KEEP, 2, 0, 0},
	{"not now or ever", NOT, KEEP, 4, 0, 0},
	{"not now * ever/never", NOT, KEEP, 4, 0, 0},
	/* plans of their own for the property */
	{"plan * keep/own/hold", NOT, KEEP, 3, 0, 0},
	{"plan/planning/planned/want/intend/intending * keep/develop/build/renovate/rebuild", NOT, INT, 3, 0, 0},
	{"going to keep/hold/develop/build/renovate/rebuild/live/pass it/onto/on/there/this/the/our/my", NOT, INT, 3, 0, 0},
	{"develop/build/renovate/rebuild * ourselves/myself/ourself", NOT, KEEP, 3, 0, 0},
	{"just/recently bought", NOT, KEEP, 2, 0, 0},
	{"if * were mine", WRN, KEEP, 4, 0, 0},
	{"if i [did/actually/really] own", WRN, KEEP, 4, 0, 0},
	/* wishing to own one: not an owner ("I'd love to own a building") */
	{"interested in own", WRN, KEEP, 4, 0, 0},
	{"love/like to own", WRN, KEEP, 4, 0, 0},
	{"wish * own", WRN, KEEP, 4, 0, 0},
	{"own * car/truck/bike/motorcycle/scooter/bicycle/vehicle/honda/toyota/ford/civic/camry/corolla", WRN, KEEP, 3, 0, 0},
	/* where we got their contact, who wants to know */
	{"who * gave/give/sold/provided/shared/passed * number/info/name/contact/information/details/phone", QST, KEEP, 3, 0, 0},
	{"who is asking/inquiring/wondering", QST, KEEP, 3, 0, 0},
	{"who wants to know", QST, KEEP, 3, 0, 0},
	/* refusals: of past offers, idioms and sarcasm ("yeah right") */
	{"turned/turn/turning down * offer/buyer/investor/everyone/everybody/them/all", NOT, INT, 3, 0, 0},
	{"rejected/reject/refused/refuse * offer", NOT, INT, 3, 0, 0},
	{"yes [#b] right", NOT, KEEP, 3, RX_END, 0},
	{"fat chance", NOT, KEEP, 3, 0, 0},
	{"dream on", NOT, KEEP, 3, RX_END, 0},
	{"keep dreaming", NOT, KEEP, 3, 0, 0},
	{"in your dreams", NOT, KEEP, 3, 0, 0},
	{"dead body/hands/hand", NOT, KEEP, 3, 0, 0},
	{"pry * from/out", NOT, KEEP, 3, 0, 0},
	{"and you dont/wont/cant/isnt/havent", NOT, KEEP, 4, RX_END, 0},
	{"another/next life/lifetime", NOT, KEEP, 4, 0, 0},
	{"this life/lifetime", NONE, NOT, 4, 0, 0},
	{"in a million/billion/hundred/thousand year", NONE, NOT, 4, 0, 0},
	{"when/after/once/until i [am/will] [be] dead/die/buried", NOT, KEEP, 4, 0, 0},
	{"pigs fly", NOT, KEEP, 4, 0, 0},
	{"hell freezes", NOT, KEEP, 4, 0, 0},
	{"you [guys/all] [probably/really/could/would] cant/wont/never [ever] [be] [able] [to] afford", NOT, KEEP, 4, 0, 0},
	{"you [guys/all] dont/havent/isnt [got/have] [that/the/enough/this] [kind/much] [of] money/cash/funds", NOT, KEEP, 4, 0, 0},
	{"rather die/burn/starve", NOT, KEEP, 4, 0, 0},
	{"out of your * league/range/budget", NOT, KEEP, 3, 0, 0},
	/* a joke price ("sure, for $50 million lol") */
	{"#price [thousand/million/billion/mil/grand] [dollars/bucks] lol", NOT, KEEP, 4, 0, 0},
	{"#num/a thousand/million/billion/mil/grand [dollars/bucks] lol", NOT, KEEP, 4, 0, 0},
	{"billion/trillion/gazillion/zillion/bajillion/kajillion/jillion", NOT, KEEP, 3, 0, 0},
	/* offers received and refused */
	{"been/had/get/got/getting/gotten offer", NONE, KEEP, 0, 0, 0},
	{"appreciate/thanks [for] [the/your] offer [#b] but", NONE, KEEP, 0, 0, 0},
	/* content with what they have */
	{"happy/content/comfortable/satisfied/fine/good where * am/are/is/stand", NOT, INT, 3, 0, 2},
	{"happy/content/satisfied with what i/we have/got/own", NOT, INT, 3, 0, 2},
	{"happy/content/satisfied with [the/my/our/this] [current] $prop/investment/tenants/situation/income/things", NOT, INT, 3, 0, 2},
	/* a hedged yes with a condition ("possibly, but I'd need ...") */
	{"maybe/possibly/perhaps/potentially [#b] but", INT, KEEP, 3, 0, 0},
	{"planning/planned/plan to list/sell", INT, NOT, 2, 0, 3},

	/* Opt-out: any reasonable request to stop. */
	{"no/nope stop", OPT, KEEP, 3, 0, 0},
	{"stop", OPT, NONE, 3, RX_NEAR, 0},
	{"unsubscribe", OPT, KEEP, 3, 0, 0},
	{"opt * out", OPT, KEEP, 3, 0, 0},
	{"revoke", OPT, KEEP, 3, 0, 0},
	{"cease/desist", OPT, KEEP, 3, 0, 0},
	{"cancelar", OPT, KEEP, 3, 0, 0},
	{"basta", OPT, KEEP, 3, 0, 0},
	{"de baja", OPT, KEEP, 3, 0, 0},
	{"end", OPT, KEEP, 3, RX_WHOLE, 0},
	{"alto", OPT, KEEP, 3, RX_WHOLE, 0},
	{"baja", OPT, KEEP, 3, RX_WHOLE, 0},
	{"quit", OPT, NONE, 3, RX_NEAR, 0},
	{"cancel", OPT, NONE, 3, RX_NEAR, 0},
	{"knock/cut it off/out", OPT, KEEP, 3, 0, 0},
	{"remove", OPT, KEEP, 3, 0, 0},
	{"take * off", OPT, KEEP, 3, 0, 0},
	{"off * list", OPT, KEEP, 3, 0, 0},
	{"lose/forget * number", OPT, KEEP, 3, 0, 0},
	{"forget about me/us", OPT, KEEP, 3, 0, 0},
	{"leave * alone", OPT, KEEP, 3, 0, 0},
	{"go away", OPT, KEEP, 3, 0, 0},
	{"get lost", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"back/buzz/piss/bugger off", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"go to hell", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"screw you/off", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"shut up", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"shove it", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"drop dead", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"#prof", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"spam", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"report", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"block", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"harass", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"bother", OPT, KEEP, 3, 0, 0},
	{"sue you/u/your/them", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"will sue", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"lawyer/attorney/tcpa/fcc/ftc/bbb/illegal", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"better business bureau", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"do not call", OPT, KEEP, 3, 0, 0},
	{"do not disturb", OPT, KEEP, 3, 0, 0},
	{"no more", OPT, KEEP, 3, 0, 0},
	{"more $reach", OPT, KEEP, 3, 0, 0},
	{"#num more times", OPT, KEEP, 3, 0, 0},
	{"no $reach", OPT, KEEP, 3, 0, 0},
	{"dont/never/not contact", OPT, KEEP, 3, 0, 0},
	{"never * again", OPT, KEEP, 3, 0, 0},
	{"dont want * $reach/contact/communication/correspondence", OPT, KEEP, 3, 0, 0},
	{"no further/additional/future contact/communication/correspondence/$reach", OPT, KEEP, 3, 0, 0},
	{"refrain * $reach/contact/communication/correspondence", OPT, KEEP, 3, 0, 0},
	{"refrain", OPT, KEEP, 3, RX_END, 0},
	/* threats: "one more of these and I'm filing a complaint" */
	{"file/lodge/submit/make * complaint", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"complaint against/with/to/about", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"against the law", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"get/receive/see/getting/receiving/gets one more $reach/of", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"get/receive/see/getting/receiving/gets another $reach", OPT, KEEP, 3, RF_HOSTILE, 0},
	{"enough already", OPT, KEEP, 3, 0, 0},
	{"that is enough", OPT, KEEP, 3, 0, 0},
	{"enough is enough", OPT, KEEP, 3, 0, 0},
	{"enough", OPT, KEEP, 3, RX_WHOLE, 0},
	{"enough with/of * text/texts/textin/message/messages/call/calls/calling/contact", OPT, KEEP, 3, 0, 0},
	{"no * escribir/contactar/llamar/mandar/molestar", OPT, KEEP, 3, 0, 0},
	{"hear from you/anyone/anybody/people/them/this", NONE, OPT, 3, 0, 0},
	{"en paz", OPT, KEEP, 3, 0, 0},
	{"deja/para de", OPT, KEEP, 3, 0, 0},
	{"borrar", OPT, KEEP, 3, 0, 0},
	{"no * mas mensaje/llamar", OPT, KEEP, 3, 0, 0},
	{"molestar", OPT, KEEP, 3, 0, 0},

	/* Wrong number: not the owner, or not the person. */
	{"wrong number/person/guy/lady/man/owner/address/contact/name/one/people/persona/$prop/#name", WRN, KEEP, 4, 0, 0},
	{"wrong * number/person/guy/owner/address/$prop", WRN, KEEP, 4, 0, 0},
	{"you have * wrong", WRN, KEEP, 3, 0, 0},
	{"equivocado", WRN, KEEP, 4, 0, 0},
	{"by that name", WRN, KEEP, 4, 0, 0},
	{"no soy", WRN, KEEP, 4, 0, 0},
	{"no es/son mine/ours", WRN, KEEP, 4, 0, 0},
	{"no es * number", WRN, KEEP, 4, 0, 0},
	{"ningun #unk", WRN, KEEP, 4, 0, 0},
	{"not #name", WRN, KEEP, 3, 0, 0},
	{"this isnt #unk", WRN, KEEP, 3, RX_END, 0},
	{"this is not #unk", WRN, KEEP, 3, RX_END, 0},
	{"not her/him", WRN, KEEP, 3, 0, 0},
	{"changed * number", WRN, KEEP, 3, 0, 0},
	{"he/she passed", WRN, KEEP, 3, 0, 0},
	{"$kin/family own", WRN, KEEP, 3, 0, 0},
	{"looking/asking for my $kin", WRN, KEEP, 4, 0, 0},
	{"you [are] want/need/mean my $kin", WRN, KEEP, 4, 0, 0},
	{"my $kin $prop", WRN, KEEP, 3, 0, 0},
	{"dont know any/a/an/anyone/anybody [named/called] #name", WRN, KEEP, 4, 0, 0},
	{"business line", WRN, KEEP, 3, 0, 0},
	{"number * belongs", WRN, KEEP, 4, 0, 0},
	{"used to belong/belongs/own", WRN, KEEP, 4, 0, 0},
	{"used to be mine/his/her/hers/their/theirs/ours/our", WRN, KEEP, 4, 0, 0},
	{"belongs to", WRN, KEEP, 3, 0, 0},
	{"closed * sale/escrow", WRN, KEEP, 4, 0, 0},
	{"sale * closed/went through", WRN, KEEP, 4, 0, 0},
	{"lost * to/in/at * foreclosure/bank/divorce/auction/tax/taxes", WRN, KEEP, 4, 0, 0},
	{"foreclosed on", WRN, KEEP, 3, 0, 0},
	{"bank took/owns/has", WRN, KEEP, 3, 0, 0},
	{"dissolved", WRN, KEEP, 3, 0, 0},
	{"involved", NONE, WRN, 3, 0, 0},
	{"old/outdated/previous/former info/information/records/data/number/phone/contact/line/list", WRN, KEEP, 3, 0, 0},
	{"he/she/they/$kin [no] dont/longer/never use/have * phone/number/line", WRN, KEEP, 4, 0, 0},
	{"not/isnt his/her/their number/phone/line", WRN, KEEP, 3, 0, 0},
	{"not/isnt my name", WRN, KEEP, 4, 0, 0},
	{"my name [is] isnt/not", WRN, KEEP, 3, 0, 0},
	{"that/this is my $kin", WRN, KEEP, 3, 0, 0},
	{"not * person/guy/lady/man", WRN, KEEP, 3, 0, 0},
	{"nothing to do with", WRN, KEEP, 3, 0, 0},
	{"anything to do with", NONE, WRN, 3, 0, 0},
	{"i [just/only] rent", WRN, KEEP, 4, 0, 0},
	{"property manager/management", WRN, KEEP, 3, 0, 0},
	{"i am * renter/tenant", WRN, KEEP, 4, 0, 0},
	{"want/need/call/ask/contact the landlord/owner", WRN, KEEP, 3, 0, 0},
	{"you [are] mean my", WRN, KEEP, 3, 0, 0},
	{"neighbor", WRN, KEEP, 2, 0, 0},
	{"ex husband/wife/boyfriend/girlfriend", WRN, KEEP, 2, 0, 0},
	{"only own * house/home", WRN, KEEP, 3, 0, 0},
	{"my landlord/landlady", WRN, KEEP, 3, 0, 0},
	{"owner is me/myself", NONE, KEEP, 0, 0, 0},
	{"owner is/was", WRN, KEEP, 3, 0, 0},
	{"this is a * phone/number/line for", WRN, KEEP, 3, 0, 0},
	{"got/get * number * new/recently/last/ago", WRN, KEEP, 3, 0, 0},
	{"new to * number", WRN, KEEP, 3, 0, 0},
	{"dont know who * looking/asking/talking/trying/want/mean/after", WRN, KEEP, 3, 0, 0},
	{"think you [are] mean/thinking", WRN, KEEP, 3, 0, 0},
	{"different/another town/city/state/county/street/family", WRN, KEEP, 3, 0, 0},
	{"i live in #unk", WRN, KEEP, 2, 0, 0},
	{"i [do] own", INT, WRN, 2, 0, 0},
	{"owner/landlord/landlady", NONE, WRN, 3, 0, 0},
	{"own", NONE, WRN, 3, 0, 0},
	{"dueno", NONE, WRN, 3, 0, 0},
	{"sold", WRN, NONE, 3, 0, 0},
	{"vendi", WRN, NONE, 3, 0, 0},
	{"not mine", WRN, KEEP, 3, 0, 0},
	{"not/isnt my $prop", WRN, KEEP, 3, 0, 0},
	{"no es my $prop", WRN, KEEP, 3, 0, 0},
	{"dont know * named/called", WRN, KEEP, 3, 0, 0},
	{"dont know who that is/was", WRN, KEEP, 3, 0, 0},
	{"never heard of", WRN, KEEP, 2, 0, 0},
	{"passed away/on", WRN, KEEP, 3, 0, 0},
	{"deceased/died", WRN, KEEP, 3, 0, 0},
	{"new number", WRN, KEEP, 3, 0, 0},
	{"just got * number", WRN, KEEP, 3, 0, 0},
	{"not me", WRN, KEEP, 2, 0, 0},
	{"wrong", WRN, NONE, 2, 0, 0},

	/* Not interested. */
	{"no thanks/gracias", NOT, KEEP, 3, 0, 0},
	{"yes [#b] no/nope", NOT, KEEP, 3, RX_END, 0},
	{"happen", NONE, NOT, 3, 0, 0},
	{"going/moving anywhere", NONE, NOT, 3, 0, 0},
	{"staying put", NOT, KEEP, 3, 0, 0},
	{"budge/budging", NONE, NOT, 3, 0, 0},
	{"thanks but no", NOT, KEEP, 3, 0, 0},
	{"nope", NOT, KEEP, 2, 0, 0},
	{"pass", NOT, KEEP, 2, 0, 0},
	{"no way", NOT, KEEP, 3, 0, 0},
	{"ni loco/loca", NOT, KEEP, 3, 0, 0},
	{"not a chance", NOT, KEEP, 3, 0, 0},
	{"not even", NOT, KEEP, 3, 0, 0},
	{"hell no", NOT, KEEP, 3, 0, 0},
	{"absolutely/definitely/certainly/course/surely not", NOT, KEEP, 3, 0, 0},
	{"rather not", NOT, KEEP, 3, 0, 0},
	{"never", NOT, KEEP, 2, RX_CLAUSE, 0},
	{"negative", NOT, KEEP, 2, RX_CLAUSE, 0},
	{"decline", NOT, KEEP, 3, 0, 0},
	{"dont think so", NOT, KEEP, 3, 0, 0},
	{"no deal", NOT, KEEP, 3, 0, 0},
	{"not right now", NOT, KEEP, 2, 0, 0},
	{"not now", NOT, KEEP, 2, 0, 0},
	{"not at the/this moment/time/point", NOT, KEEP, 2, 0, 0},
	{"dont think * sell", NOT, KEEP, 3, 0, 0},
	{"interest/interested in/to/of sell/list", INT, NOT, 3, 0, 0},
	{"uninterested", NOT, INT, 3, 0, 0},
	{"interested", INT, NOT, 3, 0, 0},
	{"interest", INT, NOT, 2, 0, 0},
	{"interesa", INT, NOT, 3, 0, 0},
	{"interesting", UNK, KEEP, 2, RX_WHOLE, 0},
	{"interesting", INT, NOT, 2, 0, 0},
	{"opposed/against/averse/adverse", NOT, INT, 2, 0, 3},
	{"not for this one/property/building/place", NOT, KEEP, 3, 0, 0},
	{"for/#num sale", INT, NOT, 2, 0, 0},
	{"en venta", INT, NOT, 2, 0, 0},
	{"in/on the market [to/for] [sell/list]", INT, NOT, 2, 0, 3},
	{"would/might/could/may sell", INT, NOT, 3, 0, 0},
	{"sell", INT, NOT, 1, 0, 3},
	{"seller", INT, NOT, 1, 0, 3},
	{"vender", INT, NOT, 1, 0, 3},
	{"looking", NONE, NOT, 2, 0, 0},
	{"keep/keeping it/the/my/this/our", NOT, KEEP, 2, 0, 0},
	{"hold", NOT, KEEP, 2, 0, 0},
	{"it stays", NOT, KEEP, 2, 0, 0},
	{"i am good", NOT, KEEP, 2, 0, 0},
	{"we are good", NOT, KEEP, 2, 0, 0},
	{"were good", NOT, KEEP, 2, 0, 0},
	{"all set", NOT, KEEP, 1, 0, 0},

	/* Call back later. */
	{"not yet", CBK, KEEP, 2, 0, 0},
	{"not ready", CBK, KEEP, 2, 0, 0},
	{"not * good time", CBK, KEEP, 3, 0, 0},
	{"bad time", CBK, KEEP, 3, 0, 0},
	{"busy", CBK, KEEP, 2, 0, 0},
	{"ocupado", CBK, KEEP, 2, 0, 0},
	{"at work", CBK, KEEP, 2, 0, 0},
	{"in a meeting", CBK, KEEP, 2, 0, 0},
	{"traveling/probate", CBK, KEEP, 2, 0, 0},
	{"on vacation/holiday", CBK, KEEP, 1, 0, 0},
	{"driving", CBK, KEEP, 1, 0, 0},
	{"$reach * back", CBK, OPT, 2, 0, 0},
	{"$reach * out * then/when/once/after/later/around/closer/next", CBK, OPT, 3, 0, 0},
	{"$reach [me/us] then", CBK, OPT, 3, 0, 0},
	{"lease/contract/mortgage * up/ends/expires/over/done", CBK, KEEP, 2, 0, 0},
	{"let you know", CBK, KEEP, 2, 0, 0},
	{"when/once i/we * ready", CBK, KEEP, 2, 0, 0},
	/* a better time: "weekends are better" (naming one for a call is weaker) */
	{"$daytime [is/are/would/will/work] [be] better/best/easier for/to [a] call/talk/chat/meet", CBK, KEEP, 1, 0, 0},
	{"$daytime [is/are/would/will/work] [be] better/best/easier", CBK, KEEP, 3, 0, 0},
	{"better/best/easier on/in/during/after * $daytime", CBK, KEEP, 3, 0, 0},
	{"ahora no puedo/podemos", CBK, KEEP, 3, 0, 0},
	{"no puedo/podemos [hablar] ahora", CBK, KEEP, 3, 0, 0},
	{"ask/try/hit/check * me * again/after/later/in/next/when/once/up", CBK, KEEP, 3, 0, 0},
	{"ask/try * again/after/later/then/tomorrow/tonight/next", CBK, KEEP, 3, 0, 0},
	{"hit me up", CBK, KEEP, 1, 0, 0},
	{"later this/next $period", CBK, KEEP, 4, 0, 0},
	{"later", CBK, KEEP, 3, 0, 0},
	{"mas tarde", CBK, KEEP, 3, 0, 0},
	{"manana", CBK, KEEP, 2, 0, 0},
	{"proxima", CBK, KEEP, 3, 0, 0},
	{"en/unos/#num * mes/semana/ano/dia", CBK, KEEP, 3, 0, 0},
	{"not this $period", CBK, KEEP, 3, 0, 0},
	{"next $period", CBK, NOT, 3, 0, 0},
	{"new year", CBK, KEEP, 3, 0, 0},
	{"in the afternoon/morning/evening", CBK, KEEP, 2, 0, 0},
	{"this evening/afternoon/weekend", CBK, KEEP, 2, 0, 0},
	{"tomorrow/tonight", CBK, KEEP, 3, 0, 0},
	{"few/couple $period", CBK, KEEP, 3, 0, 0},
	{"in a/one/#num/an $period/hour", CBK, KEEP, 3, 0, 0},
	{"in $period", CBK, KEEP, 3, 0, 0},
	{"january/february/march/april/june/july/august/september/october/november/december", CBK, KEEP, 2, 0, 0},
	{"monday/tuesday/wednesday/thursday/friday/saturday/sunday", CBK, KEEP, 2, 0, 0},
	{"spring/summer/fall/winter", CBK, KEEP, 2, 0, 0},
	{"end/start/beginning/middle of * $period", CBK, KEEP, 3, 0, 0},
	{"maybe when/once/after", CBK, KEEP, 3, 0, 0},
	{"after/until/till/past/once/when * $when", CBK, KEEP, 2, 0, 0},
	{"when i retire", CBK, KEEP, 3, 0, 0},
	{"once * settled/done/over/finished", CBK, KEEP, 2, 0, 0},
	{"after", CBK, KEEP, 1, RX_START, 0},
	{"another/other/different time/day", CBK, KEEP, 2, 0, 0},
	{"get back to you", CBK, KEEP, 2, 0, 0},
	{"future", CBK, KEEP, 2, 0, 0},
	{"down the road", CBK, KEEP, 2, 0, 0},
	{"someday/eventually/sometime", CBK, KEEP, 1, 0, 0},
	{"check back/in", CBK, KEEP, 2, 0, 0},
	{"circle back", CBK, KEEP, 2, 0, 0},
	{"follow up", CBK, KEEP, 1, 0, 0},
	{"touch base", CBK, KEEP, 1, 0, 0},
	{"remind me", CBK, KEEP, 2, 0, 0},
	{"give me * time/$period", CBK, KEEP, 3, 0, 0},
	{"think about it", CBK, KEEP, 2, 0, 0},
	{"talk to my", CBK, KEEP, 1, 0, 0},

	/* Interested. */
	{"who * offer", QST, KEEP, 3, 0, 0},
	{"make * offer", INT, NOT, 3, RF_STRONG, 0},
	{"send * offer", INT, NOT, 3, RF_STRONG, 0},
	{"what * offer", INT, KEEP, 3, RF_STRONG, 0},
	{"how much", INT, KEEP, 3, RF_STRONG, 0},
	{"cuanto", INT, KEEP, 3, RF_STRONG, 0},
	{"what * pay", INT, KEEP, 3, RF_STRONG, 0},
	{"what kind of number", INT, KEEP, 3, RF_STRONG, 0},
	{"number * talking", INT, KEEP, 3, RF_STRONG, 0},
	{"are we talking", INT, KEEP, 2, RX_END, 0},
	{"would you pay/offer", INT, KEEP, 3, RF_STRONG, 0},
	{"give/throw/shoot/send me * number/price/offer/figure/quote", INT, KEEP, 3, RF_STRONG, 0},
	{"best offer", INT, KEEP, 3, RF_STRONG, 0},
	{"loi", INT, KEEP, 3, RF_MEETING, 0},
	{"in writing/write", INT, KEEP, 1, 0, 0},
	{"if you are serious", INT, KEEP, 2, 0, 0},
	{"lets/let [me/us] hear * it/offer/number/numbers/price/figure/more/proposal/them/that", INT, KEEP, 3, 0, 0},
	{"lets/let [me/us] see * offer/number/numbers/price/figure/proposal", INT, KEEP, 3, 0, 0},
	{"like/love to hear * offer/number/numbers/price/figure/proposal/more/it", INT, KEEP, 3, 0, 0},
	{"do/set/hop/jump/schedule/arrange/setup [up/on] a/an [quick/short/brief/phone] call/zoom", INT, KEEP, 3, RF_MEETING, 0},
	{"could/might/may be", INT, KEEP, 2, RX_CLAUSE, 0},
	{"offer", INT, NOT, 2, 0, 0},
	{"open to", INT, NOT, 2, 0, 0},
	{"i am open", INT, NOT, 2, 0, 0},
	{"entertain", INT, NOT, 2, 0, 0},
	{"consider", INT, NOT, 2, 0, 0},
	{"willing", INT, NOT, 2, 0, 0},
	{"depends", INT, KEEP, 2, 0, 0},
	{"right price", INT, KEEP, 3, 0, 0},
	{"price is right", INT, KEEP, 3, 0, 0},
	{"if the number/price * good/right", INT, KEEP, 3, 0, 0},
	{"worth my while", INT, KEEP, 3, 0, 0},
	{"price", INT, KEEP, 1, 0, 0},
	{"tell me more", INT, KEEP, 3, 0, 0},
	{"more info/information/details", INT, KEEP, 2, 0, 0},
	{"send * info/information/details/something/proposal/it", INT, KEEP, 2, 0, 0},
	{"hear * out", INT, NOT, 3, 0, 0},
	{"look at/into", INT, NOT, 2, 0, 0},
	{"still buy/interested/looking", INT, KEEP, 3, 0, 0},
	{"things * changed", INT, KEEP, 2, 0, 0},
	{"good timing", INT, KEEP, 3, 0, 0},
	{"list it/the", INT, NOT, 3, 0, 0},
	{"thinking about/of * it/sell/list/listing", INT, NOT, 2, 0, 0},
	{"listing", INT, NOT, 2, 0, 0},
	{"i might/may", INT, KEEP, 2, 0, 0},
	{"you want * it/them/all/one", INT, KEEP, 2, 0, 0},
	{"would you take/buy", INT, KEEP, 2, 0, 0},
	{"if you are buy", INT, KEEP, 3, 0, 0},
	{"cash/close", INT, KEEP, 2, 0, 0},
	{"as is", INT, KEEP, 2, 0, 0},
	{"lets talk", INT, KEEP, 3, 0, 0},
	{"talk", INT, NOT, 1, 0, 0},
	{"i am in", INT, KEEP, 3, RX_END, 0},
	{"meet/appointment/schedule/visit/tour/showing", INT, NOT, 2, RF_MEETING, 0},
	{"come see/by/look/out", INT, KEEP, 2, RF_MEETING, 0},
	{"maybe/possibly/perhaps/potentially/probably", INT, KEEP, 1, 0, 0},
	{"tal vez", INT, KEEP, 1, 0, 0},
	{"quizas", INT, KEEP, 1, 0, 0},
	{"sounds good/great/interesting", INT, KEEP, 2, 0, 0},
	{"why not", INT, KEEP, 2, 0, 0},
	{"go ahead", INT, KEEP, 1, 0, 0},
	{"i am listening", INT, KEEP, 2, 0, 0},
	{"i will/would/can listen", INT, NOT, 2, 0, 0},
	{"all ears", INT, KEEP, 2, 0, 0},
	{"what * in mind", INT, KEEP, 2, 0, 0},
	{"#price", INT, KEEP, 2, RF_PRICE, 0},
	{"#num thousand/million/grand/k/mil/m", INT, KEEP, 2, RF_PRICE, 0},

	/* Questions. */
	{"who * this", QST, KEEP, 3, 0, 0},
	{"who are you", QST, KEEP, 3, 0, 0},
	{"who you are", QST, KEEP, 3, 0, 0},
	{"who * $reach", QST, KEEP, 3, RX_START, 0},
	{"how/where * get/find/have/got * number/info/name/contact/information/details/phone/me", QST, KEEP, 3, 0, 0},
	{"de donde", QST, KEEP, 3, 0, 0},
	{"quien", QST, KEEP, 3, 0, 0},
	{"que * empresa/compania", QST, KEEP, 3, 0, 0},
	{"que/cual $prop/compania/empresa", QST, KEEP, 3, 0, 0},
	{"what/which [kind/type/sort] [of] company/business/firm/agency/outfit/investor/buyer/fund/group/realtor/agent/broker/developer/organization/wholesaler", QST, KEEP, 3, 0, 0},
	{"do/are you [guys/all] work/working with/for", QST, KEEP, 3, RX_START, 0},
	{"are you [guys/all] with/from", QST, KEEP, 3, 0, 0},
	{"same guy/guys/person/people/company/man/woman/lady/outfit/investor/buyer/group/team who/that/from/as", QST, KEEP, 3, 0, 0},
	{"are/is you/this/it [the] same", QST, KEEP, 3, 0, 0},
	{"your company", QST, KEEP, 3, 0, 0},
	{"before i answer/decide/respond", QST, KEEP, 2, 0, 0},
	{"who * work for/with", QST, KEEP, 3, 0, 0},
	{"what * about/regarding", QST, KEEP, 3, 0, 0},
	{"what/which [kind/type/sort] [of] $prop/address", QST, KEEP, 3, 0, 0},
	{"which one/ones", QST, KEEP, 3, RX_NEEDQ, 0},
	{"is this #name", QST, KEEP, 3, RX_NEEDQ, 0},
	{"scam", QST, KEEP, 2, 0, 0},
	{"are you * realtor/agent/investor/broker/bot/robot/person/human/ai/real/company/wholesaler", QST, KEEP, 3, 0, 0},
	{"what do you want", QST, KEEP, 2, 0, 0},
	{"what is your name", QST, KEEP, 3, 0, 0},
	{"why * $reach", QST, KEEP, 2, 0, 0},
	{"how do/did/does/would/could you/anyone [even/really/actually/guys/all] know", QST, KEEP, 3, 0, 0},
	{"how/where * find out", QST, KEEP, 3, 0, 0},
	{"what is this", QST, KEEP, 2, 0, 0},
	{"email/text/send me * something/info/information/details/offer/it/numbers/number", INT, OPT, 2, 0, 0},
	{"$reach me/us", INT, OPT, 1, 0, 0},
	{"discuss", INT, KEEP, 2, 0, 0},
	{"wont hurt", INT, KEEP, 1, 0, 0},
	{"persuaded/convinced/tempted/persuade/convince/tempt", INT, NOT, 2, 0, 0},
	{"might/may/could * consider/think", INT, NOT, 2, 0, 0},
	{"unload/offload", INT, NOT, 3, 0, 0},
	{"want out", INT, KEEP, 3, 0, 0},
	{"get rid of", INT, NOT, 3, 0, 0},
	{"i have thought about it", INT, KEEP, 1, 0, 0},
	{"not sure * ready", CBK, KEEP, 2, 0, 0},
	{"$reach", NONE, OPT, 3, 0, 0},
	{"contact me/us/this/again/anymore/ever", INT, OPT, 1, 0, 0},
	{"wtf", QST, KEEP, 1, RF_HOSTILE, 0},
	{"who/what/why/how/where/when/which", QST, KEEP, 1, RX_NEEDQ, 0},
	{"is/are/do/does/did/can/could/would/will", QST, KEEP, 2, RX_NEEDQ | RX_START, 0},

	/* Acknowledgements, then bare yes and no. */
	{"ok/thanks/lol/cool", UNK, KEEP, 1, 0, 0},
	{"sure thing", YES, KEEP, 2, 0, 0},
	{"sure", YES, KEEP, 1, 0, 0},
	{"of course", YES, KEEP, 1, 0, 0},
	{"absolutely/definitely", YES, KEEP, 1, 0, 0},
	{"yes", YES, KEEP, 2, 0, 0},
	{"no", NO, KEEP, 1, 0, 0},
};

/*
 * Rules over an assistant's question on a call: what a "yes" or "no"
 * that follows it answers (crefinder_question_context).
 */
static const Rule ContextRules[] = {
	{"good/bad/better time", NONE, KEEP, 0, RF_CTX_TIME, 0},
	{"is now", NONE, KEEP, 0, RF_CTX_TIME, 0},
	{"right now", NONE, KEEP, 0, RF_CTX_TIME, 0},
	{"interested/interest/consider/sell/offer/open/meet/schedule/appointment/send", NONE, KEEP, 0, RF_CTX_OFFER, 0},
	{"is this", NONE, KEEP, 0, RF_CTX_IDENTITY, 0},
	{"am i speaking/talking", NONE, KEEP, 0, RF_CTX_IDENTITY, 0},
	{"speaking with/to", NONE, KEEP, 0, RF_CTX_IDENTITY, 0},
	{"owner/own/dueno", NONE, KEEP, 0, RF_CTX_IDENTITY, 0},
};

/* Macros usable as one element of a rule ("$reach"). */
typedef struct Macro
{
	const char *name;
	const char *words;
} Macro;

static const Macro Macros[] = {
	{"$reach", "text/call/email/reach/ping/solicit/write"},
	{"$prop", "property/building/house/home/place/lot/land/unit/plaza/parcel/warehouse/complex/store/apartment"},
	{"$period", "day/week/weekend/month/year/quarter/season/spring/summer/fall/winter/monday/tuesday/wednesday/thursday/friday/saturday/sunday/january/february/march/april/may/june/july/august/september/october/november/december"},
	{"$kin", "husband/wife/father/mother/dad/mom/mum/son/daughter/brother/sister/parents/grandma/grandpa/grandmother/grandfather/uncle/aunt/cousin/nephew/niece/stepdad/stepmom/landlord/boss/roommate"},
	/* a time of day or of the year ($period without "may", a verb too) */
	{"$daytime", "morning/mornings/evening/evenings/afternoon/afternoons/night/nights/lunch/weekday/weekdays/day/week/weekend/month/year/quarter/spring/summer/fall/winter/monday/tuesday/wednesday/thursday/friday/saturday/sunday/january/february/march/april/june/july/august/september/october/november/december"},
	{"$when", "season/holidays/holiday/election/new/first/#num/$period/lunch/work/noon/dinner/school/retire/kids/tax/taxes/market/probate/divorce/tenant/lease/surgery/baby/move/settled"},
};

/*
 * Lexicon: a word as people type it, and its canonical form (one or more
 * words; "" drops the word).
 */
typedef struct LexEntry
{
	const char *variant;
	const char *canonical;
} LexEntry;

static const LexEntry Lexicon[] = {
	/* contractions and pronouns (apostrophes are already gone) */
	{"im", "i am"}, {"iam", "i am"}, {"ive", "i have"}, {"id", "i would"}, {"ill", "i will"},
	{"youre", "you are"}, {"ur", "your"}, {"yur", "your"}, {"yor", "your"}, {"u", "you"},
	{"yu", "you"}, {"youll", "you will"}, {"youve", "you have"}, {"thats", "that is"},
	{"its", "it is"}, {"whats", "what is"}, {"wats", "what is"}, {"wat", "what"},
	{"wut", "what"}, {"wht", "what"}, {"whos", "who is"}, {"hows", "how is"},
	{"wheres", "where is"}, {"whys", "why is"}, {"r", "are"}, {"lets", "lets"},
	{"letme", "let me"}, {"lemme", "let me"}, {"gimme", "give me"}, {"gonna", "going to"},
	{"wanna", "want to"}, {"gotta", "got to"}, {"dunno", "dont know"}, {"idk", "i dont know"},
	{"nvm", "never mind"}, {"dnc", "do not call"}, {"dnd", "do not disturb"},
	{"doesnt", "dont"}, {"didnt", "dont"}, {"dnt", "dont"}, {"dont", "dont"}, {"doent", "dont"},
	{"cannot", "cant"}, {"wouldnt", "wont"}, {"wudnt", "wont"}, {"wldnt", "wont"},
	{"shouldnt", "wont"}, {"couldnt", "wont"}, {"isnt", "isnt"}, {"arent", "isnt"},
	{"wasnt", "isnt"}, {"werent", "isnt"}, {"aint", "isnt"}, {"havent", "havent"},
	{"hasnt", "havent"}, {"hadnt", "havent"}, {"nevr", "never"}, {"neva", "never"},
	{"nunca", "never"},
	/* SMS shorthand */
	{"k", "ok"}, {"kk", "ok"}, {"okay", "ok"}, {"okey", "ok"}, {"oky", "ok"}, {"okie", "ok"},
	{"oki", "ok"}, {"thx", "thanks"}, {"thanx", "thanks"}, {"thnx", "thanks"}, {"tnx", "thanks"},
	{"thks", "thanks"}, {"thnks", "thanks"}, {"tks", "thanks"}, {"ty", "thanks"},
	{"tyvm", "thanks"}, {"thankyou", "thanks"}, {"thank", "thanks"}, {"thnk", "thanks"},
	{"pls", "please"}, {"plz", "please"}, {"plez", "please"}, {"pleas", "please"},
	{"plse", "please"}, {"pleez", "please"}, {"pleeze", "please"}, {"plis", "please"},
	{"rn", "right now"}, {"atm", "right now"}, {"tmrw", "tomorrow"}, {"tmr", "tomorrow"},
	{"tmrow", "tomorrow"}, {"tmro", "tomorrow"}, {"tomorow", "tomorrow"},
	{"tommorow", "tomorrow"}, {"tommorrow", "tomorrow"}, {"2morrow", "tomorrow"},
	{"2moro", "tomorrow"}, {"2mrw", "tomorrow"}, {"tmw", "tomorrow"}, {"2mrow", "tomorrow"},
	{"l8r", "later"}, {"ltr", "later"}, {"latr", "later"}, {"l8er", "later"}, {"b4", "before"},
	{"wk", "week"}, {"wks", "week"}, {"weeks", "week"}, {"mo", "month"}, {"mos", "month"},
	{"mnth", "month"}, {"mth", "month"}, {"months", "month"}, {"yr", "year"}, {"yrs", "year"},
	{"years", "year"}, {"nxt", "next"}, {"abt", "about"}, {"bc", "because"}, {"cuz", "because"},
	{"coz", "because"}, {"cause", "because"}, {"prolly", "probably"}, {"prob", "probably"},
	{"sry", "sorry"}, {"srry", "sorry"}, {"info", "info"}, {"pics", "pictures"},
	{"lol", "lol"}, {"lmao", "lol"}, {"lmfao", "lol"}, {"haha", "lol"}, {"hahaha", "lol"},
	{"hahahaha", "lol"}, {"hehe", "lol"}, {"rofl", "lol"}, {"jaja", "lol"}, {"jajaja", "lol"},
	{"ha", "lol"}, {"lolol", "lol"},
	/* yes and no */
	{"yess", "yes"}, {"yea", "yes"}, {"yeah", "yes"}, {"yep", "yes"}, {"yup", "yes"},
	{"ya", "yes"}, {"yah", "yes"}, {"ye", "yes"}, {"yas", "yes"}, {"yeh", "yes"},
	{"yessir", "yes"}, {"yeap", "yes"}, {"si", "yes"}, {"claro", "yes"}, {"yse", "yes"},
	{"nope", "nope"}, {"nah", "nope"}, {"naw", "nope"}, {"nop", "nope"}, {"nada", "nope"},
	/* contact verbs */
	{"msg", "text"}, {"msgs", "text"}, {"message", "text"}, {"messages", "text"},
	{"messaging", "text"}, {"messaged", "text"}, {"txt", "text"}, {"txts", "text"},
	{"texts", "text"}, {"texting", "text"}, {"txting", "text"}, {"texted", "text"},
	{"sms", "text"}, {"textin", "text"}, {"txtn", "text"}, {"txtin", "text"},
	{"msging", "text"}, {"msgin", "text"}, {"msgng", "text"}, {"msgn", "text"},
	{"msgd", "text"}, {"msged", "text"}, {"mssg", "text"}, {"mssgs", "text"},
	{"mssging", "text"}, {"mesg", "text"}, {"mesgs", "text"}, {"mesage", "text"},
	{"mesages", "text"}, {"txtng", "text"}, {"txtd", "text"}, {"txted", "text"},
	{"texing", "text"}, {"textng", "text"}, {"textd", "text"},
	{"calls", "call"}, {"calling", "call"}, {"called", "call"}, {"callin", "call"},
	{"contacting", "contact"}, {"contacted", "contact"}, {"emails", "email"},
	{"emailing", "email"}, {"emailed", "email"}, {"reached", "reach"}, {"reaching", "reach"},
	{"soliciting", "solicit"}, {"solicitation", "solicit"}, {"solicitor", "solicit"},
	{"solicitors", "solicit"}, {"writing", "write"},
	/* opt-out words */
	{"bothering", "bother"}, {"bothered", "bother"}, {"bothers", "bother"},
	{"botherin", "bother"}, {"bugging", "bother"}, {"buggin", "bother"}, {"pester", "bother"},
	{"pestering", "bother"}, {"hounding", "bother"}, {"badgering", "bother"},
	{"nagging", "bother"}, {"harassing", "harass"}, {"harassment", "harass"},
	{"harrass", "harass"}, {"harrassing", "harass"}, {"harrassment", "harass"},
	{"harassed", "harass"}, {"harras", "harass"}, {"harasment", "harass"},
	{"spamming", "spam"}, {"spammer", "spam"}, {"spammers", "spam"}, {"spammy", "spam"},
	{"spamed", "spam"}, {"reporting", "report"}, {"reported", "report"},
	{"reportar", "report"}, {"denunciar", "report"}, {"blocking", "block"},
	{"blocked", "block"}, {"bloquear", "block"}, {"removing", "remove"},
	{"removed", "remove"}, {"rmv", "remove"}, {"delete", "remove"}, {"deleted", "remove"},
	{"deleting", "remove"}, {"erase", "remove"}, {"erased", "remove"}, {"stpo", "stop"},
	{"stp", "stop"}, {"stopping", "stop"}, {"stopped", "stop"}, {"stops", "stop"},
	{"stopall", "stop"}, {"sotp", "stop"}, {"stahp", "stop"}, {"stopit", "stop it"},
	{"optout", "opt out"}, {"optedout", "opt out"}, {"unsub", "unsubscribe"},
	{"unsubcribe", "unsubscribe"}, {"unsubscibe", "unsubscribe"},
	{"unsuscribe", "unsubscribe"}, {"unsubscribed", "unsubscribe"},
	{"unsubsribe", "unsubscribe"}, {"revoked", "revoke"}, {"canceled", "cancel"},
	{"cancelled", "cancel"}, {"cancelling", "cancel"}, {"quitting", "quit"},
	{"fuck", "#prof"}, {"fucking", "#prof"}, {"fucker", "#prof"}, {"fck", "#prof"},
	{"fk", "#prof"}, {"fuk", "#prof"}, {"fuking", "#prof"}, {"fukin", "#prof"},
	{"fuckin", "#prof"}, {"fuckoff", "#prof"}, {"fuckyou", "#prof"}, {"fucken", "#prof"},
	{"motherfucker", "#prof"}, {"mf", "#prof"}, {"mofo", "#prof"}, {"stfu", "#prof"},
	{"gtfo", "#prof"}, {"fu", "#prof"}, {"f", "#prof"}, {"asshole", "#prof"},
	{"bitch", "#prof"}, {"bastard", "#prof"}, {"dickhead", "#prof"}, {"scumbag", "#prof"},
	{"cunt", "#prof"}, {"prick", "#prof"}, {"douche", "#prof"}, {"douchebag", "#prof"},
	{"jackass", "#prof"}, {"shithead", "#prof"}, {"bullshit", "#prof"}, {"shit", "#prof"},
	{"twat", "#prof"}, {"wanker", "#prof"}, {"pendejo", "#prof"}, {"cabron", "#prof"},
	{"chinga", "#prof"}, {"chingate", "#prof"}, {"mierda", "#prof"}, {"puta", "#prof"},
	{"vultures", "#prof"}, {"vulture", "#prof"}, {"leeches", "#prof"},
	/* property and selling */
	{"numbr", "number"}, {"numbers", "number"}, {"num", "number"}, {"nmbr", "number"},
	{"wrng", "wrong"}, {"worng", "wrong"}, {"rong", "wrong"}, {"wron", "wrong"},
	{"intrested", "interested"}, {"intersted", "interested"},
	{"interessted", "interested"}, {"interestd", "interested"}, {"intrstd", "interested"},
	{"instrested", "interested"}, {"intrest", "interest"}, {"intrst", "interest"},
	{"disinterested", "uninterested"}, {"offers", "offer"}, {"ofer", "offer"},
	{"offr", "offer"}, {"offering", "offer"}, {"offered", "offer"}, {"selling", "sell"},
	{"sells", "sell"}, {"sel", "sell"}, {"sellin", "sell"}, {"sales", "sale"},
	{"properties", "property"}, {"prop", "property"}, {"propery", "property"},
	{"proprety", "property"}, {"propety", "property"}, {"buildings", "building"},
	{"bldg", "building"}, {"owners", "owner"}, {"owns", "own"}, {"owned", "own"},
	{"owning", "own"}, {"meeting", "meet"}, {"appt", "appointment"},
	{"scheduled", "schedule"}, {"visiting", "visit"}, {"autoreply", "auto reply"},
	{"voice", "voice"}, {"vm", "voicemail"},
	/* Spanish */
	{"numero", "number"}, {"llame", "llamar"}, {"llames", "llamar"}, {"llamen", "llamar"},
	{"llamarme", "llamar"}, {"llamadas", "llamar"}, {"llamada", "llamar"},
	{"llamando", "llamar"}, {"escriba", "escribir"}, {"escribas", "escribir"},
	{"escriban", "escribir"}, {"escribirme", "escribir"}, {"escribe", "escribir"},
	{"escribes", "escribir"}, {"escriben", "escribir"}, {"escribiendo", "escribir"},
	{"contacte", "contactar"}, {"contactes", "contactar"}, {"contacten", "contactar"},
	{"contactarme", "contactar"}, {"contacta", "contactar"}, {"contactando", "contactar"},
	{"mande", "mandar"}, {"mandes", "mandar"}, {"manden", "mandar"}, {"envie", "mandar"},
	{"envies", "mandar"}, {"envien", "mandar"}, {"enviar", "mandar"}, {"enviarme", "mandar"},
	{"mandarme", "mandar"}, {"mandando", "mandar"}, {"enviando", "mandar"},
	{"mensajes", "mensaje"}, {"textos", "mensaje"}, {"texto", "mensaje"},
	{"moleste", "molestar"}, {"molesten", "molestar"}, {"molestes", "molestar"},
	{"molesta", "molestar"}, {"molestando", "molestar"}, {"interesado", "interesa"},
	{"interesada", "interesa"}, {"interesados", "interesa"}, {"interesan", "interesa"},
	{"equivocada", "equivocado"}, {"equivoco", "equivocado"}, {"equivocados", "equivocado"},
	{"duena", "dueno"}, {"duenos", "dueno"}, {"propietario", "dueno"},
	{"propietaria", "dueno"}, {"vendimos", "vendi"}, {"vendio", "vendi"},
	{"vendida", "vendi"}, {"vendido", "vendi"}, {"vendo", "vender"}, {"vendemos", "vender"},
	{"venderla", "vender"}, {"venderlo", "vender"}, {"oferta", "offer"},
	{"ofertas", "offer"}, {"ofrece", "offer"}, {"ofrecen", "offer"}, {"ofrecer", "offer"},
	{"ofreceria", "offer"}, {"ofrecerme", "offer"}, {"haga", "make"}, {"hagame", "make"},
	{"hagan", "make"}, {"hacer", "make"}, {"hazme", "make"}, {"haz", "make"},
	{"cuanta", "cuanto"}, {"proximo", "proxima"}, {"ocupada", "ocupado"},
	{"cancela", "cancelar"}, {"cancele", "cancelar"}, {"dejame", "deja"}, {"dejen", "deja"},
	{"dejenme", "deja"}, {"deje", "deja"}, {"dejar", "deja"}, {"dejeme", "deja"},
	{"borra", "borrar"}, {"borre", "borrar"}, {"borren", "borrar"}, {"elimina", "borrar"},
	{"eliminar", "borrar"}, {"elimine", "borrar"}, {"quitame", "borrar"},
	{"quiteme", "borrar"}, {"quitenme", "borrar"}, {"sacame", "borrar"},
	{"saqueme", "borrar"}, {"quiza", "quizas"},
	{"lista", "list"}, {"propiedad", "property"}, {"mi", "my"}, {"estafa", "scam"},
	{"ahorita", "ahora"}, {"despues", "after"}, {"fiestas", "holidays"}, {"meses", "mes"},
	{"semanas", "semana"}, {"anos", "ano"}, {"dias", "dia"}, {"hablamos", "talk"},
	{"llamame", "llamar"},
	{"luego", "later"}, {"mia", "mine"}, {"mio", "mine"}, {"mias", "mine"}, {"mios", "mine"},
	{"nuestra", "ours"}, {"nuestro", "ours"},
	/* more English */
	{"dis", "this"}, {"dat", "that"}, {"howd", "how did"}, {"days", "day"}, {"buying", "buy"},
	{"buys", "buy"}, {"buyers", "buyer"}, {"sellers", "seller"}, {"holding", "hold"},
	{"closing", "close"}, {"neighbour", "neighbor"}, {"neighbors", "neighbor"},
	{"retiring", "retire"}, {"retirement", "retire"}, {"til", "until"}, {"tenants", "tenant"},
	{"renting", "rent"}, {"renters", "renter"}, {"declined", "decline"},
	{"incorrect", "wrong"}, {"manejando", "driving"}, {"two", "#num"}, {"three", "#num"},
	{"four", "#num"}, {"five", "#num"}, {"six", "#num"}, {"seven", "#num"}, {"eight", "#num"},
	{"nine", "#num"}, {"ten", "#num"}, {"twenty", "#num"}, {"fifty", "#num"},
	{"hundred", "#num"}, {"dos", "#num"}, {"tres", "#num"}, {"cinco", "#num"}, {"sending", "send"}, {"sent", "send"},
	{"hearing", "hear"}, {"happening", "happen"}, {"happens", "happen"},
	{"belong", "belongs"}, {"belonged", "belongs"}, {"belonging", "belongs"},
	{"foreclose", "foreclosed"}, {"foreclosures", "foreclosure"},
	{"cell", "phone"}, {"cel", "phone"}, {"cellphone", "phone"}, {"mobile", "phone"},
	{"phones", "phone"}, {"4sale", "for sale"}, {"listenin", "listening"},
	{"depende", "depends"}, {"precio", "price"}, {"precios", "price"},
	{"considering", "consider"}, {"considered", "consider"}, {"considers", "consider"},
	{"refraining", "refrain"}, {"filing", "file"}, {"filed", "file"}, {"files", "file"},
	{"q1", "quarter"}, {"q2", "quarter"}, {"q3", "quarter"}, {"q4", "quarter"},
	{"desire", "interest"}, {"desires", "interest"}, {"inclination", "interest"},
	{"intention", "plan"}, {"intentions", "plan"}, {"intent", "plan"},
	{"developing", "develop"}, {"developed", "develop"}, {"redevelop", "develop"},
	{"redeveloping", "develop"}, {"renovating", "renovate"}, {"renovated", "renovate"},
	{"purchased", "bought"}, {"bb", "bbb"}, {"brokerage", "broker"}, {"brokerages", "broker"},
};

/* Words that negate a phrase that follows within their scope. */
typedef struct Negator
{
	const char *word;
	int			scope;
} Negator;

static const Negator Negators[] = {
	{"not", 4}, {"never", 4}, {"dont", 4}, {"cant", 3}, {"wont", 3}, {"isnt", 3},
	{"havent", 3}, {"no", 2}, {"zero", 2}, {"non", 1}, {"without", 2}, {"longer", 3}, {"hardly", 2},
	{"nor", 2}, {"ni", 2}, {"neither", 2},
};

/* Words that end a negation's scope. */
static const char *const ClauseBreaks[] = {
	"but", "though", "however", "although", "pero", "except", "if", "whether", "unless",
	"and", "so", "because", "then", "just", "y",
};

/* Words after which cues count double. */
static const char *const Contrasts[] = {
	"but", "anyway", "pero", "however",
};

/* Words a whole-reply keyword ("END", "alto") may come with. */
static const char *const Fillers[] = {
	"please", "now", "it", "all", "me", "thanks", "this", "us", "ok", "por", "favor",
	"immediately", "right", "asap", "the", "text", "ya", "lol",
};

/* Bare answers, which stand alone even between full stops ("No. Stop."). */
static const char *const Answers[] = {
	"yes", "no", "nope", "ok", "thanks", "lol", "sure",
};

/*
 * Cue words that an unknown word is tried against: with one letter
 * missing, one added or two neighbours swapped (long words), or two
 * neighbours swapped (short ones).
 */
static const char *const FuzzyWords[] = {
	"interested", "interesting", "uninterested", "unsubscribe", "remove", "number",
	"property", "opposed", "tomorrow", "harass", "harassing", "message", "texting",
	"calling", "delete", "equivocado", "interesa", "interesado", "selling", "report",
	"stop", "wrong", "offer", "alone", "owner", "later", "busy", "never",
	"voicemail",
};

/* ---------------------------------------------------------------------
 * The compiled tables (built once per backend, in TopMemoryContext).
 * --------------------------------------------------------------------- */

typedef enum ElemKind
{
	EK_WORD,
	EK_OPTIONAL,
	EK_GAP
} ElemKind;

typedef struct Elem
{
	ElemKind	kind;
	int			nalt;
	int			alt;			/* index of the first alternative in AltIds */
} Elem;

typedef struct CompiledRule
{
	const Rule *rule;
	int			elem;			/* first element in Elems */
	int			nelem;
	int			anchor;			/* an element every match needs */
} CompiledRule;

typedef struct CompiledLex
{
	const char *variant;
	int			ids[4];
	int			nids;
} CompiledLex;

static bool Compiled = false;
static char **Vocab;			/* sorted canonical words */
static int	NVocab;
static int *AltIds;
static int	NAltIds;
static Elem *Elems;
static int	NElems;
static CompiledRule *CRules;
static CompiledRule *CContextRules;
static CompiledLex *CLex;		/* sorted by variant */
static int	NLex;
static uint8 *NegScope;			/* per vocabulary id: negation scope, or 0 */
static bool *IsBreak;			/* per vocabulary id */
static bool *IsFiller;			/* per vocabulary id */
static bool *IsAnswer;			/* per vocabulary id: yes, no, ok and the like */
static int	IdNum;				/* "#num" */
static int	IdPrice;			/* "#price" */
static int	IdUnk;				/* "#unk": any word not known */
static int	IdName;				/* "#name": a capitalized word not known */
static int	IdIng;				/* "#ing": a word not known ending in -ing */
static int	IdBoundary;			/* "#b": matches a clause boundary */
static bool *IsContrast;		/* per vocabulary id: "but" and the like */

static int
CompareStrings(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static int
CompareLex(const void *a, const void *b)
{
	return strcmp(((const CompiledLex *) a)->variant, ((const CompiledLex *) b)->variant);
}

/* VocabId returns the id of a canonical word, or TOK_UNKNOWN. */
static int
VocabId(const char *word)
{
	int			lo = 0;
	int			hi = NVocab - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			cmp = strcmp(Vocab[mid], word);

		if (cmp == 0)
			return mid;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return TOK_UNKNOWN;
}

static const CompiledLex *
LexLookup(const char *word)
{
	CompiledLex key;

	key.variant = word;
	return bsearch(&key, CLex, NLex, sizeof(CompiledLex), CompareLex);
}

/* Word collection before the vocabulary is sorted. */
typedef struct WordList
{
	char	  **words;
	int			n;
	int			size;
} WordList;

static void
AddWord(WordList *wl, const char *word, int len)
{
	if (wl->n == wl->size)
	{
		wl->size *= 2;
		wl->words = repalloc(wl->words, wl->size * sizeof(char *));
	}
	wl->words[wl->n++] = pnstrdup(word, len);
}

static const char *
MacroWords(const char *name, int len)
{
	for (int i = 0; i < (int) lengthof(Macros); i++)
		if (strlen(Macros[i].name) == (size_t) len && strncmp(Macros[i].name, name, len) == 0)
			return Macros[i].words;
	elog(ERROR, "crefinder: unknown macro in a classifier rule");
	return NULL;				/* keep compiler quiet */
}

/* AddWords adds every word of a space- or slash-separated list. */
static void
AddWords(WordList *wl, const char *s)
{
	while (*s)
	{
		const char *e;

		while (*s == ' ' || *s == '/' || *s == '[' || *s == ']')
			s++;
		e = s;
		while (*e && *e != ' ' && *e != '/' && *e != '[' && *e != ']')
			e++;
		if (e > s)
		{
			if (*s == '$')
				AddWords(wl, MacroWords(s, e - s));
			else if (!(e - s == 1 && *s == '*'))
				AddWord(wl, s, e - s);
		}
		s = e;
	}
}

/* AddAlternatives appends the ids of one element's alternatives. */
static void
AddAlternatives(const char *s, int len, int *nalt)
{
	const char *end = s + len;

	while (s < end)
	{
		const char *e = s;

		while (e < end && *e != '/')
			e++;
		if (e > s)
		{
			if (*s == '$')
			{
				const char *w = MacroWords(s, e - s);

				AddAlternatives(w, strlen(w), nalt);
				s = (e < end) ? e + 1 : e;
				continue;
			}
			else
			{
				char	   *word = pnstrdup(s, e - s);
				int			id = VocabId(word);

				if (id < 0)
					elog(ERROR, "crefinder: classifier word \"%s\" is not in the vocabulary", word);
				AltIds[NAltIds++] = id;
				(*nalt)++;
				pfree(word);
			}
		}
		s = (e < end) ? e + 1 : e;
	}
}

static void
CompileRule(const Rule *rule, CompiledRule *cr)
{
	const char *s = rule->phrase;

	cr->rule = rule;
	cr->elem = NElems;
	cr->nelem = 0;
	cr->anchor = -1;
	while (*s)
	{
		const char *e;
		Elem	   *el;

		while (*s == ' ')
			s++;
		if (!*s)
			break;
		e = s;
		while (*e && *e != ' ')
			e++;
		el = &Elems[NElems];
		el->alt = NAltIds;
		el->nalt = 0;
		if (e - s == 1 && *s == '*')
			el->kind = EK_GAP;
		else if (*s == '[')
		{
			el->kind = EK_OPTIONAL;
			AddAlternatives(s + 1, (e - s) - 2, &el->nalt);
		}
		else
		{
			el->kind = EK_WORD;
			AddAlternatives(s, e - s, &el->nalt);
			if (cr->anchor < 0)
				cr->anchor = NElems;
		}
		NElems++;
		cr->nelem++;
		s = e;
	}
	if (cr->anchor < 0 || Elems[cr->elem].kind == EK_GAP ||
		Elems[cr->elem + cr->nelem - 1].kind == EK_GAP)
		elog(ERROR, "crefinder: malformed classifier rule \"%s\"", rule->phrase);
}

static int
CountElems(const char *s)
{
	int			n = 0;
	bool		in = false;

	for (; *s; s++)
	{
		if (*s != ' ' && !in)
			n++;
		in = (*s != ' ');
	}
	return n;
}

/* CountAlts bounds the number of alternative ids a phrase expands to. */
static int
CountAlts(const char *s)
{
	int			n = 1;

	for (; *s; s++)
		if (*s == '/' || *s == ' ')
			n++;
		else if (*s == '$')
		{
			const char *e = s;

			while (*e && *e != ' ' && *e != '/' && *e != ']')
				e++;
			n += CountAlts(MacroWords(s, e - s));
			s = e - 1;
		}
	return n;
}

static void
CompileTables(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	WordList	wl;
	int			nelems = 0;
	int			nalts = 0;
	int			n;

	wl.size = 1024;
	wl.n = 0;
	wl.words = palloc(wl.size * sizeof(char *));
	for (int i = 0; i < (int) lengthof(Rules); i++)
		AddWords(&wl, Rules[i].phrase);
	for (int i = 0; i < (int) lengthof(ContextRules); i++)
		AddWords(&wl, ContextRules[i].phrase);
	for (int i = 0; i < (int) lengthof(Lexicon); i++)
		AddWords(&wl, Lexicon[i].canonical);
	for (int i = 0; i < (int) lengthof(Negators); i++)
		AddWords(&wl, Negators[i].word);
	for (int i = 0; i < (int) lengthof(ClauseBreaks); i++)
		AddWords(&wl, ClauseBreaks[i]);
	for (int i = 0; i < (int) lengthof(Fillers); i++)
		AddWords(&wl, Fillers[i]);
	for (int i = 0; i < (int) lengthof(Answers); i++)
		AddWords(&wl, Answers[i]);
	AddWords(&wl, "#num #price #unk #name #ing #b");
	for (int i = 0; i < (int) lengthof(Contrasts); i++)
		AddWords(&wl, Contrasts[i]);

	qsort(wl.words, wl.n, sizeof(char *), CompareStrings);
	n = 0;
	for (int i = 0; i < wl.n; i++)
		if (n == 0 || strcmp(wl.words[n - 1], wl.words[i]) != 0)
			wl.words[n++] = wl.words[i];
	Vocab = wl.words;
	NVocab = n;

	/* Lexicon, with its canonical forms as ids. */
	CLex = palloc(sizeof(CompiledLex) * lengthof(Lexicon));
	NLex = lengthof(Lexicon);
	for (int i = 0; i < NLex; i++)
	{
		const char *s = Lexicon[i].canonical;

		CLex[i].variant = Lexicon[i].variant;
		CLex[i].nids = 0;
		while (*s)
		{
			const char *e;

			while (*s == ' ')
				s++;
			e = s;
			while (*e && *e != ' ')
				e++;
			if (e > s)
			{
				char	   *w = pnstrdup(s, e - s);

				if (CLex[i].nids >= (int) lengthof(CLex[i].ids))
					elog(ERROR, "crefinder: lexicon entry \"%s\" is too long", Lexicon[i].variant);
				CLex[i].ids[CLex[i].nids++] = VocabId(w);
				pfree(w);
			}
			s = e;
		}
	}
	qsort(CLex, NLex, sizeof(CompiledLex), CompareLex);
	for (int i = 1; i < NLex; i++)
		if (strcmp(CLex[i - 1].variant, CLex[i].variant) == 0)
			elog(ERROR, "crefinder: lexicon entry \"%s\" is listed twice", CLex[i].variant);

	/* Rules. */
	for (int i = 0; i < (int) lengthof(Rules); i++)
	{
		nelems += CountElems(Rules[i].phrase);
		nalts += CountAlts(Rules[i].phrase);
	}
	for (int i = 0; i < (int) lengthof(ContextRules); i++)
	{
		nelems += CountElems(ContextRules[i].phrase);
		nalts += CountAlts(ContextRules[i].phrase);
	}
	Elems = palloc(sizeof(Elem) * nelems);
	AltIds = palloc(sizeof(int) * nalts);
	NElems = NAltIds = 0;
	CRules = palloc(sizeof(CompiledRule) * lengthof(Rules));
	for (int i = 0; i < (int) lengthof(Rules); i++)
		CompileRule(&Rules[i], &CRules[i]);
	CContextRules = palloc(sizeof(CompiledRule) * lengthof(ContextRules));
	for (int i = 0; i < (int) lengthof(ContextRules); i++)
		CompileRule(&ContextRules[i], &CContextRules[i]);
	Assert(NElems <= nelems && NAltIds <= nalts);

	NegScope = palloc0(NVocab);
	IsBreak = palloc0(NVocab * sizeof(bool));
	IsFiller = palloc0(NVocab * sizeof(bool));
	for (int i = 0; i < (int) lengthof(Negators); i++)
		NegScope[VocabId(Negators[i].word)] = Negators[i].scope;
	for (int i = 0; i < (int) lengthof(ClauseBreaks); i++)
		IsBreak[VocabId(ClauseBreaks[i])] = true;
	for (int i = 0; i < (int) lengthof(Fillers); i++)
		IsFiller[VocabId(Fillers[i])] = true;
	IsAnswer = palloc0(NVocab * sizeof(bool));
	for (int i = 0; i < (int) lengthof(Answers); i++)
		IsAnswer[VocabId(Answers[i])] = true;
	IsContrast = palloc0(NVocab * sizeof(bool));
	for (int i = 0; i < (int) lengthof(Contrasts); i++)
		IsContrast[VocabId(Contrasts[i])] = true;
	IdUnk = VocabId("#unk");
	IdName = VocabId("#name");
	IdIng = VocabId("#ing");
	IdBoundary = VocabId("#b");
	IdNum = VocabId("#num");
	IdPrice = VocabId("#price");

	MemoryContextSwitchTo(old);
	Compiled = true;
}

/* ---------------------------------------------------------------------
 * Tokens
 * --------------------------------------------------------------------- */

typedef struct Tokens
{
	int			n;
	int		   *ids;
	bool	   *used;			/* taken by a rule */
	bool	   *soft;			/* (a boundary) only full stops, "!", ellipses */
	bool		qmark;
	uint64	   *present;		/* bitmap over vocabulary ids */
} Tokens;

static void
PushId(Tokens *t, int id)
{
	if (t->n >= MAX_TOKENS)
		return;
	if (id == TOK_BOUNDARY && (t->n == 0 || t->ids[t->n - 1] == TOK_BOUNDARY))
		return;
	t->ids[t->n++] = id;
	if (id >= 0)
		t->present[id / 64] |= UINT64CONST(1) << (id % 64);
}

static bool
PushKnown(Tokens *t, const char *word)
{
	const CompiledLex *lex = LexLookup(word);
	int			id;

	if (lex)
	{
		for (int i = 0; i < lex->nids; i++)
			PushId(t, lex->ids[i]);
		return true;
	}
	id = VocabId(word);
	if (id >= 0)
	{
		PushId(t, id);
		return true;
	}
	return false;
}

/*
 * OneEditAway: whether word is target with one letter missing or one
 * added (allow_indel), or with two neighbouring letters swapped.
 */
static bool
OneEditAway(const char *word, int wlen, const char *target, bool allow_indel)
{
	int			tlen = strlen(target);
	int			i = 0;

	if (wlen == tlen)
	{
		while (i < wlen && word[i] == target[i])
			i++;
		return i < wlen - 1 && word[i] == target[i + 1] && word[i + 1] == target[i] &&
			strcmp(word + i + 2, target + i + 2) == 0;
	}
	if (!allow_indel || abs(wlen - tlen) != 1)
		return false;
	if (wlen < tlen)
	{
		while (i < wlen && word[i] == target[i])
			i++;
		return strcmp(word + i, target + i + 1) == 0;
	}
	while (i < tlen && word[i] == target[i])
		i++;
	return strcmp(word + i + 1, target + i) == 0;
}

/*
 * PushWord canonicalizes one normalized word and adds its ids.  A word
 * not known is "#name" when capitalized inside a clause, "#ing" when it
 * ends in -ing, else "#unk".
 */
static void
PushWord(Tokens *t, const char *word, int len, bool capitalized)
{
	char		single[MAX_WORD + 1];
	int			slen = 0;

	if (len > MAX_WORD)
	{
		PushId(t, IdUnk);
		return;
	}
	if (word[0] == '$')
	{
		if (len > 1 && isdigit((unsigned char) word[1]))
			PushId(t, IdPrice);
		else if (len > 1)
			PushWord(t, word + 1, len - 1, false);
		return;
	}
	if (isdigit((unsigned char) word[0]))
	{
		int			i = 0;
		const char *suffix;

		while (i < len && (isdigit((unsigned char) word[i]) || word[i] == '.'))
			i++;
		suffix = word + i;
		if (i == len || strcmp(suffix, "st") == 0 || strcmp(suffix, "nd") == 0 ||
			strcmp(suffix, "rd") == 0 || strcmp(suffix, "th") == 0 ||
			strcmp(suffix, "s") == 0 || strcmp(suffix, "am") == 0 ||
			strcmp(suffix, "pm") == 0)
			PushId(t, IdNum);	/* "6pm" is a number too */
		else if (strcmp(suffix, "k") == 0 || strcmp(suffix, "m") == 0 ||
				 strcmp(suffix, "mil") == 0 || strcmp(suffix, "million") == 0 ||
				 strcmp(suffix, "mm") == 0)
			PushId(t, IdPrice);
		else if (!PushKnown(t, word))
			PushId(t, IdUnk);
		return;
	}
	if (PushKnown(t, word))
		return;

	/* A plural of a known word. */
	if (len > 3 && word[len - 1] == 's')
	{
		char		stem[MAX_WORD + 1];
		int			id;

		memcpy(stem, word, len - 1);
		stem[len - 1] = '\0';
		id = VocabId(stem);
		if (id >= 0)
		{
			PushId(t, id);
			return;
		}
	}

	/* Doubled letters made single ("stopp", "yess", "noo"). */
	for (int i = 0; i < len; i++)
		if (slen == 0 || single[slen - 1] != word[i])
			single[slen++] = word[i];
	single[slen] = '\0';
	if (slen < len && PushKnown(t, single))
		return;

	/* A cue word with one slip of the finger. */
	if (len >= 4)
	{
		for (int i = 0; i < (int) lengthof(FuzzyWords); i++)
		{
			const char *target = FuzzyWords[i];
			bool		indel = strlen(target) >= 6;

			if (OneEditAway(word, len, target, indel) ||
				(slen < len && OneEditAway(single, slen, target, indel)))
			{
				if (PushKnown(t, target))
					return;
			}
		}
	}
	if (capitalized && t->n > 0 && t->ids[t->n - 1] != TOK_BOUNDARY)
		PushId(t, IdName);
	else if (len >= 5 && strcmp(word + len - 3, "ing") == 0)
		PushId(t, IdIng);
	else
		PushId(t, IdUnk);
}

/* Latin-1 letters U+00C0..U+00FF without their accents ('-': not a letter). */
static const char Latin1Base[] =
"aaaaaaaceeeeiiiidnooooo-ouuuuyts"
"aaaaaaaceeeeiiiidnooooo-ouuuuyty";

/* EmojiWord: the word a few emoji stand for, or NULL. */
static const char *
EmojiWord(uint32 cp)
{
	switch (cp)
	{
		case 0x1F6D1:			/* stop sign */
		case 0x26D4:			/* no entry */
			return "stop";
		case 0x1F595:			/* middle finger */
			return "f";
	}
	return NULL;
}

/*
 * The normalizer's state: the word being read, and single letters being
 * collected in case they spell a word ("S-T-O-P", "s t o p").
 */
typedef struct Normalizer
{
	Tokens	   *t;
	char		word[MAX_WORD + 1];
	int			wlen;
	bool		overlong;
	bool		upper_first;
	bool		lower_rest;
	char		spell[MAX_WORD + 1];
	int			nspell;
} Normalizer;

static void
FlushSpelling(Normalizer *nz)
{
	char		letter[2] = {0, 0};

	if (nz->nspell == 0)
		return;
	nz->spell[nz->nspell] = '\0';
	if (nz->nspell < 3 || !PushKnown(nz->t, nz->spell))
		for (int i = 0; i < nz->nspell; i++)
		{
			letter[0] = nz->spell[i];
			PushWord(nz->t, letter, 1, false);
		}
	nz->nspell = 0;
}

/* EndWord canonicalizes the word read so far. */
static void
EndWord(Normalizer *nz)
{
	if (nz->wlen == 1 && isalpha((unsigned char) nz->word[0]) && !nz->overlong)
	{
		if (nz->nspell == MAX_WORD)
			FlushSpelling(nz);
		nz->spell[nz->nspell++] = nz->word[0];
		nz->wlen = 0;
		return;
	}
	if (nz->wlen > 0 || nz->overlong)
	{
		FlushSpelling(nz);
		nz->word[nz->wlen] = '\0';
		PushWord(nz->t, nz->word, nz->overlong ? MAX_WORD + 1 : nz->wlen,
				 nz->upper_first && nz->lower_rest);
	}
	nz->wlen = 0;
	nz->overlong = false;
	nz->upper_first = nz->lower_rest = false;
}

static void
AppendChar(Normalizer *nz, char c, bool upper)
{
	if (nz->wlen == 0)
		nz->upper_first = upper;
	else if (isalpha((unsigned char) c) && !upper)
		nz->lower_rest = true;
	/* runs of three or more of a letter become two */
	if (nz->wlen >= 2 && nz->word[nz->wlen - 1] == c && nz->word[nz->wlen - 2] == c &&
		isalpha((unsigned char) c))
		return;
	if (nz->wlen < MAX_WORD)
		nz->word[nz->wlen++] = c;
	else
		nz->overlong = true;
}

/* EndClause ends a clause at a mark; soft: a full stop, "!" or ellipsis. */
static void
EndClause(Normalizer *nz, bool soft)
{
	Tokens	   *t = nz->t;
	int			n;

	EndWord(nz);
	FlushSpelling(nz);
	n = t->n;
	PushId(t, TOK_BOUNDARY);
	if (t->n > n)
		t->soft[n] = soft;
	else if (n > 0 && t->ids[n - 1] == TOK_BOUNDARY && !soft)
		t->soft[n - 1] = false;
}

/* OneWordClause: whether token i is a word that is a clause on its own. */
static bool
OneWordClause(const Tokens *t, int i)
{
	return t->ids[i] >= 0 && !IsAnswer[t->ids[i]] &&
		(i == 0 || t->ids[i - 1] == TOK_BOUNDARY) &&
		(i + 1 == t->n || t->ids[i + 1] == TOK_BOUNDARY);
}

/*
 * JoinOneWordClauses drops the full stops between words said one at a
 * time ("Do. Not. Text."), which are one sentence.
 */
static void
JoinOneWordClauses(Tokens *t)
{
	int			out = 0;

	for (int i = 1; i + 1 < t->n; i++)
		t->used[i] = (t->ids[i] == TOK_BOUNDARY && t->soft[i] &&
					  OneWordClause(t, i - 1) && OneWordClause(t, i + 1));
	for (int i = 0; i < t->n; i++)
	{
		if (t->used[i])
		{
			t->used[i] = false;
			continue;
		}
		t->ids[out] = t->ids[i];
		t->soft[out] = t->soft[i];
		out++;
	}
	t->n = out;
}

/*
 * Tokenize normalizes and canonicalizes at most REPLY_MAX_BYTES bytes of
 * text into t (whose arrays the caller allocated).
 */
static void
Tokenize(const char *text, int len, Tokens *t)
{
	Normalizer	nz;
	int			i = 0;

	memset(&nz, 0, sizeof(nz));
	nz.t = t;
	if (len > REPLY_MAX_BYTES)
		len = REPLY_MAX_BYTES;

	while (i < len)
	{
		unsigned char c = (unsigned char) text[i];

		if (c < 0x80)
		{
			bool		next_letter = (i + 1 < len && isalpha((unsigned char) text[i + 1]));

			if (isalpha(c))
				AppendChar(&nz, (char) tolower(c), isupper(c));
			else if (isdigit(c))
				AppendChar(&nz, (char) c, false);
			else if (c == '\'' || c == '`')
				 /* joins: "don't" */ ;
			else if (c == '#' && !(i + 1 < len && isalnum((unsigned char) text[i + 1])))
			{
				/* a "#" on its own is a number: "wrong #" */
				EndWord(&nz);
				FlushSpelling(&nz);
				PushWord(t, "number", 6, false);
			}
			else if (c == '$')
			{
				EndWord(&nz);
				AppendChar(&nz, '$', false);
			}
			else if ((c == '.' || c == ',') && nz.wlen > 0 && isdigit((unsigned char) nz.word[nz.wlen - 1]) &&
					 i + 1 < len && isdigit((unsigned char) text[i + 1]))
			{
				if (c == '.')
					AppendChar(&nz, '.', false);
			}
			else if (c == '.' && nz.wlen == 1 && next_letter &&
					 (i + 2 >= len || !isalpha((unsigned char) text[i + 2])))
				EndWord(&nz);	/* "S.T.O.P" */
			else if (c == '?' || c == '.' || c == '!' || c == ',' || c == ';' ||
					 c == ':' || c == '\n' || c == '\r')
			{
				EndClause(&nz, c == '.' || c == '!');
				if (c == '?')
					t->qmark = true;
			}
			else
				EndWord(&nz);
			i++;
			continue;
		}

		/* A UTF-8 sequence: its length, checked. */
		{
			int			n = (c >= 0xF0 && c <= 0xF4) ? 4 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xC2 && c <= 0xDF) ? 2 : 1;
			uint32		cp;
			bool		valid = (n > 1 && i + n <= len);

			for (int k = 1; valid && k < n; k++)
				if (((unsigned char) text[i + k] & 0xC0) != 0x80)
					valid = false;
			if (!valid)
			{
				EndWord(&nz);
				i++;
				continue;
			}
			cp = (n == 2) ? (c & 0x1F) : (n == 3) ? (c & 0x0F) : (c & 0x07);
			for (int k = 1; k < n; k++)
				cp = (cp << 6) | ((unsigned char) text[i + k] & 0x3F);
			i += n;

			if (cp >= 0xC0 && cp <= 0xFF && Latin1Base[cp - 0xC0] != '-')
				AppendChar(&nz, Latin1Base[cp - 0xC0], cp < 0xE0);
			else if (cp == 0x2019 || cp == 0x2018 || cp == 0x02BC)
				 /* apostrophes join */ ;
			else if (cp == 0x2026 || cp == 0xBF || cp == 0xA1)
			{
				/* an ellipsis ends a clause; inverted marks open one */
				EndClause(&nz, cp == 0x2026);
				if (cp == 0xBF)
					t->qmark = true;
			}
			else if (EmojiWord(cp))
			{
				EndWord(&nz);
				FlushSpelling(&nz);
				PushWord(t, EmojiWord(cp), strlen(EmojiWord(cp)), false);
			}
			else
				EndWord(&nz);
		}
	}
	EndWord(&nz);
	FlushSpelling(&nz);
	JoinOneWordClauses(t);
}

/* ---------------------------------------------------------------------
 * Matching
 * --------------------------------------------------------------------- */

static bool
ElemHas(const Elem *el, int id)
{
	for (int i = 0; i < el->nalt; i++)
	{
		int			alt = AltIds[el->alt + i];

		if (alt == id ||
			(alt == IdUnk && (id == IdName || id == IdIng)) ||
			(alt == IdBoundary && id == TOK_BOUNDARY))
			return true;
	}
	return false;
}

static bool
AnchorPresent_special(const Tokens *t, int id)
{
	return (t->present[id / 64] & (UINT64CONST(1) << (id % 64))) != 0;
}

/* AnchorPresent: whether the reply has one of the anchor's words at all. */
static bool
AnchorPresent(const CompiledRule *cr, const Tokens *t)
{
	const Elem *el = &Elems[cr->anchor];

	for (int i = 0; i < el->nalt; i++)
	{
		int			id = AltIds[el->alt + i];

		if (t->present[id / 64] & (UINT64CONST(1) << (id % 64)))
			return true;
		if (id == IdUnk && (AnchorPresent_special(t, IdName) || AnchorPresent_special(t, IdIng)))
			return true;
	}
	return false;
}

/*
 * MatchFrom matches elements k.. of cr at token pos; returns the end of
 * the match (exclusive) or -1.  Words already used do not match; a gap
 * does not cross a clause boundary.
 */
static int
MatchFrom(const CompiledRule *cr, int k, const Tokens *t, int pos)
{
	const Elem *el;

	if (k == cr->nelem)
		return pos;
	el = &Elems[cr->elem + k];
	switch (el->kind)
	{
		case EK_WORD:
			if (pos < t->n && !t->used[pos] && ElemHas(el, t->ids[pos]))
				return MatchFrom(cr, k + 1, t, pos + 1);
			return -1;
		case EK_OPTIONAL:
			if (pos < t->n && !t->used[pos] && ElemHas(el, t->ids[pos]))
			{
				int			end = MatchFrom(cr, k + 1, t, pos + 1);

				if (end >= 0)
					return end;
			}
			return MatchFrom(cr, k + 1, t, pos);
		case EK_GAP:
			for (int g = 0; g <= GAP_MAX; g++)
			{
				int			end;

				if (g > 0 && (pos + g - 1 >= t->n || t->ids[pos + g - 1] == TOK_BOUNDARY))
					break;
				end = MatchFrom(cr, k + 1, t, pos + g);
				if (end >= 0)
					return end;
			}
			return -1;
	}
	return -1;
}

/*
 * Negated: whether a negator stands within its scope before start, in the
 * same clause, and is not part of another phrase.
 */
static bool
Negated(const Tokens *t, int start, int scope)
{
	for (int d = 1; d <= scope && start - d >= 0; d++)
	{
		int			id = t->ids[start - d];

		if (id == TOK_BOUNDARY || t->used[start - d] || (id >= 0 && IsBreak[id]))
			return false;
		if (id >= 0 && NegScope[id] >= d)
			return true;
	}
	return false;
}

static bool
OnlyFillersOutside(const Tokens *t, int start, int end)
{
	for (int i = 0; i < t->n; i++)
	{
		int			id = t->ids[i];

		if (i >= start && i < end)
			continue;
		if (id == TOK_BOUNDARY || (id >= 0 && (IsFiller[id] || id == t->ids[start])))
			continue;
		return false;
	}
	return true;
}

static int
ResolveClass(int cls, ReplyContext ctx)
{
	if (cls == C_YES)
		return ctx == RCTX_OFFER ? RC_INTERESTED : C_NONE;
	if (cls == C_NO)
		return ctx == RCTX_IDENTITY ? RC_WRONG_NUMBER :
			ctx == RCTX_TIME ? RC_CALLBACK_LATER : RC_NOT_INTERESTED;
	return cls;
}

/* RunRules applies rules in order, adding to scores and flags. */
static void
RunRules(const CompiledRule *rules, int nrules, Tokens *t, ReplyContext ctx,
		 int *scores, int *flags)
{
	int			contrast = t->n;

	for (int i = 0; i < t->n; i++)
		if (t->ids[i] >= 0 && IsContrast[t->ids[i]])
		{
			contrast = i;
			break;
		}
	for (int r = 0; r < nrules; r++)
	{
		const CompiledRule *cr = &rules[r];
		const Rule *rule = cr->rule;

		if ((rule->flags & RX_NEEDQ) && !t->qmark)
			continue;
		if (!AnchorPresent(cr, t))
			continue;
		for (int pos = 0; pos < t->n; pos++)
		{
			int			end;
			bool		neg;
			int			cls;
			int			weight;

			if (t->ids[pos] < 0 || t->used[pos])
				continue;
			if ((rule->flags & RX_START) && pos > 0 && t->ids[pos - 1] != TOK_BOUNDARY)
				continue;
			end = MatchFrom(cr, 0, t, pos);
			if (end < 0)
				continue;
			/* another word outside stays outside wherever it matches */
			if ((rule->flags & RX_WHOLE) && !OnlyFillersOutside(t, pos, end))
				break;
			if ((rule->flags & (RX_END | RX_CLAUSE)) && end < t->n && t->ids[end] != TOK_BOUNDARY)
				continue;
			if ((rule->flags & RX_CLAUSE) && pos > 0 && t->ids[pos - 1] != TOK_BOUNDARY)
				continue;
			neg = (rule->neg != C_KEEP) &&
				Negated(t, pos, (rule->flags & RX_NEAR) ? 2 : NEG_MAX);
			cls = ResolveClass(neg ? rule->neg : rule->cls, ctx);
			weight = (neg && rule->neg_weight) ? rule->neg_weight : rule->weight;
			if (pos > contrast)
				weight *= 2;
			for (int i = pos; i < end; i++)
				t->used[i] = true;
			if (cls >= 0)
				scores[cls] += weight;
			if (!neg)
				*flags |= rule->flags & ~RX_ALL;
			pos = end - 1;
		}
	}
}

static void
InitTokens(Tokens *t)
{
	if (!Compiled)
		CompileTables();
	t->n = 0;
	t->qmark = false;
	t->ids = palloc(sizeof(int) * MAX_TOKENS);
	t->used = palloc0(sizeof(bool) * MAX_TOKENS);
	t->soft = palloc0(sizeof(bool) * MAX_TOKENS);
	t->present = palloc0(sizeof(uint64) * (NVocab / 64 + 1));
}

static void
FreeTokens(Tokens *t)
{
	pfree(t->ids);
	pfree(t->used);
	pfree(t->soft);
	pfree(t->present);
}

/*
 * IsTapback: whether text is a phone's reaction to our message ("Liked
 * "...""), which says nothing of the owner's own.
 */
static bool
IsTapback(const char *text, int len)
{
	static const char *const reactions[] = {
		"Liked ", "Loved ", "Emphasized ", "Laughed at ", "Disliked ", "Questioned ",
		"Reacted ",
	};

	for (int i = 0; i < (int) lengthof(reactions); i++)
	{
		int			n = strlen(reactions[i]);

		if (len > n && strncmp(text, reactions[i], n) == 0 &&
			(text[n] == '"' || (len > n + 2 && strncmp(text + n, "\xe2\x80\x9c", 3) == 0) ||
			 strncmp(reactions[i], "Reacted", 7) == 0))
			return true;
	}
	return false;
}

/*
 * crefinder_analyze_reply classifies len bytes of text (at most
 * REPLY_MAX_BYTES are read), a bare yes or no read as answering ctx.
 */
void
crefinder_analyze_reply(const char *text, int len, ReplyContext ctx, ReplyAnalysis *result)
{
	Tokens		t;
	int			best = RC_UNKNOWN;
	int			best_score = 0;

	memset(result, 0, sizeof(*result));
	if (IsTapback(text, len))
	{
		result->cls = RC_UNKNOWN;
		result->flags = RF_AUTOREPLY;
		return;
	}
	InitTokens(&t);
	Tokenize(text, len, &t);
	RunRules(CRules, lengthof(Rules), &t, ctx, result->scores, &result->flags);
	if (t.qmark)
		result->flags |= RF_QMARK;
	FreeTokens(&t);

	if (result->scores[RC_OPT_OUT] > 0)
		best = RC_OPT_OUT;
	else
		for (int c = RC_WRONG_NUMBER; c < RC_NCLASSES; c++)
			if (result->scores[c] > best_score)
			{
				best = c;
				best_score = result->scores[c];
			}
	result->cls = best;
}

/*
 * crefinder_question_context tells what a yes or no after an assistant's
 * utterance answers: its last question (or, without one, its last
 * sentence).
 */
ReplyContext
crefinder_question_context(const char *text, int len)
{
	Tokens		t;
	int			scores[RC_NCLASSES] = {0};
	int			flags = 0;
	int			end = len;
	int			start;

	if (len > REPLY_MAX_BYTES)
	{
		text += len - REPLY_MAX_BYTES;
		len = end = REPLY_MAX_BYTES;
	}
	for (int i = len - 1; i >= 0; i--)
		if (text[i] == '?')
		{
			end = i;
			break;
		}
	while (end > 0 && (text[end - 1] == '.' || text[end - 1] == '!' || text[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && text[start - 1] != '?' && text[start - 1] != '.' &&
		   text[start - 1] != '!' && text[start - 1] != '\n')
		start--;

	InitTokens(&t);
	Tokenize(text + start, end - start, &t);
	RunRules(CContextRules, lengthof(ContextRules), &t, RCTX_OTHER, scores, &flags);
	FreeTokens(&t);
	if (flags & RF_CTX_TIME)
		return RCTX_TIME;
	if (flags & RF_CTX_OFFER)
		return RCTX_OFFER;
	if (flags & RF_CTX_IDENTITY)
		return RCTX_IDENTITY;
	return RCTX_OTHER;
}

const char *
crefinder_reply_class_name(ReplyClass cls)
{
	static const char *const names[RC_NCLASSES] = {
		"opt_out", "wrong_number", "not_interested", "callback_later",
		"interested", "question", "unknown"
	};

	return names[cls];
}

/*
 * crefinder.classify_reply(reply text) returns the class of an owner's
 * reply to an outreach text.  Only the first REPLY_MAX_BYTES bytes are
 * read (an SMS is at most 1,600 characters).
 */
Datum
crefinder_classify_reply(PG_FUNCTION_ARGS)
{
	text	   *reply;
	ReplyAnalysis result;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	reply = PG_GETARG_TEXT_P_SLICE(0, 0, REPLY_MAX_BYTES);
	crefinder_analyze_reply(VARDATA_ANY(reply), VARSIZE_ANY_EXHDR(reply), RCTX_OFFER, &result);
	PG_RETURN_TEXT_P(cstring_to_text(crefinder_reply_class_name(result.cls)));
}
