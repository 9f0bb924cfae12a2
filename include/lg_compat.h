/*-------------------------------------------------------------------------
 *
 * lg_compat.h
 *		The differences between PostgreSQL 14 and 19 that pg_lambdaguard
 *		meets, in one place.  PostgreSQL 15 is what CI builds and tests;
 *		the others are built from source and tested before a release.
 *
 * Include it after postgres.h and the headers that declare what it adapts.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_COMPAT_H
#define LG_COMPAT_H

#if PG_VERSION_NUM < 140000
#error "pg_lambdaguard needs PostgreSQL 14 or later"
#endif

/* Shared memory is requested in shmem_request_hook from 15 on */
#if PG_VERSION_NUM >= 150000
#define LG_HAVE_SHMEM_REQUEST_HOOK 1
#endif

/*
 * MaxBackends, for sizing shared memory.  Before 15 it is still 0 while the
 * preload libraries' _PG_init runs (InitializeMaxBackends comes later), so
 * compute it from the settings the way InitializeMaxBackends() of 14 does.
 */
#if PG_VERSION_NUM >= 150000
#define LG_MAX_BACKENDS()		(MaxBackends)
#else
#include "postmaster/autovacuum.h"
#include "postmaster/postmaster.h"
#include "replication/walsender.h"
#define LG_MAX_BACKENDS() \
	(MaxBackends > 0 ? MaxBackends : \
	 MaxConnections + autovacuum_max_workers + 1 + \
	 max_worker_processes + max_wal_senders)
#endif

/* The index of a backend's slot in per-backend arrays */
#if PG_VERSION_NUM >= 170000
#define LG_MY_SLOT_INDEX()		(MyProcNumber)
#else
#include "storage/backendid.h"
#define LG_MY_SLOT_INDEX()		(MyBackendId - 1)
#endif

/* May the current user execute this function or procedure? */
#if PG_VERSION_NUM >= 160000
#define LG_MAY_EXECUTE(fn_oid) \
	(object_aclcheck(ProcedureRelationId, (fn_oid), GetUserId(), ACL_EXECUTE) == ACLCHECK_OK)
#else
#define LG_MAY_EXECUTE(fn_oid) \
	(pg_proc_aclcheck((fn_oid), GetUserId(), ACL_EXECUTE) == ACLCHECK_OK)
#endif

/* The local id of this backend's top-level transaction (its vxid's) */
#if PG_VERSION_NUM >= 170000
#define LG_MY_LXID()			(MyProc->vxid.lxid)
#else
#define LG_MY_LXID()			(MyProc->lxid)
#endif

/* A hint that memory at p is read (written) soon */
#if defined(__GNUC__) || defined(__clang__)
#define LG_PREFETCH(p)	__builtin_prefetch((const void *) (p))
#define LG_PREFETCH_WRITE(p)	__builtin_prefetch((const void *) (p), 1)
#else
#define LG_PREFETCH(p)	((void) 0)
#define LG_PREFETCH_WRITE(p)	((void) 0)
#endif

/* Slots of the backend status array (see backend_status.c) */
#if PG_VERSION_NUM >= 170000
#define LG_NUM_STATUS_SLOTS		(MaxBackends + NUM_AUXILIARY_PROCS)
#else
#define LG_NUM_STATUS_SLOTS		(MaxBackends + NUM_AUXPROCTYPES)
#endif

/*
 * The xmin of the backend in status slot "index" (pg_stat_activity's
 * backend_xmin): 17 indexes PGPROC by the same ProcNumber, before 17 the
 * slot is BackendId - 1.
 */
#include "storage/proc.h"
#if PG_VERSION_NUM >= 170000
#include "storage/procarray.h"
static inline TransactionId
lg_backend_xmin(int index)
{
	PGPROC	   *proc = ProcNumberGetProc(index);

	return proc ? *(volatile TransactionId *) &proc->xmin : InvalidTransactionId;
}
#else
#include "storage/sinvaladt.h"
static inline TransactionId
lg_backend_xmin(int index)
{
	PGPROC	   *proc = BackendIdGetProc(index + 1);

	return proc ? *(volatile TransactionId *) &proc->xmin : InvalidTransactionId;
}
#endif

/* ExecutorRun_hook lost its execute_once argument in 18 */
#if PG_VERSION_NUM >= 180000
#define LG_EXECUTOR_RUN_ARGS
#define LG_EXECUTOR_RUN_PASS
#else
#define LG_EXECUTOR_RUN_ARGS	, bool execute_once
#define LG_EXECUTOR_RUN_PASS	, execute_once
#endif

/* ShmemInitHash lost its separate initial size in 19 */
#if PG_VERSION_NUM >= 190000
#define lg_shmem_init_hash(name, nelems, info, flags) \
	ShmemInitHash((name), (nelems), (info), (flags))
#else
#define lg_shmem_init_hash(name, nelems, info, flags) \
	ShmemInitHash((name), (nelems), (nelems), (info), (flags))
#endif

/*
 * 19 knows string literals only as standard_conforming_strings = on; before,
 * the setting is in parser/parser.h
 */
#if PG_VERSION_NUM >= 190000
#define LG_STANDARD_STRINGS		true
#else
#define LG_STANDARD_STRINGS		standard_conforming_strings
#endif

/* 19 compiles with -Wimplicit-fallthrough=5 and has pg_fallthrough */
#ifndef pg_fallthrough
#if defined(__GNUC__) && __GNUC__ >= 7
#define pg_fallthrough __attribute__((fallthrough))
#else
#define pg_fallthrough ((void) 0)
#endif
#endif

/* pg_terminate_backend takes a timeout (0: do not wait) */
#define LG_TERMINATE_BACKEND(pid) \
	DirectFunctionCall2(pg_terminate_backend, Int32GetDatum(pid), Int64GetDatum(0))

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

/* 19: the typed part of a GUC variable is a union inside config_generic */
#if PG_VERSION_NUM >= 190000
#define LG_GUC_VAR(g, type)		(&(g)->_##type)
#else
#define LG_GUC_VAR(g, type)		((struct config_##type *) (g))
#endif

#endif							/* LG_COMPAT_H */
