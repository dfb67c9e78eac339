#!/bin/sh
# Runs examples/oneliners.sh against a real cordon binary and checks the real workspace:
# unchanged after `cordon run`, changed after `cordon call changes/apply`.
# usage: check_oneliners.sh /path/to/cordon. Fails when python3 or the binary is missing.
set -u
cordon=${1:?usage: check_oneliners.sh /path/to/cordon}
here=$(cd "$(dirname "$0")" && pwd)
command -v python3 >/dev/null 2>&1 || { echo "FAIL: python3 not found"; exit 1; }
[ -x "$cordon" ] || { echo "FAIL: cordon binary not executable: $cordon"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cordon-oneliner-test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/ws" "$tmp/state"
echo 0.1.0 >"$tmp/ws/VERSION"

CORDON_STATE_DIR=$tmp/state timeout -k 5 100 sh "$here/../oneliners.sh" "$cordon" "$tmp/ws" >"$tmp/out" 2>&1
rc=$?
cat "$tmp/out"
passed=0 failed=0
check() {
  if eval "$2"; then echo "PASS $1"; passed=$((passed + 1)); else echo "FAIL $1"; failed=$((failed + 1)); fi
}
check "oneliners.sh exits 0" "[ $rc -eq 0 ]"
check "the command's output streamed" "grep -qx bumped '$tmp/out'"
check "real VERSION unchanged after cordon run" "grep -q '^real VERSION: 0.1.0$' '$tmp/out'"
check "the diff shows the change" "grep -q '^+0.2.0$' '$tmp/out'"
check "apply reports VERSION" "grep -q '\"applied\":\[\"VERSION\"\]' '$tmp/out'"
check "real VERSION changed after apply" "[ \"\$(cat '$tmp/ws/VERSION')\" = 0.2.0 ]"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
