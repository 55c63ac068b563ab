#include "core/dynlib.h"

#include <dlfcn.h>

static int dynlib_open(dynlib *d)
{
    void *h = dlopen(d->soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return ob_err_set(&d->err, OB_EFAIL, "cannot load %s (%s); %s", d->soname,
                          why ? why : "unknown reason", d->hint);
    }
    for (size_t i = 0; i < d->nsyms; i++) {
        /* POSIX guarantees a function pointer survives the round trip
         * through void *, which is how dlsym returns it; the table holds
         * typed function pointers. */
        void *p = dlsym(h, d->syms[i].name);
        if (!p) {
            dlclose(h);
            return ob_err_set(&d->err, OB_EFAIL, "%s has no %s (too old?); %s", d->soname,
                              d->syms[i].name, d->hint);
        }
        *d->syms[i].addr = p;
    }
    /* Never closed: its functions are in use until exit. */
    return d->after ? d->after(&d->err) : 0;
}

int dynlib_load(dynlib *d, ob_err *err)
{
    pthread_mutex_lock(&d->mu);
    if (!d->tried) {
        d->tried = 1;
        (void)dynlib_open(d);
    }
    int rc = 0;
    if (d->err.code != OB_OK)
        rc = ob_err_set(err, d->err.code, "%s", ob_err_msg(&d->err));
    pthread_mutex_unlock(&d->mu);
    return rc;
}
