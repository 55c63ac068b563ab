#include "repo/lock.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"

struct repo_lock {
    repo *r;
    char *name;
    int exclusive;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    int lost;                /* for good: the object is gone, or too old */
    ob_err err;              /* why it is lost */
    ob_err failed;           /* the last renewal's failure; cleared by a success */
    struct timespec renewed; /* CLOCK_BOOTTIME of the last good write of the lock */
};

/* How long after its last successful renewal a holder still trusts its
 * lease: the stale time less two renewals, so it stops before any other
 * process can count its lock as stale, with a margin for clocks and for
 * the renewal in flight. */
#define LOCK_TRUST_SECONDS (LOCK_STALE_SECONDS - 2 * LOCK_RENEW_SECONDS)

/* Seconds on a clock that runs while the process is stopped or the machine
 * sleeps: what other processes' wall clocks see pass. */
static double boot_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Seconds since the last successful renewal; l->mu held. */
static double quiet_seconds(const repo_lock *l)
{
    return boot_seconds() - ((double)l->renewed.tv_sec + l->renewed.tv_nsec / 1e9);
}

typedef struct lock_info {
    char *host;
    long pid;
    int64_t time;
    int exclusive;
    char *boot_id;   /* NULL: not recorded (a lock from before session 12) */
    json_int_t pidns;
} lock_info;

/* Where a pid means something: the kernel's boot ID and the inode of this
 * process's PID namespace.  A host name alone does not say it: containers
 * share their host's name with PID namespaces of their own (and hosts can
 * share names), and kill(pid, 0) there asks about somebody else's pid.
 * *boot_id is NULL and *pidns 0 where /proc does not tell. */
static void pid_space(char **boot_id, json_int_t *pidns)
{
    *boot_id = NULL;
    *pidns = 0;
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        char buf[64];
        if (fgets(buf, sizeof buf, f)) {
            buf[strcspn(buf, "\n")] = 0;
            if (buf[0])
                *boot_id = ob_xstrdup(buf);
        }
        fclose(f);
    }
    struct stat st;
    if (stat("/proc/self/ns/pid", &st) == 0)
        *pidns = (json_int_t)st.st_ino;
}

static int lock_write(repo *r, const char *name, int exclusive, ob_err *err)
{
    char *host = ob_hostname();
    int64_t now;
    ob_time_now(&now, NULL);
    json_t *o = json_pack("{s:s, s:I, s:I, s:b}", "host", host, "pid", (json_int_t)getpid(),
                          "time", (json_int_t)now, "exclusive", exclusive);
    free(host);
    char *boot_id;
    json_int_t pidns;
    pid_space(&boot_id, &pidns);
    if (boot_id && pidns) {
        json_object_set_new(o, "boot_id", json_string(boot_id));
        json_object_set_new(o, "pidns", json_integer(pidns));
    }
    free(boot_id);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    int rc = repo_put_object_named(r, name, REPO_OBJ_LOCK, text, strlen(text), 0, err);
    free(text);
    return rc;
}

static int lock_read(repo *r, const char *name, lock_info *li, ob_err *err)
{
    ob_buf b = OB_BUF_INIT;
    if (repo_get_object(r, name, REPO_OBJ_LOCK, &b, err) < 0) {
        ob_buf_free(&b);
        return -1;
    }
    json_t *o = json_loadb((const char *)b.data, b.len, 0, NULL);
    ob_buf_free(&b);
    const char *host = "";
    json_int_t pid = 0, t = 0;
    int ex = 0;
    if (!o || json_unpack(o, "{s:s, s:I, s:I, s:b}", "host", &host, "pid", &pid, "time", &t,
                          "exclusive", &ex) != 0) {
        json_decref(o);
        return ob_err_set(err, OB_ECORRUPT, "lock %s is malformed", name);
    }
    li->host = ob_xstrdup(host);
    li->pid = (long)pid;
    li->time = t;
    li->exclusive = ex;
    const char *boot_id = NULL;
    json_int_t pidns = 0;
    if (json_unpack(o, "{s:s, s:I}", "boot_id", &boot_id, "pidns", &pidns) == 0) {
        li->boot_id = ob_xstrdup(boot_id);
        li->pidns = pidns;
    }
    json_decref(o);
    return 0;
}

