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
 *	   everything else (emoji, symbols, bytes that are not UTF-8 letters)
 *	   separates words.  Runs of three or more of a letter become two.
 *	2. Canonicalize each word: SMS spellings, abbreviations and common
 *	   misspellings map to one form (Lexicon: "pls" is "please", "rn" is
 *	   "right now", "intrested" is "interested"); a word that is not known
 *	   is tried with its doubled letters made single, then against a few
 *	   cue words with one letter missing, added or swapped (FuzzyWords).
 *	3. Match the rules, in table order: each is a phrase over canonical
 *	   words (alternatives a/b, optional [a], a gap * of up to GAP_MAX
 *	   words).  A word used by a rule is not used by a later one, so longer
 *	   and more specific phrases come first.  A negator shortly before a
 *	   phrase, in the same clause, gives the rule's negated class instead
 *	   ("not interested", "don't text me", "not opposed").  Each rule adds
 *	   its weight to its class; any opt-out cue makes the reply opt_out,
 *	   else the highest score wins, ties going to the earlier class of
 *	   ReplyClass.
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
} Rule;

/*
 * The rules, in the order they are tried.  Words are canonical (see
 * Lexicon): "text" stands for text, texts, texting, msg, message; "call"
 * for calls, calling; "#prof" for profanity; "#num" and "#price" for
 * numbers and amounts.
 */
