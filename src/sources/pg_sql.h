/*
 * pg_sql.h — reading the SQL scripts pg_dumpall and pg_restore write, far
 * enough to decide which statements of them to run.
 *
 * `restore db --roles` must create the roles a cluster lacks without
 * touching the ones it has (session 13): pg_dumpall --globals-only writes
 * CREATE ROLE followed by an ALTER ROLE carrying every attribute and the
 * password, so replaying the whole script through psql (which goes on after
 * the CREATE of an existing role fails) rewrote existing roles' passwords.
 * So the script is split into statements here and each one is classified
 * by its leading words and the object it names; pg_logical.c then runs
 * only those about roles (and tablespaces) it created itself.
 *
 * The lexer knows what can hide a ';' or a keyword: '...' strings (''
 * doubled, E'...' with backslash escapes), "..." identifiers, $tag$ dollar
 * quotes, -- and nested block comments.  psql meta-commands (\restrict,
 * \connect, \encoding) at the start of a statement are skipped: they are not
 * SQL, and the \restrict pair exists only to guard psql itself.
 *
 * Pure functions over strings; nothing here talks to a server.
 */
#ifndef OB_PG_SQL_H
#define OB_PG_SQL_H

#include <stddef.h>

/* The next statement of script[0..len) from *pos: 1 with *stmt (caller
 * frees; its text without the ';' and without leading comments and blanks),
 * 0 at the end.  *pos moves past the statement. */
int pg_sql_next(const char *script, size_t len, size_t *pos, char **stmt);

typedef enum pg_sql_tok_type {
    PG_SQL_WORD,   /* keyword or bare identifier; text folded to lower case */
    PG_SQL_QIDENT, /* "quoted identifier"; text is the name itself */
    PG_SQL_STRING, /* a string literal or dollar quote; text as written */
    PG_SQL_PUNCT,  /* anything else, one character (or a run of digits) */
} pg_sql_tok_type;

typedef struct pg_sql_tok {
    pg_sql_tok_type type;
    char *text;
    size_t start, end; /* the token's bytes in the statement */
} pg_sql_tok;

/* The tokens of one statement (comments dropped); free with
 * pg_sql_tokens_free.  Never fails: an unterminated quote runs to the end. */
void pg_sql_tokens(const char *stmt, pg_sql_tok **toks, size_t *n);
void pg_sql_tokens_free(pg_sql_tok *toks, size_t n);

/* What a statement of pg_dumpall --globals-only is about. */
typedef enum pg_sql_global_kind {
    PG_SQL_G_SESSION,      /* SET / RESET / SELECT set_config: this session only */
    PG_SQL_G_ROLE_CREATE,  /* CREATE ROLE name */
    PG_SQL_G_ROLE,         /* ALTER ROLE name, COMMENT/SECURITY LABEL ON ROLE name */
    PG_SQL_G_MEMBERSHIP,   /* GRANT role TO members: names = the members */
    PG_SQL_G_GRANT,        /* GRANT/REVOKE ... ON PARAMETER etc.: names = grantees */
    PG_SQL_G_TABLESPACE_CREATE, /* CREATE TABLESPACE name */
    PG_SQL_G_TABLESPACE,   /* ALTER/COMMENT/GRANT ... TABLESPACE name */
    PG_SQL_G_OTHER,        /* anything else */
} pg_sql_global_kind;

typedef struct pg_sql_global {
    pg_sql_global_kind kind;
    char *object;  /* ROLE*, TABLESPACE*: its name; MEMBERSHIP: the granted role(s), joined by ", " */
    char **names;  /* MEMBERSHIP, GRANT: the grantees (PUBLIC as "public") */
    size_t nnames;
    char *label;   /* the statement's first words up to the object, for messages
                    * (never a password) */
} pg_sql_global;

/* Classify stmt (from pg_sql_next); free with pg_sql_global_free. */
void pg_sql_global_classify(const char *stmt, pg_sql_global *out);
void pg_sql_global_free(pg_sql_global *g);

/* What pg_restore --create writes for the database itself, which a
 * restore without --create never runs (so --replace and --target-db lost
 * them): COMMENT ON DATABASE, SECURITY LABEL ON DATABASE, ALTER DATABASE
 * ... SET / RESET / CONNECTION LIMIT, ALTER ROLE ... IN DATABASE ... SET,
 * GRANT / REVOKE ... ON DATABASE.  For such a statement: PG_SQL_DB_PROPERTY
 * with *out the statement naming the database newname instead (the name
 * right after DATABASE replaced, so a role or a string that happens to
 * hold the old name is left alone).  PG_SQL_DB_SESSION for a SET / RESET /
 * SELECT set_config (*out NULL): restore db never runs those from a dump,
 * it sets its connection's session itself.  PG_SQL_DB_OTHER for anything else, CREATE DATABASE and
 * ALTER DATABASE ... OWNER TO / IS_TEMPLATE / ALLOW_CONNECTIONS included
 * (the owner is set when the database is created; a restored copy stays
 * an ordinary database anyone allowed may connect to). */
typedef enum pg_sql_db_kind {
    PG_SQL_DB_OTHER = 0,
    PG_SQL_DB_PROPERTY,
    PG_SQL_DB_SESSION,
} pg_sql_db_kind;
pg_sql_db_kind pg_sql_db_property(const char *stmt, const char *newname, char **out);

/* name as a double-quoted identifier ("" doubled), always quoted: a bare
 * name could be a keyword (a role named user); the caller frees. */
char *pg_sql_quote_ident(const char *name);

/* A table's key in a db snapshot's row counts ("tables" in its extra):
 * "schema.table", where a part that is empty or holds a '.' or a '"' is
 * written as a quoted identifier ("" doubled).  Plain "schema.table" as
 * before for every ordinary name, but one key per table: schema "a.b" with
 * table "c" ("\"a.b\".c") no longer collides with schema "a" with table
 * "b.c" ("a.\"b.c\"").  The caller frees. */
char *pg_sql_table_key(const char *schema, const char *table);

/* The schema and table of a key from pg_sql_table_key (callers free both).
 * Returns -1 (nothing set) for anything pg_sql_table_key does not write.
 * Snapshots written before quoting (no extra.table_keys) have bare parts
 * and are split by their reader (pg_logical.c) at the first '.'. */
int pg_sql_table_key_split(const char *key, char **schema, char **table);

#endif