/* Has process pid ended?  A zombie (ended, not yet reaped by its parent)
 * has ended too, though kill(pid, 0) still finds it. */
static int process_gone(long pid)
{
    if (kill((pid_t)pid, 0) < 0)
        return errno == ESRCH;
    char *path = ob_xasprintf("/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    free(path);
    if (!f)
        return 0;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) S ...": the state follows the last ')'. */
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'Z';
}

static int lock_is_stale(const lock_info *li)
{
    int64_t now;
    ob_time_now(&now, NULL);
    if (now - li->time > LOCK_STALE_SECONDS)
        return 1;
    /* The pid says whether its process is gone only when it was recorded
     * in our PID namespace since this boot; otherwise time alone decides. */
    char *host = ob_hostname(), *boot_id;
    json_int_t pidns;
    pid_space(&boot_id, &pidns);
    int same_space = strcmp(host, li->host) == 0 && li->boot_id && boot_id &&
                     strcmp(li->boot_id, boot_id) == 0 && pidns && li->pidns == pidns;
    free(host);
    free(boot_id);
    if (same_space && li->pid > 0 && process_gone(li->pid))
        return 1;
    return 0;
}

typedef struct names {
    char **v;
    size_t n;
} names;

static int collect(const char *name, uint64_t size, void *ud)
{
    (void)size;
    names *l = ud;
    l->v = ob_xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    l->v[l->n++] = ob_xstrdup(name);
    return 0;
}

