#!/bin/sh
# Headless tests of the Neovim plugin against the real server.
# usage: run_headless.sh /path/to/cordon   (CORDON_TEST_ONLY=pattern runs matching tests)
# Fails (never skips) when nvim or the binary is missing.
set -u
cordon=${1:?usage: run_headless.sh /path/to/cordon}
here=$(cd "$(dirname "$0")" && pwd)
command -v nvim >/dev/null 2>&1 || { echo "FAIL: nvim not found (apt-get install neovim)"; exit 1; }
[ -x "$cordon" ] || { echo "FAIL: cordon binary not executable: $cordon"; exit 1; }
case $cordon in /*) ;; *) cordon=$(pwd)/$cordon ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cordon-nvim-test.XXXXXX") || exit 1
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
mkdir -p "$tmp/state" "$tmp/home" "$tmp/xdg"
echo "nvim: $(nvim --version | head -n 1); cordon: $("$cordon" --version 2>&1)"

# A private HOME/XDG so no user config or plugin is read; every wait inside is bounded and
# `timeout` is the last resort (nvim's children get EOF on stdin and exit with it).
HOME=$tmp/home XDG_CONFIG_HOME=$tmp/xdg XDG_DATA_HOME=$tmp/xdg XDG_STATE_HOME=$tmp/xdg \
CORDON_BIN=$cordon CORDON_TEST_TMP=$tmp CORDON_STATE_DIR=$tmp/state CORDON_LOG_FILE=$tmp/cordon.log \
  timeout -k 5 110 nvim --headless -n -i NONE -u "$here/minimal_init.lua" \
  -c "luafile $here/headless_test.lua" </dev/null
rc=$?
if [ $rc -ne 0 ]; then
  echo "nvim exited with $rc; last lines of the server log:"
  tail -n 40 "$tmp/cordon.log" 2>/dev/null
fi
exit $rc
