/*
 * fuzz_keyslot.c — key slots (FORMAT.md §3): plaintext JSON under keys/,
 * the one repository object that is not sealed, so an attacker with write
 * access to the bucket controls every byte of it.  The input is stored as
 * the only key slot of a storage and the repository is opened with
 * FUZZ_PASSWORD (repo_open: cost ordering, then unwrap), and the slot's
 * repository ID is read without opening (repo_key_slot_repository).
 *
 * Slots asking for more scrypt work than N = 1024, r = 8, p = 4 are
 * skipped before opening: key.c's own limit (1 GiB, p <= 4) is the
 * designed bound for a hostile slot, and paying it per input would only
 * slow the fuzzer to a crawl.  The parsing before it still runs on them
 * through repo_key_slot_repository.
 */
#include <jansson.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int too_costly(const uint8_t *data, size_t size)
{
    json_t *o = json_loadb((const char *)data, size, 0, NULL);
    json_int_t n = json_integer_value(json_object_get(o, "n"));
    json_int_t r = json_integer_value(json_object_get(o, "r"));
    json_int_t p = json_integer_value(json_object_get(o, "p"));
    json_decref(o);
    return n > 1024 || r > 8 || p > 4;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    storage *st = fuzz_memstore_new();
    ob_err err = OB_ERR_INIT;
    storage_put(st, "keys/slot", data, size, 0, &err);
    char id[OB_HEX_ID_LEN + 1];
    repo_key_slot_repository(st, id, &err);
    ob_err_clear(&err);
    if (!too_costly(data, size)) {
        repo *r = NULL;
        if (repo_open(st, FUZZ_PASSWORD, &r, &err) == 0)
            __builtin_trap(); /* there is no config: nothing may open */
        ob_err_clear(&err);
    }
    storage_close(st);
    return 0;
}
