#!/usr/bin/env python3
"""gen_attachments.py — deterministic "attachments" tree for the benchmark.

    gen_attachments.py generate DIR [--seed N] [--scale S]
    gen_attachments.py mutate   DIR [--seed N] [--scale S] [--mutation 1|2]

generate: DIR must not exist (or be empty).  At scale 1 it writes ~1 GB
(10^9 bytes) in ~3000 files: ~60% of the bytes incompressible and
image-like (JPEG/PNG/PDF headers followed by random bytes), ~40% text
(JSON documents, application logs, prose/CSV exports).  Layout is what an
application's storage directory looks like: YYYY/MM/xx/<id>-<name>.<ext>.
Sizes are log-normal per class, then scaled so each class hits its byte
share.  --scale multiplies both the byte total and the file count.

mutate: applies a deterministic change set to a tree made by `generate`
with the same --seed and --scale.
  mutation 1 ("one hour of work"): 30 files added, 5 modified, 5 deleted
             (counts x scale, at least 3/1/1).  Modified: logs get lines
             appended, JSON/text get a region rewritten in the middle,
             images get 64 KiB rewritten (metadata edit).
  mutation 2 (locality): appends to the most recent logs and adds files
             in the newest month only.

Everything comes from random.Random seeded with strings, which is stable
across Python versions and PYTHONHASHSEED.  File mtimes are set to fixed
values too, so two runs with the same seed produce identical trees.
Prints one summary line to stderr.  Python 3.9+ stdlib only.
"""
import argparse
import math
import os
import random
import sys

BASE_TIME = 1704067200          # 2024-01-01T00:00:00Z
MUT_TIME = {1: 1735689600, 2: 1735693200}   # 2025-01-01 00:00 / 01:00
TOTAL_BYTES = 10**9
TOTAL_FILES = 3000
IMAGE_SHARE = 0.60              # share of bytes that is incompressible
IMAGE_FILE_SHARE = 0.45         # share of files that are images
MAX_FILE = 48 << 20

