#define MHD_LIB_NO_MACROS
#include "cli/mhd_lib.h"

#include "core/dynlib.h"

mhd_lib mhd_lib_fns;

static const dynlib_sym mhd_syms[] = {
#define MHD_LIB_SYM(f) {#f, (void **)&mhd_lib_fns.f},
    MHD_LIB_FUNCS(MHD_LIB_SYM)
#undef MHD_LIB_SYM
};
static dynlib mhd_dl = DYNLIB_INIT(
    "libmicrohttpd.so.12",
    "daemon --listen needs libmicrohttpd (Debian: apt-get install libmicrohttpd12)", mhd_syms,
    NULL);

int mhd_lib_load(ob_err *err)
{
    return dynlib_load(&mhd_dl, err);
}
