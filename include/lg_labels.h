/*-------------------------------------------------------------------------
 *
 * lg_labels.h
 *		The words pg_lambdaguard shows users: pinning reasons, verdicts and
 *		actions, as enums, masks and the names the SQL interface prints.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_LABELS_H
#define LG_LABELS_H

/*
 * Pinning reasons.  The order is the order of the bits in a reason mask and
 * of the rows of lambdaguard.reasons; lg_reason_names[] follows it.
 */
typedef enum LgReason
{
	LG_REASON_SET = 0,
	LG_REASON_SET_CONFIG,
	LG_REASON_PREPARED_STATEMENT,
	LG_REASON_PROTOCOL_PREPARED_STATEMENT,
	LG_REASON_DISCARD,
	LG_REASON_TEMP_TABLE,
	LG_REASON_TEMP_SEQUENCE,
	LG_REASON_TEMP_VIEW,
	LG_REASON_CURSOR,
	LG_REASON_CURSOR_WITH_HOLD,
	LG_REASON_LISTEN,
	LG_REASON_LOAD,
	LG_REASON_SEQUENCE_FUNCTION,
	LG_REASON_ADVISORY_LOCK,
	LG_REASON_STATEMENT_TOO_LARGE
} LgReason;

#define LG_NUM_REASONS			(LG_REASON_STATEMENT_TOO_LARGE + 1)

/* A set of reasons: bit r is reason r */
typedef uint32 LgReasonMask;

#define LG_REASON_BIT(r)		((LgReasonMask) 1 << (r))
/* The bit of a reason by its short name: LG_REASON_MASK(SET_CONFIG) */
#define LG_REASON_MASK(name)	LG_REASON_BIT(LG_REASON_##name)
#define LG_ALL_REASONS			(LG_REASON_BIT(LG_NUM_REASONS) - 1)

/*
 * The reasons that pin RDS Proxy (lambdaguard.reasons.pins_rds_proxy): all
 * but named protocol-level statements, which it multiplexes.
 * sessions.pinned means pin_reasons holds one of these.
 */
#define LG_PINS_RDS_PROXY_MASK \
	(LG_ALL_REASONS & ~LG_REASON_MASK(PROTOCOL_PREPARED_STATEMENT))

/*
 * What pinned_idle acts on: a session pinned at the proxy, or holding state
 * that a transaction pooler would hand to the next client and that the next
 * client could trip over.  Not the state every pooled connection comes to
 * hold and no client reads across clients: a named protocol-level statement
 * (the drivers that name their statements keep one on every connection) or
 * the sequence state an INSERT into a serial column leaves (currval).  An
 * explicit nextval() still pins RDS Proxy, so its session is pinned and
 * counts.
 */
#define LG_PINNED_IDLE_SPARED \
	(LG_REASON_MASK(PROTOCOL_PREPARED_STATEMENT) | \
	 LG_REASON_MASK(SEQUENCE_FUNCTION))
#define LG_PINNED_IDLE_REASONS(pin_mask, dirty_mask) \
	(((pin_mask) & LG_PINS_RDS_PROXY_MASK) | \
	 ((dirty_mask) & ~LG_PINNED_IDLE_SPARED))

extern const char *const lg_reason_names[LG_NUM_REASONS];

/* Verdicts (lambdaguard.history.verdict) */
typedef enum LgVerdict
{
	LG_VERDICT_OK = 0,
	LG_VERDICT_ORPHAN,
	LG_VERDICT_ORPHAN_ABORTED,
	LG_VERDICT_ORPHAN_BLOCKING,
	LG_VERDICT_PINNED_IDLE,
	LG_VERDICT_OVERDUE_QUERY,
	LG_VERDICT_DEADLINE_PASSED
} LgVerdict;

#define LG_NUM_VERDICTS			(LG_VERDICT_DEADLINE_PASSED + 1)

/* Actions (lambdaguard.history.action) */
typedef enum LgAction
{
	LG_ACTION_NONE = 0,
	LG_ACTION_TERMINATE,
	LG_ACTION_CANCEL,
	LG_ACTION_DRY_RUN,
	LG_ACTION_SKIPPED,
	LG_ACTION_FAILED
} LgAction;

#define LG_NUM_ACTIONS			(LG_ACTION_FAILED + 1)

extern const char *const lg_verdict_names[LG_NUM_VERDICTS];
extern const char *const lg_action_names[LG_NUM_ACTIONS];

#endif							/* LG_LABELS_H */
