#!/usr/bin/env python3
"""report.py — bench/out/results.tsv -> Markdown (stdout).

    report.py results.tsv [--machine machine.txt]

One table per scenario: a row per (step, tool), then for each step the
ratio of opsbackup to the best peer (the lowest value among the rows with
role "peer": restic, borg, pgBackRest) and to the seed guide's script.
Then the issue-10 targets that this run can measure, each met / not met
with its ratio.  Ratios < 1 mean opsbackup used less.
"""
import argparse
import csv
import re
import sys

SCENARIOS = {
    "A": "A — logical dump of the database",
    "B": "B — physical backup",
    "C": "C — attachments (file tree)",
    "D": "D — WAL archiving under load",
    "E": "E — S3-compatible storage on 127.0.0.1",
}
STEPS = {
    ("A", "initial"): "first dump",
    ("A", "mutation"): "dump after mutation",
    ("A", "restore"): "restore + verify",
    ("C", "initial"): "initial backup",
    ("C", "mutation"): "backup after mutation",
    ("C", "restore"): "restore + verify",
    ("C", "list"): "list snapshots (fixed cost per command)",
    ("B", "full"): "full backup",
    ("B", "incr"): "backup after locality mutation (incr)",
    ("B", "restore"): "restore + start + verify",
    ("D", "segment"): "mean per archived segment",
    ("D", "catch-up"): "catch-up after pgbench stops",
    ("D", "backlog"): "drain a backlog of waiting segments",
    ("E", "files-initial"): "attachments: initial backup",
    ("E", "files-mutation"): "attachments: backup after mutation",
    ("E", "files-restore"): "attachments: restore + verify",
    ("E", "files-list"): "attachments: list snapshots (fixed cost per command)",
    ("E", "db-initial"): "logical dump: first dump",
    ("E", "db-mutation"): "logical dump: dump after mutation",
    ("E", "db-restore"): "logical dump: restore + verify",
    ("E", "phys-full"): "physical: full backup",
    ("E", "phys-incr"): "physical: backup after locality mutation (incr)",
    ("E", "phys-restore"): "physical: restore + start + verify",
    ("E", "wal-segment"): "WAL: mean per archived segment",
    ("E", "wal-catch-up"): "WAL: catch-up after pgbench stops",
    ("E", "wal-backlog"): "WAL: drain a backlog of waiting segments",
    ("E", "other"): "not measured",
}
# Scenario E runs C's steps as files-STEP, A's as db-STEP and B's as
# phys-STEP: restore rows are labelled as in C, A and B.
RESTORE_AS = {("E", "files-restore"): "C", ("E", "db-restore"): "A", ("E", "phys-restore"): "B"}
# A paragraph under a scenario's heading, where the columns mean something
# other than one command's cost.
NOTES = {
    "B": "pgBackRest runs with process-max=2, start-fast=y, aes-256-cbc. Each tool's step runs with its own archive_command (pgBackRest or opsbackup "
         "`archive-push`; `true` for pg_basebackup, whose -X fetch tarball holds the WAL); "
         "pgBackRest and opsbackup wait until the backup's WAL is archived, so that is in "
         "their wall time and in \"added\". The guide's pg_basebackup takes a full backup "
         "again in the incr step. Restore = restore into a fresh directory, start on a "
         "private port (archive_mode=off) and wait until recovery has ended; the "
         "fingerprint check after that is not timed. CPU counts the restoring command and "
         "pg_ctl, not the PostgreSQL server, so not the restore_command calls recovery makes.",
    "D": "Each tool archives while its own `pgbench -n -T 60 -c 4 -j 2` (D_SECONDS) runs on the same "
         "database. *mean per archived segment*: wall, CPU and RSS are the sums over every "
         "archive_command call of the run divided by the segments archived (RSS: the "
         "largest call); added = bytes the archive grew by. *catch-up*: wall = seconds "
         "from pgbench's exit until no segment waits (.ready files = 0); the status column "
         "gives the segments waiting at pgbench's exit. *backlog*: with archive_command = '' "
         "bulk inserts leave 32 segments waiting, then the tool's archive_command is set: "
         "wall = seconds until none waits, CPU = the sum over its calls, RSS = the largest "
         "call (no issue-10 target; it shows opsbackup's parallel push of waiting segments).",
    "E": "C's, A's and B's steps and commands again, with the repositories on an S3 server "
         "on 127.0.0.1 (S3rver, the tests' server: one Node.js process writing each object to "
         "a file, path-style). C and A (restic, opsbackup) over plain HTTP; B (pgBackRest zst, "
         "opsbackup; archive_command and restore_command to the same bucket) over HTTPS, "
         "which pgBackRest requires, both verifying the server's self-signed certificate. "
         "S3rver is slow and single-process, so the ratios compare the clients against the "
         "same server, not S3's speed. added / repo = bytes of the objects under the "
         "repository's prefix; restic's local cache is not counted (opsbackup keeps none). "
         "The reference row is plain `pg_dump -Fc -Z0 > /dev/null` as in A. borg has no S3 "
         "backend.",
}
TOOLS = {
    "tar": "tar -czf (guide)",
    "pg_dump-Z9": "pg_dump -Fc -Z9 (guide)",
    "pg_dump-Z0-null": "pg_dump -Fc -Z0 > /dev/null (reference)",
    "restic": "restic",
    "borg": "borg (zstd,3)",
    "opsbackup": "**opsbackup**",
    "pg_basebackup": "pg_basebackup -Ft -z -X fetch (guide)",
    "pgbackrest-zst": "pgBackRest zst",
    "pgbackrest-gz": "pgBackRest gz",
    "cp": "cp (guide)",
    "gzip": "gzip -c (guide)",
    "pgbackrest": "pgBackRest",
}
# What a tool does in a restore step, where its backup label would mislead.
RESTORE_TOOLS = {
    ("C", "tar"): "tar -xzf (guide)",
    ("C", "restic"): "restic restore",
    ("C", "borg"): "borg extract",
    ("A", "pg_dump-Z9"): "createdb + pg_restore of the -Z9 dump (guide)",
    ("A", "restic"): "createdb + restic dump \\| pg_restore",
    ("A", "borg"): "createdb + borg extract --stdout \\| pg_restore",
    ("A", "opsbackup"): "**opsbackup** restore db",
    ("B", "pg_basebackup"): "tar -xzf + pg_ctl start (guide)",
    ("B", "pgbackrest-zst"): "pgBackRest restore --type=immediate (zst) + start",
    ("B", "pgbackrest-gz"): "pgBackRest restore --type=immediate (gz) + start",
    ("B", "opsbackup"): "**opsbackup** restore --physical --target-immediate --start",
}
METRICS = [("wall_s", "wall"), ("cpu_s", "CPU"), ("maxrss_kib", "RSS"), ("bytes_added", "added")]


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


