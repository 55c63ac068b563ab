/*
 * lock.h — repository locks as renewable leases.
 *
 * Backups take a shared lock, so any number can run at once; prune (and
 * anything else that deletes) takes an exclusive lock.  A lock is an
 * encrypted object locks/<random> naming its host, pid and the time it was
 * last renewed.  A background thread renews it every LOCK_RENEW_SECONDS,
 * and after a failed renewal simply tries again at the next turn.
 * A lock counts as stale — and is ignored and removed by others — when it
 * was not renewed for LOCK_STALE_SECONDS, or when it belongs to this host
 * and its process no longer exists.  So a crashed process never blocks
 * others for longer than the stale time, and immediately on its own host.
 *
 * Ownership: repo_lock_acquire returns a handle the caller releases with
 * repo_lock_release (which deletes the object and stops the renewer).
 */
#ifndef OB_LOCK_H
#define OB_LOCK_H

#include "core/err.h"
#include "repo/repo.h"

#define LOCK_RENEW_SECONDS 120
#define LOCK_STALE_SECONDS 1800

typedef struct repo_lock repo_lock; /* struct tag used by forward declarations */

/* Fails (OB_ELOCKED) when a live lock conflicts; and, with the delete's
 * own error, when a conflicting lock is stale but cannot be removed: its
 * holder may only be stopped, and would go on once resumed. */
int repo_lock_acquire(repo *r, int exclusive, repo_lock **out, ob_err *err);
/* Is the lease lost: another process removed the lock as stale, or no
 * renewal has succeeded for so long (the process was stopped, the machine
 * slept, every renewal failed) that others may count it stale?  A failed
 * renewal alone does not lose it; the renewer tries again at its next
 * turn.  Once lost, it stays lost and the lock is never written again.
 * Every operation checks before committing, and a writer given the lock
 * (repo_writer_set_lock) before every pack and index file, so nothing is
 * committed or published under a lost lease.  Cheap: no storage access. */
int repo_lock_lost(repo_lock *l, ob_err *err);
/* Renew now rather than at the renewer's next turn; returns
 * repo_lock_lost's answer afterwards (the tests use it). */
int repo_lock_renew_now(repo_lock *l, ob_err *err);
void repo_lock_release(repo_lock *l);

/* Tests only: move the last successful renewal `seconds` back, as if this
 * process had been stopped that long (CLOCK_BOOTTIME cannot be moved). */
void repo_lock_backdate(repo_lock *l, int seconds);

/* Remove every stale lock (`opsbackup unlock`); returns the count. */
int repo_lock_remove_stale(repo *r, int *removed, ob_err *err);

#endif
