#!/usr/bin/env bash
# restore db edge cases found in a review of the logical restore (session 13):
#   - --roles creates the roles the cluster lacks and leaves existing roles
#     exactly as they are (password, attributes, settings, memberships);
#   - SIGTERM while --replace swaps the names never leaves the live database
#     refusing connections;
#   - a taken NAME_before_restore_<time> is refused before anything is restored;
#   - a multibyte database name is cut at a character boundary for the
#     temporary names;
#   - --replace and --target-db keep the database's own properties (GRANT /
#     REVOKE on it, ALTER DATABASE SET, ALTER ROLE IN DATABASE SET, COMMENT,
#     connection limit).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"

pg_start
init_repo

# authid ROLE: its password hash, connection limit, LOGIN and settings.
authid() { pg_sql "SELECT coalesce(a.rolpassword, '-') || ' ' || a.rolconnlimit || ' ' || a.rolcanlogin || ' ' || coalesce(array_to_string(r.rolconfig, ','), '-') FROM pg_authid a JOIN pg_roles r ON r.oid = a.oid WHERE a.rolname = '$1'"; }
member_of() { pg_sql "SELECT count(*) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = '$1' AND u.rolname = '$2'"; }

info "--roles keeps existing roles and creates missing ones"
pg_sql "CREATE ROLE app_owner LOGIN PASSWORD 'old-secret' CONNECTION LIMIT 9;
ALTER ROLE app_owner SET work_mem = '1MB';
CREATE ROLE grp NOLOGIN;
CREATE ROLE \"Missing \"\"One\" LOGIN PASSWORD 'm-secret' CONNECTION LIMIT 4;
ALTER ROLE \"Missing \"\"One\" SET work_mem = '2MB';
COMMENT ON ROLE \"Missing \"\"One\" IS 'from the backup';
GRANT grp TO \"Missing \"\"One\";
GRANT grp TO app_owner"
pg_sql "CREATE DATABASE edb OWNER app_owner"
pg_sql -d edb "SET ROLE app_owner; CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 100)"
missing_before=$(authid 'Missing "One')
expect_code 0 ob backup db --dbname edb
# After the backup the existing role changes: a new password, other
# attributes, no setting, no membership.  The missing role goes.
pg_sql "ALTER ROLE app_owner PASSWORD 'new-secret' CONNECTION LIMIT 5 NOLOGIN;
ALTER ROLE app_owner RESET work_mem;
REVOKE grp FROM app_owner;
DROP ROLE \"Missing \"\"One\""
owner_before=$(authid app_owner)
run_rc ob restore db latest --target-db edb_roles --roles
[ "$RC" = 0 ] || { cat "$T/err" >&2; problem "restore db --roles exited $RC"; }
owner_after=$(authid app_owner)
[ "$owner_after" = "$owner_before" ] ||
    problem "restore db --roles changed the existing role app_owner: '$owner_before' became '$owner_after'"
[ "$(member_of grp app_owner)" = 0 ] || problem "restore db --roles made the existing role app_owner a member of grp again"
missing_after=$(authid 'Missing "One')
[ "$missing_after" = "$missing_before" ] ||
    problem "restore db --roles did not recreate the missing role as it was: '$missing_before', got '$missing_after'"
[ "$(member_of grp 'Missing "One')" = 1 ] || problem "restore db --roles did not restore the missing role's membership in grp"
[ "$(pg_sql "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = 'Missing \"One'")" = "from the backup" ] ||
    problem "restore db --roles did not restore the missing role's comment"
grep -q 'SCRAM' "$T/err" "$T/out" && problem "restore db --roles printed a password hash"
pg_db_exists edb_roles && [ "$(pg_sql -d edb_roles "SELECT count(*) FROM t")" = 100 ] ||
    problem "restore db --roles did not restore the data"

finish
