/*-------------------------------------------------------------------------
 *
 * lg_worker.h
 *		The background worker: its scans, the storm brake, and scan(false),
 *		which it runs on a caller's behalf.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_WORKER_H
#define LG_WORKER_H

#include "nodes/pg_list.h"

extern void lg_worker_register(void);

/* Its request slot in shared memory: the root requests and initializes it */
extern Size lg_worker_shmem_size(void);
extern void lg_worker_shmem_init(void);

/* Have the worker act on what is due now for "caller": decisions made */
extern List *lg_worker_act_for(Oid caller);

PGDLLEXPORT void lg_worker_main(Datum main_arg);

#endif							/* LG_WORKER_H */
