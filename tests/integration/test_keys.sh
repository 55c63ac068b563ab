#!/usr/bin/env bash
# Key slots: list (--json), add, passwd, remove — and the refusals that keep
# a repository openable (the slot in use, the last slot).
. "$(dirname "$0")/lib.sh"

src="$T/src"
mkdir -p "$src"
echo "payload" >"$src/f"
init_repo
ob backup files "$src" >/dev/null

pw1="$OPSBACKUP_PASSWORD_FILE"
pw2="$T/pw2" pw3="$T/pw3"
printf 'second password\n' >"$pw2"
printf 'third password\n' >"$pw3"
printf 'never set\n' >"$T/pw-none"

# with PWFILE CMD...: run opsbackup with that password file.
with() { local f=$1; shift; OPSBACKUP_PASSWORD_FILE="$f" "$OPSBACKUP" -r "$REPO" "$@"; }
opens() { with "$1" snapshots >/dev/null 2>&1; }
slots() { with "$1" --json key list >"$T/keys.json" && json_get "$T/keys.json" 'len(j)'; }

info "key list --json"
with "$pw1" --json key list >"$T/k1.json"
n=$(json_get "$T/k1.json" 'len(j)')
[ "$n" = 1 ] || fail "a new repository has $n key slots, expected 1"
for f in id current created host user; do
    [ "$(json_get "$T/k1.json" "'$f' in j[0]")" = True ] || problem "key list --json lacks '$f'"
done
[ "$(json_get "$T/k1.json" 'j[0]["current"]')" = True ] || problem "the only slot is not marked current"
id1=$(json_get "$T/k1.json" 'j[0]["id"]')
with "$pw1" key list >"$T/k1.txt"
grep -q "${id1:0:8}" "$T/k1.txt" || problem "plain key list does not show slot ${id1:0:8}"

info "key add --new-password-file"
expect_code 0 with "$pw1" key add --kdf-n 1024 --new-password-file "$pw2"
[ "$(slots "$pw1")" = 2 ] || fail "key add did not add a slot"
opens "$pw1" || problem "the first password no longer opens after key add"
opens "$pw2" || problem "the added password does not open the repository"
opens "$T/pw-none" && problem "an unknown password opens the repository"
with "$pw2" --json key list >"$T/k2.json"
id2=$(json_get "$T/k2.json" '[k["id"] for k in j if k["current"]][0]')
[ "$id2" != "$id1" ] || problem "the second password reports the first slot as current"
[ "$(json_get "$T/k2.json" 'sum(1 for k in j if k["current"])')" = 1 ] || problem "not exactly one slot is current"
# the new slot is usable for everything, not just listing
with "$pw2" restore files latest --target "$T/r2" >/dev/null || problem "restore with the added password fails"
cmp -s "$src/f" "$T/r2$src/f" || problem "restore with the added password gave different bytes"

info "scrypt parameters of new slots (D51)"
# --kdf-n below the default: a cheap slot (p = 1); at or above it, OWASP's
# equivalent p; without it, N = 2^13 with p = 10.
kdf_of() {
    with "$pw1" --json key list >"$T/kl.json"
    json_get "$T/kl.json" "[\"%d %d %d\" % (k['scrypt']['n'], k['scrypt']['r'], k['scrypt']['p']) for k in j if k['id'] == '$1'][0]"
}
[ "$(kdf_of "$id2")" = "1024 8 1" ] || problem "key add --kdf-n 1024 made n r p = $(kdf_of "$id2"), expected 1024 8 1"
printf 'fourth password\n' >"$T/pw4"
printf 'fifth password\n' >"$T/pw5"
expect_code 0 with "$pw1" key add --kdf-n 32768 --new-password-file "$T/pw4"
expect_code 0 with "$pw1" key add --new-password-file "$T/pw5"
for spec in "pw4:32768 8 3" "pw5:8192 8 10"; do
    with "$T/${spec%%:*}" --json key list >"$T/kx.json"
    idx=$(json_get "$T/kx.json" '[k["id"] for k in j if k["current"]][0]')
    [ "$(kdf_of "$idx")" = "${spec#*:}" ] || problem "${spec%%:*}'s slot has n r p = $(kdf_of "$idx"), expected ${spec#*:}"
    expect_code 0 with "$pw1" key remove "$idx"
done
[ "$(slots "$pw1")" = 2 ] || fail "removing the two extra slots left $(slots "$pw1") slots"
expect_code 0 with "$pw2" key passwd --kdf-n 1024 --new-password-file "$pw3"
opens "$pw2" && problem "the old password still opens after key passwd"
opens "$pw3" || problem "the new password does not open after key passwd"
opens "$pw1" || problem "key passwd with pw2 broke the other slot (pw1)"
[ "$(slots "$pw3")" = 2 ] || problem "key passwd changed the number of slots (expected 2)"
with "$pw3" --json key list >"$T/k3.json"
id3=$(json_get "$T/k3.json" '[k["id"] for k in j if k["current"]][0]')
[ "$(json_get "$T/k3.json" "'$id2' in [k['id'] for k in j]")" = False ] || problem "the old slot $id2 is still listed"

info "key remove of the slot in use is refused"
run_rc with "$pw3" key remove "$id3"
[ "$RC" != 0 ] || problem "removing the current slot succeeded"
grep -qi "refus" "$T/err" || { cat "$T/err"; problem "no clear refusal removing the current slot"; }
[ "$(slots "$pw3")" = 2 ] || problem "a refused remove changed the slots"
opens "$pw3" || problem "the current password stopped working after a refused remove"

info "key remove of an unknown / ambiguous ID"
run_rc with "$pw3" key remove deadbeefdeadbeef
[ "$RC" != 0 ] || problem "removing an unknown slot succeeded"
run_rc with "$pw3" key remove ""
[ "$RC" != 0 ] || problem "removing slot '' (matches every ID) succeeded"
[ "$(slots "$pw3")" = 2 ] || fail "a refused remove changed the slots"

info "key remove of another slot (by unique prefix)"
expect_code 0 with "$pw3" key remove "${id1:0:12}"
opens "$pw1" && problem "the removed slot's password still opens"
opens "$pw3" || problem "the remaining password does not open"
[ "$(slots "$pw3")" = 1 ] || problem "remove did not leave exactly one slot"

info "key remove of the last slot is refused"
run_rc with "$pw3" key remove "$id3"
[ "$RC" != 0 ] || problem "removing the last slot succeeded"
grep -qi "refus" "$T/err" || { cat "$T/err"; problem "no clear refusal removing the last slot"; }
opens "$pw3" || fail "the repository can no longer be opened"
[ "$(repo_objects keys | wc -l)" = 1 ] || problem "keys/ does not hold exactly one slot"

info "usage errors"
run_rc with "$pw3" key remove
[ "$RC" = 2 ] || problem "key remove without an ID exited $RC, expected 2"
run_rc with "$pw3" key frobnicate
[ "$RC" = 2 ] || problem "an unknown key subcommand exited $RC, expected 2"
run_rc with "$pw3" key add --kdf-n 1024 --new-password-file "$T/no-such-file"
[ "$RC" != 0 ] || problem "key add with a missing new password file succeeded"
[ "$(slots "$pw3")" = 1 ] || problem "a failed key add changed the slots"

with "$pw3" check >/dev/null || problem "check fails at the end"
finish