KEYS = ("wall_s", "cpu_s", "maxrss_kib", "bytes_added", "repo_bytes")


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def aggregate(runs):
    """One row for a tool's rounds of a step (run.sh's BENCH_REPEAT): each
    metric is the median over the rounds; a round that failed makes the row
    FAILED (its own row, so its note says why)."""
    if len(runs) == 1:
        return runs[0]
    bad = [r for r in runs if r["status"] != "ok"]
    agg = dict(bad[0] if bad else runs[0])
    agg["runs"] = len(runs)
    if bad:
        agg["note"] = "%d of %d rounds; %s" % (len(bad), len(runs), agg.get("note") or "")
        return agg
    for k in KEYS:
        vals = [r[k + "_n"] for r in runs if r[k + "_n"] is not None]
        agg[k + "_n"] = median(vals) if len(vals) == len(runs) else None
    walls = [r["wall_s_n"] for r in runs]
    agg["wall_s"] = "%.2f (%d runs: %.2f–%.2f)" % (agg["wall_s_n"], len(runs), min(walls), max(walls))
    agg["cpu_s"] = "%.2f" % agg["cpu_s_n"]
    return agg


def load(path):
    with open(path, newline="") as f:
        raw = list(csv.DictReader(f, delimiter="\t"))
    groups = {}  # (scenario, step, tool) -> rows, in the order first seen
    for r in raw:
        for k in KEYS:
            r[k + "_n"] = num(r.get(k)) if r.get("status") == "ok" else None
        r["runs"] = 1
        groups.setdefault((r["scenario"], r["step"], r["tool"]), []).append(r)
    return [aggregate(runs) for runs in groups.values()]