static void names_free(names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/* Look at every other lock: is any live one in conflict with ours? */
static int conflicts(repo *r, const char *mine, int exclusive, ob_err *err)
{
    names l = {0};
    if (storage_list(repo_storage(r), "locks/", collect, &l, err) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        if (strcmp(l.v[i], mine) == 0)
            continue;
        lock_info li = {0};
        ob_err e = OB_ERR_INIT;
        if (lock_read(r, l.v[i], &li, &e) < 0) {
            /* A lock deleted while we listed is simply gone, and a damaged
             * one holds nobody.  Any other failure (the storage did not
             * answer) says nothing about the lock: it may be a live one,
             * so the lock is not taken. */
            if (e.code == OB_ECORRUPT)
                ob_warn("ignoring damaged lock %s: %s", l.v[i], ob_err_msg(&e));
            if (e.code != OB_ENOTFOUND && e.code != OB_ECORRUPT) {
                rc = ob_err_set(err, e.code, "cannot read lock %s: %s", l.v[i],
                                ob_err_msg(&e));
            }
            ob_err_clear(&e);
            continue;
        }
        if (lock_is_stale(&li)) {
            ob_info("removing stale lock %s of %s pid %ld", l.v[i], li.host, li.pid);
            if (storage_delete(repo_storage(r), l.v[i], &e) < 0 && e.code != OB_ENOTFOUND) {
                /* A stale lock that is still there is as good as a live
                 * one: its holder may only be stopped, and once resumed
                 * it would find its lock and go on writing.  Only its
                 * removal makes the holder see that its lease is lost. */
                if (exclusive || li.exclusive)
                    rc = ob_err_set(err, e.code,
                                    "could not remove stale lock %s of %s pid %ld, so the "
                                    "repository lock is not taken: %s",
                                    l.v[i], li.host, li.pid, ob_err_msg(&e));
                else
                    ob_warn("could not remove stale lock %s: %s", l.v[i], ob_err_msg(&e));
            }
            ob_err_clear(&e);
        } else if (exclusive || li.exclusive) {
            char *when = ob_time_local(li.time);
            rc = ob_err_set(err, OB_ELOCKED,
                            "repository is locked %s by %s pid %ld (renewed %s); wait for it "
                            "to finish, or if that process is gone on another host, the lock "
                            "expires %d minutes after its last renewal",
                            li.exclusive ? "exclusively" : "", li.host, li.pid, when,
                            LOCK_STALE_SECONDS / 60);
            free(when);
        }
        free(li.host);
        free(li.boot_id);
    }
    names_free(&l);
    return rc;
}

/* One renewal; l->mu held on entry and on return.
 *
 * A failure (the storage did not answer, the put failed) is not the end of
 * the lease: the next turn tries again, and the lease is lost only once no
 * renewal has succeeded for LOCK_TRUST_SECONDS.  One failed put two minutes
 * after a good one leaves 26 minutes before anyone may count the lock as
 * stale, and giving up at once would throw a long backup away for a blip.
 *
 * The lease is lost for good, and the lock never written again, when the
 * object is gone (another process removed it as stale: this one was
 * stopped or asleep past the stale time, and whoever removed it may be
 * deleting data meanwhile), or when the last good renewal is so old that
 * others may count the lock as stale already: writing it back then could
 * bring back a lock a prune has just removed, and the lease would look
 * valid while the prune deletes. */
/* Is the last good renewal so old that others may count the lock as stale?
 * Then the lease is lost for good (l->lost, l->err); l->mu held. */
static int lease_too_old_locked(repo_lock *l)
{
    double quiet = quiet_seconds(l);
    if (l->lost || quiet <= LOCK_TRUST_SECONDS)
        return l->lost;
    l->lost = 1;
    ob_err_set(&l->err, OB_ELOCKED,
               "it was last renewed %.0f s ago, so others may count it as stale (was this "
               "process stopped or asleep, or the storage unreachable?)%s%s",
               quiet, l->failed.code != OB_OK ? "; the last renewal failed: " : "",
               ob_err_msg(&l->failed));
    return 1;
}

static void renew_locked(repo_lock *l)
{
    if (lease_too_old_locked(l))
        return;
    /* The lease runs from when the object's `time` is taken, not from
     * when a slow put returns: others count from that `time`. */
    struct timespec started;
    clock_gettime(CLOCK_BOOTTIME, &started);
    struct timespec last = l->renewed;
    pthread_mutex_unlock(&l->mu);
    ob_err e = OB_ERR_INIT;
    uint64_t size;
    int gone = 0, too_old = 0;
    int rc = storage_stat(repo_storage(l->r), l->name, &size, &e);
    if (rc < 0 && e.code == OB_ENOTFOUND) {
        gone = 1;
        ob_err_clear(&e);
        ob_err_set(&e, OB_ELOCKED,
                   "another process removed it as stale (was this one stopped or asleep for "
                   "more than %d minutes?)",
                   LOCK_STALE_SECONDS / 60);
    } else if (boot_seconds() - ((double)last.tv_sec + last.tv_nsec / 1e9) >
               LOCK_TRUST_SECONDS) {
        /* The stat took long enough (a storage retrying) for the lease to
         * run out meanwhile: a prune may have removed the lock since the
         * stat saw it, and writing it now would bring it back. */
        too_old = 1;
        ob_err_clear(&e);
    } else {
        /* Present, or the storage did not say: a failed stat is not a
         * missing lock, and rewriting it is what the lease asks. */
        ob_err_clear(&e);
        rc = lock_write(l->r, l->name, l->exclusive, &e);
    }
    pthread_mutex_lock(&l->mu);
    if (too_old) {
        lease_too_old_locked(l);
    } else if (gone) {
        ob_warn("the repository lock was lost: %s", ob_err_msg(&e));
        l->lost = 1;
        ob_err_move(&l->err, &e);
    } else if (rc < 0) {
        ob_warn("could not renew the repository lock (trying again in %d s; the lease is lost "
                "if no renewal succeeds for %d minutes): %s",
                LOCK_RENEW_SECONDS, LOCK_TRUST_SECONDS / 60, ob_err_msg(&e));
        ob_err_move(&l->failed, &e);
    } else {
        l->renewed = started;
        ob_err_clear(&l->failed);
    }
}

/* Renew every LOCK_RENEW_SECONDS, on the monotonic clock: a step of the
 * wall clock neither stops nor hurries it. */
static void *renewer(void *arg)
{
    repo_lock *l = arg;
    /* Signals are for the thread doing the command's work (restore db
     * takes SIGINT/SIGTERM there to clean up): a process-directed one must
     * never be delivered here, where its default action would end the
     * process mid-way. */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_mutex_lock(&l->mu);
    while (!l->stop && !l->lost) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += LOCK_RENEW_SECONDS;
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        if (!l->stop)
            renew_locked(l);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int repo_lock_renew_now(repo_lock *l, ob_err *err)
{
    pthread_mutex_lock(&l->mu);
    if (!l->lost)
        renew_locked(l);
    pthread_mutex_unlock(&l->mu);
    return repo_lock_lost(l, err);
}

int repo_lock_acquire(repo *r, int exclusive, repo_lock **out, ob_err *err)
{
    *out = NULL;
    uint8_t rnd[16];
    char hex[33];
    if (ob_random(rnd, sizeof rnd, err) < 0)
        return -1;
    ob_hex(rnd, sizeof rnd, hex);
    char *name = ob_xasprintf("locks/%s", hex);
    /* Write ours first, then look: two processes racing both see each other
     * and at least one backs off, never neither.  The lease runs from
     * before the write (see renew_locked). */
    struct timespec started;
    clock_gettime(CLOCK_BOOTTIME, &started);
    if (lock_write(r, name, exclusive, err) < 0) {
        free(name);
        return ob_err_prefix(err, "creating repository lock");
    }
    if (conflicts(r, name, exclusive, err) < 0) {
        ob_err e = OB_ERR_INIT;
        storage_delete(repo_storage(r), name, &e);
        ob_err_clear(&e);
        free(name);
        return -1;
    }
    repo_lock *l = ob_xcalloc(1, sizeof *l);
    l->r = r;
    l->name = name;
    l->exclusive = exclusive;
    l->renewed = started;
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&l->thread, NULL, renewer, l) != 0) {
        repo_lock_release(l);
        return ob_err_set(err, OB_EFAIL, "cannot start the lock renewal thread");
    }
    *out = l;
    return 0;
}

