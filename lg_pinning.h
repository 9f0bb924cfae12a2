/*-------------------------------------------------------------------------
 *
 * lg_pinning.h
 *		Declarations shared by the pinning files: the hooks (lg_pinning.c),
 *		the table of utility statement effects (lg_utility.c), the plan
 *		walker (lg_planwalk.c), the PL/pgSQL plugin (lg_plpgsql.c), the
 *		session's events and dirty state (lg_session.c), and the readers of
 *		the session's real state (lg_session_state.c, lg_names.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_PINNING_H
#define LG_PINNING_H

#include "access/parallel.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"

#include "pg_lambdaguard.h"

/*
 * Kinds of session state.  Each is read from PostgreSQL itself (or, where
 * PostgreSQL keeps it out of reach, from what the hooks saw) and maps to
 * the reasons shown in dirty_reasons.
 */
#define LG_STATE_GUC		0x0001	/* parameters, role, session user */
#define LG_STATE_PREPARED	0x0002	/* prepared statements, both kinds */
#define LG_STATE_TEMP		0x0004	/* relations in the temporary schema */
#define LG_STATE_CURSOR		0x0008	/* open cursors */
#define LG_STATE_LISTEN		0x0010	/* channels listened on */
#define LG_STATE_ADVISORY	0x0020	/* session-level advisory locks */
#define LG_STATE_SEQUENCE	0x0040	/* currval/lastval answer */
#define LG_STATE_LOAD		0x0080	/* a library was LOADed */
#define LG_STATE_ALL		0x00FF

/* What a state kind does to the session's state when a statement ran */
typedef enum LgEffectOp
{
	LG_OP_NONE = 0,
	LG_OP_ADD,					/* a named object is created */
	LG_OP_SUB,					/* a named object is dropped */
	LG_OP_CLEAR,				/* every object of the kind is dropped */
	LG_OP_READ					/* changed in ways to read back afterwards */
} LgEffectOp;

/* The effect of one utility statement, looked up in lg_utility.c's table */
typedef struct LgUtilityEffect
{
	int			reason;			/* LgReason of its event, or -1 for none */
	uint32		state;			/* LG_STATE_* it changes, 0 for none */
	LgEffectOp	op;
	uint32		clears;			/* more LG_STATE_* it clears (DISCARD ALL) */
	const char *name;			/* object named by ADD/SUB, parameter of SET */
	bool		hold;			/* DECLARE ... WITH HOLD */
	bool		on_commit_drop; /* temp table gone at commit */
	RangeVar   *rel;			/* the temp table ON COMMIT DROP */
	bool		own_query;		/* runs its own query through the executor */
	bool		runs_code;		/* DO, CALL: code inside is hidden */
	bool		copy_from;		/* COPY table FROM: defaults may call nextval */
} LgUtilityEffect;

/* lg_utility.c */
extern void lg_utility_effect(Node *parsetree, LgUtilityEffect *e);
extern bool lg_parameter_ignored(const char *name);

/* lg_planwalk.c: what the function calls of a plan do */
typedef struct LgPlanCalls
{
	uint32		reasons;		/* reasons of explicit (or inlined) calls */
	bool		set_config;		/* set_config(.., .., false) may have run */
	bool		sequence;		/* nextval/setval(true) may have run */
	bool		advisory;		/* an advisory lock function may have run */
} LgPlanCalls;

extern uint32 lg_text_names_functions(const char *text, size_t len,
									   const char *paren);
extern bool lg_plan_may_inline(PlannedStmt *pstmt);
extern bool lg_function_is_c_code(Oid fn_oid);
extern void lg_plan_calls(PlannedStmt *pstmt, LgPlanCalls *calls);
extern bool lg_plan_sets_sequence(PlannedStmt *pstmt);
extern bool lg_copy_sets_sequence(CopyStmt *stmt);
extern void lg_expr_calls(Node *expr, LgPlanCalls *calls);

