/*-------------------------------------------------------------------------
 *
 * pg_lambdaguard.c
 *		The composition root of pg_lambdaguard: _PG_init, the settings,
 *		every hook assignment, the shared-memory request (the sum of each
 *		module's size) and its start-up (each module's init), and the
 *		background worker's registration.
 *
 * The modules below depend on each other in one direction only:
 *
 *	  common (src/common) <- shared memory (src/shmem)
 *		<- { orphan guard (src/orphan), pinning (src/pinning) }
 *		<- SQL-callable layer (src/sql) <- this file
 *
 * The orphan guard and pinning never call each other; nothing calls the SQL
 * layer; modules read settings through lg_settings.h only.  The test
 * command checks it (tools/check_layers.sh).
 *
 * Everything that needs shared memory needs the library in
 * shared_preload_libraries.  Loaded any other way (CREATE EXTENSION without
 * preloading), _PG_init does nothing and the SQL functions raise 55000.
 *
 * Copyright (c) 2026, pg_lambdaguard developers
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "lg_compat.h"
#include "lg_hooks.h"
#include "lg_planwalk.h"
#include "lg_plpgsql.h"
#include "lg_settings.h"
#include "lg_shmem.h"
#include "lg_worker.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* ----------
 * Settings
 * ----------
 */
char	   *lg_database = NULL;
bool		lg_enabled = true;
int			lg_naptime = 1000;
int			lg_idle_in_transaction_timeout = 60000;
int			lg_aborted_transaction_timeout = 10000;
int			lg_blocking_timeout = 5000;
int			lg_pinned_idle_timeout = 0;
int			lg_active_timeout = 0;
int			lg_deadline_grace = 1000;
bool		lg_dry_run = false;
int			lg_max_terminations = 10;
int			lg_history_retention = 10080;
int			lg_track_pinning = LG_TRACK_ALL;
int			lg_max_events = 1000;

static char *lg_roles_string = NULL;
static char *lg_appnames_string = NULL;
static char *lg_addrs_string = NULL;
static char *lg_ignored_string = NULL;

/* Parsed forms, owned by the GUC machinery as "extra" data */
static const LgNameList lg_empty_names = {0, false};
static const LgCidrList lg_empty_cidrs = {0};

const LgNameList *lg_roles_list = &lg_empty_names;
uint32		lg_roles_generation = 0;
const LgNameList *lg_appname_list = &lg_empty_names;
const LgCidrList *lg_addr_list = &lg_empty_cidrs;
const LgNameList *lg_ignored_list = &lg_empty_names;

static const struct config_enum_entry lg_track_options[] = {
	{"none", LG_TRACK_NONE, false},
	{"watched", LG_TRACK_WATCHED, false},
	{"all", LG_TRACK_ALL, false},
	{NULL, 0, false}
};

#define LG_DEFAULT_IGNORED \
	"application_name, client_encoding, DateStyle, TimeZone, standard_conforming_strings"

#ifdef LG_HAVE_SHMEM_REQUEST_HOOK
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void *lg_guc_alloc(size_t size);

/*
 * The check hooks parse a list once, into a block the GUC machinery keeps
 * as "extra"; the assign hooks only publish that block.  A bad element is
 * named in the DETAIL of the error (SET, ALTER SYSTEM) or of the LOG line
 * (reload), and the old value stays.
 */
static bool
check_name_list(char **newval, void **extra, LgListKind kind)
{
	char		errbuf[LG_MATCH_ERRLEN];
	LgNameList *list;

	list = lg_parse_names(*newval, kind, lg_guc_alloc, errbuf);
	if (list == NULL)
	{
		GUC_check_errdetail("%s", errbuf);
		return false;
	}
	*extra = list;
	return true;
}

static void *
lg_guc_alloc(size_t size)
{
	return lg_guc_alloc_fn(size);
}

static bool
check_roles(char **newval, void **extra, GucSource source)
{
	return check_name_list(newval, extra, LG_LIST_ROLES);
}

static void
assign_roles(const char *newval, void *extra)
{
	lg_roles_list = extra ? (const LgNameList *) extra : &lg_empty_names;
	lg_roles_generation++;
}

static bool
check_appnames(char **newval, void **extra, GucSource source)
{
	return check_name_list(newval, extra, LG_LIST_PATTERNS);
}

static void
assign_appnames(const char *newval, void *extra)
{
	lg_appname_list = extra ? (const LgNameList *) extra : &lg_empty_names;
}

static bool
check_ignored(char **newval, void **extra, GucSource source)
{
	return check_name_list(newval, extra, LG_LIST_PARAMETERS);
}

static void
assign_ignored(const char *newval, void *extra)
{
	lg_ignored_list = extra ? (const LgNameList *) extra : &lg_empty_names;
}

static bool
check_addrs(char **newval, void **extra, GucSource source)
{
	char		errbuf[LG_MATCH_ERRLEN];
	LgCidrList *list;

	list = lg_parse_cidrs(*newval, lg_guc_alloc, errbuf);
	if (list == NULL)
	{
		GUC_check_errdetail("%s", errbuf);
		return false;
	}
	*extra = list;
	return true;
}

static void
assign_addrs(const char *newval, void *extra)
{
	lg_addr_list = extra ? (const LgCidrList *) extra : &lg_empty_cidrs;
}