int repo_lock_lost(repo_lock *l, ob_err *err)
{
    pthread_mutex_lock(&l->mu);
    /* The age test too: the renewer may not have woken up yet to find out
     * (this process was stopped, the machine slept, or every renewal
     * failed), and committing now could reference data a prune is
     * deleting.  Once lost, lost for good. */
    int lost = lease_too_old_locked(l);
    if (lost)
        ob_err_set(err, OB_ELOCKED, "the repository lock was lost: %s", ob_err_msg(&l->err));
    pthread_mutex_unlock(&l->mu);
    return lost;
}

void repo_lock_backdate(repo_lock *l, int seconds)
{
    pthread_mutex_lock(&l->mu);
    l->renewed.tv_sec -= seconds;
    pthread_mutex_unlock(&l->mu);
}

void repo_lock_release(repo_lock *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (l->thread)
        pthread_join(l->thread, NULL);
    ob_err e = OB_ERR_INIT;
    if (storage_delete(repo_storage(l->r), l->name, &e) < 0)
        ob_warn("could not remove lock %s: %s", l->name, ob_err_msg(&e));
    ob_err_clear(&e);
    ob_err_clear(&l->err);
    ob_err_clear(&l->failed);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->name);
    free(l);
}

int repo_lock_remove_stale(repo *r, int *removed, ob_err *err)
{
    names l = {0};
    *removed = 0;
    if (storage_list(repo_storage(r), "locks/", collect, &l, err) < 0)
        return -1;
    for (size_t i = 0; i < l.n; i++) {
        lock_info li = {0};
        ob_err e = OB_ERR_INIT;
        int rc = lock_read(r, l.v[i], &li, &e);
        if (rc < 0 && e.code != OB_ENOTFOUND && e.code != OB_ECORRUPT)
            /* Unreadable for now (the storage did not answer): it may be a
             * live lock, so it stays. */
            ob_warn("cannot read lock %s, left in place: %s", l.v[i], ob_err_msg(&e));
        else if ((rc < 0 && e.code == OB_ECORRUPT) || (rc == 0 && lock_is_stale(&li))) {
            ob_err_clear(&e);
            if (storage_delete(repo_storage(r), l.v[i], &e) == 0)
                (*removed)++;
        }
        ob_err_clear(&e);
        free(li.host);
        free(li.boot_id);
    }
    names_free(&l);
    return 0;
}
