/*
 * curl_lib.h — libcurl, opened on first use (D57; see core/dynlib.h for why).
 *
 * Include this instead of <curl/curl.h>: it declares libcurl's types as
 * usual and turns every libcurl function this project calls into a call
 * through a table that curl_lib_load fills.  curl_lib_load must have
 * succeeded before the first call; it also runs curl_global_init, once,
 * under dynlib's lock (libcurl >= 7.84 allows that from any thread).
 *
 * curl's compile-time check of curl_easy_setopt's argument types is a
 * macro around the real function, so it cannot wrap a call through a
 * pointer and is switched off here: an option's argument must have the
 * type curl_easy_setopt(3) gives (long for numbers and booleans).
 */
#ifndef OB_CURL_LIB_H
#define OB_CURL_LIB_H

#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include "core/err.h"

#define CURL_LIB_FUNCS(X)                                                                     \
    X(curl_global_init) X(curl_easy_init) X(curl_easy_setopt) X(curl_easy_perform)            \
    X(curl_easy_getinfo) X(curl_easy_reset) X(curl_easy_cleanup) X(curl_easy_strerror)        \
    X(curl_free) X(curl_slist_append) X(curl_slist_free_all) X(curl_url) X(curl_url_set)      \
    X(curl_url_get) X(curl_url_cleanup)

/* Written once, by the first curl_lib_load, and only read afterwards. */
typedef struct curl_lib {
#define CURL_LIB_MEMBER(f) __typeof__(f) *f;
    CURL_LIB_FUNCS(CURL_LIB_MEMBER)
#undef CURL_LIB_MEMBER
} curl_lib;
extern curl_lib curl_lib_fns;

/* Open libcurl.so.4 and initialise it (once per process; later calls
 * repeat the first result). */
int curl_lib_load(ob_err *err);

#ifndef CURL_LIB_NO_MACROS
/* curl.h makes these two function-like macros that only check the number
 * of arguments. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_easy_init (curl_lib_fns.curl_easy_init)
#define curl_easy_setopt (curl_lib_fns.curl_easy_setopt)
#define curl_easy_perform (curl_lib_fns.curl_easy_perform)
#define curl_easy_getinfo (curl_lib_fns.curl_easy_getinfo)
#define curl_easy_reset (curl_lib_fns.curl_easy_reset)
#define curl_easy_cleanup (curl_lib_fns.curl_easy_cleanup)
#define curl_easy_strerror (curl_lib_fns.curl_easy_strerror)
#define curl_free (curl_lib_fns.curl_free)
#define curl_slist_append (curl_lib_fns.curl_slist_append)
#define curl_slist_free_all (curl_lib_fns.curl_slist_free_all)
#define curl_url (curl_lib_fns.curl_url)
#define curl_url_set (curl_lib_fns.curl_url_set)
#define curl_url_get (curl_lib_fns.curl_url_get)
#define curl_url_cleanup (curl_lib_fns.curl_url_cleanup)
#endif

#endif
