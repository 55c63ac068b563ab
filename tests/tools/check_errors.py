#!/usr/bin/env python3
"""Check every error message the test suite provoked (issue #12).

tests/run sets OPSBACKUP_ERROR_LOG, so each `opsbackup: error:` line of
every integration test (they provoke wrong passwords, corrupt packs, full
disks, unreachable servers, hostile paths...) lands in one file.  A message
passes when it is more than an errno string:

  - it is not a bare strerror() text ("No such file or directory"), nor one
    with only a verb in front ("open: Permission denied");
  - when it ends in a strerror() text, what comes before names the object:
    a path, a quoted name, an ID, or a word such as repository, snapshot,
    pack, index, key, config, job, database, table, object, file, bucket.

Prints each failing message with the reason; exit 1 if any failed.
Usage: check_errors.py ERROR_LOG
"""
import errno
import os
import re
import sys

STRERRORS = {os.strerror(n) for n in errno.errorcode}
OBJECT_WORDS = re.compile(
    r"(/|'|\"|\b[0-9a-f]{8,}\b|\brepository\b|\bsnapshot\b|\bpack\b|\bindex\b|\bkey\b|"
    r"\bconfig\b|\bjob\b|\bdatabase\b|\btable\b|\bobject\b|\bfile\b|\bbucket\b|\bWAL\b|"
    r"\bsegment\b|\bdirectory\b|\bserver\b|\bendpoint\b|\bhttps?://|\bs3://|--[a-z])",
    re.IGNORECASE)


def problem(msg):
    m = msg.strip()
    if not m:
        return "empty message"
    if m in STRERRORS:
        return "a bare errno string"
    for s in STRERRORS:
        if m.endswith(": " + s):
            head = m[: -len(s) - 2]
            if re.fullmatch(r"[a-z_]+(\(\))?", head):
                return "only a system call in front of an errno string"
            if not OBJECT_WORDS.search(head):
                return "an errno string that does not name what failed"
    if len(m.split()) < 3:
        return "too short to say what failed and why"
    return None


def main():
    path = sys.argv[1]
    if not os.path.exists(path):
        print(f"check_errors: {path} does not exist: no test provoked an error?")
        return 1
    seen, bad = set(), []
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if line in seen:
            continue
        seen.add(line)
        why = problem(line)
        if why:
            bad.append((why, line))
    for why, line in bad:
        print(f"BAD ({why}): {line}")
    print(f"check_errors: {len(seen)} distinct error messages, {len(bad)} bad")
    return 1 if bad or len(seen) < 50 else 0


if __name__ == "__main__":
    sys.exit(main())