static const Rule Rules[] = {
	/* Phrases that hold a cue word but mean something else. */
	{"do not disturb * driving", UNK, KEEP, 4, RF_AUTOREPLY},
	{"dont disturb * driving", UNK, KEEP, 4, RF_AUTOREPLY},
	{"driving * do not disturb", UNK, KEEP, 4, RF_AUTOREPLY},
	{"auto/automatic/automated reply/response/responder/text", UNK, KEEP, 4, RF_AUTOREPLY},
	{"this is an automated", UNK, KEEP, 4, RF_AUTOREPLY},
	{"out of * office", UNK, KEEP, 4, RF_AUTOREPLY},
	{"sent from my", UNK, KEEP, 2, RF_AUTOREPLY},
	{"leave * text/name/voicemail", UNK, KEEP, 4, RF_VOICEMAIL},
	{"at/after the tone/beep", UNK, KEEP, 4, RF_VOICEMAIL},
	{"voicemail/mailbox", UNK, KEEP, 4, RF_VOICEMAIL},
	{"you have reach", UNK, KEEP, 3, RF_VOICEMAIL},
	{"not available * now", UNK, KEEP, 2, RF_VOICEMAIL},
	{"cant * to the phone", UNK, KEEP, 3, RF_VOICEMAIL},
	{"record your", UNK, KEEP, 3, RF_VOICEMAIL},
	{"no problem/worries", UNK, KEEP, 1, 0},
	{"no idea", NONE, KEEP, 0, 0},
	{"not sure", NONE, KEEP, 0, 0},
	{"no one/body * by that name", WRN, KEEP, 4, 0},
	{"stop by/in/over/at", NONE, KEEP, 0, 0},
	{"bus/pit/truck/one stop", NONE, KEEP, 0, 0},
	{"stop sign/light", NONE, KEEP, 0, 0},
	{"cancel * appointment/meeting/closing/contract/listing/deal/escrow/order/showing", NONE, KEEP, 0, 0},
	{"quit my/his/her/the job", NONE, KEEP, 0, 0},
	{"credit report", NONE, KEEP, 0, 0},
	{"the/a/city/that/this block", NONE, KEEP, 0, 0},
	{"keep me posted/updated/informed", INT, KEEP, 2, 0},
	{"keep * in mind", INT, KEEP, 2, 0},
	{"is this * scam/legit/real/joke", QST, KEEP, 3, 0},
	{"not/wont/never say/saying no", INT, KEEP, 3, 0},
	{"not a no", INT, KEEP, 3, 0},
	{"not now or ever", NOT, KEEP, 4, 0},
	{"not now * ever/never", NOT, KEEP, 4, 0},

	/* Opt-out: any reasonable request to stop. */
	{"stop", OPT, NONE, 3, 0},
	{"unsubscribe", OPT, KEEP, 3, 0},
	{"opt * out", OPT, KEEP, 3, 0},
	{"revoke", OPT, KEEP, 3, 0},
	{"cancelar", OPT, KEEP, 3, 0},
	{"basta", OPT, KEEP, 3, 0},
	{"de baja", OPT, KEEP, 3, 0},
	{"end", OPT, KEEP, 3, RX_WHOLE},
	{"alto", OPT, KEEP, 3, RX_WHOLE},
	{"baja", OPT, KEEP, 3, RX_WHOLE},
	{"quit", OPT, NONE, 3, 0},
	{"cancel", OPT, NONE, 3, 0},
	{"remove", OPT, KEEP, 3, 0},
	{"take * off", OPT, KEEP, 3, 0},
	{"off * list", OPT, KEEP, 3, 0},
	{"lose/forget * number", OPT, KEEP, 3, 0},
	{"forget about me/us", OPT, KEEP, 3, 0},
	{"leave * alone", OPT, KEEP, 3, 0},
	{"go away", OPT, KEEP, 3, 0},
	{"get lost", OPT, KEEP, 3, RF_HOSTILE},
	{"back/buzz/piss/bugger off", OPT, KEEP, 3, RF_HOSTILE},
	{"go to hell", OPT, KEEP, 3, RF_HOSTILE},
	{"screw you/off", OPT, KEEP, 3, RF_HOSTILE},
	{"shut up", OPT, KEEP, 3, RF_HOSTILE},
	{"shove it", OPT, KEEP, 3, RF_HOSTILE},
	{"drop dead", OPT, KEEP, 3, RF_HOSTILE},
	{"#prof", OPT, KEEP, 3, RF_HOSTILE},
	{"spam", OPT, KEEP, 3, RF_HOSTILE},
	{"report", OPT, KEEP, 3, RF_HOSTILE},
	{"block", OPT, KEEP, 3, RF_HOSTILE},
	{"harass", OPT, KEEP, 3, RF_HOSTILE},
	{"bother", OPT, KEEP, 3, 0},
	{"sue you/u/your/them", OPT, KEEP, 3, RF_HOSTILE},
	{"will sue", OPT, KEEP, 3, RF_HOSTILE},
	{"lawyer/attorney/tcpa/fcc/ftc/illegal", OPT, KEEP, 3, RF_HOSTILE},
	{"do not call", OPT, KEEP, 3, 0},
	{"do not disturb", OPT, KEEP, 3, 0},
	{"no more", OPT, KEEP, 3, 0},
	{"no $reach", OPT, KEEP, 3, 0},
	{"never * again", OPT, KEEP, 3, 0},
	{"dont want * $reach", OPT, KEEP, 3, 0},
	{"enough already", OPT, KEEP, 3, 0},
	{"that is enough", OPT, KEEP, 3, 0},
	{"enough is enough", OPT, KEEP, 3, 0},
	{"enough", OPT, KEEP, 3, RX_WHOLE},
	{"no * escribir/contactar/llamar/mandar/molestar", OPT, KEEP, 3, 0},
	{"en paz", OPT, KEEP, 3, 0},
	{"deja de", OPT, KEEP, 3, 0},
	{"borrar", OPT, KEEP, 3, 0},
	{"no mas mensaje/llamar", OPT, KEEP, 3, 0},
	{"molestar", OPT, KEEP, 3, 0},

	/* Wrong number: not the owner, or not the person. */
	{"wrong number/person/guy/lady/man/owner/property/address/contact/name/one/people/persona/$prop", WRN, KEEP, 4, 0},
	{"wrong * number/person/guy/owner/property/address/$prop", WRN, KEEP, 4, 0},
	{"you have * wrong", WRN, KEEP, 3, 0},
	{"equivocado", WRN, KEEP, 4, 0},
	{"by that name", WRN, KEEP, 4, 0},
	{"no soy * dueno", WRN, KEEP, 4, 0},
	{"owner", NONE, WRN, 3, 0},
	{"own", NONE, WRN, 3, 0},
	{"dueno", NONE, WRN, 3, 0},
	{"sold", WRN, NONE, 3, 0},
	{"vendi", WRN, NONE, 3, 0},
	{"not mine", WRN, KEEP, 3, 0},
	{"my $prop", NONE, WRN, 3, 0},
	{"dont know * named/called", WRN, KEEP, 3, 0},
	{"dont know who that is/was", WRN, KEEP, 3, 0},
	{"never heard of", WRN, KEEP, 2, 0},
	{"passed away/on", WRN, KEEP, 3, 0},
	{"deceased/died", WRN, KEEP, 3, 0},
	{"new number", WRN, KEEP, 3, 0},
	{"just got * number", WRN, KEEP, 3, 0},
	{"not me", WRN, KEEP, 2, 0},
	{"wrong", WRN, NONE, 2, 0},

	/* Not interested. */
	{"no thanks/gracias", NOT, KEEP, 3, 0},
	{"thanks but no", NOT, KEEP, 3, 0},
	{"nope", NOT, KEEP, 2, 0},
	{"pass", NOT, KEEP, 2, 0},
	{"no way", NOT, KEEP, 3, 0},
	{"not a chance", NOT, KEEP, 3, 0},
	{"hell no", NOT, KEEP, 3, 0},
	{"absolutely/definitely/certainly/course/surely not", NOT, KEEP, 3, 0},
	{"never", NOT, KEEP, 2, RX_WHOLE},
	{"dont think so", NOT, KEEP, 3, 0},
	{"no deal", NOT, KEEP, 3, 0},
	{"not at this time", NOT, KEEP, 2, 0},
	{"for sale", INT, NOT, 2, 0},
	{"en venta", INT, NOT, 2, 0},
	{"sell", INT, NOT, 1, 0},
	{"vender", INT, NOT, 1, 0},
	{"uninterested", NOT, INT, 3, 0},
	{"interested", INT, NOT, 3, 0},
	{"interest", INT, NOT, 2, 0},
	{"interesa", INT, NOT, 3, 0},
	{"interesting", INT, NOT, 2, 0},
	{"opposed", NOT, INT, 2, 0},
	{"looking", NONE, NOT, 2, 0},
	{"keep/keeping it/the/my/this/our", NOT, KEEP, 2, 0},
	{"i am good", NOT, KEEP, 2, 0},
	{"we are good", NOT, KEEP, 2, 0},
	{"all set", NOT, KEEP, 1, 0},

	/* Call back later. */
	{"not right now", CBK, KEEP, 3, 0},
	{"not now", CBK, KEEP, 3, 0},
	{"ahora no", CBK, KEEP, 3, 0},
	{"not yet", CBK, KEEP, 2, 0},
	{"not ready", CBK, KEEP, 2, 0},
	{"not * good time", CBK, KEEP, 3, 0},
	{"bad time", CBK, KEEP, 3, 0},
	{"busy", CBK, KEEP, 2, 0},
	{"ocupado", CBK, KEEP, 2, 0},
	{"at work", CBK, KEEP, 2, 0},
	{"in a meeting", CBK, KEEP, 2, 0},
	{"driving", CBK, KEEP, 1, 0},
	{"$reach * back", CBK, OPT, 2, 0},
	{"later", CBK, KEEP, 2, 0},
	{"mas tarde", CBK, KEEP, 3, 0},
	{"manana", CBK, KEEP, 2, 0},
	{"proxima", CBK, KEEP, 2, 0},
	{"next $period", CBK, KEEP, 2, 0},
	{"this evening/afternoon/weekend", CBK, KEEP, 1, 0},
	{"tomorrow/tonight", CBK, KEEP, 2, 0},
	{"few/couple $period", CBK, KEEP, 2, 0},
	{"in #num $period", CBK, KEEP, 2, 0},
	{"monday/tuesday/wednesday/thursday/friday/saturday/sunday", CBK, KEEP, 1, 0},
	{"spring/summer/fall/winter", CBK, KEEP, 1, 0},
	{"end of * year/month/summer/week", CBK, KEEP, 2, 0},
	{"after * holidays", CBK, KEEP, 2, 0},
	{"try * again/later/back", CBK, KEEP, 2, 0},
	{"another/other/different time/day", CBK, KEEP, 2, 0},
	{"get back to you", CBK, KEEP, 2, 0},
	{"future", CBK, KEEP, 2, 0},
	{"down the road", CBK, KEEP, 2, 0},
	{"someday/eventually/sometime", CBK, KEEP, 1, 0},
	{"check back/in", CBK, KEEP, 2, 0},
	{"circle back", CBK, KEEP, 2, 0},
	{"follow up", CBK, KEEP, 1, 0},
	{"touch base", CBK, KEEP, 1, 0},
	{"remind me", CBK, KEEP, 2, 0},
	{"give me * time", CBK, KEEP, 2, 0},
	{"think about it", CBK, KEEP, 2, 0},
	{"talk to my", CBK, KEEP, 1, 0},

	/* Interested. */
	{"make * offer", INT, NOT, 3, RF_STRONG},
	{"send * offer", INT, NOT, 3, RF_STRONG},
	{"what * offer", INT, KEEP, 3, RF_STRONG},
	{"how much", INT, KEEP, 3, RF_STRONG},
	{"cuanto", INT, KEEP, 3, RF_STRONG},
	{"what * pay", INT, KEEP, 3, RF_STRONG},
	{"would you pay/offer", INT, KEEP, 3, RF_STRONG},
	{"give me * number/price/offer/figure/quote", INT, KEEP, 3, RF_STRONG},
	{"best offer", INT, KEEP, 3, RF_STRONG},
	{"offer", INT, NOT, 2, 0},
	{"open to", INT, NOT, 2, 0},
	{"i am open", INT, NOT, 2, 0},
	{"entertain", INT, NOT, 2, 0},
	{"consider", INT, NOT, 2, 0},
	{"willing", INT, NOT, 2, 0},
	{"depends", INT, KEEP, 2, 0},
	{"right price", INT, KEEP, 3, 0},
	{"price", INT, KEEP, 1, 0},
	{"tell me more", INT, KEEP, 3, 0},
	{"more info/information/details", INT, KEEP, 2, 0},
	{"send * info/information/details/something/proposal/it", INT, KEEP, 2, 0},
	{"lets talk", INT, KEEP, 3, 0},
	{"talk", INT, NOT, 1, 0},
	{"meet/appointment/schedule/visit/tour/showing", INT, NOT, 2, RF_MEETING},
	{"come see/by/look/out", INT, KEEP, 2, RF_MEETING},
	{"maybe/possibly/perhaps/potentially/probably", INT, KEEP, 1, 0},
	{"tal vez", INT, KEEP, 1, 0},
	{"quizas", INT, KEEP, 1, 0},
	{"sounds good/great/interesting", INT, KEEP, 2, 0},
	{"why not", INT, KEEP, 2, 0},
	{"go ahead", INT, KEEP, 1, 0},
	{"i am listening", INT, KEEP, 2, 0},
	{"what * in mind", INT, KEEP, 2, 0},
	{"#price", INT, KEEP, 2, RF_PRICE},
	{"#num thousand/million/grand/k/mil/m", INT, KEEP, 2, RF_PRICE},

	/* Questions. */
	{"who * this", QST, KEEP, 3, 0},
	{"who are you", QST, KEEP, 3, 0},
	{"who you are", QST, KEEP, 3, 0},
	{"who * $reach", QST, KEEP, 3, 0},
	{"how * get * number/info/name/contact/information/details/phone", QST, KEEP, 3, 0},
	{"where * get * number/info/name/contact/information/details/phone", QST, KEEP, 3, 0},
	{"de donde", QST, KEEP, 3, 0},
	{"quien", QST, KEEP, 3, 0},
	{"que * empresa/compania", QST, KEEP, 3, 0},
	{"what/which company/business/firm/agency/outfit", QST, KEEP, 3, 0},
	{"who * work for/with", QST, KEEP, 3, 0},
	{"what * about/regarding", QST, KEEP, 3, 0},
	{"what/which $prop/address", QST, KEEP, 3, 0},
	{"scam", QST, KEEP, 2, 0},
	{"are you * realtor/agent/investor/broker/bot/robot/person/human/ai/real/company/wholesaler", QST, KEEP, 3, 0},
	{"what do you want", QST, KEEP, 2, 0},
	{"what is your name", QST, KEEP, 3, 0},
	{"why * $reach", QST, KEEP, 2, 0},
	{"how do you know", QST, KEEP, 3, 0},
	{"what is this", QST, KEEP, 2, 0},
	{"$reach me/us", INT, OPT, 1, 0},
	{"$reach", NONE, OPT, 3, 0},
	{"wtf", QST, KEEP, 1, RF_HOSTILE},
	{"who/what/why/how/where/when/which", QST, KEEP, 1, RX_NEEDQ},
	{"is/are/do/does/did/can/could/would/will", QST, KEEP, 1, RX_NEEDQ | RX_START},

	/* Acknowledgements, then bare yes and no. */
	{"ok/thanks/lol/cool", UNK, KEEP, 1, 0},
	{"sure", YES, KEEP, 1, 0},
	{"of course", YES, KEEP, 1, 0},
	{"absolutely/definitely", YES, KEEP, 1, 0},
	{"yes", YES, KEEP, 1, 0},
	{"no", NO, KEEP, 1, 0},
};

