#!/usr/bin/env python3
"""bench/s3_requests.py — count the S3 requests of each command of scenario E.

    python3 bench/s3_requests.py bench/out/s3-server.log > bench/out/s3-requests.md

Reads the S3 server's log written with BENCH_S3_LOG=1: lines
"REQ START METHOD URL STATUS MS BYTES RANGE" from bench/s3server.js, between the
"### begin SCEN/STEP/TOOL" and "### end ..." marks measure() writes around
every command.  For each command it prints the number of requests by kind
(LIST, and GET / PUT / HEAD / DELETE / POST by the repository directory the
object is in: keys, config, locks, snapshots, index, data, ...), the
server's summed time, the time it was busy with at least one request of the
command (union of the request intervals), and the most requests in flight
at once.  "summed ÷ busy" near 1 means the requests ran one after another.
"""
import re
import sys
from collections import Counter, defaultdict

REQ = re.compile(r'^REQ (\d+) (\S+) (\S+) (\d+) ([\d.]+) (\S+)(?: (\S+))?$')


def kind(method, url):
    path, _, query = url.partition('?')
    parts = path.strip('/').split('/')
    if len(parts) <= 1:  # bucket-level: a listing (or HEAD bucket)
        return 'LIST' if method == 'GET' else method + ' bucket'
    # /BUCKET/REPO/DIR/... ; the repository prefix is parts[1]
    rest = parts[2:]
    d = rest[0] if rest else '(root)'
    if 'uploadId' in query or 'uploads' in query:
        d += ' (multipart)'
    return f'{method} {d}'


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    cur = None
    sections = []  # (name, [(start, method, url, status, ms, bytes)])
    for line in open(sys.argv[1], errors='replace'):
        line = line.rstrip('\n')
        if line.startswith('### begin '):
            cur = (line[len('### begin '):], [])
            sections.append(cur)
            continue
        if line.startswith('### end '):
            cur = None
            continue
        m = REQ.match(line)
        if m and cur is not None:
            start, method, url, status, ms, size = m.groups()
            cur[1].append((int(start), method, url, int(status), float(ms),
                           0 if size == '-' else int(size)))
    print('# S3 requests per command (scenario E)\n')
    print('From the S3 server\'s request log (bench/s3server.js, BENCH_S3_LOG=1). '
          'summed = the sum of every request\'s server time; busy = the time at least one '
          'request of the command was in the server; max = most requests in flight at once.\n')
    print('| command | requests | by kind | bytes out | summed s | busy s | max in flight |')
    print('|---|---:|---|---:|---:|---:|---:|')
    for name, reqs in sections:
        if not reqs:
            print(f'| {name} | 0 | | | | | |')
            continue
        c = Counter(kind(r[1], r[2]) for r in reqs)
        by = ', '.join(f'{k} {v}' for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
        summed = sum(r[4] for r in reqs) / 1000
        iv = sorted((r[0], r[0] + r[4]) for r in reqs)
        busy, end = 0.0, None
        s0 = None
        for a, b in iv:
            if end is None or a > end:
                if end is not None:
                    busy += end - s0
                s0, end = a, b
            else:
                end = max(end, b)
        busy += end - s0
        ev = sorted([(a, 1) for a, _ in iv] + [(b, -1) for _, b in iv], key=lambda e: (e[0], e[1]))
        cur = mx = 0
        for _, d in ev:
            cur += d
            mx = max(mx, cur)
        out = sum(r[5] for r in reqs if r[1] == 'GET')
        print(f'| {name} | {len(reqs)} | {by} | {out / 1048576:.1f} MiB | {summed:.2f} | '
              f'{busy / 1000:.2f} | {mx} |')


main()
