#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "core/buf.h"

char *ob_time_rfc3339(int64_t sec, uint32_t nsec)
{
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    if (nsec)
        return ob_xasprintf("%04d-%02d-%02dT%02d:%02d:%02d.%09uZ", tm.tm_year + 1900,
                            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, nsec);
    return ob_xasprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

char *ob_time_local(int64_t sec)
{
    time_t t = (time_t)sec;
    struct tm tm;
    localtime_r(&t, &tm);
    return ob_xasprintf("%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void ob_time_now(int64_t *sec, uint32_t *nsec)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *sec = ts.tv_sec;
    if (nsec)
        *nsec = (uint32_t)ts.tv_nsec;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (no timegm games
 * with the TZ environment, which is process-global). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int ob_time_parse(const char *s, int64_t *sec, uint32_t *nsec)
{
    int Y, M, D, h = 0, mi = 0, se = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &Y, &M, &D, &n) != 3)
        return -1;
    const char *p = s + n;
    if (*p == 'T' || *p == ' ') {
        int k = 0;
        if (sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &se, &k) != 3)
            return -1;
        p += 1 + k;
    }
    uint32_t ns = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (isdigit((unsigned char)*p)) {
            if (digits < 9) {
                ns = ns * 10 + (uint32_t)(*p - '0');
                digits++;
            }
            p++;
        }
        while (digits++ < 9)
            ns *= 10;
    }
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    int64_t t = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + mi * 60 + se;
    while (*p == ' ')
        p++;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh = 0, om = 0, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) == 2 || sscanf(p + 1, "%2d%2d%n", &oh, &om, &k) == 2) {
            p += 1 + k;
        } else if (sscanf(p + 1, "%2d%n", &oh, &k) == 1) {
            p += 1 + k;
        } else {
            return -1;
        }
        t -= sign * (oh * 3600 + om * 60);
    } else if (*p == '\0') {
        /* No zone: local time, as a person typing a date means it. */
        struct tm tm = {0};
        tm.tm_year = Y - 1900;
        tm.tm_mon = M - 1;
        tm.tm_mday = D;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = se;
        tm.tm_isdst = -1;
        time_t lt = mktime(&tm);
        if (lt == (time_t)-1)
            return -1;
        t = lt;
    }
    if (*p != '\0')
        return -1;
    *sec = t;
    if (nsec)
        *nsec = ns;
    return 0;
}

char *ob_hostname(void)
{
    struct utsname u;
    if (uname(&u) == 0)
        return ob_xstrdup(u.nodename);
    return ob_xstrdup("");
}

char *ob_username(void)
{
    size_t sz = 1024;
    for (;;) {
        char *buf = ob_xmalloc(sz);
        struct passwd pw, *res = NULL;
        int rc = getpwuid_r(geteuid(), &pw, buf, sz, &res);
        if (rc == ERANGE && sz < (1u << 20)) {
            free(buf);
            sz *= 2;
            continue;
        }
        char *name = ob_xstrdup(rc == 0 && res ? res->pw_name : "");
        free(buf);
        return name;
    }
}

char *ob_human_bytes(uint64_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        return ob_xasprintf("%llu B", (unsigned long long)n);
    return ob_xasprintf("%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
}

int ob_parse_duration(const char *s, int64_t *seconds)
{
    int64_t total = 0;
    if (!*s)
        return -1;
    while (*s) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v < 0)
            return -1;
        int64_t mult;
        switch (*end) {
        case 's': mult = 1; break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        case 'w': mult = 7 * 86400; break;
        case 'y': mult = 365 * 86400; break;
        default: return -1;
        }
        /* "9999999999999999y" or many large terms must fail, not wrap:
         * signed overflow is undefined and a wrapped total could come out
         * negative or small and pass the caller's range check (found by
         * fuzz/fuzz_units). */
        if (v > (INT64_MAX - total) / mult)
            return -1;
        total += v * mult;
        s = end + 1;
    }
    *seconds = total;
    return 0;
}

/* Renaming over /dev/null or a symlink given as DEST would replace the
 * device or the link itself: only ever over a regular file (or nothing). */
int ob_check_replaceable(const char *path, ob_err *err)
{
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return ob_err_set(err, OB_EUSAGE,
                          "%s exists and is not a regular file; refusing to replace it", path);
    return 0;
}

/* Write a file whole under a temporary name, then rename it in place
 * (over a regular file or nothing: ob_check_replaceable). */
