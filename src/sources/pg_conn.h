/*
 * pg_conn.h — libpq helpers shared by the logical and physical PostgreSQL
 * sources.  A conninfo of NULL or "" means the PG* environment.
 */
#ifndef OB_PG_CONN_H
#define OB_PG_CONN_H

#include <libpq-fe.h>

#include "core/err.h"

/* Connect to conninfo's server, optionally overriding the database. */
PGconn *pg_conn_open(const char *conninfo, const char *dbname, ob_err *err);
/* Run a statement; any error becomes err, naming the statement. */
int pg_conn_exec(PGconn *c, const char *sql, ob_err *err);
/* One value (first row, first column; "" for no row or NULL); caller
 * frees.  NULL with err set on failure. */
char *pg_conn_value(PGconn *c, const char *sql, ob_err *err);
/* conninfo (key=value words or a postgresql:// URI; NULL: "") with key set
 * to value, as a key=value string; caller frees.  NULL with err set when
 * conninfo does not parse or key is not a libpq keyword. */
char *pg_conninfo_set(const char *conninfo, const char *key, const char *value, ob_err *err);

#endif
