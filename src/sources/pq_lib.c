#define PQ_LIB_NO_MACROS
#include "sources/pq_lib.h"

#include "core/dynlib.h"

pq_lib pq_lib_fns;

static const dynlib_sym pq_syms[] = {
#define PQ_LIB_SYM(f) {#f, (void **)&pq_lib_fns.f},
    PQ_LIB_FUNCS(PQ_LIB_SYM)
#undef PQ_LIB_SYM
};
static dynlib pq_dl = DYNLIB_INIT(
    "libpq.so.5", "PostgreSQL backups need libpq (Debian: apt-get install libpq5)", pq_syms,
    NULL);

int pq_lib_load(ob_err *err)
{
    return dynlib_load(&pq_dl, err);
}
