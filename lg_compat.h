/*-------------------------------------------------------------------------
 *
 * lg_compat.h
 *		The differences between PostgreSQL 13 and 17 that pg_lambdaguard
 *		meets, in one place.  PostgreSQL 15 is what CI builds and tests.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_COMPAT_H
#define LG_COMPAT_H

#if PG_VERSION_NUM < 130000
#error "pg_lambdaguard needs PostgreSQL 13 or later"
#endif

/* Shared memory is requested in shmem_request_hook from 15 on */
#if PG_VERSION_NUM >= 150000
#define LG_HAVE_SHMEM_REQUEST_HOOK 1
#endif

/* The index of a backend's slot in per-backend arrays */
#if PG_VERSION_NUM >= 170000
#define LG_MY_SLOT_INDEX()		(MyProcNumber)
#else
#define LG_MY_SLOT_INDEX()		(MyBackendId - 1)
#endif

/* Slots of the backend status array (see backend_status.c) */
#if PG_VERSION_NUM >= 170000
#define LG_NUM_STATUS_SLOTS		(MaxBackends + NUM_AUXILIARY_PROCS)
#else
#define LG_NUM_STATUS_SLOTS		(MaxBackends + NUM_AUXPROCTYPES)
#endif

/* Reading the local copy of the backend status array */
#if PG_VERSION_NUM >= 170000
#define lg_local_beentry(i)		pgstat_get_local_beentry_by_index(i)
#else
#define lg_local_beentry(i)		pgstat_fetch_stat_local_beentry(i)
#endif

/* ProcessUtility gained readOnlyTree in 14, post_parse_analyze a JumbleState */
#if PG_VERSION_NUM >= 140000
#define LG_UTILITY_ARGS_READONLY	bool readOnlyTree,
#define LG_UTILITY_PASS_READONLY	readOnlyTree,
#else
#define LG_UTILITY_ARGS_READONLY
#define LG_UTILITY_PASS_READONLY
#endif

/* pg_terminate_backend took a timeout from 14 on */
#if PG_VERSION_NUM >= 140000
#define LG_TERMINATE_BACKEND(pid) \
	DirectFunctionCall2(pg_terminate_backend, Int32GetDatum(pid), Int64GetDatum(0))
#else
#define LG_TERMINATE_BACKEND(pid) \
	DirectFunctionCall1(pg_terminate_backend, Int32GetDatum(pid))
#endif

/* Function OIDs: 14 gave the overloaded ones argument-typed names */
#if PG_VERSION_NUM < 140000
#define F_SETVAL_REGCLASS_INT8					1576
#define F_SETVAL_REGCLASS_INT8_BOOL				1765
#define F_PG_ADVISORY_LOCK_INT8					2880
#define F_PG_ADVISORY_LOCK_SHARED_INT8			2881
#define F_PG_TRY_ADVISORY_LOCK_INT8				2882
#define F_PG_TRY_ADVISORY_LOCK_SHARED_INT8		2883
#define F_PG_ADVISORY_UNLOCK_INT8				2884
#define F_PG_ADVISORY_UNLOCK_SHARED_INT8		2885
#define F_PG_ADVISORY_LOCK_INT4_INT4			2886
#define F_PG_ADVISORY_LOCK_SHARED_INT4_INT4		2887
#define F_PG_TRY_ADVISORY_LOCK_INT4_INT4		2888
#define F_PG_TRY_ADVISORY_LOCK_SHARED_INT4_INT4 2889
#define F_PG_ADVISORY_UNLOCK_INT4_INT4			2890
#define F_PG_ADVISORY_UNLOCK_SHARED_INT4_INT4	2891
#endif

/* Reserving the settings prefix */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix)	EmitWarningsOnPlaceholders(prefix)
#endif

/* The GUC machinery frees "extra" with guc_free from 16 on, free() before */
#if PG_VERSION_NUM >= 160000
#define lg_guc_alloc_fn(size)	guc_malloc(LOG, (size))
#else
#define lg_guc_alloc_fn(size)	malloc(size)
#endif

/* 16: get_guc_variables() returns its length */
#if PG_VERSION_NUM >= 160000
#define lg_guc_variables(n)		get_guc_variables(n)
#else
#define lg_guc_variables(n)		(*(n) = GetNumConfigOptions(), get_guc_variables())
#endif

#endif							/* LG_COMPAT_H */