IMAGE_KINDS = [("jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
               ("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
               ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")]
TEXT_KINDS = ["json", "log", "txt", "csv"]


def rng_for(seed, *parts):
    return random.Random("%s:%s" % (seed, ":".join(str(p) for p in parts)))


class Vocab:
    """A pseudo-language: ~6000 words with a Zipf-like frequency."""

    def __init__(self, seed):
        r = rng_for(seed, "vocab")
        letters = "etaoinshrdlcumwfgypbvkjxqz"
        lw = [12.0, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8,
              2.4, 2.4, 2.2, 2.0, 2.0, 1.9, 1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1]
        words = set()
        while len(words) < 6000:
            n = max(1, int(r.gauss(6, 2.5)))
            words.add("".join(r.choices(letters, lw, k=n)))
        self.words = sorted(words)
        r.shuffle(self.words)
        self.cum = list(_accumulate(1.0 / (i + 1) ** 1.07 for i in range(len(self.words))))

    def sentence(self, r, n):
        return " ".join(r.choices(self.words, cum_weights=self.cum, k=n))


def _accumulate(it):
    t = 0.0
    for x in it:
        t += x
        yield t


def text_bytes(kind, size, r, vocab, ident):
    """About `size` bytes of text of one kind, cut to exactly `size`."""
    out = []
    n = 0
    if kind == "json":
        out.append('{"export_id": %d, "records": [\n' % ident)
        i = 0
        while n < size:
            i += 1
            s = ('  {"id": %d, "user_id": %d, "status": "%s", "title": "%s", '
                 '"amount": %d.%02d, "created_at": "2024-%02d-%02dT%02d:%02d:%02dZ", '
                 '"tags": ["%s", "%s"], "body": "%s"},\n') % (
                ident * 100000 + i, r.randrange(1, 50000),
                r.choice(("open", "closed", "pending", "archived")),
                vocab.sentence(r, r.randrange(3, 9)), r.randrange(0, 100000), r.randrange(100),
                r.randrange(1, 13), r.randrange(1, 29), r.randrange(24), r.randrange(60),
                r.randrange(60), r.choice(vocab.words[:200]), r.choice(vocab.words[:200]),
                vocab.sentence(r, r.randrange(10, 60)))
            out.append(s)
            n += len(s)
        out.append("]}\n")
    elif kind == "log":
        t = BASE_TIME + ident * 37
        paths = ["/api/v1/items", "/api/v1/users", "/api/v1/orders", "/login", "/search",
                 "/api/v1/attachments", "/healthz", "/api/v2/reports"]
        levels = ["INFO"] * 12 + ["DEBUG"] * 5 + ["WARN", "ERROR"]
        methods = ["GET"] * 6 + ["POST", "POST", "PUT", "DELETE"]
        while n < size:
            t += r.randrange(0, 3)
            lvl = r.choice(levels)
            if lvl in ("WARN", "ERROR"):
                s = "%d.%03d %s [worker-%d] %s\n" % (t, r.randrange(1000), lvl, r.randrange(8),
                                                      vocab.sentence(r, r.randrange(5, 20)))
            else:
                s = ('%d.%03d %s [worker-%d] %s %s/%d %d %dms user=%d ip=10.%d.%d.%d '
                     'req=%016x\n') % (
                    t, r.randrange(1000), lvl, r.randrange(8), r.choice(methods),
                    r.choice(paths), r.randrange(100000), r.choice((200, 200, 200, 201, 204, 304, 404, 500)),
                    r.randrange(1, 900), r.randrange(1, 50000), r.randrange(256), r.randrange(256),
                    r.randrange(256), r.getrandbits(64))
            out.append(s)
            n += len(s)
    elif kind == "csv":
        out.append("id,date,customer,product,quantity,unit_price,note\n")
        i = 0
        while n < size:
            i += 1
            s = "%d,2024-%02d-%02d,%d,%s,%d,%d.%02d,%s\n" % (
                i, r.randrange(1, 13), r.randrange(1, 29), r.randrange(1, 20000),
                r.choice(vocab.words[:500]), r.randrange(1, 50), r.randrange(1, 2000),
                r.randrange(100), vocab.sentence(r, r.randrange(0, 8)))
            out.append(s)
            n += len(s)
    else:  # prose
        while n < size:
            para = []
            for _ in range(r.randrange(2, 8)):
                s = vocab.sentence(r, r.randrange(6, 30))
                para.append(s[:1].upper() + s[1:] + ".")
            s = " ".join(para) + "\n\n"
            out.append(s)
            n += len(s)
    return "".join(out).encode()[:size]


def image_bytes(ext, header, size, r):
    b = header + r.randbytes(max(0, size - len(header)))
    return b[:size]


def plan(seed, scale):
    """The list of files of the initial tree: (relpath, kind, ext, size, ident)."""
    r = rng_for(seed, "plan")
    nfiles = max(10, round(TOTAL_FILES * scale))
    total = TOTAL_BYTES * scale
    nimg = round(nfiles * IMAGE_FILE_SHARE)
    kinds = ["image"] * nimg + ["text"] * (nfiles - nimg)
    r.shuffle(kinds)
    raw = [math.exp(r.gauss(0, 1.1)) for _ in kinds]
    files = []
    for cls, share in (("image", IMAGE_SHARE), ("text", 1 - IMAGE_SHARE)):
        idx = [i for i, k in enumerate(kinds) if k == cls]
        s = sum(raw[i] for i in idx)
        for i in idx:
            raw[i] = min(MAX_FILE, max(200, int(raw[i] / s * total * share)))
    for i, cls in enumerate(kinds):
        ident = 100000 + i
        month = i * 24 // nfiles          # files spread over 24 months, oldest first
        y, m = 2023 + month // 12, month % 12 + 1
        if cls == "image":
            ext = r.choice(IMAGE_KINDS)[0]
            kind = "image"
        else:
            ext = r.choice(TEXT_KINDS)
            kind = ext
        name = "%d/%02d/%02x/%d-%s.%s" % (y, m, r.randrange(16), ident,
                                          ("scan", "photo", "doc", "export", "report", "app")[r.randrange(6)], ext)
        files.append((name, kind, ext, raw[i], ident))
    return files


def write_file(root, seed, vocab, rel, kind, ext, size, ident, mtime):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    r = rng_for(seed, "file", rel)
    if kind == "image":
        header = dict(IMAGE_KINDS)[ext]
        data = image_bytes(ext, header, size, r)
    else:
        data = text_bytes(kind, size, r, vocab, ident)
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (mtime, mtime))
    return len(data), kind == "image"


def cmd_generate(a):
    if os.path.exists(a.dir) and os.listdir(a.dir):
        sys.exit("gen_attachments: %s exists and is not empty" % a.dir)
    os.makedirs(a.dir, exist_ok=True)
    vocab = Vocab(a.seed)
    nbytes = nimg = 0
    files = plan(a.seed, a.scale)
    for i, (rel, kind, ext, size, ident) in enumerate(files):
        n, img = write_file(a.dir, a.seed, vocab, rel, kind, ext, size, ident, BASE_TIME + i * 3600)
        nbytes += n
        nimg += n if img else 0
    print("gen_attachments: %s: %d files, %.1f MB, %.0f%% image-like (seed %s, scale %g)" %
          (a.dir, len(files), nbytes / 1e6, 100.0 * nimg / max(1, nbytes), a.seed, a.scale),
          file=sys.stderr)


def cmd_mutate(a):
    vocab = Vocab(a.seed)
    files = plan(a.seed, a.scale)
    present = [f for f in files if os.path.exists(os.path.join(a.dir, f[0]))]
    r = rng_for(a.seed, "mutation", a.mutation)
    mt = MUT_TIME[a.mutation]
    added = modified = deleted = 0
    nbytes = 0
    if a.mutation == 1:
        n_add = max(3, round(30 * a.scale))
        n_mod = max(1, round(5 * a.scale))
        n_del = max(1, round(5 * a.scale))
        pick = r.sample(range(len(present)), n_mod + n_del)
        for j in pick[:n_mod]:
            rel, kind, ext, size, ident = present[j]
            nbytes += modify(a.dir, rel, kind, r, vocab, ident, mt)
            modified += 1
        for j in pick[n_mod:]:
            os.unlink(os.path.join(a.dir, present[j][0]))
            deleted += 1
        month_dir = "2025/01"
    else:
        n_add = max(2, round(10 * a.scale))
        logs = [f for f in present if f[1] == "log"][-3:]
        for rel, kind, ext, size, ident in logs:
            nbytes += modify(a.dir, rel, kind, r, vocab, ident, mt)
            modified += 1
        month_dir = "2025/01"
    # Added files: same distributions as the initial tree, newest month.
    for k in range(n_add):
        ident = 900000 + a.mutation * 10000 + k
        if r.random() < IMAGE_FILE_SHARE:
            ext = r.choice(IMAGE_KINDS)[0]
            kind = "image"
        else:
            ext = r.choice(TEXT_KINDS)
            kind = ext
        size = int(min(MAX_FILE, max(200, math.exp(r.gauss(0, 1.1)) * 250000)))
        rel = "%s/%02x/%d-upload.%s" % (month_dir, r.randrange(16), ident, ext)
        n, _ = write_file(a.dir, a.seed, vocab, rel, kind, ext, size, ident, mt + k)
        nbytes += n
        added += 1
    print("gen_attachments: mutation %d on %s: %d added, %d modified, %d deleted, %.1f MB written" %
          (a.mutation, a.dir, added, modified, deleted, nbytes / 1e6), file=sys.stderr)


def modify(root, rel, kind, r, vocab, ident, mtime):
    path = os.path.join(root, rel)
    size = os.path.getsize(path)
    if kind == "log":
        extra = text_bytes("log", max(4096, size // 10), r, vocab, ident + 7)
        with open(path, "ab") as f:
            f.write(extra)
        n = len(extra)
    elif kind == "image":
        n = min(65536, size // 2)
        with open(path, "r+b") as f:
            f.seek(size // 3)
            f.write(r.randbytes(n))
    else:
        with open(path, "rb") as f:
            data = f.read()
        mid = len(data) // 2
        region = text_bytes(kind, max(1024, len(data) // 50), r, vocab, ident + 11)
        data = data[:mid] + region + data[mid + len(region) // 2:]
        with open(path, "wb") as f:
            f.write(data)
        n = len(region)
    os.utime(path, (mtime, mtime))
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("generate", "mutate"):
        s = sub.add_parser(name)
        s.add_argument("dir")
        s.add_argument("--seed", default="1")
        s.add_argument("--scale", type=float, default=1.0)
        if name == "mutate":
            s.add_argument("--mutation", type=int, choices=(1, 2), default=1)
    a = p.parse_args()
    if a.scale <= 0:
        sys.exit("gen_attachments: --scale must be > 0")
    (cmd_generate if a.cmd == "generate" else cmd_mutate)(a)


if __name__ == "__main__":
    main()
