#!/usr/bin/env python3
"""treecmp.py - exhaustively compare two directory trees.

Usage: treecmp.py A B [--ignore-atime] [--ignore-root-meta] [--max-lines N]

Exit status: 0 identical, 1 differences found (one line each on stdout, at most
--max-lines (default 50) lines, then a count), 2 usage/fatal error.

Per entry (bytes paths, symlinks never followed):
  presence in both trees, file type, permission bits (07777), uid, gid,
  size (regular files and symlinks; directory sizes are filesystem artefacts),
  rdev (device nodes), mtime_ns (all types incl. dirs and symlinks),
  atime_ns (unless --ignore-atime), regular file content (streamed, first
  differing offset reported), symlink target bytes, all xattrs (names and
  values, incl. system.posix_acl_access/default = POSIX ACLs), hard-link
  structure (paths sharing an inode in A must share one in B and vice versa),
  sparseness (for files in A whose allocation is smaller than their size,
  B's st_blocks must be <= 2*A + 64, i.e. holes stay holes).

All metadata of both trees is collected with lstat() before any file content
or symlink is read, and files/directories are opened with O_NOATIME, so the
comparison does not disturb the atimes it compares.
"""

import argparse
import errno
import hashlib
import os
import stat
import sys

CHUNK = 1 << 20
SPARSE_SLACK_BLOCKS = 64

TYPE_NAMES = {
    stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "chardev",
    stat.S_IFBLK: "blockdev",
}
O_NOATIME = getattr(os, "O_NOATIME", 0)


def tname(mode):
    return TYPE_NAMES.get(stat.S_IFMT(mode), "type%o" % stat.S_IFMT(mode))


def fmt_ns(ns):
    s, frac = divmod(ns, 1_000_000_000)
    return "%d.%09d" % (s, frac)


def short(v, limit=60):
    r = repr(v)
    return r if len(r) <= limit else r[:limit] + "...(%d bytes)" % len(v)


def open_noatime(path, flags):
    """open() with O_NOATIME when permitted (owner or CAP_FOWNER)."""
    if O_NOATIME:
        try:
            return os.open(path, flags | O_NOATIME)
        except PermissionError:
            pass
    return os.open(path, flags)