int ob_write_file_atomic(const char *path, const void *data, size_t len, int do_fsync,
                         const ob_owner *owner, ob_err *err)
{
    if (ob_check_replaceable(path, err) < 0)
        return -1;
    char *tmp = ob_xasprintf("%s.opsbackup-tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int rc = ob_err_errno(err, errno, "cannot create %s", tmp);
        free(tmp);
        return rc;
    }
    const uint8_t *p = data;
    size_t left = len;
    int rc = 0;
    while (left > 0 && rc == 0) {
        ssize_t k = write(fd, p, left);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            rc = ob_err_errno(err, errno, "writing %s", tmp);
        else {
            p += k;
            left -= (size_t)k;
        }
    }
    if (rc == 0 && owner && geteuid() == 0 && fchown(fd, owner->uid, owner->gid) < 0)
        rc = ob_err_errno(err, errno, "setting the owner of %s", tmp);
    if (rc == 0 && do_fsync && fsync(fd) < 0)
        rc = ob_err_errno(err, errno, "flushing %s", tmp);
    if (close(fd) < 0 && rc == 0)
        rc = ob_err_errno(err, errno, "writing %s", tmp);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = ob_err_errno(err, errno, "renaming %s to %s", tmp, path);
    if (rc < 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

char *ob_self_exe(ob_err *err)
{
    for (size_t size = 256;; size *= 2) {
        char *p = ob_xmalloc(size);
        ssize_t n = readlink("/proc/self/exe", p, size);
        if (n < 0) {
            int e = errno;
            free(p);
            ob_err_errno(err, e, "finding our own executable (/proc/self/exe)");
            return NULL;
        }
        if ((size_t)n < size) {
            p[n] = '\0';
            return p;
        }
        free(p);
    }
}

const char *ob_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t == '/' ? t : "/tmp";
}

int ob_tmpfile(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && errno != ENOENT && errno != EACCES && errno != ENOSPC) {
        /* No O_TMPFILE on this file system (EOPNOTSUPP; EISDIR on kernels
         * before 3.11): a named file, unlinked before anyone needs it. */
        char *t = ob_xasprintf("%s/.opsbackup-XXXXXX", dir);
        fd = mkostemp(t, O_CLOEXEC);
        if (fd >= 0)
            unlink(t);
        free(t);
    }
    return fd;
}

int ob_mkdir_p(const char *path, mode_t mode, ob_err *err)
{
    char *p = ob_xstrdup(path);
    for (char *s = p + 1;; s++) {
        char c = *s;
        if (c != '/' && c != '\0')
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST) {
            int e = errno;
            ob_err_errno(err, e, "creating directory %s", p);
            free(p);
            return -1;
        }
        *s = c;
        if (!c)
            break;
    }
    free(p);
    return 0;
}

char *ob_human_duration(double seconds)
{
    if (!(seconds > 0))
        seconds = 0;
    int64_t s = (int64_t)(seconds + 0.5);
    if (s < 60)
        return ob_xasprintf("%llds", (long long)s);
    if (s < 3600)
        return ob_xasprintf("%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
    if (s < 86400)
        return ob_xasprintf("%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
    return ob_xasprintf("%lldd%lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
}

/* The permission bits of st that apply to uid/groups (as rwx in 0..7). */
static unsigned perm_for(const struct stat *st, uid_t uid, const gid_t *groups, int ngroups)
{
    if (st->st_uid == uid)
        return (st->st_mode >> 6) & 7;
    for (int i = 0; i < ngroups; i++)
        if (groups[i] == st->st_gid)
            return (st->st_mode >> 3) & 7;
    return st->st_mode & 7;
}

int ob_access_as(const char *path, uid_t uid, gid_t gid, int want, char **why, ob_err *err)
{
    *why = NULL;
    if (uid == 0)
        return 1;
    /* The user's groups as the kernel will see them in the process the
     * user runs (its login groups); without a passwd entry, only gid. */
    int ngroups = 1;
    gid_t one = gid, *groups = &one;
    struct passwd *pw = getpwuid(uid);
    if (pw) {
        int n = 32;
        groups = ob_xcalloc((size_t)n, sizeof *groups);
        if (getgrouplist(pw->pw_name, gid, groups, &n) < 0) {
            groups = ob_xrealloc(groups, (size_t)n * sizeof *groups);
            if (getgrouplist(pw->pw_name, gid, groups, &n) < 0)
                n = 1; /* cannot happen twice; keep the primary group */
        }
        ngroups = n;
    }
    char *abs = realpath(path, NULL);
    if (!abs) {
        int e = errno;
        if (groups != &one)
            free(groups);
        return ob_err_errno(err, e, "cannot examine %s", path);
    }
    int ok = 1;
    /* Every directory from / down, then the path itself. */
    for (char *p = abs;; p++) {
        int last = *p == '\0';
        if (*p != '/' && !last)
            continue;
        char saved = *p;
        *p = '\0';
        const char *at = *abs ? abs : "/";
        struct stat st;
        if (stat(at, &st) < 0) {
            ok = ob_err_errno(err, errno, "cannot examine %s", at);
            break;
        }
        unsigned have = perm_for(&st, uid, groups, ngroups);
        unsigned need = last ? (unsigned)(((want & R_OK) ? 4 : 0) | ((want & W_OK) ? 2 : 0) |
                                          ((want & X_OK) ? 1 : 0))
                             : 1u;
        if ((have & need) != need) {
            struct passwd *o = getpwuid(st.st_uid);
            char uidbuf[24];
            snprintf(uidbuf, sizeof uidbuf, "%u", (unsigned)st.st_uid);
            *why = ob_xasprintf("%s is mode %04o, owner %s", at, (unsigned)(st.st_mode & 07777),
                                o ? o->pw_name : uidbuf);
            ok = 0;
            break;
        }
        *p = saved;
        if (last)
            break;
    }
    free(abs);
    if (groups != &one)
        free(groups);
    return ok;
}
