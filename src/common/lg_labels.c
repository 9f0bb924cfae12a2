/*-------------------------------------------------------------------------
 *
 * lg_labels.c
 *		The names of pinning reasons, verdicts and actions, in the order of
 *		their enums (lg_labels.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lg_labels.h"

const char *const lg_reason_names[LG_NUM_REASONS] = {
	"set", "set_config", "prepared_statement", "protocol_prepared_statement",
	"discard", "temp_table", "temp_sequence", "temp_view", "cursor",
	"cursor_with_hold", "listen", "load", "sequence_function",
	"advisory_lock", "statement_too_large"
};

const char *const lg_verdict_names[LG_NUM_VERDICTS] = {
	"ok", "orphan", "orphan_aborted", "orphan_blocking", "pinned_idle",
	"overdue_query", "deadline_passed"
};

const char *const lg_action_names[LG_NUM_ACTIONS] = {
	"none", "terminate", "cancel", "dry_run", "skipped", "failed"
};
