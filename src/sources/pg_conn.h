/*
 * pg_conn.h — libpq helpers shared by the logical and physical PostgreSQL
 * sources.  A conninfo of NULL or "" means the PG* environment.
 */
#ifndef OB_PG_CONN_H
#define OB_PG_CONN_H

#include "sources/pq_lib.h"

#include "core/err.h"

/* Connect to conninfo's server, optionally overriding the database. */
PGconn *pg_conn_open(const char *conninfo, const char *dbname, ob_err *err);
/* Run a statement; any error becomes err, naming the statement. */
int pg_conn_exec(PGconn *c, const char *sql, ob_err *err);
/* One value (first row, first column; "" for no row or NULL); caller
 * frees.  NULL with err set on failure. */
char *pg_conn_value(PGconn *c, const char *sql, ob_err *err);
/* A --dbname or `dbname =` value as libpq's own tools read it: a URI or a
 * string with '=' is a connection string, anything else is a database name
 * (psql -d NAME, pg_dump -d NAME).  Returns a malloc'd connection string
 * ("dbname='NAME'" for a bare name), which every conninfo parser here can
 * read; a bare name passed on unchanged would fail to parse. */
char *pg_conninfo_from_arg(const char *arg);
/* conninfo (key=value words or a postgresql:// URI; NULL: "") with key set
 * to value, as a key=value string; caller frees.  NULL with err set when
 * conninfo does not parse or key is not a libpq keyword. */
char *pg_conninfo_set(const char *conninfo, const char *key, const char *value, ob_err *err);

/* The program to run for prog ("pg_dump", "pg_dumpall"...) against a
 * server of server_version (PQserverVersion, e.g. 150018); caller frees.
 * Debian's /usr/bin/pg_dump is a Perl wrapper (pg_wrapper) that spends
 * ~0.2 s of CPU per call choosing a version, more than a small dump takes.
 * When prog on path_env (a PATH value) is that wrapper, or is not there, the
 * binary under root (normally "/usr/lib/postgresql") is run directly: the
 * server's major version if installed (what the wrapper picks for a local
 * cluster), else the newest installed major above it (pg_dump reads older
 * servers, never newer ones).  Otherwise, or when root has no usable
 * version, prog itself, found on PATH as before (D47). */
char *pg_client_program(const char *prog, int server_version, const char *path_env,
                        const char *root);

/* The pg_dumpall command for a dump command's words (a prefix such as
 * `docker compose exec -T postgres pg_dump -U app`): the last word named
 * pg_dump (any directory) becomes pg_dumpall; of the words after it only
 * the connection options both programs take are kept (-U/--username,
 * -h/--host, -p/--port, --role, -w/--no-password, read as pg_dump's getopt
 * reads them: "-vUapp", "--user app"), and pg_dump's other options (-t,
 * --exclude-table-data=..., -Z 0, ...) go, with their arguments, since
 * pg_dumpall refuses most of them.  With no such word, a last word ending
 * in pg_dump (my_pg_dump) becomes my_pg_dumpall.  Returns a
 * NULL-terminated copy (free with proc_argv_free), or NULL when there is
 * neither (a wrapper script: its globals cannot be had). */
char **pg_dumpall_words(char *const *words, size_t n);

#endif
