/*-------------------------------------------------------------------------
 *
 * lg_settings.h
 *		The settings of pg_lambdaguard (lambdaguard.*), defined in
 *		pg_lambdaguard.c.  Every module reads settings through this header
 *		and through nothing else of the root; none writes them.
 *
 * The list settings are parsed by their GUC check hooks into blocks the GUC
 * machinery keeps as "extra" data; these pointers always point to a parsed
 * list (an empty one when the setting is empty).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_SETTINGS_H
#define LG_SETTINGS_H

#include "lg_match.h"

typedef enum LgTrackPinning
{
	LG_TRACK_NONE,
	LG_TRACK_WATCHED,
	LG_TRACK_ALL
} LgTrackPinning;

extern char *lg_database;
extern bool lg_enabled;
extern int	lg_naptime;
extern int	lg_idle_in_transaction_timeout;
extern int	lg_aborted_transaction_timeout;
extern int	lg_blocking_timeout;
extern int	lg_pinned_idle_timeout;
extern int	lg_active_timeout;
extern int	lg_deadline_grace;
extern bool lg_dry_run;
extern int	lg_max_terminations;
extern int	lg_history_retention;
extern int	lg_track_pinning;		/* LgTrackPinning */
extern int	lg_max_events;

extern const LgNameList *lg_roles_list;
extern uint32 lg_roles_generation;	/* counts assignments of lambdaguard.roles */
extern const LgNameList *lg_appname_list;
extern const LgCidrList *lg_addr_list;
extern const LgNameList *lg_ignored_list;

/* Is a parameter in lambdaguard.ignored_parameters (its SET pins nothing)? */
static inline bool
lg_parameter_ignored(const char *name)
{
	return name != NULL && lg_list_contains_ci(lg_ignored_list, name);
}

#endif							/* LG_SETTINGS_H */
