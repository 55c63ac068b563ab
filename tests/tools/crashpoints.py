#!/usr/bin/env python3
"""crashpoints.py - SIGKILL opsbackup at every storage mutation of an operation.

Usage (run by tests/integration/test_crash_points.sh, which sets up the
repositories, PostgreSQL and S3 and exports OPSBACKUP and the password):

    crashpoints.py SCENARIO --work DIR --repo URL [--repo2 URL] [--steps N]
                   [--stride K] [--label L] [--stats FILE] [--as-user USER]
                   [--pgdata DIR] [--dbname DB]

SCENARIO is one of files, prune, copy, archive, db-logical, db-physical.

The kill points come from opsbackup's crash-test hook (src/storage/storage.h):
OPSBACKUP_FAULT_KILL_AT=k makes the k-th durable storage mutation (put,
delete, delete_many, remove_temporaries) of a storage handle raise SIGKILL,
before the driver is called or, with OPSBACKUP_FAULT_KILL_WHEN=after, once it
returned.  For each step of a scenario the operation is run with k = 1, 1 +
stride, ... and both "before" and "after", each run starting from the state
the previous kill left, until a run completes by itself (it must exit 0: the
"next run succeeds").  After every kill and every completed run:

  - `check --read-data` exits 0 (a stale lock of the dead process must not
    get in its way; warnings about unindexed packs are allowed);
  - every snapshot that was reported complete (or that a killed run managed
    to commit) is still listed, unless a retention step removed it on
    purpose;
  - every files snapshot restores to exactly the tree that was backed up
    (names, types, modes, contents, symlink targets); database snapshots
    are restored once when they first appear (logical: into a new database
    whose fingerprint must equal the source's at backup time; physical:
    into a new data directory) and all again at the end, while
    `check --read-data` re-authenticates every stored byte after each kill;
  - WAL segments whose archive-push exited 0 come back byte-identical with
    archive-get.

Problems are collected (one run reports all); the exit status is 1 if any
was found.  Figures (kill points per operation) go to --stats as JSON.
Stdlib only.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import time

OB = os.environ.get("OPSBACKUP", "opsbackup")


def manifest(root):
    """{relpath: (kind, mode, digest-or-target)} of a tree (root excluded)."""
    out = {}
    for dp, dns, fns in os.walk(root):
        for n in dns + fns:
            p = os.path.join(dp, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode, "")
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for b in iter(lambda: f.read(1 << 20), b""):
                        h.update(b)
                out[rel] = ("file", mode, h.hexdigest())
            else:
                out[rel] = ("other", mode, "")
    return out


def diff_manifest(want, got, limit=5):
    lines = []
    for k in sorted(set(want) | set(got)):
        if want.get(k) != got.get(k):
            lines.append("%s: want %s, got %s" % (k, want.get(k), got.get(k)))
    return lines[:limit]


class Harness:
    def __init__(self, a):
        self.a = a
        self.work = a.work
        os.makedirs(self.work, exist_ok=True)
        self.problems = []
        self.stats = {}  # operation -> {"before": n, "after": n, "completed": n}
        self.expect = {}  # repo -> {snapshot id -> expectation}
        self.gone_ok = {}  # repo -> ids a retention step may remove
        self.checked_once = set()  # db snapshots restored once already
        self.pending = {}  # repo -> expectation of a snapshot appearing now
        self.seq = 0
        self.prefix = ["runuser", "-u", a.as_user, "--"] if a.as_user else []

    # ---------------------------------------------------------------- runs
    def problem(self, msg):
        print("PROBLEM: %s: %s" % (self.a.label, msg), flush=True)
        self.problems.append(msg)

    def ob(self, argv, repo=None, env=None, timeout=600):
        cmd = self.prefix + [OB] + (["-r", repo] if repo else []) + argv
        e = dict(os.environ)
        for k in ("OPSBACKUP_FAULT_KILL_AT", "OPSBACKUP_FAULT_KILL_WHEN",
                  "OPSBACKUP_FAULT_COUNT_FILE"):
            e.pop(k, None)
        if env:
            e.update(env)
        return subprocess.run(cmd, env=e, capture_output=True, timeout=timeout)

    def scratch(self, name):
        self.seq += 1
        d = os.path.join(self.work, "%s.%d" % (name, self.seq))
        if self.a.as_user:
            os.makedirs(d)
            shutil.chown(d, self.a.as_user)
            os.chmod(d, 0o700)
        return d

    def crash_op(self, op, argv, repo, verify, on_done=None, max_k=5000):
        """Kill `argv` at mutation 1, 1+stride, ... (before, then after) until
        a run completes; verify(why, completed) after each.  Returns the
        completed run."""
        st = self.stats.setdefault(op, {"before": 0, "after": 0, "completed": 0})
        k = 1
        while k <= max_k:
            for when in ("before", "after"):
                rec = os.path.join(self.work, "mutations.log")
                if os.path.exists(rec):
                    os.unlink(rec)
                env = {"OPSBACKUP_FAULT_KILL_AT": str(k), "OPSBACKUP_FAULT_KILL_WHEN": when,
                       "OPSBACKUP_FAULT_COUNT_FILE": rec}
                if self.a.as_user:
                    # the hook's record is written by the unprivileged process
                    open(rec, "w").close()
                    shutil.chown(rec, self.a.as_user)
                r = self.ob(argv, repo, env)
                killed = r.returncode == -9 or r.returncode == 137
                if not killed:
                    st["completed"] += 1
                    if r.returncode != 0:
                        self.problem("%s (run with kill point %d %s) did not complete: exit %d: %s"
                                     % (op, k, when, r.returncode,
                                        r.stderr.decode(errors="replace").strip()[-600:]))
                    elif on_done:
                        on_done(r)
                    verify("%s completed (after %d kills)" % (op, st["before"] + st["after"]), True)
                    return r
                st[when] += 1
                what = "?"
                try:
                    with open(rec) as f:
                        lines = f.read().splitlines()
                    kl = [l for l in lines if l.startswith("KILL\t")]
                    if kl:
                        n = kl[-1].split("\t")[1]
                        hit = [l for l in lines if l.split("\t")[0] == n]
                        if hit:
                            what = " ".join(hit[-1].split("\t")[1:3])
                except OSError:
                    pass
                verify("%s killed %s mutation %d (%s)" % (op, when, k, what), False)
            k += self.a.stride
        self.problem("%s never completed within %d kill points" % (op, max_k))
        return None

    # --------------------------------------------------------- verification
    def snapshots(self, repo):
        r = self.ob(["--json", "snapshots"], repo)
        if r.returncode != 0:
            self.problem("snapshots on %s exited %d: %s"
                         % (repo, r.returncode, r.stderr.decode(errors="replace")))
            return None
        return json.loads(r.stdout)

    def check(self, repo, why):
        r = self.ob(["check", "--read-data"], repo)
        if r.returncode != 0:
            self.problem("%s: check --read-data exited %d: %s" % (
                why, r.returncode, (r.stdout + r.stderr).decode(errors="replace")[-1500:]))
            return False
        return True

    def verify_repo(self, repo, why, restore_all_files=True):
        self.check(repo, why)
        snaps = self.snapshots(repo)
        if snaps is None:
            return
        exp = self.expect.setdefault(repo, {})
        ids = {s["id"]: s for s in snaps}
        for sid in exp:
            if sid not in ids and sid not in self.gone_ok.get(repo, set()):
                self.problem("%s: snapshot %s vanished" % (why, sid[:8]))
        for sid, s in ids.items():
            if sid not in exp:
                pend = self.pending.get(repo)
                if pend is None:
                    self.problem("%s: unexpected snapshot %s appeared" % (why, sid[:8]))
                    continue
                exp[sid] = pend(s) if callable(pend) else pend
            e = exp[sid]
            if e is None:
                continue
            if e[0] == "files" and (restore_all_files or sid not in self.checked_once):
                self.verify_files(repo, sid, e[1], e[2], why)
            elif e[0] in ("db", "phys") and sid not in self.checked_once:
                self.verify_db(repo, sid, e, why)
            self.checked_once.add(sid)

    def verify_files(self, repo, sid, path, want, why):
        d = self.scratch("restore")
        r = self.ob(["restore", "files", sid, "--target", d], repo)
        if r.returncode != 0:
            self.problem("%s: snapshot %s does not restore: %s"
                         % (why, sid[:8], r.stderr.decode(errors="replace").strip()[-400:]))
        else:
            got = manifest(d + path)
            if got != want:
                self.problem("%s: snapshot %s restores different: %s"
                             % (why, sid[:8], "; ".join(diff_manifest(want, got))))
        shutil.rmtree(d, ignore_errors=True)

    def verify_db(self, repo, sid, e, why):
        if e[0] == "db":
            # The pid too: several scenarios run at once against one server.
            db = "crashchk_%d_%d" % (os.getpid(), self.seq + 1)
            self.seq += 1
            r = self.ob(["restore", "db", sid, "--target-db", db], repo)
            if r.returncode != 0:
                self.problem("%s: db snapshot %s does not restore: %s"
                             % (why, sid[:8], r.stderr.decode(errors="replace").strip()[-400:]))
                return
            got = db_checksum(db)
            if got != e[1]:
                self.problem("%s: db snapshot %s restores a different database" % (why, sid[:8]))
            psql("DROP DATABASE %s" % db)
        else:
            d = self.scratch("pgdata")
            r = self.ob(["restore", "db", sid, "--physical", "--pgdata", d], repo)
            if r.returncode != 0:
                self.problem("%s: physical snapshot %s does not restore: %s"
                             % (why, sid[:8], r.stderr.decode(errors="replace").strip()[-400:]))
            elif not os.path.exists(os.path.join(d, "global", "pg_control")):
                self.problem("%s: physical snapshot %s restored without pg_control" % (why, sid[:8]))
            shutil.rmtree(d, ignore_errors=True)

    def final_db_pass(self, repo):
        """Every database snapshot once more, now that no more kills come."""
        self.checked_once -= set(self.expect.get(repo, {}))
        self.verify_repo(repo, "final pass")

    def init(self, repo):
        if self.a.existing:
            self.expect[repo] = {}
            return
        r = self.ob(["init", "--kdf-n", "1024"], repo)
        if r.returncode != 0:
            sys.exit("init %s failed: %s" % (repo, r.stderr.decode(errors="replace")))
        self.expect[repo] = {}

    def backup_ok(self, repo, argv, exp):
        """A backup outside the kill loop (set-up), recorded as expected."""
        r = self.ob(["--json"] + argv, repo)
        if r.returncode != 0:
            sys.exit("set-up backup failed: %s" % r.stderr.decode(errors="replace"))
        sid = json.loads(r.stdout)["id"]
        self.expect[repo][sid] = exp
        return sid


# ------------------------------------------------------------- PostgreSQL
PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")


def psql(sql, db="postgres"):
    return subprocess.run([PGBIN + "/psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                          check=True, capture_output=True).stdout.decode()


def db_checksum(db):
    # pg_lib.sh's pg_checksum, exported by the calling test (export -f)
    return subprocess.run(["bash", "-c", 'pg_checksum "$1"', "-", db], check=True,
                          capture_output=True).stdout.decode().strip()


# --------------------------------------------------------------- trees
def make_tree(root, rng):
    os.makedirs(os.path.join(root, "sub", "deeper"), exist_ok=True)
    for i in range(12):
        with open(os.path.join(root, "sub" if i % 3 else "", "f%02d.dat" % i), "wb") as f:
            f.write(rng.randbytes(rng.randrange(0, 40000)))
    with open(os.path.join(root, "sub", "deeper", "big.bin"), "wb") as f:
        f.write(rng.randbytes(1024 * 1024 + 17))
    open(os.path.join(root, "empty"), "wb").close()
    os.symlink("sub/f01.dat", os.path.join(root, "link"))


def churn_tree(root, rng, n):
    """Change some files, add some, remove one: the next backup stores new
    data and skips the rest by metadata against its parent."""
    files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs
                   if not os.path.islink(os.path.join(dp, f)))
    for p in rng.sample(files, min(3, len(files))):
        with open(p, "ab") as f:
            f.write(rng.randbytes(rng.randrange(1, 20000)))
    for i in range(2):
        with open(os.path.join(root, "sub", "new-%d-%d.dat" % (n, i)), "wb") as f:
            f.write(rng.randbytes(rng.randrange(100, 300000)))
    victims = [p for p in files if "new-" in p]
    if victims:
        os.unlink(rng.choice(victims))
    os.chmod(os.path.join(root, "empty"), 0o600 if n % 2 else 0o644)


# ------------------------------------------------------------ scenarios
def sc_files(h, a):
    repo, src = a.repo, os.path.join(a.work, "tree")
    rng = random.Random(a.seed)
    h.init(repo)
    make_tree(src, rng)
    for step in range(a.steps):
        if step:
            churn_tree(src, rng, step)
        m = manifest(src)
        h.pending[repo] = ("files", src, m)
        # a backup deletes nothing but its lock: after a kill, restoring the
        # new snapshots is enough (check --read-data re-reads all data);
        # every snapshot is restored again once the backup has completed
        h.crash_op("backup files", ["--json", "backup", "files", src], repo,
                   lambda why, done: h.verify_repo(repo, why, restore_all_files=done))
        h.pending[repo] = None


def sc_prune(h, a):
    repo, src = a.repo, os.path.join(a.work, "tree")
    rng = random.Random(a.seed + 1)
    h.init(repo)
    make_tree(src, rng)
    day = 1
    for step in range(a.steps):
        for _ in range(3):
            churn_tree(src, rng, day)
            h.backup_ok(repo, ["backup", "files", "--time", "2026-01-%02d 10:00:00" % day, src],
                        ("files", src, manifest(src)))
            day += 1
        # keep the newest two: the others may go (forget is killed too)
        snaps = sorted(h.snapshots(repo), key=lambda s: s["time"])
        h.gone_ok.setdefault(repo, set()).update(s["id"] for s in snaps[:-2])
        # forget and prune delete: every kept snapshot is restored after
        # every kill
        h.crash_op("forget", ["forget", "--keep-last", "2"], repo,
                   lambda why, done: h.verify_repo(repo, why))
        h.crash_op("prune", ["prune"], repo, lambda why, done: h.verify_repo(repo, why))


def sc_copy(h, a):
    srcrepo, dst, src = a.repo, a.repo2, os.path.join(a.work, "tree")
    rng = random.Random(a.seed + 2)
    h.init(srcrepo)
    h.init(dst)
    make_tree(src, rng)
    by_src = {}
    for step in range(a.steps):
        for i in range(2):
            churn_tree(src, rng, 10 * step + i)
            e = ("files", src, manifest(src))
            sid = h.backup_ok(srcrepo, ["backup", "files", src], e)
            by_src[sid] = e

        # a copy is expected to equal the source snapshot it names
        def from_source(s):
            f = (s.get("extra") or {}).get("copied_from")
            if isinstance(f, dict):
                f = f.get("id") or f.get("snapshot")
            for sid, e in by_src.items():
                if f and isinstance(f, str) and sid.startswith(f):
                    return e
            h.problem("copied snapshot %s: copied_from %r names no source snapshot"
                      % (s["id"][:8], f))
            return None
        h.pending[dst] = from_source

        def verify(why, done):
            h.verify_repo(dst, why, restore_all_files=done)
            h.check(srcrepo, why + " (source)")
        h.crash_op("copy", ["copy", "--from", srcrepo, "--to", dst], None, verify)
        h.pending[dst] = None
        n = len(h.snapshots(dst) or [])
        if n < len(by_src):
            h.problem("after copy the destination has %d snapshots, the source %d"
                      % (n, len(by_src)))


def sc_archive(h, a):
    repo = a.repo
    rng = random.Random(a.seed + 3)
    h.init(repo)
    waldir = os.path.join(a.work, "pg_wal")
    os.makedirs(os.path.join(waldir, "archive_status"))
    segs = ["0000000100000000000000%02X" % i for i in range(1, 1 + 4 * a.steps)]
    for s in segs:
        with open(os.path.join(waldir, s), "wb") as f:
            f.write(rng.randbytes(256 * 1024))
    pushed = []

    def verify(why, done=False):
        h.check(repo, why)
        for s in pushed:
            if s in got_ok:
                continue
            out = os.path.join(a.work, "got")
            r = h.ob(["archive-get", s, out], repo)
            if r.returncode != 0:
                h.problem("%s: archive-get %s failed: %s"
                          % (why, s, r.stderr.decode(errors="replace").strip()))
            elif open(out, "rb").read() != open(os.path.join(waldir, s), "rb").read():
                h.problem("%s: archive-get %s returned different bytes" % (why, s))
            else:
                got_ok.add(s)
    got_ok = set()
    # PostgreSQL fell behind: every segment is waiting (.ready), so each
    # call also pushes the next ones in parallel and leaves markers.
    for s in segs:
        open(os.path.join(waldir, "archive_status", s + ".ready"), "w").close()
    for s in segs:
        def done(r, s=s):
            pushed.append(s)
            os.rename(os.path.join(waldir, "archive_status", s + ".ready"),
                      os.path.join(waldir, "archive_status", s + ".done"))
        h.crash_op("archive-push", ["archive-push", os.path.join(waldir, s)], repo, verify, done)
    got_ok.clear()
    verify("final pass")


def sc_db_logical(h, a):
    repo = a.repo
    h.init(repo)
    for step in range(a.steps):
        if step:
            psql("INSERT INTO crash_marks VALUES (%d, repeat('x', 1000))" % step, a.dbname)
        else:
            psql("CREATE TABLE IF NOT EXISTS crash_marks (n int, pad text)", a.dbname)
        h.pending[repo] = ("db", db_checksum(a.dbname))
        h.crash_op("backup db (logical)", ["--json", "backup", "db", "--dbname", a.dbname], repo,
                   lambda why, done: h.verify_repo(repo, why))
        h.pending[repo] = None
    h.final_db_pass(repo)


def sc_db_physical(h, a):
    repo = a.repo
    h.init(repo)
    for step in range(a.steps):
        psql("CREATE TABLE IF NOT EXISTS crash_phys (n int, pad text)")
        psql("INSERT INTO crash_phys SELECT g, repeat('y', 200) FROM generate_series(1, 20000) g")
        h.pending[repo] = ("phys",)
        h.crash_op("backup db (physical)",
                   ["--json", "backup", "db", "--physical", "--pgdata", a.pgdata], repo,
                   lambda why, done: h.verify_repo(repo, why))
        h.pending[repo] = None
    h.final_db_pass(repo)


SCENARIOS = {"files": sc_files, "prune": sc_prune, "copy": sc_copy, "archive": sc_archive,
             "db-logical": sc_db_logical, "db-physical": sc_db_physical}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--work", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--repo2")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--label", default="")
    ap.add_argument("--stats")
    ap.add_argument("--as-user")
    ap.add_argument("--pgdata")
    ap.add_argument("--dbname", default="app")
    ap.add_argument("--existing", action="store_true",
                    help="the repository exists already (no init)")
    a = ap.parse_args()
    a.label = a.label or a.scenario
    h = Harness(a)
    t0 = time.time()
    SCENARIOS[a.scenario](h, a)
    took = time.time() - t0
    kills = sum(s["before"] + s["after"] for s in h.stats.values())
    for op, s in h.stats.items():
        print("%s: %s: %d kill points (%d before, %d after a mutation), %d completed runs"
              % (a.label, op, s["before"] + s["after"], s["before"], s["after"], s["completed"]))
    print("%s: %d kill points in %.0f s, %d problems" % (a.label, kills, took, len(h.problems)))
    if a.stats:
        with open(a.stats, "a") as f:
            f.write(json.dumps({"label": a.label, "ops": h.stats, "kills": kills,
                                "seconds": round(took), "problems": len(h.problems)}) + "\n")
    sys.exit(1 if h.problems else 0)


if __name__ == "__main__":
    main()
