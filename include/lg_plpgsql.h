/*-------------------------------------------------------------------------
 *
 * lg_plpgsql.h
 *		The PL/pgSQL instrumentation plugin that sees the calls in simple
 *		expressions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LG_PLPGSQL_H
#define LG_PLPGSQL_H

/* The plugin (a PLpgSQL_plugin) for the "PLpgSQL_plugin" rendezvous variable */
extern void *lg_plpgsql_plugin(void);

#endif							/* LG_PLPGSQL_H */