def mib(v):
    return "—" if v is None else "%.1f" % (v / 1048576)


def fmt_ratio(x):
    return "—" if x is None else "%.2f×" % x


def find(rows, scen, step, tool):
    for r in rows:
        if r["scenario"] == scen and r["step"] == step and r["tool"] == tool:
            return r
    return None


def best(rows, scen, step, key, tools=None, role="peer"):
    """(value, tool) of the lowest ok value among the peers of a step."""
    cand = [(r[key + "_n"], r["tool"]) for r in rows
            if r["scenario"] == scen and r["step"] == step and r[key + "_n"] is not None
            and (r["tool"] in tools if tools else r["role"] == role)]
    if not cand:
        return None, None
    return min(cand)


def ratio(ob, base):
    if ob is None or base is None:
        return None
    if base == 0:
        return None if ob else 1.0
    return ob / base


def scenario_table(rows, scen, out):
    srows = [r for r in rows if r["scenario"] == scen]
    out.append("### %s\n" % SCENARIOS.get(scen, scen))
    if scen in NOTES:
        out.append(NOTES[scen] + "\n")
    out.append("| step | tool | wall s | CPU s | max RSS MiB | added MiB | repo MiB | verified | status |")
    out.append("|---|---|---:|---:|---:|---:|---:|---|---|")
    steps = []
    for r in srows:
        if r["step"] not in steps:
            steps.append(r["step"])
    for step in steps:
        name = STEPS.get((scen, step), step)
        for r in (x for x in srows if x["step"] == step):
            status = r["status"] if not r.get("note") else "%s (%s)" % (r["status"], r["note"])
            rscen = RESTORE_AS.get((scen, step), scen)
            label = (RESTORE_TOOLS.get((rscen, r["tool"])) if step.endswith("restore") else None) or \
                TOOLS.get(r["tool"], r["tool"])
            if r["status"] in ("not yet available", "not available"):
                out.append("| %s | %s | | | | | | | %s |" % (name, label, status))
                continue
            rss = r["maxrss_kib_n"]
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, label, r["wall_s"], r["cpu_s"],
                "—" if rss is None else "%.0f" % (rss / 1024),
                mib(r["bytes_added_n"]), mib(r["repo_bytes_n"]), r["verify"], status))
        ob = find(srows, scen, step, "opsbackup")
        if not ob or ob["status"] != "ok":
            continue
        for label, role in (("÷ best peer", "peer"), ("÷ guide", "guide"), ("÷ reference", "reference")):
            cells = []
            any_ = False
            for key, _ in METRICS:
                b, who = best(rows, scen, step, key, role=role)
                x = ratio(ob[key + "_n"], b)
                if x is not None:
                    any_ = True
                cells.append("—" if x is None else "%s %s" % (fmt_ratio(x), who if role == "peer" else ""))
            if any_:
                out.append("| %s | *opsbackup %s* | %s | %s | %s | %s | | | |" % (
                    name, label, cells[0].strip(), cells[1].strip(), cells[2].strip(), cells[3].strip()))
    out.append("")


