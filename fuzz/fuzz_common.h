/*
 * fuzz_common.h — what the libFuzzer targets under fuzz/ share: an
 * in-memory storage driver and a small repository opened with a known
 * password, so a target can reach the parsers that run after decryption.
 *
 * Why a fixture repository: every repository object except key slots is
 * AES-GCM sealed, so bytes straight from the fuzzer never get past the tag
 * check.  A target that wants to fuzz what is inside (a snapshot's JSON, a
 * WAL object's header) seals the fuzzer's bytes with this repository's key
 * first and then drives the real read path (snapshot_load, pg_wal_get…),
 * which is what an attacker who also holds the key, or a bug in our own
 * writer, could feed it.  Key derivation is made cheap (scrypt N = 1024) so
 * the fixture costs milliseconds, once per process.
 *
 * Ownership: the fixture lives for the whole process (libFuzzer never
 * returns from its loop); a memstore is the caller's, freed with
 * storage_close.  Nothing here is thread-safe; the targets run one input
 * at a time.
 */
#ifndef OB_FUZZ_COMMON_H
#define OB_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "repo/repo.h"
#include "storage/storage.h"

#define FUZZ_PASSWORD "fuzz"

/* A storage that keeps objects in memory ("mem:" URL).  Names are taken
 * as given (any bytes but NUL), so listing a hostile name is possible. */
storage *fuzz_memstore_new(void);
/* Drop every object (between fuzz inputs, so one input cannot leak into
 * the next and hide or cause a failure). */
void fuzz_memstore_clear(storage *s);

/* The process-wide fixture: a repository initialised in a memstore with
 * FUZZ_PASSWORD.  Aborts if it cannot be made (a broken build, not an
 * input problem). */
repo *fuzz_repo(void);

/* Another repository with the fixture's key and config, over st (which
 * the caller keeps owning and must keep open).  Once open it never reads
 * the config again, so a target may fuzz_memstore_clear(st) between inputs
 * and keep the repository: opening one per input (the chunker's gear
 * table, the index load) would cost more than the parsing under test. */
repo *fuzz_repo_over(storage *st);

/* Quiet the library's warnings (a hostile key slot is "skipped with a
 * warning": millions of them would drown libFuzzer's own output). */
void fuzz_quiet(void);

/* A NUL-terminated heap copy of data[0..len) (caller frees). */
char *fuzz_strndup(const uint8_t *data, size_t len);

#endif
