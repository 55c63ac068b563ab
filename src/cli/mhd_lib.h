/*
 * mhd_lib.h — libmicrohttpd, opened on first use (D57; see core/dynlib.h).
 *
 * Only `daemon --listen` serves HTTP.  Include this instead of
 * <microhttpd.h>; mhd_lib_load must have succeeded before the first call.
 */
#ifndef OB_MHD_LIB_H
#define OB_MHD_LIB_H

#include <microhttpd.h>

#include "core/err.h"

#define MHD_LIB_FUNCS(X)                                                                      \
    X(MHD_start_daemon) X(MHD_stop_daemon) X(MHD_lookup_connection_value)                     \
    X(MHD_create_response_from_buffer) X(MHD_add_response_header) X(MHD_queue_response)       \
    X(MHD_destroy_response)

/* Written once, by the first mhd_lib_load, and only read afterwards. */
typedef struct mhd_lib {
#define MHD_LIB_MEMBER(f) __typeof__(f) *f;
    MHD_LIB_FUNCS(MHD_LIB_MEMBER)
#undef MHD_LIB_MEMBER
} mhd_lib;
extern mhd_lib mhd_lib_fns;

/* Open libmicrohttpd.so.12 (once per process; later calls repeat the
 * first result). */
int mhd_lib_load(ob_err *err);

#ifndef MHD_LIB_NO_MACROS
#define MHD_start_daemon (mhd_lib_fns.MHD_start_daemon)
#define MHD_stop_daemon (mhd_lib_fns.MHD_stop_daemon)
#define MHD_lookup_connection_value (mhd_lib_fns.MHD_lookup_connection_value)
#define MHD_create_response_from_buffer (mhd_lib_fns.MHD_create_response_from_buffer)
#define MHD_add_response_header (mhd_lib_fns.MHD_add_response_header)
#define MHD_queue_response (mhd_lib_fns.MHD_queue_response)
#define MHD_destroy_response (mhd_lib_fns.MHD_destroy_response)
#endif

#endif