def targets(rows):
    """(description, ratio, limit, detail) for each measurable target."""
    res = []

    def t(desc, scen, step, key, limit, tools=None, role="peer", basekey=None):
        ob = find(rows, scen, step, "opsbackup")
        if not ob:
            res.append((desc, None, limit, "not run"))
            return
        if ob["status"] != "ok":
            res.append((desc, None, limit, ob["status"]))
            return
        b, who = best(rows, scen, step, basekey or key, tools=tools, role=role)
        x = ratio(ob[key + "_n"], b)
        res.append((desc, x, limit, "vs %s" % who if who else "no peer measured"))


    t("C initial backup: wall ≤ 0.7× best of restic/borg", "C", "initial", "wall_s", 0.7,
      tools=("restic", "borg"))
    t("C initial backup: repository size ≤ best of restic/borg", "C", "initial", "repo_bytes", 1.0,
      tools=("restic", "borg"))
    t("C after mutation: wall ≤ 1.0× best peer", "C", "mutation", "wall_s", 1.0)
    t("C after mutation: bytes added ≤ best peer", "C", "mutation", "bytes_added", 1.0)
    t("C restore: wall ≤ 0.8× best peer", "C", "restore", "wall_s", 0.8)
    t("A first dump: wall ≤ 1.15× pg_dump -Fc -Z0 > /dev/null", "A", "initial", "wall_s", 1.15,
      tools=("pg_dump-Z0-null",))
    t("A dump after mutation: wall ≤ 1.15× pg_dump -Fc -Z0 > /dev/null", "A", "mutation", "wall_s", 1.15,
      tools=("pg_dump-Z0-null",))
    t("A dump after mutation: bytes added ≤ 0.6× restic", "A", "mutation", "bytes_added", 0.6,
      tools=("restic",))
    t("A first dump: ≥ 5× faster than the guide's pg_dump -Z9 (ratio ≤ 0.2)", "A", "initial", "wall_s",
      0.2, tools=("pg_dump-Z9",))
    t("A restore: (no target; ratio to best peer)", "A", "restore", "wall_s", None)
    t("B full backup: wall ≤ 1.0× pgBackRest zst", "B", "full", "wall_s", 1.0,
      tools=("pgbackrest-zst",))
    t("B full backup: stored size ≤ pgBackRest zst", "B", "full", "repo_bytes", 1.0,
      tools=("pgbackrest-zst",))
    t("B after locality mutation: bytes added ≤ 0.5× pgBackRest incr (zst)", "B", "incr",
      "bytes_added", 0.5, tools=("pgbackrest-zst",))
    t("B restore + start: wall ≤ 0.8× pgBackRest (best of zst, gz)", "B", "restore", "wall_s", 0.8,
      tools=("pgbackrest-zst", "pgbackrest-gz"))
    t("D mean time per archived segment ≤ pgBackRest archive-push (zst)", "D", "segment", "wall_s",
      1.0, tools=("pgbackrest-zst",))
    t("E attachments initial backup over S3: wall (no target; ratio to restic)", "E", "files-initial",
      "wall_s", None, tools=("restic",))
    t("E attachments restore over S3: wall (no target; ratio to restic)", "E", "files-restore",
      "wall_s", None, tools=("restic",))
    t("E dump after mutation over S3: bytes added (no target; ratio to restic)", "E", "db-mutation",
      "bytes_added", None, tools=("restic",))
    t("E physical full backup over S3: wall (no target; ratio to pgBackRest zst)", "E", "phys-full",
      "wall_s", None, tools=("pgbackrest-zst",))
    t("E physical incr over S3: bytes added (no target; ratio to pgBackRest zst)", "E", "phys-incr",
      "bytes_added", None, tools=("pgbackrest-zst",))
    t("E physical restore + start over S3: wall (no target; ratio to pgBackRest zst)", "E",
      "phys-restore", "wall_s", None, tools=("pgbackrest-zst",))
    t("E WAL mean time per archived segment over S3 (no target; ratio to pgBackRest zst)", "E",
      "wal-segment", "wall_s", None, tools=("pgbackrest-zst",))
    ob = find(rows, "D", "catch-up", "opsbackup")
    desc = "D segments waiting when pgbench stops ≤ 2 (absolute, not a ratio)"
    m = re.search(r"waiting at pgbench end: (\d+)", ob["note"]) if ob else None
    if ob and ob["status"] == "ok" and m:
        res.append((desc, float(m.group(1)), 2.0, "catch-up %s s" % ob["wall_s"], " segments"))
    else:
        res.append((desc, None, 2.0, "not run" if not ob else ob["status"], " segments"))
    # Memory: every row where opsbackup and restic or borg ran.
    worst = None
    for ob in rows:
        if ob["tool"] != "opsbackup" or ob["maxrss_kib_n"] is None or ob["step"].endswith("list"):
            continue
        b, who = best(rows, ob["scenario"], ob["step"], "maxrss_kib", tools=("restic", "borg"))
        x = ratio(ob["maxrss_kib_n"], b)
        if x is not None and (worst is None or x > worst[0]):
            worst = (x, "worst row: %s %s vs %s" % (ob["scenario"], ob["step"], who))
    if worst:
        res.append(("Memory: max RSS ≤ 0.5× restic and borg in every backup/restore row", worst[0], 0.5, worst[1]))
    else:
        res.append(("Memory: max RSS ≤ 0.5× restic and borg in every backup/restore row", None, 0.5, "not run"))
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("tsv")
    p.add_argument("--machine")
    a = p.parse_args()
    rows = load(a.tsv)
    out = ["# opsbackup benchmark results", ""]
    if a.machine:
        with open(a.machine) as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    k, _, v = line.partition(": ")
                    out.append("- **%s**: %s" % (k, v))
        out.append("")
    out.append("Every tool encrypts (restic, borg repokey, pgBackRest aes-256-cbc, opsbackup) "
               "except the guide's scripts (tar, pg_dump, pg_basebackup, cp, gzip), which do not. Wall, CPU (user+sys) and max RSS come from `/usr/bin/time`; "
               "\"added\" is the growth of the repository directory (`du -sb`); every restore "
               "is verified (diff -r, or per-table row counts and row checksums) and a row that "
               "fails is FAILED. Ratio rows: opsbackup ÷ the lowest value among the peers "
               "(restic, borg, pgBackRest) on the same step, named after the ratio; below 1 is "
               "better for opsbackup. The machine is shared: compare ratios, not seconds. "
               "A step a tool ran in several rounds (`BENCH_REPEAT`: A's dumps for the reference "
               "and opsbackup, B's and C's restores for the peers and opsbackup, interleaved) "
               "shows each metric's median over its rounds, with the range of its wall times; "
               "ratios and targets use the medians. results.tsv has every round.")
    out.append("")
    out.append("## Results")
    out.append("")
    seen = []
    for r in rows:
        if r["scenario"] not in seen:
            seen.append(r["scenario"])
    for scen in seen:
        scenario_table(rows, scen, out)
    out.append("## Targets (issue 10) measurable in this run")
    out.append("")
    out.append("| target | ratio | limit | met | detail |")
    out.append("|---|---:|---:|---|---|")
    for desc, x, limit, detail, *unit in targets(rows):
        unit = unit[0] if unit else "×"
        if limit is None:
            met = "—"
        elif x is None:
            met = "not measured"
        else:
            met = "**met**" if x <= limit + 1e-9 else "**not met**"
        if unit == "×":
            xs, ls = "%.3f×" % x if x is not None else "—", "%.2f×" % limit if limit is not None else "—"
        else:
            xs, ls = "%g%s" % (x, unit) if x is not None else "—", "%g%s" % (limit, unit)
        out.append("| %s | %s | %s | %s | %s |" % (desc, xs, ls, met, detail))
    out.append("")
    out.append("Not measurable yet: the 10-million-blob and 1-million-file scale targets. "
               "The memory target compares with restic and borg, which B and D do not run; "
               "issue 10 sets no target of its own for E (S3).")
    out.append("")
    bad = [r for r in rows if r["status"] == "FAILED"]
    if bad:
        out.append("**FAILED rows:** " + ", ".join("%s/%s/%s" % (r["scenario"], r["step"], r["tool"])
                                                   for r in bad))
        out.append("")
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