static void
lg_define_settings(void)
{
	DefineCustomStringVariable("lambdaguard.database",
							   "Database the worker connects to and writes history into.",
							   NULL,
							   &lg_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("lambdaguard.enabled",
							 "When off, the worker decides and records nothing and signals nobody.",
							 NULL,
							 &lg_enabled,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("lambdaguard.naptime",
							"Longest time between two scans of the worker.",
							NULL,
							&lg_naptime,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomStringVariable("lambdaguard.roles",
							   "Roles whose sessions are watched: a comma list, '*' for every non-superuser role.",
							   NULL,
							   &lg_roles_string,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   check_roles, assign_roles, NULL);

	DefineCustomStringVariable("lambdaguard.application_names",
							   "If set, a watched session's application_name must match one of these LIKE patterns.",
							   NULL,
							   &lg_appnames_string,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   check_appnames, assign_appnames, NULL);

	DefineCustomStringVariable("lambdaguard.client_addresses",
							   "If set, a watched session's client address must fall in one of these CIDRs ('local' for Unix sockets).",
							   NULL,
							   &lg_addrs_string,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   check_addrs, assign_addrs, NULL);

	DefineCustomIntVariable("lambdaguard.idle_in_transaction_timeout",
							"A watched session idle in transaction this long is an orphan; 0 turns it off.",
							NULL,
							&lg_idle_in_transaction_timeout,
							60000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("lambdaguard.aborted_transaction_timeout",
							"A watched session idle in an aborted transaction this long is an orphan; 0 turns it off.",
							NULL,
							&lg_aborted_transaction_timeout,
							10000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("lambdaguard.blocking_timeout",
							"A watched session idle in transaction that others wait on is an orphan after this long; 0 turns it off.",
							NULL,
							&lg_blocking_timeout,
							5000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("lambdaguard.pinned_idle_timeout",
							"A watched idle session that is pinned is terminated after this long; 0 turns it off.",
							NULL,
							&lg_pinned_idle_timeout,
							0, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("lambdaguard.active_timeout",
							"A watched statement running this long is cancelled, and its session terminated one more period later; 0 turns it off.",
							NULL,
							&lg_active_timeout,
							0, 0, INT_MAX / 2,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("lambdaguard.deadline_grace",
							"How long after the deadline a client declared in a statement comment its still-open transaction has lost its caller.",
							"The key lambdaguard_deadline of a sqlcommenter comment declares the deadline.",
							&lg_deadline_grace,
							1000, 0, INT_MAX / 4,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("lambdaguard.dry_run",
							 "Decide, record and log, but signal nobody.",
							 NULL,
							 &lg_dry_run,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("lambdaguard.max_terminations",
							"Most signals the worker sends in one scan.",
							NULL,
							&lg_max_terminations,
							10, 1, 10000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("lambdaguard.history_retention",
							"The worker deletes history rows older than this; 0 keeps them forever.",
							NULL,
							&lg_history_retention,
							10080, 0, 60 * 24 * 3650,
							PGC_SIGHUP,
							GUC_UNIT_MIN,
							NULL, NULL, NULL);

	DefineCustomStringVariable("lambdaguard.ignored_parameters",
							   "Parameters whose SET, RESET or set_config is not a pinning reason.",
							   NULL,
							   &lg_ignored_string,
							   LG_DEFAULT_IGNORED,
							   PGC_SUSET,
							   GUC_LIST_INPUT,
							   check_ignored, assign_ignored, NULL);

	DefineCustomEnumVariable("lambdaguard.track_pinning",
							 "Whose session-state changes are recorded: all, watched or none.",
							 NULL,
							 &lg_track_pinning,
							 LG_TRACK_ALL,
							 lg_track_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("lambdaguard.max_events",
							"Capacity of the pinning event ring.",
							NULL,
							&lg_max_events,
							1000, 10, 100000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("lambdaguard");
}

/*
 * Shared memory: the sum of what each module needs, and one LWLock for the
 * event ring.
 */
static void
lg_shmem_request(void)
{
	RequestAddinShmemSpace(add_size(lg_shmem_size(), lg_worker_shmem_size()));
	RequestNamedLWLockTranche(LG_SHMEM_TRANCHE, 1);
}

#ifdef LG_HAVE_SHMEM_REQUEST_HOOK
static void
lg_shmem_request_hook(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	lg_shmem_request();
}
#endif

static void
lg_shmem_startup_hook(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	lg_shmem_init();
	lg_worker_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The pinning hooks, each after the one that was there, and the PL/pgSQL
 * plugin, which wraps the plugin that holds PL/pgSQL's one slot (if any).
 */
static void
lg_install_pinning_hooks(void)
{
	LgHookChain prev;

	prev.ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = lg_ExecutorStart;
	prev.ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = lg_ExecutorRun;
	prev.ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = lg_ExecutorFinish;
	prev.ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = lg_ProcessUtility;
	prev.needs_fmgr = needs_fmgr_hook;
	needs_fmgr_hook = lg_needs_fmgr_hook;
	prev.fmgr = fmgr_hook;
	fmgr_hook = lg_fmgr_hook;
	lg_hooks_chain(&prev);
	lg_planwalk_init();			/* what is known of functions and views */

	lg_plpgsql_install(find_rendezvous_variable("PLpgSQL_plugin"));
}

void
_PG_init(void)
{
	/* Without preloading there is no shared memory: stay quiet. */
	if (!process_shared_preload_libraries_in_progress)
		return;

	lg_define_settings();

#ifdef LG_HAVE_SHMEM_REQUEST_HOOK
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = lg_shmem_request_hook;
#else
	lg_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = lg_shmem_startup_hook;

	lg_install_pinning_hooks();
	lg_worker_register();
}
