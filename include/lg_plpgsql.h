/*-------------------------------------------------------------------------
 *
 * lg_plpgsql.h
 *		The PL/pgSQL instrumentation plugin that sees the calls in simple
 *		expressions, wrapping any other plugin (plpgsql_check, pldebugger).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_PLPGSQL_H
#define LG_PLPGSQL_H

/* Install in the "PLpgSQL_plugin" rendezvous variable (from _PG_init) */
extern void lg_plpgsql_install(void **rendezvous);

/* Wrap a plugin a library loaded later put there (cheap when none did) */
extern void lg_plpgsql_check_plugin(void);

#endif							/* LG_PLPGSQL_H */
