#!/usr/bin/env python3
"""mktree.py - build a deterministic, deliberately awkward directory tree.

Usage: mktree.py DIR [--seed N] [--small-files N] [--big-mb N] [--big-count N]

Creates DIR (which must not exist or must be empty) and fills it with things
backup tools get wrong: empty/large/sparse files, 10k small files, a deep path,
hostile names (whitespace, newlines, leading dashes, Japanese, invalid UTF-8,
NAME_MAX-long names), all kinds of symlinks, hard links, FIFOs,
setuid/setgid/sticky bits, foreign uid/gid, user.* xattrs (binary values),
POSIX ACLs (if setfacl is available) and nanosecond mtimes/atimes on every
entry, directories and symlinks included.

The same seed always yields the same tree (same names, contents, metadata).
Must run as root (chown, foreign owners).  Stdlib only.

Atimes are deliberately placed in the future (2035..2037, always later than the
entry's mtime).  Under the default 'relatime' mount option the kernel then
never updates them when the file/dir/symlink is read, so a backup run that
reads the source does not disturb the source's atimes and atime preservation
can be compared strictly.  (With 'strictatime' mounts use --ignore-atime.)
"""

import argparse
import os
import random
import shutil
import stat
import subprocess
import sys
import time

NS = 1_000_000_000
MiB = 1024 * 1024

ATIME_LO = 2051222400 * NS      # 2035-01-01T00:00:00Z
ATIME_HI = 2145916800 * NS      # 2038-01-01T00:00:00Z
MTIME_LO = 946684800 * NS       # 2000-01-01T00:00:00Z
MTIME_HI = 1704067200 * NS      # 2024-01-01T00:00:00Z


def b(s):
    """str -> bytes path component (utf-8), bytes passed through."""
    return s if isinstance(s, bytes) else s.encode("utf-8")


def J(*parts):
    return os.path.join(*[b(p) for p in parts])