/*
 * Rules over an assistant's question on a call: what a "yes" or "no"
 * that follows it answers (crefinder_question_context).
 */
static const Rule ContextRules[] = {
	{"good/bad/better time", NONE, KEEP, 0, RF_CTX_TIME},
	{"is now", NONE, KEEP, 0, RF_CTX_TIME},
	{"right now", NONE, KEEP, 0, RF_CTX_TIME},
	{"interested/interest/consider/sell/offer/open/meet/schedule/appointment/send", NONE, KEEP, 0, RF_CTX_OFFER},
	{"is this", NONE, KEEP, 0, RF_CTX_IDENTITY},
	{"am i speaking/talking", NONE, KEEP, 0, RF_CTX_IDENTITY},
	{"speaking with/to", NONE, KEEP, 0, RF_CTX_IDENTITY},
	{"owner/own/dueno", NONE, KEEP, 0, RF_CTX_IDENTITY},
};

/* Macros usable as one element of a rule ("$reach"). */
typedef struct Macro
{
	const char *name;
	const char *words;
} Macro;

static const Macro Macros[] = {
	{"$reach", "text/call/contact/email/reach/ping/solicit/write"},
	{"$prop", "property/building/house/home/place/lot/land/unit/plaza/parcel/warehouse/complex/store/apartment"},
	{"$period", "week/weekend/month/year/quarter/season/spring/summer/fall/winter/monday/tuesday/wednesday/thursday/friday/saturday/sunday"},
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
	{"calls", "call"}, {"calling", "call"}, {"called", "call"}, {"callin", "call"},
	{"contacting", "contact"}, {"contacted", "contact"}, {"emails", "email"},
	{"emailing", "email"}, {"emailed", "email"}, {"reached", "reach"}, {"reaching", "reach"},
	{"soliciting", "solicit"}, {"solicitation", "solicit"}, {"solicitor", "solicit"},
	{"solicitors", "solicit"}, {"writing", "write"},
	/* opt-out words */
	{"bothering", "bother"}, {"bothered", "bother"}, {"bothers", "bother"},
	{"botherin", "bother"}, {"harassing", "harass"}, {"harassment", "harass"},
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
	{"lista", "list"},
};

