/*-------------------------------------------------------------------------
 *
 * lg_datum.c
 *		Values as the SQL interface shows them (see lg_datum.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "catalog/pg_type.h"
#include "common/ip.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inet.h"

#include "lg_datum.h"

Datum
lg_inet_datum(const SockAddr *addr, bool *isnull)
{
	char		host[NI_MAXHOST];
	const struct sockaddr *sa = (const struct sockaddr *) &addr->addr;

	*isnull = true;
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return (Datum) 0;
	if (pg_getnameinfo_all(&addr->addr, addr->salen, host, sizeof(host),
						   NULL, 0, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return (Datum) 0;
	clean_ipv6_addr(sa->sa_family, host);
	*isnull = false;
	return DirectFunctionCall1(inet_in, CStringGetDatum(host));
}

Datum
lg_reasons_array(LgReasonMask mask, bool *isnull)
{
	Datum		elems[LG_NUM_REASONS];
	int			n = 0;
	int			r;

	for (r = 0; r < LG_NUM_REASONS; r++)
		if (mask & LG_REASON_BIT(r))
			elems[n++] = CStringGetTextDatum(lg_reason_names[r]);
	*isnull = false;
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

const char *
lg_backend_state_name(BackendState state)
{
	switch (state)
	{
		case STATE_IDLE:
			return "idle";
		case STATE_RUNNING:
			return "active";
		case STATE_IDLEINTRANSACTION:
			return "idle in transaction";
		case STATE_IDLEINTRANSACTION_ABORTED:
			return "idle in transaction (aborted)";
		case STATE_FASTPATH:
			return "fastpath function call";
		case STATE_DISABLED:
			return "disabled";
#if PG_VERSION_NUM >= 180000
		case STATE_STARTING:
			return "starting";
#endif
		default:
			return NULL;
	}
}