/* lg_pinning.c: the hooks */
extern int	lg_nesting_level;

/* lg_session.c: this session's events and dirty_reasons */
extern uint32 lg_dirty_mask;
extern uint32 lg_stmt_touched;
extern uint32 lg_xact_touched;
extern bool lg_fn_ran;
extern bool lg_guc_known;
extern bool lg_xact_names;
extern bool lg_pin_shmem_ready;
extern uint32 lg_stmt_events;
extern uint32 lg_pending_read;
extern uint32 lg_published_dirty;

/* Record pinning here at all? (parallel workers: their leader does) */
static inline bool
lg_tracking(void)
{
	return lg_track_pinning != LG_TRACK_NONE && !IsParallelWorker() &&
		(lg_pin_shmem_ready || (lg_pin_shmem_ready = lg_shmem_ready()));
}

extern void lg_record_event(LgReason reason, bool hidden, const char *text,
							int location, int len, uint64 queryid);
extern void lg_hidden_calls(const LgPlanCalls *calls, const char *text);
extern void lg_set_dirty(uint32 bits, bool on);
extern void lg_publish(const char *pinned_by);
extern void lg_statement_begin_slow(void);
extern void lg_statement_end_slow(void);
extern void lg_read_param(const char *name);
extern void lg_note_on_commit_drop(Oid relid);
extern void lg_note_kinds(uint32 kinds);
extern void lg_note_advisory(void);
extern void lg_session_register(void);

/*
 * The transaction callbacks are registered the first time a session does
 * something they must see: a session that never changes state pays
 * nothing for them at transaction end.  Whatever sets lg_stmt_touched,
 * lg_xact_touched, lg_fn_ran, lg_xact_names or records an event calls this
 * first.
 */
extern bool lg_callbacks_registered;

static inline void
lg_callbacks_needed(void)
{
	if (unlikely(!lg_callbacks_registered))
		lg_session_register();
}

/*
 * The start and the end of a statement the client sent.  Most statements
 * change nothing: they only check that here.
 */
static inline void
lg_statement_begin(void)
{
	if (lg_stmt_events != 0 || lg_pending_read != 0)
		lg_statement_begin_slow();
}

static inline void
lg_statement_end(void)
{
	if ((lg_stmt_events | lg_stmt_touched | lg_pending_read) != 0 || lg_fn_ran ||
		lg_dirty_mask != lg_published_dirty)
		lg_statement_end_slow();
}

/* lg_plpgsql.c */
extern void lg_plpgsql_install(void);

/* lg_session_state.c: the real state */
extern bool lg_guc_dirty(bool at_abort, uint64 *fingerprint);
extern bool lg_guc_dirty_one(const char *name, uint64 *fingerprint);
extern int	lg_session_advisory_locks(void);
extern int	lg_temp_relations(int *tables, int *sequences, int *views,
							  const Oid *ignore, int nignore);
extern bool lg_temp_namespace_used(void);

/* lg_names.c: named objects PostgreSQL keeps out of reach */
extern void lg_names_prepared(const char *name, bool from_sql, LgEffectOp op);
extern bool lg_protocol_statement_is_new(const char *name);
extern void lg_names_verify_prepared(void);
extern void lg_names_prepared_counts(bool *sql, bool *protocol);
extern void lg_names_cursor(const char *name, bool hold, LgEffectOp op);
extern void lg_names_cursor_xact_end(bool commit);
extern void lg_names_cursor_subxact_end(SubTransactionId sub,
										SubTransactionId parent, bool commit);
extern void lg_names_cursor_counts(bool *plain, bool *hold);
extern void lg_names_listen(const char *name, LgEffectOp op);
extern void lg_names_listen_xact_end(bool commit);
extern void lg_names_listen_subxact_end(int level, bool commit);
extern bool lg_names_listening(void);

#endif							/* LG_PINNING_H */
