#!/usr/bin/env python3
"""gen_db.py — deterministic rows of the benchmark's `documents` table.

    gen_db.py documents [--seed N] --first-id ID --count N

Writes COPY text format to stdout for
    documents(id, author_id, title, body, created_at)
Bodies are prose in the same pseudo-language as gen_attachments.py,
log-normal in size (median ~650 bytes, mean ~1 KB, a tail of a few
tens of KB that PostgreSQL TOASTs and compresses).  A batch depends
only on (seed, first id, count): the initial load and the rows a
mutation adds are separate batches, each reproducible on its own.
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_attachments import Vocab, rng_for  # noqa: E402

BASE_TIME = 1672531200  # 2023-01-01T00:00:00Z


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("documents")
    d.add_argument("--seed", default="1")
    d.add_argument("--first-id", type=int, required=True)
    d.add_argument("--count", type=int, required=True)
    a = p.parse_args()
    vocab = Vocab(a.seed)
    out = sys.stdout
    buf = []
    r = rng_for(a.seed, "documents", a.first_id)
    for i in range(a.first_id, a.first_id + a.count):
        size = min(60000, int(math.exp(r.gauss(math.log(650), 0.9))))
        paras = []
        n = 0
        while n < size:
            s = vocab.sentence(r, r.randrange(8, 40))
            s = s[:1].upper() + s[1:] + "."
            paras.append(s)
            n += len(s) + 2
        body = "\\n\\n".join(paras)
        title = vocab.sentence(r, r.randrange(2, 8))
        ts = BASE_TIME + i * 97 + r.randrange(60)
        buf.append("%d\t%d\t%s\t%s\t%s\n" % (i, r.randrange(1, 20000), title, body,
                                             _iso(ts)))
        if len(buf) >= 2000:
            out.write("".join(buf))
            buf.clear()
    out.write("".join(buf))


def _iso(ts):
    import time
    return time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(ts))


if __name__ == "__main__":
    main()
