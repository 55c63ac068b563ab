/*
 * fuzz_units.c — the small value parsers behind config keys, command-line
 * options and snapshot fields: durations ("1d12h", core/util.c), times
 * (RFC 3339 and "YYYY-MM-DD HH:MM:SS", core/util.c; a snapshot's `time`
 * goes through it), retention's keep-within ("1y6m", repo/retention.c) and
 * sizes ("1.5TiB", cli/config_check.c).
 *
 * The input is one string (cut at the first NUL); the first byte picks the
 * parser, so the fuzzer can specialise.  Beyond "no crash", each result
 * must be in the range its caller assumes.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/config_check.h"
#include "core/util.h"
#include "fuzz_common.h"
#include "repo/retention.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 256)
        return 0;
    char *s = fuzz_strndup(data + 1, size - 1);
    switch (data[0] % 4) {
    case 0: {
        int64_t secs;
        if (ob_parse_duration(s, &secs) == 0 && secs < 0)
            __builtin_trap();
        break;
    }
    case 1: {
        int64_t sec;
        uint32_t nsec;
        if (ob_time_parse(s, &sec, &nsec) == 0) {
            if (nsec > 999999999u)
                __builtin_trap();
            free(ob_time_rfc3339(sec, nsec));
        }
        break;
    }
    case 2: {
        retention_within w;
        ob_err err = OB_ERR_INIT;
        if (retention_parse_within(s, &w, &err) == 0) {
            if (w.years < 0 || w.months < 0 || w.days < 0 || w.hours < 0)
                __builtin_trap();
            free(w.text);
        }
        ob_err_clear(&err);
        break;
    }
    case 3: {
        unsigned long long bytes;
        if (config_parse_size(s, &bytes) == 0 && bytes == 0)
            __builtin_trap();
        break;
    }
    }
    free(s);
    return 0;
}