class Builder:
    def __init__(self, root, seed):
        self.root = b(root)
        self.rng = random.Random(seed)
        self.seed = seed
        # explicit per-entry timestamps: relpath -> (atime_ns, mtime_ns)
        self.times = {}
        # deferred metadata: applied after everything is created
        self.chowns = []     # (path, uid, gid)
        self.chmods = []     # (path, mode)
        self.xattrs = []     # (path, name, value)
        self.acls = []       # (path, [setfacl args])
        self.counts = {}

    # -- helpers -----------------------------------------------------------
    def p(self, *parts):
        return J(self.root, *parts)

    def count(self, what, n=1):
        self.counts[what] = self.counts.get(what, 0) + n

    def mkdir(self, *parts):
        path = self.p(*parts)
        os.makedirs(path, exist_ok=True)
        return path

    def write(self, path, data):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            mv = memoryview(data)
            while mv:
                n = os.write(fd, mv)
                mv = mv[n:]
        finally:
            os.close(fd)
        self.count("regular files")
        return path

    def rand(self, n):
        return self.rng.randbytes(n)

    def settime(self, path, atime_ns=None, mtime_ns=None):
        rel = os.path.relpath(path, self.root)
        self.times[rel] = (atime_ns, mtime_ns)

    # -- sections ----------------------------------------------------------
    def sizes(self):
        d = self.mkdir("files")
        self.write(J(d, "empty"), b"")
        self.write(J(d, "empty-2"), b"")
        self.write(J(d, "one-byte"), b"x")
        self.write(J(d, "no-trailing-newline.txt"), b"hello")
        for n in (511, 512, 513, 4095, 4096, 4097, 65535, 65536, 65537,
                  1 * MiB - 1, 1 * MiB + 1):
            self.write(J(d, "size-%d" % n), self.rand(n))
        # all zeros but written (not sparse in the source)
        self.write(J(d, "zeros-256k"), bytes(256 * 1024))
        # very compressible text
        self.write(J(d, "repetitive.txt"), b"opsbackup all work and no play\n" * 20000)
        # 3 MiB random (incompressible, multi-chunk)
        self.write(J(d, "random-3m"), self.rand(3 * MiB))

    def big(self, mb, count):
        d = self.mkdir("big")
        for i in range(count):
            total = mb * MiB
            path = J(d, "big-%d.bin" % i)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                done = 0
                k = 0
                while done < total:
                    n = min(total - done, self.rng.choice((256 * 1024, MiB, 3 * MiB // 2)))
                    kind = k % 4
                    if kind == 0:
                        chunk = self.rand(n)
                    elif kind == 1:
                        pat = self.rand(self.rng.randint(1, 4096))
                        chunk = (pat * (n // len(pat) + 1))[:n]
                    elif kind == 2:
                        chunk = bytes(n)          # written zeros (not a hole)
                    else:
                        # random blocks, some repeated (dedup fodder)
                        blk = self.rand(64 * 1024)
                        parts = []
                        while sum(map(len, parts)) < n:
                            parts.append(blk if self.rng.random() < 0.5 else self.rand(64 * 1024))
                        chunk = b"".join(parts)[:n]
                    os.write(fd, chunk)
                    done += n
                    k += 1
            finally:
                os.close(fd)
            self.count("regular files")
            self.count("big files")

    def sparse(self):
        d = self.mkdir("sparse")

        def mk(name, size, regions):
            path = J(d, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.ftruncate(fd, size)
                for off, data in regions:
                    os.pwrite(fd, data, off)
            finally:
                os.close(fd)
            self.count("regular files")
            self.count("sparse files")
            return path

        # 64 MiB logical, a few data regions, data at the very end (no trailing hole)
        mk("sparse-64m.img", 64 * MiB, [
            (0, self.rand(4096)),
            (5 * MiB + 123, self.rand(10000)),        # unaligned region
            (33 * MiB, self.rand(MiB)),
            (64 * MiB - 4096, self.rand(4096)),
        ])
        # trailing hole: data then 15 MiB of nothing
        mk("sparse-trailing-hole.img", 16 * MiB, [(MiB, self.rand(8192))])
        # leading hole only, data at end
        mk("sparse-leading-hole.img", 8 * MiB, [(8 * MiB - 1, b"\x01")])
        # entirely hole
        mk("sparse-all-hole.img", 32 * MiB, [])
        # a written region of zeros inside a hole: data that reads as zeros
        mk("sparse-written-zeros.img", 4 * MiB, [(MiB, bytes(65536)), (3 * MiB, b"end")])

    def small(self, n):
        top = self.mkdir("small")
        made = 0
        i = 0
        while made < n:
            sub = J(top, "a%02d" % (i // 10), "b%02d" % (i % 10))
            os.makedirs(sub, exist_ok=True)
            for j in range(min(100, n - made)):
                r = self.rng.random()
                size = 0 if r < 0.05 else self.rng.randint(0, 4096)
                path = self.write(J(sub, "f%04d" % j), self.rand(size))
                r = self.rng.random()
                if r < 0.05:
                    self.chmods.append((path, 0o600))
                elif r < 0.08:
                    self.chmods.append((path, 0o755))
                elif r < 0.10:
                    self.chmods.append((path, 0o444))
                if self.rng.random() < 0.01:
                    self.chowns.append((path, 1000 + self.rng.randint(0, 50), 1000 + self.rng.randint(0, 50)))
                made += 1
            i += 1
        self.count("small files", made)

    def deep(self, levels=50):
        parts = ["deep"] + ["level-%02d-%s" % (k, "x" * 20) for k in range(levels)]
        path = self.mkdir(*parts)
        self.write(J(path, "bottom.txt"), b"you found the bottom\n")
        self.write(J(self.p(*parts[:levels // 2 + 1]), "middle.txt"), b"halfway\n")
        self.count("deep levels", levels)
        return path

    def names(self):
        d = self.mkdir("names")
        file_names = [
            "with space", " leading-space", "trailing-space ", " ",
            "new\nline", "\nleading-newline", "trailing-newline\n",
            "tab\there", "carriage\rreturn", "esc-\x1b[31mred\x1b[0m", "ctrl-\x01\x02\x7f",
            "-leading-dash", "--double-dash", "-", "--", "-rf",
            "日本語のファイル名.txt", "ｶﾀｶﾅ半角", "emoji-\U0001F4BE",
            "NFC-\u00e9", "NFD-e\u0301",
            "back\\slash", "quote'single", 'quote"double', "dollar-$HOME", "glob-*?[a]",
            "semi;colon", "pipe|amp&", "percent-%s%n", "hash#", "tilde~", "~tilde",
            ".hidden", "..dotdot-prefix", "...", "Case", "case",
            b"bad-\xff\xfe", b"latin1-caf\xe9", b"overlong-\xc0\xaf",
            b"surrogate-\xed\xa0\x80", b"\xff", b"mixed-\xe6\x97\xa5-\xff-end",
            "n" * 255,                                # NAME_MAX ascii
            "日" * 85,                                 # NAME_MAX bytes in UTF-8
        ]
        for n in file_names:
            self.write(J(d, n), b"name test: " + b(n) + b"\n")
        self.count("weird names", len(file_names))
        dir_names = [
            "dir with space", "dir\nnewline", "dir\ttab", "-dir-dash", "ディレクトリ 日本",
            b"bad-dir-\xc3\x28", b"\xfe\xfe-dir",
        ]
        for n in dir_names:
            sub = self.mkdir(J(d, n))
            self.write(J(sub, "inside"), b"inside " + b(n) + b"\n")
            self.write(J(sub, b"also bad \xff\n"), b"nested weird name\n")
        # weird names nested in weird names
        sub = self.mkdir(J(d, "-dir-dash", "日本", b"\x80\x81", "a\nb"))
        self.write(J(sub, "-f"), b"deep weird\n")
        self.count("weird names", len(dir_names))

    def empties(self):
        self.mkdir("empty-dirs", "empty")
        self.mkdir("empty-dirs", "nested", "empty", "dirs")
        self.mkdir("empty-dirs", "empty-mode-0700")
        self.chmods.append((self.p("empty-dirs", "empty-mode-0700"), 0o700))

    def symlinks(self):
        d = self.mkdir("links")
        self.write(J(d, "target.txt"), b"link target\n")
        links = [
            ("rel", b"target.txt"),
            ("rel-up", b"../files/one-byte"),
            ("rel-dotslash", b"./target.txt"),
            ("rel-deep", b"../deep/level-00-" + b"x" * 20 + b"/level-01-" + b"x" * 20),
            ("abs-outside", b"/etc/passwd"),             # must stay a link
            ("abs-outside-dir", b"/etc"),                # following it would back up /etc
            ("dangling", b"does/not/exist"),
            ("dangling-abs", b"/nonexistent/opsbackup/target"),
            ("dir-link", b"../deep"),                    # symlink to a directory
            ("self-loop", b"self-loop"),
            ("loop-a", b"loop-b"),
            ("loop-b", b"loop-a"),
            ("to-fifo", b"../special/fifo"),
            ("to-weird", b"../names/new\nline"),
            ("weird-target", b"bad-\xff\xfe/with\nnewline and space"),
            ("long-target", b"/".join([b"component-%03d" % k for k in range(70)])),  # ~1 KiB
            ("to-sparse", b"../sparse/sparse-64m.img"),
            (b"bad-name-\xff", b"target.txt"),
            ("link with\nnewline", b"target.txt"),
            ("-dash-link", b"-dash-target"),
        ]
        for name, target in links:
            os.symlink(target, J(d, name))
        self.count("symlinks", len(links))
        # symlink owned by someone else (lchown)
        os.symlink(b"target.txt", J(d, "owned-link"))
        self.chowns.append((J(d, "owned-link"), 4321, 8765))
        self.count("symlinks")
        # a symlink inside a directory reached via a weird name
        os.symlink(b"../bad-\xff\xfe", J(self.p("names", "dir with space"), "up-to-bad"))
        self.count("symlinks")

    def hardlinks(self):
        d = self.mkdir("hardlinks")
        a = self.mkdir(J(d, "a"))
        bdir = self.mkdir(J(d, "b dir"))
        c = self.mkdir(J(d, "c", "nested"))
        first = self.write(J(a, "three-links"), self.rand(10000))
        os.link(first, J(bdir, "three-links (2)"))
        os.link(first, J(c, b"three-links-\xff"))
        self.xattrs.append((first, b"user.hardlinked", b"shared by three names"))
        # second group: 2 links, one outside hardlinks/ (weird name dir), empty file
        second = self.write(J(d, "empty-two-links"), b"")
        os.link(second, self.p("names", "dir\nnewline", "hardlink-to-empty"))
        # third group: links in the same directory, one is a setuid file
        third = self.write(J(d, "same-dir-1"), b"#!/bin/sh\necho hi\n")
        os.link(third, J(d, "same-dir-2"))
        self.chmods.append((third, 0o4755))
        self.count("hard link groups", 3)

    def special(self):
        d = self.mkdir("special")
        os.mkfifo(J(d, "fifo"), 0o644)
        os.mkfifo(J(d, "fifo with space\n"), 0o600)
        os.mkfifo(J(self.p("names"), b"fifo-bad-\xff"), 0o640)
        self.chowns.append((J(d, "fifo with space\n"), 1234, 5678))
        self.count("fifos", 3)

    def perms(self):
        d = self.mkdir("perms")
        script = b"#!/bin/sh\nexit 0\n"
        for name, mode in [("setuid-04755", 0o4755), ("setgid-02755", 0o2755),
                           ("setuid-setgid-06750", 0o6750), ("sticky-file-01644", 0o1644),
                           ("all-07777", 0o7777), ("none-0000", 0o000), ("ro-0444", 0o444),
                           ("wo-0222", 0o222), ("exec-only-0111", 0o111), ("0600", 0o600)]:
            self.chmods.append((self.write(J(d, name), script), mode))
        for name, mode in [("sticky-dir-01777", 0o1777), ("setgid-dir-02775", 0o2775),
                           ("setuid-dir-04755", 0o4755), ("all-dir-07777", 0o7777),
                           ("dir-0000", 0o000), ("dir-0500", 0o500), ("dir-0711", 0o711)]:
            sub = self.mkdir(J(d, name))
            self.write(J(sub, "child"), b"child of " + b(name) + b"\n")
            self.chmods.append((sub, mode))
        # owned by foreign uid + setuid: chown must happen before chmod (chown clears suid)
        p = self.write(J(d, "setuid-foreign-owner"), script)
        self.chowns.append((p, 1234, 5678))
        self.chmods.append((p, 0o6750))

    def owners(self):
        d = self.mkdir("owners")
        try:
            import pwd
            nobody = pwd.getpwnam("nobody").pw_uid
        except (KeyError, ImportError):
            nobody = 65534
        try:
            import grp
            nogroup = grp.getgrnam("nogroup").gr_gid
        except (KeyError, ImportError):
            nogroup = 65534
        for name, uid, gid in [("uid1234-gid5678", 1234, 5678),
                               ("nobody-nogroup", nobody, nogroup),
                               ("root-gid5678", 0, 5678),
                               ("uid1234-root", 1234, 0),
                               ("uid-big-4000000000", 4000000000, 4000000001)]:
            self.chowns.append((self.write(J(d, name), name.encode() + b"\n"), uid, gid))
        sub = self.mkdir(J(d, "dir-1234-5678"))
        self.write(J(sub, "root-owned-in-foreign-dir"), b"x\n")
        self.chowns.append((sub, 1234, 5678))
        sub2 = self.mkdir(J(d, "dir-nobody"))
        self.chowns.append((self.write(J(sub2, "nobody-file"), b"y\n"), nobody, nogroup))
        self.chowns.append((sub2, nobody, nogroup))

    def xattr_section(self):
        d = self.mkdir("xattrs")
        f = self.write(J(d, "file-with-xattrs"), b"has xattrs\n")
        self.xattrs += [
            (f, b"user.comment", b"hello world"),
            (f, b"user.binary", bytes(range(256))),
            (f, b"user.empty", b""),
            (f, b"user.nul-inside", b"\x00abc\x00\x00def\x00"),
            (f, "user.日本語".encode(), "値".encode()),
            (f, b"user.big", self.rand(1500)),
            (f, b"user.mime_type", b"text/plain"),
        ]
        dd = self.mkdir(J(d, "dir-with-xattrs"))
        self.write(J(dd, "plain"), b"plain\n")
        self.xattrs += [(dd, b"user.dir", b"directory xattr"),
                        (dd, b"user.bin", b"\xff\xfe\x00\x01")]
        w = self.write(J(d, b"weird\nname-\xff"), b"x\n")
        self.xattrs.append((w, b"user.on-weird-name", b"\n\xff"))
        self.xattrs.append((self.p("sparse", "sparse-64m.img"), b"user.sparse", b"yes"))
        self.xattrs.append((self.p("perms", "setuid-04755"), b"user.suid", b"1"))
        # ACLs (applied only if setfacl exists)
        acl = self.write(J(d, "file-with-acl"), b"acl\n")
        self.acls.append((acl, ["-m", "u:1234:rw-,u:nobody:r--,g:5678:r--,m::rw-"]))
        ad = self.mkdir(J(d, "dir-with-default-acl"))
        self.write(J(ad, "child"), b"created before the default acl\n")
        self.acls.append((ad, ["-m", "u:1234:rwx,g:5678:r-x"]))
        self.acls.append((ad, ["-d", "-m", "u:1234:rwx,g:5678:r-x,o::---"]))
        acl2 = self.write(J(d, "acl-and-xattr"), b"both\n")
        self.xattrs.append((acl2, b"user.also", b"acl too"))
        self.acls.append((acl2, ["-m", "u:4000000000:r--"]))

    def special_times(self):
        d = self.mkdir("times")
        special = [
            ("epoch-zero", 0),
            ("pre-1970", -14182940 * NS + 123456789),          # 1969-07-20
            ("ns-999999999", 1234567890 * NS + 999999999),
            ("ns-000000001", 1234567890 * NS + 1),
            ("whole-second", 1500000000 * NS),
            ("y2038-plus-1", (2 ** 31) * NS + 5),
            ("year-2100", 4102444800 * NS + 987654321),
        ]
        for name, mt in special:
            p = self.write(J(d, name), name.encode() + b"\n")
            self.settime(p, None, mt)
        sub = self.mkdir(J(d, "dir-pre-1970"))
        self.settime(sub, None, -1 * NS + 1)

    # -- finishing passes --------------------------------------------------
    def apply_meta(self):
        for path, uid, gid in self.chowns:
            os.chown(path, uid, gid, follow_symlinks=False)
        for path, mode in self.chmods:
            os.chmod(path, mode)
        for path, name, value in self.xattrs:
            os.setxattr(path, name, value, follow_symlinks=False)
        self.count("xattrs", len(self.xattrs))
        if self.acls:
            if shutil.which("setfacl"):
                for path, args in self.acls:
                    try:
                        subprocess.run(["setfacl"] + args + [path], check=True,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                        self.count("acls")
                    except subprocess.CalledProcessError as e:
                        sys.stderr.write("mktree: setfacl failed on %r: %s\n"
                                         % (path, e.stderr.decode(errors="replace").strip()))
            else:
                self.counts["acls"] = 0

    def walk_sorted(self):
        """Yield (path, is_dir) for everything below root, children before
        their directory (post-order), deterministic order."""
        def rec(d):
            for name in sorted(os.listdir(d)):
                p = os.path.join(d, name)
                st = os.lstat(p)
                if stat.S_ISDIR(st.st_mode):
                    yield from rec(p)
                    yield p, True
                else:
                    yield p, False
        yield from rec(self.root)

    def rand_times(self, rel):
        # per-path RNG so times don't depend on traversal details
        r = random.Random("%s:%r" % (self.seed, rel))
        mt = r.randrange(MTIME_LO, MTIME_HI)
        at = r.randrange(ATIME_LO, ATIME_HI)
        return at, mt

    def apply_times(self):
        entries = list(self.walk_sorted())
        # non-directories first (includes symlinks and fifos), then dirs bottom-up
        order = [e for e in entries if not e[1]] + [e for e in entries if e[1]]
        order.append((self.root, True))
        for path, _ in order:
            rel = os.path.relpath(path, self.root)
            at, mt = self.rand_times(rel)
            if rel in self.times:
                a2, m2 = self.times[rel]
                at = a2 if a2 is not None else at
                mt = m2 if m2 is not None else mt
            if at <= mt:                    # keep atime > mtime (relatime-proof)
                at = mt + r_ns(rel)
            os.utime(path, ns=(at, mt), follow_symlinks=False)
        self.count("timestamped entries", len(order))


def r_ns(rel):
    return 86400 * NS + (hash_bytes(rel) % NS)


def hash_bytes(x):
    import hashlib
    return int.from_bytes(hashlib.sha256(x).digest()[:8], "big")


def main():
    ap = argparse.ArgumentParser(description="Create an awkward deterministic test tree.")
    ap.add_argument("dir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--small-files", type=int, default=10000)
    ap.add_argument("--big-mb", type=int, default=20, help="size of each big file in MiB (default 20)")
    ap.add_argument("--big-count", type=int, default=1, help="number of big files (default 1)")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("mktree: must run as root (chown to foreign uids, setuid bits)")
    root = os.path.abspath(os.fsencode(args.dir))
    if os.path.lexists(root):
        if not os.path.isdir(root) or os.path.islink(root) or os.listdir(root):
            sys.exit("mktree: %r exists and is not an empty directory" % args.dir)
    t0 = time.monotonic()
    os.umask(0o022)
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)

    bl = Builder(root, args.seed)
    # each section draws from its own RNG so that e.g. --small-files does not
    # change the content of unrelated sections
    for name, fn in [("sizes", bl.sizes),
                     ("big", lambda: bl.big(args.big_mb, args.big_count)),
                     ("sparse", bl.sparse),
                     ("small", lambda: bl.small(args.small_files)),
                     ("deep", bl.deep), ("names", bl.names), ("empties", bl.empties),
                     ("special", bl.special), ("symlinks", bl.symlinks),
                     ("hardlinks", bl.hardlinks), ("perms", bl.perms), ("owners", bl.owners),
                     ("xattrs", bl.xattr_section), ("times", bl.special_times)]:
        bl.rng = random.Random("%d:%s" % (args.seed, name))
        fn()
    bl.apply_meta()
    bl.apply_times()

    c = bl.counts
    sys.stderr.write(
        "mktree: %s seed=%d: %d files (%d small, %d big, %d sparse), %d symlinks, "
        "%d hardlink groups, %d fifos, %d weird names, %d xattrs, %d acls, "
        "deep=%d, %d entries timestamped, %.1fs\n" % (
            args.dir, args.seed, c.get("regular files", 0), c.get("small files", 0),
            c.get("big files", 0), c.get("sparse files", 0), c.get("symlinks", 0),
            c.get("hard link groups", 0), c.get("fifos", 0), c.get("weird names", 0),
            c.get("xattrs", 0), c.get("acls", 0), c.get("deep levels", 0),
            c.get("timestamped entries", 0), time.monotonic() - t0))


if __name__ == "__main__":
    main()
