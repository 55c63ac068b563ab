/*
 * pg_archive.h — reads a pg_dump custom-format archive as it streams past
 * and counts the rows of each table's COPY data; also hands out the
 * database-level statements its table of contents holds (restore db).
 *
 * `backup db` records every table's exact row count (verify compares the
 * restored database with it).  Counting with SELECT count(*) scans every
 * table a second time on the server while pg_dump scans it for COPY; on a
 * small machine that second scan was a fifth of the backup's wall time
 * (D48).  The archive already holds the answer: with --compress=0 a table's
 * data is its COPY text, one row per line, so counting newlines as the bytes
 * go by costs a memchr.
 *
 * The counter understands archive versions 1.14 to 1.16 (pg_dump 12 to 17)
 * without compression; for anything else it gives up (finish returns -1 with
 * the reason) and the caller counts with SQL as before.  It never fails the
 * backup and never holds more than the header and table of contents.
 *
 * Ownership: the counter owns its memory; finish hands the caller a new
 * json object.  Not thread-safe: one stream, one feeder.
 */
#ifndef OB_PG_ARCHIVE_H
#define OB_PG_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct pg_archive_counter pg_archive_counter;

pg_archive_counter *pg_archive_counter_new(void);
void pg_archive_counter_free(pg_archive_counter *c);

/* The next n bytes of the archive, in order, in pieces of any size. */
void pg_archive_counter_feed(pg_archive_counter *c, const uint8_t *p, size_t n);

/* "pg_dump (PostgreSQL) 15.18" from the archive header once it has been
 * fed (any archive version), else NULL.  Owned by the counter. */
const char *pg_archive_counter_dump_version(const pg_archive_counter *c);

/* 1 once the header and table of contents have been read, 0 before, -1
 * if the archive could not be read (pg_archive_counter_finish says why). */
int pg_archive_counter_toc_read(const pg_archive_counter *c);

/* Once the table of contents is read (or all of a short archive fed): the
 * SQL pg_dump stored for the
 * database itself — its "DATABASE PROPERTIES" (ALTER DATABASE ... SET,
 * ALTER ROLE ... IN DATABASE ... SET, CONNECTION LIMIT, IS_TEMPLATE) and
 * the COMMENT, ACL and SECURITY LABEL entries on the database — in dump ID
 * order, as one text in the archive's encoding (*sql, caller frees; "" if
 * none); that encoding (*encoding, caller frees; "UTF8" if the archive
 * does not say) and whether its strings are standard-conforming.  These
 * are what pg_restore emits only with --create.  -1 with *why (caller
 * frees) if the table of contents could not be read. */
int pg_archive_db_settings(pg_archive_counter *c, char **sql, char **encoding,
                           int *std_strings, char **why);

/* After the whole stream: 0 with *counts = {"schema.table": rows} for
 * every table whose COPY data the archive holds (a table dumped as INSERT
 * statements is left out: its lines are not rows), or -1 with *why (caller
 * frees) saying why the stream could not be read. */
int pg_archive_counter_finish(pg_archive_counter *c, json_t **counts, char **why);

/* What the table of contents holds of each table, once
 * pg_archive_counter_finish returned 0: {KEY: true} for a table with a
 * TABLE DATA entry (COPY or INSERT statements), {KEY: false} for one with
 * only its TABLE entry (a partitioned parent, or data left out with
 * --exclude-table-data or --schema-only); a table pg_dump left out (-T)
 * is absent.  Keys as pg_sql_table_key.  The caller frees. */
json_t *pg_archive_counter_tables(const pg_archive_counter *c);

/* The large objects in the archive's data (each one's OID in a large
 * object block); meaningful once pg_archive_counter_finish returned 0. */
uint64_t pg_archive_counter_large_objects(const pg_archive_counter *c);

#endif
