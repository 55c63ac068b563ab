#define CURL_LIB_NO_MACROS
#include "storage/curl_lib.h"

#include "core/dynlib.h"

curl_lib curl_lib_fns;

static const dynlib_sym curl_syms[] = {
#define CURL_LIB_SYM(f) {#f, (void **)&curl_lib_fns.f},
    CURL_LIB_FUNCS(CURL_LIB_SYM)
#undef CURL_LIB_SYM
};

/* Once, after the symbols resolve; never cleaned up (loaded until exit). */
static int curl_after(ob_err *err)
{
    CURLcode cc = curl_lib_fns.curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK)
        return ob_err_set(err, OB_EFAIL, "initialising libcurl: %s",
                          curl_lib_fns.curl_easy_strerror(cc));
    return 0;
}

static dynlib curl_dl = DYNLIB_INIT(
    "libcurl.so.4",
    "S3 repositories and notifications need libcurl (Debian: apt-get install libcurl4)",
    curl_syms, curl_after);

int curl_lib_load(ob_err *err)
{
    return dynlib_load(&curl_dl, err);
}
