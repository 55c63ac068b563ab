/*
 * pq_lib.h — libpq, opened on first use (D57; see core/dynlib.h for why).
 *
 * Include this instead of <libpq-fe.h>: it declares libpq's types as usual
 * and turns every libpq function this project calls into a call through a
 * table that pq_lib_load fills.  pq_lib_load must have succeeded before the
 * first call: pg_conn_open and pg_conninfo_set do it, and so must any other
 * code that calls libpq before having a connection.
 */
#ifndef OB_PQ_LIB_H
#define OB_PQ_LIB_H

#include <libpq-fe.h>

#include "core/err.h"

#define PQ_LIB_FUNCS(X)                                                                       \
    X(PQconnectdbParams) X(PQstatus) X(PQerrorMessage) X(PQfinish) X(PQserverVersion)         \
    X(PQparameterStatus) X(PQdb) X(PQexec) X(PQexecParams) X(PQresultStatus)                  \
    X(PQresultErrorMessage) X(PQntuples) X(PQnfields) X(PQgetvalue) X(PQgetisnull)            \
    X(PQclear) X(PQescapeLiteral) X(PQescapeIdentifier) X(PQfreemem) X(PQconninfoParse)       \
    X(PQconninfoFree) X(PQclientEncoding) X(PQmblen) X(PQgetCancel) X(PQcancel)              \
    X(PQfreeCancel) X(PQhost) X(PQport)

/* Written once, by the first pq_lib_load, and only read afterwards. */
typedef struct pq_lib {
#define PQ_LIB_MEMBER(f) __typeof__(f) *f;
    PQ_LIB_FUNCS(PQ_LIB_MEMBER)
#undef PQ_LIB_MEMBER
} pq_lib;
extern pq_lib pq_lib_fns;

/* Open libpq.so.5 (once per process; later calls repeat the first result). */
int pq_lib_load(ob_err *err);

#ifndef PQ_LIB_NO_MACROS
#define PQconnectdbParams (pq_lib_fns.PQconnectdbParams)
#define PQstatus (pq_lib_fns.PQstatus)
#define PQerrorMessage (pq_lib_fns.PQerrorMessage)
#define PQfinish (pq_lib_fns.PQfinish)
#define PQserverVersion (pq_lib_fns.PQserverVersion)
#define PQparameterStatus (pq_lib_fns.PQparameterStatus)
#define PQdb (pq_lib_fns.PQdb)
#define PQexec (pq_lib_fns.PQexec)
#define PQexecParams (pq_lib_fns.PQexecParams)
#define PQresultStatus (pq_lib_fns.PQresultStatus)
#define PQresultErrorMessage (pq_lib_fns.PQresultErrorMessage)
#define PQntuples (pq_lib_fns.PQntuples)
#define PQnfields (pq_lib_fns.PQnfields)
#define PQgetvalue (pq_lib_fns.PQgetvalue)
#define PQgetisnull (pq_lib_fns.PQgetisnull)
#define PQclear (pq_lib_fns.PQclear)
#define PQescapeLiteral (pq_lib_fns.PQescapeLiteral)
#define PQescapeIdentifier (pq_lib_fns.PQescapeIdentifier)
#define PQfreemem (pq_lib_fns.PQfreemem)
#define PQconninfoParse (pq_lib_fns.PQconninfoParse)
#define PQconninfoFree (pq_lib_fns.PQconninfoFree)
#define PQclientEncoding (pq_lib_fns.PQclientEncoding)
#define PQmblen (pq_lib_fns.PQmblen)
#define PQgetCancel (pq_lib_fns.PQgetCancel)
#define PQhost (pq_lib_fns.PQhost)
#define PQport (pq_lib_fns.PQport)
#define PQcancel (pq_lib_fns.PQcancel)
#define PQfreeCancel (pq_lib_fns.PQfreeCancel)
#endif

#endif
