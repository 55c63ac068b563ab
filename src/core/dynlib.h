/*
 * dynlib.h — optional shared libraries, opened when first needed.
 *
 * libpq, libcurl and libmicrohttpd each serve some commands only
 * (PostgreSQL sources; S3 repositories, notifications and the DR health
 * check; `daemon --listen`).  Linked normally, all three and what they pull
 * in (GnuTLS, LDAP, Kerberos, SASL, ...) are mapped and relocated before
 * main in every process: ~5 MiB of resident memory and some 30 libraries
 * for, say, a backup of a directory to a local repository that uses none
 * of them (D57).  So they are opened with dlopen by the module that needs
 * them (sources/pq_lib, storage/curl_lib, cli/mhd_lib), which keeps the
 * resolved symbols in a table of typed function pointers.
 *
 * Ownership: a library, once opened, stays open until the process exits;
 * its symbols are in use from then on.
 */
#ifndef OB_DYNLIB_H
#define OB_DYNLIB_H

#include <pthread.h>
#include <stddef.h>

#include "core/err.h"

typedef struct dynlib_sym {
    const char *name; /* the symbol */
    void **addr;      /* where to store it (a function pointer, see dynlib.c) */
} dynlib_sym;

/* One optional library: what to open and resolve, and the outcome of the
 * first attempt.  Define one per library with DYNLIB_INIT; it lives for
 * the process. */
typedef struct dynlib {
    const char *soname;          /* "libpq.so.5" */
    const char *hint;            /* what to install, for the error message */
    const dynlib_sym *syms;
    size_t nsyms;
    int (*after)(ob_err *err);   /* optional, run once after the symbols resolve */
    pthread_mutex_t mu;          /* the fields below */
    int tried;
    ob_err err;                  /* the first attempt's failure, kept */
} dynlib;
#define DYNLIB_INIT(soname, hint, syms, after)                                                \
    {(soname), (hint), (syms), sizeof(syms) / sizeof((syms)[0]), (after),                     \
     PTHREAD_MUTEX_INITIALIZER, 0, OB_ERR_INIT}

/* Open d's library and resolve its symbols, the first time; every call
 * returns the first attempt's result (0, or -1 with err saying which
 * library or symbol is missing, followed by the hint).  Thread-safe. */
int dynlib_load(dynlib *d, ob_err *err);

#endif
