/*-------------------------------------------------------------------------
 *
 * lg_watch.c
 *		Which sessions are watched (see lg_watch.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>
#include <netinet/in.h>

#include "utils/acl.h"

#include "lg_settings.h"
#include "lg_watch.h"

void
lg_watch_filter_init(LgWatchFilter *filter)
{
	const LgNameList *roles = lg_roles_list;
	int			i;

	filter->star = roles->star;
	filter->nroles = 0;
	filter->roles = roles->n > 0 ? palloc(sizeof(Oid) * roles->n) : NULL;
	for (i = 0; i < roles->n; i++)
	{
		Oid			roleid;

		if (strcmp(roles->items[i], "*") == 0)
			continue;
		/* a role that does not exist yet is not an error */
		roleid = get_role_oid(roles->items[i], true);
		if (OidIsValid(roleid))
			filter->roles[filter->nroles++] = roleid;
	}
}

/* Could a session of this role be watched (by lambdaguard.roles alone)? */
bool
lg_watch_role(const LgWatchFilter *filter, Oid userid, bool superuser)
{
	int			i;

	if (superuser)
		return false;
	if (filter->star)
		return true;
	for (i = 0; i < filter->nroles; i++)
		if (filter->roles[i] == userid)
			return true;
	return false;
}

bool
lg_watch_match(const LgWatchFilter *filter, Oid userid, bool superuser,
			   const char *appname, const SockAddr *addr)
{
	if (!lg_watch_role(filter, userid, superuser))
		return false;

	if (lg_appname_list->n > 0 &&
		!lg_list_like_any(lg_appname_list, appname ? appname : ""))
		return false;

	if (lg_addr_list->n > 0)
	{
		const struct sockaddr *sa = addr ? (const struct sockaddr *) &addr->addr : NULL;

		if (sa == NULL)
			return false;
		switch (sa->sa_family)
		{
			case AF_UNIX:
				return lg_cidrs_match(lg_addr_list, AF_UNIX, NULL);
			case AF_INET:
				return lg_cidrs_match(lg_addr_list, AF_INET,
									  (const unsigned char *) &((const struct sockaddr_in *) sa)->sin_addr);
			case AF_INET6:
				return lg_cidrs_match(lg_addr_list, AF_INET6,
									  (const unsigned char *) &((const struct sockaddr_in6 *) sa)->sin6_addr);
			default:
				return false;
		}
	}
	return true;
}
