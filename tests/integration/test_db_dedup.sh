#!/usr/bin/env bash
# Successive dumps deduplicate: after updating 1% of the rows of a ~60 MB
# table, the second backup adds less than 20% of what the first added, and
# both snapshots restore to exactly the database they were taken from.
#
# The 1% are 10 runs of 300 consecutive ids spread over the table (the way
# an application touches recent or related rows).  Updated rows move to the
# end of the heap, so the dump changes in ~10 places plus its tail.  (1% of
# rows updated uniformly at random could not deduplicate with 128 KiB
# chunks: nearly every chunk would hold an updated row.)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"

pg_start
make_app_db appdb 5000
info "a 300k-row table"
pg_sql -d appdb "
CREATE TABLE ledger (
    id      bigint PRIMARY KEY,
    account integer NOT NULL,
    kind    text NOT NULL,
    payload text NOT NULL,
    amount  numeric(12, 2) NOT NULL,
    at      timestamptz NOT NULL
);
ALTER TABLE ledger OWNER TO opscore;
INSERT INTO ledger
SELECT i, i % 5000, (ARRAY['debit', 'credit', '返金', 'fee'])[1 + i % 4],
       md5(i::text) || md5((i + 1)::text) || md5((i * 7)::text) || md5((i * 13)::text),
       (i * 97 % 1000000) / 100.0,
       timestamptz '2021-01-01 00:00:00+00' + i * interval '7 seconds'
FROM generate_series(1, 300000) i;
CREATE INDEX ledger_account ON ledger (account);"
pg_sql -d appdb "VACUUM ANALYZE ledger"
info "ledger: $(pg_sql -d appdb "SELECT pg_size_pretty(pg_total_relation_size('ledger'))")"
init_repo

before=$(pg_checksum appdb)
cp "$T/fingerprint.appdb" "$T/fingerprint.before"

info "first backup"
expect_code 0 ob --json backup db --dbname "dbname=appdb"
cp "$T/out" "$T/b1.json"
id1=$(json_get "$T/b1.json" 'j["id"]')
dump1=$(json_get "$T/b1.json" 'j["extra"]["dump_bytes"]')
[ "$dump1" -gt $((40 * 1024 * 1024)) ] || problem "first dump is only $dump1 bytes, expected > 40 MiB (uncompressed custom format)"
info "first backup: $dump1 dump bytes in $(json_get "$T/b1.json" 'j["stats"].get("duration")') s"

info "update 1% of the ledger rows"
n=$(pg_sql -d appdb "WITH u AS (UPDATE ledger SET payload = md5('v2' || id) || substr(payload, 33), amount = amount + 1
                      WHERE id % 30000 BETWEEN 1 AND 300 RETURNING 1) SELECT count(*) FROM u")
[ "$n" = 3000 ] || fail "updated $n rows, expected 3000"
after=$(pg_checksum appdb)
cp "$T/fingerprint.appdb" "$T/fingerprint.after"
[ "$after" != "$before" ] || fail "the update did not change the checksum"

info "second backup"
expect_code 0 ob --json backup db --dbname "dbname=appdb"
cp "$T/out" "$T/b2.json"
id2=$(json_get "$T/b2.json" 'j["id"]')
for k in bytes_added bytes_stored; do
    a=$(json_get "$T/b1.json" "j['stats']['$k']")
    b=$(json_get "$T/b2.json" "j['stats']['$k']")
    info "$k: first $a, second $b ($(( a > 0 ? 100 * b / a : -1 ))%)"
    [ "$a" -gt 0 ] || { problem "first backup's $k is $a"; continue; }
    [ $((b * 5)) -lt "$a" ] || problem "second backup's $k ($b) is not < 20% of the first's ($a)"
done

info "third backup of the unchanged database adds next to nothing"
expect_code 0 ob --json backup db --dbname "dbname=appdb"
cp "$T/out" "$T/b3.json"
a=$(json_get "$T/b1.json" "j['stats']['bytes_added']")
c=$(json_get "$T/b3.json" "j['stats']['bytes_added']")
info "bytes_added: third $c"
[ $((c * 50)) -lt "$a" ] || problem "an unchanged database's backup added $c bytes (>= 2% of the first's $a)"

info "both snapshots restore exactly"
expect_code 0 ob restore db "$id1" --target-db restored1
[ "$(pg_checksum restored1)" = "$before" ] || { pg_fingerprint_diff before restored1; problem "the first snapshot restores a different database"; }
pg_sql "DROP DATABASE restored1"
expect_code 0 ob restore db "$id2" --target-db restored2
[ "$(pg_checksum restored2)" = "$after" ] || { pg_fingerprint_diff after restored2; problem "the second snapshot restores a different database"; }
finish
