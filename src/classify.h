/*
 * classify.h
 *		Reply understanding: the phrase engine behind classify_reply() and
 *		analyze_transcript() (see classify.c and transcript.c).
 */
#ifndef CREFINDER_CLASSIFY_H
#define CREFINDER_CLASSIFY_H

/* Classes, in the order that breaks ties (opt_out always wins). */
typedef enum ReplyClass
{
	RC_OPT_OUT = 0,
	RC_WRONG_NUMBER,
	RC_NOT_INTERESTED,
	RC_CALLBACK_LATER,
	RC_INTERESTED,
	RC_QUESTION,
	RC_UNKNOWN,
	RC_NCLASSES
} ReplyClass;

/*
 * What a bare "yes" or "no" answers.  A text reply answers the outreach
 * ("would you consider an offer?"); on a call it answers the assistant's
 * last question, which may be "is this John?".
 */
typedef enum ReplyContext
{
	RCTX_OFFER = 0,				/* yes = interested, no = not interested */
	RCTX_IDENTITY,				/* yes = nothing, no = wrong number */
	RCTX_TIME,					/* yes = nothing, no = call back later */
	RCTX_OTHER					/* yes = nothing, no = not interested */
} ReplyContext;

/* Flags a reply may carry besides its class. */
#define RF_STRONG		0x0001	/* asks for an offer now */
#define RF_MEETING		0x0002	/* asks for a meeting, a visit, a written offer */
#define RF_PRICE		0x0004	/* names a price */
#define RF_HOSTILE		0x0008	/* profanity, threats, spam reports */
#define RF_VOICEMAIL	0x0010	/* a voicemail greeting */
#define RF_AUTOREPLY	0x0020	/* an automatic reply */
#define RF_QMARK		0x0040	/* has a question mark */
#define RF_LEAD			0x0080	/* passes the offer on to the owner */
#define RF_CTX_IDENTITY 0x0100	/* (context rules) asks who this is */
#define RF_CTX_OFFER	0x0200	/* (context rules) asks about selling */
#define RF_CTX_TIME		0x0400	/* (context rules) asks about the time */

/* At most this many bytes of one text are read. */
#define REPLY_MAX_BYTES 4096

typedef struct ReplyAnalysis
{
	ReplyClass	cls;
	int			scores[RC_NCLASSES];
	int			flags;
} ReplyAnalysis;

extern void crefinder_analyze_reply(const char *text, int len, ReplyContext ctx,
									ReplyAnalysis *result);
extern ReplyContext crefinder_question_context(const char *text, int len);
extern const char *crefinder_reply_class_name(ReplyClass cls);

#endif							/* CREFINDER_CLASSIFY_H */
