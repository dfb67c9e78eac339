#!/bin/sh
# The shell form of the demo: one-shot `cordon run` and `cordon call` commands that share a
# state dir (each starts its own short-lived server; the session persists on disk).
# usage: oneliners.sh [/path/to/cordon] [workspace]
#   default workspace: a new temporary directory holding a VERSION file
# JSON is picked apart with python3 here; `jq` does the same (see README.md).
set -eu
cordon=${1:-cordon}
ws=${2:-$(mktemp -d "${TMPDIR:-/tmp}/cordon-oneliner-ws.XXXXXX")}
state=${CORDON_STATE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/cordon-oneliner-state.XXXXXX")}
[ -f "$ws/VERSION" ] || echo 0.1.0 >"$ws/VERSION"
ws=$(cd "$ws" && pwd -P)
S="--state-dir $state"

echo "# 1. run a command in a new sandbox session (output streams; the real files stay as they are)"
echo "\$ cordon run -w $ws -- sh -c 'echo 0.2.0 > VERSION; echo bumped'"
$cordon run $S -w "$ws" -- sh -c 'echo 0.2.0 > VERSION; echo bumped'
echo "real VERSION: $(cat "$ws/VERSION")"

echo
echo "# 2. find the session of this workspace"
sid=$($cordon call $S session/list |
  python3 -c 'import json,sys; print(*[s["sessionId"] for s in json.load(sys.stdin)["sessions"] if s["workspace"] == sys.argv[1]][-1:])' "$ws")
echo "session: $sid"
[ -n "$sid" ]

echo
echo "# 3. review the diff"
$cordon call $S changes/diff "{\"sessionId\":\"$sid\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["patch"])'

echo "# 4. apply it (every unprotected pending file, hashes taken now)"
$cordon call $S changes/apply "{\"sessionId\":\"$sid\"}" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin), separators=(",", ":")))'
echo "real VERSION: $(cat "$ws/VERSION")"