class Tree:
    def __init__(self, root):
        self.root = os.fsencode(root)
        self.entries = {}   # rel -> stat_result
        self.order = []     # rels in sorted DFS pre-order
        self.errors = []    # (rel, message)

    def full(self, rel):
        return self.root if rel == b"." else os.path.join(self.root, rel)

    def scan(self):
        st = os.lstat(self.root)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(self.root)
        self.entries[b"."] = st
        self.order.append(b".")
        stack = [b"."]
        while stack:
            rel = stack.pop()
            path = self.full(rel)
            try:
                fd = open_noatime(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
                try:
                    names = sorted(os.fsencode(n) for n in os.listdir(fd))
                finally:
                    os.close(fd)
            except OSError as e:
                self.errors.append((rel, "cannot list directory: %s" % e))
                continue
            subdirs = []
            for name in names:
                crel = name if rel == b"." else os.path.join(rel, name)
                try:
                    cst = os.lstat(os.path.join(path, name))
                except OSError as e:
                    self.errors.append((crel, "cannot lstat: %s" % e))
                    continue
                self.entries[crel] = cst
                self.order.append(crel)
                if stat.S_ISDIR(cst.st_mode):
                    subdirs.append(crel)
            stack.extend(reversed(subdirs))

    def xattrs(self, rel):
        path = self.full(rel)
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                return {}
            raise
        out = {}
        for n in names:
            out[os.fsencode(n)] = os.getxattr(path, n, follow_symlinks=False)
        return out

    def hardlink_groups(self):
        """rel -> frozenset of rels sharing its inode (non-dirs, nlink>1)."""
        by_ino = {}
        for rel, st in self.entries.items():
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                by_ino.setdefault((st.st_dev, st.st_ino), []).append(rel)
        groups = {}
        for rels in by_ino.values():
            g = frozenset(rels)
            for r in rels:
                groups[r] = g
        return groups


class Comparer:
    def __init__(self, a, b, args):
        self.a, self.b, self.args = a, b, args
        self.diffs = []

    def diff(self, rel, msg):
        self.diffs.append((rel, len(self.diffs), "%r: %s" % (rel, msg)))

    def run(self):
        a, b = self.a, self.b
        for rel, msg in a.errors:
            self.diff(rel, "A: " + msg)
        for rel, msg in b.errors:
            self.diff(rel, "B: " + msg)

        # presence (report only the topmost missing entry of a missing subtree)
        def presence(src, other, label):
            skip = None
            for rel in src.order:
                if skip is not None and rel.startswith(skip):
                    continue
                if rel not in other.entries:
                    st = src.entries[rel]
                    extra = ""
                    if stat.S_ISDIR(st.st_mode):
                        skip = rel + b"/"
                        n = sum(1 for r in src.order if r.startswith(skip))
                        extra = " (with %d entries below)" % n
                    self.diff(rel, "only in %s: %s%s" % (label, tname(st.st_mode), extra))
        presence(a, b, "A")
        presence(b, a, "B")

        common = [r for r in a.order if r in b.entries]
        same_type = []
        for rel in common:
            sa, sb = a.entries[rel], b.entries[rel]
            if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
                self.diff(rel, "type: A=%s B=%s" % (tname(sa.st_mode), tname(sb.st_mode)))
            else:
                same_type.append(rel)

        # pass 1: pure lstat metadata (nothing has been read yet)
        for rel in same_type:
            if rel == b"." and self.args.ignore_root_meta:
                continue
            self.meta(rel, a.entries[rel], b.entries[rel])

        # pass 2: things that require reading (content, link targets, xattrs)
        for rel in same_type:
            sa, sb = a.entries[rel], b.entries[rel]
            try:
                if not (rel == b"." and self.args.ignore_root_meta):
                    self.cmp_xattrs(rel)
                if stat.S_ISREG(sa.st_mode):
                    self.cmp_content(rel, sa, sb)
                    self.cmp_sparse(rel, sa, sb)
                elif stat.S_ISLNK(sa.st_mode):
                    ta = os.readlink(a.full(rel))
                    tb = os.readlink(b.full(rel))
                    if ta != tb:
                        self.diff(rel, "symlink target: A=%s B=%s" % (short(ta), short(tb)))
            except OSError as e:
                self.diff(rel, "error while comparing: %s" % e)

        self.cmp_hardlinks(set(same_type))
        # group by path (each path's lines in the order they were found)
        return [line for _, _, line in sorted(self.diffs)]

    def meta(self, rel, sa, sb):
        ma, mb = stat.S_IMODE(sa.st_mode), stat.S_IMODE(sb.st_mode)
        if ma != mb:
            self.diff(rel, "mode: A=%04o B=%04o" % (ma, mb))
        if sa.st_uid != sb.st_uid:
            self.diff(rel, "uid: A=%d B=%d" % (sa.st_uid, sb.st_uid))
        if sa.st_gid != sb.st_gid:
            self.diff(rel, "gid: A=%d B=%d" % (sa.st_gid, sb.st_gid))
        if (stat.S_ISREG(sa.st_mode) or stat.S_ISLNK(sa.st_mode)) and sa.st_size != sb.st_size:
            self.diff(rel, "size: A=%d B=%d" % (sa.st_size, sb.st_size))
        if (stat.S_ISCHR(sa.st_mode) or stat.S_ISBLK(sa.st_mode)) and sa.st_rdev != sb.st_rdev:
            self.diff(rel, "rdev: A=%d,%d B=%d,%d" % (os.major(sa.st_rdev), os.minor(sa.st_rdev),
                                                     os.major(sb.st_rdev), os.minor(sb.st_rdev)))
        if sa.st_mtime_ns != sb.st_mtime_ns:
            self.diff(rel, "mtime: A=%s B=%s" % (fmt_ns(sa.st_mtime_ns), fmt_ns(sb.st_mtime_ns)))
        if not self.args.ignore_atime and sa.st_atime_ns != sb.st_atime_ns:
            self.diff(rel, "atime: A=%s B=%s" % (fmt_ns(sa.st_atime_ns), fmt_ns(sb.st_atime_ns)))

    def cmp_xattrs(self, rel):
        xa, xb = self.a.xattrs(rel), self.b.xattrs(rel)
        for n in sorted(set(xa) | set(xb)):
            if n not in xb:
                self.diff(rel, "xattr %s only in A (value %s)" % (short(n), short(xa[n])))
            elif n not in xa:
                self.diff(rel, "xattr %s only in B (value %s)" % (short(n), short(xb[n])))
            elif xa[n] != xb[n]:
                va, vb = xa[n], xb[n]
                i = next((k for k in range(min(len(va), len(vb))) if va[k] != vb[k]),
                         min(len(va), len(vb)))
                start = max(0, i - 8)
                self.diff(rel, "xattr %s value differs at byte %d: A=%s (%d bytes) B=%s (%d bytes)"
                          % (short(n), i, short(va[start:start + 24], 200), len(va),
                             short(vb[start:start + 24], 200), len(vb)))

    def cmp_content(self, rel, sa, sb):
        fa = open_noatime(self.a.full(rel), os.O_RDONLY | os.O_NOFOLLOW)
        try:
            fb = open_noatime(self.b.full(rel), os.O_RDONLY | os.O_NOFOLLOW)
        except BaseException:
            os.close(fa)
            raise
        try:
            ha, hb = hashlib.sha256(), hashlib.sha256()
            off, first = 0, None
            la = lb = 0
            while True:
                ca = os.read(fa, CHUNK)
                cb = os.read(fb, CHUNK)
                # keep the two streams aligned even if one read returns short
                while len(ca) < len(cb):
                    more = os.read(fa, len(cb) - len(ca))
                    if not more:
                        break
                    ca += more
                while len(cb) < len(ca):
                    more = os.read(fb, len(ca) - len(cb))
                    if not more:
                        break
                    cb += more
                if not ca and not cb:
                    break
                ha.update(ca)
                hb.update(cb)
                la += len(ca)
                lb += len(cb)
                if first is None and ca != cb:
                    n = min(len(ca), len(cb))
                    i = next((k for k in range(n) if ca[k] != cb[k]), n)
                    first = off + i
                off += max(len(ca), len(cb))
            if first is not None or ha.digest() != hb.digest():
                self.diff(rel, "content differs at byte %s (A %d bytes sha256 %s, B %d bytes sha256 %s)"
                          % (first, la, ha.hexdigest()[:16], lb, hb.hexdigest()[:16]))
        finally:
            os.close(fa)
            os.close(fb)

    def cmp_sparse(self, rel, sa, sb):
        if sa.st_blocks * 512 >= sa.st_size:
            return                          # A is not sparse
        limit = 2 * sa.st_blocks + SPARSE_SLACK_BLOCKS
        if sb.st_blocks > limit:
            self.diff(rel, "sparseness lost: A size %d allocated %d blocks, B allocated %d blocks (limit %d)"
                      % (sa.st_size, sa.st_blocks, sb.st_blocks, limit))

    def cmp_hardlinks(self, comparable):
        ga, gb = self.a.hardlink_groups(), self.b.hardlink_groups()
        seen = set()
        for rel in self.a.order:
            if rel not in comparable or stat.S_ISDIR(self.a.entries[rel].st_mode):
                continue
            sa = ga.get(rel, frozenset([rel])) & comparable
            sb = gb.get(rel, frozenset([rel])) & comparable
            if sa != sb and (sa, sb) not in seen:
                seen.add((sa, sb))

                def fmt(g):
                    others = sorted(g - {rel})
                    if not others:
                        return "no other link"
                    s = ", ".join(repr(o) for o in others[:4])
                    return s + (" (+%d more)" % (len(others) - 4) if len(others) > 4 else "")
                self.diff(rel, "hard links: A shares inode with [%s], B with [%s]" % (fmt(sa), fmt(sb)))


def main():
    ap = argparse.ArgumentParser(description="Compare two directory trees exhaustively.")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--ignore-atime", action="store_true", help="do not compare atimes")
    ap.add_argument("--ignore-root-meta", action="store_true",
                    help="do not compare metadata (mode, owner, times, xattrs) of the two roots")
    ap.add_argument("--max-lines", type=int, default=50, help="differences to print (default 50)")
    args = ap.parse_args()

    ta, tb = Tree(args.a), Tree(args.b)
    try:
        ta.scan()
        tb.scan()
    except OSError as e:
        sys.stderr.write("treecmp: %s\n" % e)
        return 2
    diffs = Comparer(ta, tb, args).run()
    if not diffs:
        sys.stderr.write("treecmp: identical (%d entries)\n" % len(ta.order))
        return 0
    out = sys.stdout
    for line in diffs[:args.max_lines]:
        out.write(line + "\n")
    if len(diffs) > args.max_lines:
        out.write("... and %d more differences\n" % (len(diffs) - args.max_lines))
    out.write("treecmp: %d differences\n" % len(diffs))
    out.flush()
    return 1


if __name__ == "__main__":
    sys.exit(main())
