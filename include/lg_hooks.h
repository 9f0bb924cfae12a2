/*-------------------------------------------------------------------------
 *
 * lg_hooks.h
 *		The pinning hooks.  The root (pg_lambdaguard.c) assigns them to the
 *		core's hook variables and hands over the values it replaced.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_HOOKS_H
#define LG_HOOKS_H

#include "executor/executor.h"
#include "fmgr.h"
#include "tcop/utility.h"

#include "lg_compat.h"

/* The hooks that were set before ours: each of ours calls its predecessor */
typedef struct LgHookChain
{
	ExecutorStart_hook_type ExecutorStart;
	ExecutorRun_hook_type ExecutorRun;
	ExecutorFinish_hook_type ExecutorFinish;
	ProcessUtility_hook_type ProcessUtility;
	needs_fmgr_hook_type needs_fmgr;
	fmgr_hook_type fmgr;
} LgHookChain;

extern void lg_hooks_chain(const LgHookChain *previous);

extern void lg_ExecutorStart(QueryDesc *queryDesc, int eflags);
extern void lg_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction,
						   uint64 count LG_EXECUTOR_RUN_ARGS);
extern void lg_ExecutorFinish(QueryDesc *queryDesc);
extern void lg_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
							  bool readOnlyTree, ProcessUtilityContext context,
							  ParamListInfo params, QueryEnvironment *queryEnv,
							  DestReceiver *dest, QueryCompletion *qc);
extern bool lg_needs_fmgr_hook(Oid fn_oid);
extern void lg_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo,
						 Datum *private);

#endif							/* LG_HOOKS_H */
