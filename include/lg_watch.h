/*-------------------------------------------------------------------------
 *
 * lg_watch.h
 *		Which sessions are watched: lambdaguard.roles, application_names and
 *		client_addresses; never a superuser's.  The orphan guard acts on
 *		watched sessions only; lambdaguard.track_pinning = watched records
 *		their pinning only.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_WATCH_H
#define LG_WATCH_H

#include "libpq/pqcomm.h"

/* The lambdaguard.roles list resolved to role OIDs in this transaction */
typedef struct LgWatchFilter
{
	bool		star;
	int			nroles;
	Oid		   *roles;
} LgWatchFilter;

/* Needs a transaction (role names are looked up); allocates in it */
extern void lg_watch_filter_init(LgWatchFilter *filter);
extern bool lg_watch_role(const LgWatchFilter *filter, Oid userid,
						  bool superuser);
extern bool lg_watch_match(const LgWatchFilter *filter, Oid userid,
						   bool superuser, const char *appname,
						   const SockAddr *addr);

#endif							/* LG_WATCH_H */
