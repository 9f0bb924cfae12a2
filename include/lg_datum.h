/*-------------------------------------------------------------------------
 *
 * lg_datum.h
 *		Values as the SQL interface shows them, shared by the audit trail
 *		(lambdaguard.history rows) and the SQL-callable functions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_DATUM_H
#define LG_DATUM_H

#include "libpq/pqcomm.h"
#include "utils/backend_status.h"

#include "lg_labels.h"

/* A client address as inet; NULL for Unix sockets and unknown families */
extern Datum lg_inet_datum(const SockAddr *addr, bool *isnull);

/* A reason mask as text[], in reason order */
extern Datum lg_reasons_array(LgReasonMask mask, bool *isnull);

/* A backend's state as pg_stat_activity.state names it, or NULL */
extern const char *lg_backend_state_name(BackendState state);

#endif							/* LG_DATUM_H */