/* Words that negate a phrase that follows within their scope. */
typedef struct Negator
{
	const char *word;
	int			scope;
} Negator;

static const Negator Negators[] = {
	{"not", 4}, {"never", 4}, {"dont", 4}, {"cant", 3}, {"wont", 3}, {"isnt", 3},
	{"havent", 3}, {"no", 2}, {"non", 1}, {"without", 2}, {"longer", 3}, {"hardly", 2},
	{"nor", 2}, {"ni", 2}, {"neither", 2},
};

/* Words that end a negation's scope. */
static const char *const ClauseBreaks[] = {
	"but", "though", "however", "although", "pero", "except", "if", "whether", "unless",
};

/* Words a whole-reply keyword ("END", "alto") may come with. */
static const char *const Fillers[] = {
	"please", "now", "it", "all", "me", "thanks", "this", "us", "ok", "por", "favor",
	"immediately", "right", "asap", "the", "text", "ya", "lol",
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
static int	IdNum;				/* "#num" */
static int	IdPrice;			/* "#price" */

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
			n += 20;
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
	AddWords(&wl, "#num #price");

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

/* PushWord canonicalizes one normalized word and adds its ids. */
static void
PushWord(Tokens *t, const char *word, int len)
{
	char		single[MAX_WORD + 1];
	int			slen = 0;

	if (len > MAX_WORD)
	{
		PushId(t, TOK_UNKNOWN);
		return;
	}
	if (word[0] == '$')
	{
		if (len > 1 && isdigit((unsigned char) word[1]))
			PushId(t, IdPrice);
		else if (len > 1)
			PushWord(t, word + 1, len - 1);
		return;
	}
	if (isdigit((unsigned char) word[0]))
	{
		int			i = 0;

		while (i < len && (isdigit((unsigned char) word[i]) || word[i] == '.'))
			i++;
		if (i == len)
			PushId(t, IdNum);
		else if (strcmp(word + i, "k") == 0 || strcmp(word + i, "m") == 0 ||
				 strcmp(word + i, "mil") == 0 || strcmp(word + i, "million") == 0 ||
				 strcmp(word + i, "mm") == 0)
			PushId(t, IdPrice);
		else if (!PushKnown(t, word))
			PushId(t, TOK_UNKNOWN);
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
	PushId(t, TOK_UNKNOWN);
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
		case 0x1F44D:			/* thumbs up */
			return "ok";
		case 0x1F44E:			/* thumbs down */
			return "no";
	}
	return NULL;
}

/*
 * Tokenize normalizes and canonicalizes at most REPLY_MAX_BYTES bytes of
 * text into t (whose arrays the caller allocated).
 */
static void
Tokenize(const char *text, int len, Tokens *t)
{
	char		word[MAX_WORD + 2];
	int			wlen = 0;
	bool		overlong = false;
	int			i = 0;

	if (len > REPLY_MAX_BYTES)
		len = REPLY_MAX_BYTES;

#define FLUSH() \
	do { \
		if (wlen > 0 || overlong) \
		{ \
			word[wlen] = '\0'; \
			PushWord(t, word, overlong ? MAX_WORD + 1 : wlen); \
		} \
		wlen = 0; \
		overlong = false; \
	} while (0)
#define APPEND(ch) \
	do { \
		char		c_ = (ch); \
		if (wlen >= 2 && word[wlen - 1] == c_ && word[wlen - 2] == c_ && isalpha((unsigned char) c_)) \
			break; \
		if (wlen < MAX_WORD) \
			word[wlen++] = c_; \
		else \
			overlong = true; \
	} while (0)

	while (i < len)
	{
		unsigned char c = (unsigned char) text[i];

		if (c < 0x80)
		{
			if (isalpha(c))
				APPEND((char) tolower(c));
			else if (isdigit(c))
				APPEND((char) c);
			else if (c == '\'' || c == '`')
				 /* joins: "don't" */ ;
			else if (c == '$')
			{
				FLUSH();
				APPEND('$');
			}
			else if ((c == '.' || c == ',') && wlen > 0 && isdigit((unsigned char) word[wlen - 1]) &&
					 i + 1 < len && isdigit((unsigned char) text[i + 1]))
			{
				if (c == '.')
					APPEND('.');
			}
			else if (c == '?' || c == '.' || c == '!' || c == ',' || c == ';' ||
					 c == ':' || c == '\n' || c == '\r')
			{
				FLUSH();
				if (c == '?')
					t->qmark = true;
				PushId(t, TOK_BOUNDARY);
			}
			else
				FLUSH();
			i++;
			continue;
		}

		/* A UTF-8 sequence: its length, checked. */
		{
			int			n = (c >= 0xF0 && c <= 0xF4) ? 4 : (c >= 0xE0) ? 3 : (c >= 0xC2 && c <= 0xDF) ? 2 : 1;
			uint32		cp;
			bool		valid = (n > 1 && i + n <= len);

			for (int k = 1; valid && k < n; k++)
				if (((unsigned char) text[i + k] & 0xC0) != 0x80)
					valid = false;
			if (!valid)
			{
				FLUSH();
				i++;
				continue;
			}
			cp = (n == 2) ? (c & 0x1F) : (n == 3) ? (c & 0x0F) : (c & 0x07);
			for (int k = 1; k < n; k++)
				cp = (cp << 6) | ((unsigned char) text[i + k] & 0x3F);
			i += n;

			if (cp >= 0xC0 && cp <= 0xFF && Latin1Base[cp - 0xC0] != '-')
				APPEND(Latin1Base[cp - 0xC0]);
			else if (cp == 0x2019 || cp == 0x2018 || cp == 0x02BC)
				 /* apostrophes join */ ;
			else if (cp == 0x2026 || cp == 0xBF || cp == 0xA1)
			{
				/* an ellipsis ends a clause; inverted marks open one */
				FLUSH();
				if (cp == 0xBF)
					t->qmark = true;
				PushId(t, TOK_BOUNDARY);
			}
			else if (EmojiWord(cp))
			{
				FLUSH();
				PushWord(t, EmojiWord(cp), strlen(EmojiWord(cp)));
			}
			else
				FLUSH();
		}
	}
	FLUSH();
#undef FLUSH
#undef APPEND
}

/* ---------------------------------------------------------------------
 * Matching
 * --------------------------------------------------------------------- */

static bool
ElemHas(const Elem *el, int id)
{
	if (id < 0)
		return false;
	for (int i = 0; i < el->nalt; i++)
		if (AltIds[el->alt + i] == id)
			return true;
	return false;
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
Negated(const Tokens *t, int start)
{
	for (int d = 1; d <= NEG_MAX && start - d >= 0; d++)
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

			if (t->ids[pos] < 0 || t->used[pos])
				continue;
			if ((rule->flags & RX_START) && pos > 0 && t->ids[pos - 1] != TOK_BOUNDARY)
				continue;
			end = MatchFrom(cr, 0, t, pos);
			if (end < 0)
				continue;
			if ((rule->flags & RX_WHOLE) && !OnlyFillersOutside(t, pos, end))
				continue;
			neg = (rule->neg != C_KEEP) && Negated(t, pos);
			cls = ResolveClass(neg ? rule->neg : rule->cls, ctx);
			for (int i = pos; i < end; i++)
				t->used[i] = true;
			if (cls >= 0)
				scores[cls] += rule->weight;
			if (!neg)
				*flags |= rule->flags & ~(RX_WHOLE | RX_NEEDQ | RX_START);
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
	t->present = palloc0(sizeof(uint64) * (NVocab / 64 + 1));
}

static void
FreeTokens(Tokens *t)
{
	pfree(t->ids);
	pfree(t->used);
	pfree(t->present);
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
