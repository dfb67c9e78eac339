#!/bin/sh
# The plugin through a real terminal UI: tmux runs nvim, send-keys types
# `:CordonRun echo hi`, capture-pane must show the streamed output and the exit line.
# usage: run_tui.sh /path/to/cordon. Fails (never skips) when tmux or nvim is missing.
set -u
cordon=${1:?usage: run_tui.sh /path/to/cordon}
here=$(cd "$(dirname "$0")" && pwd)
for tool in tmux nvim; do
  command -v $tool >/dev/null 2>&1 || { echo "FAIL: $tool not found"; echo "0 passed, 1 failed"; exit 1; }
done
[ -x "$cordon" ] || { echo "FAIL: cordon binary not executable: $cordon"; echo "0 passed, 1 failed"; exit 1; }
case $cordon in /*) ;; *) cordon=$(pwd)/$cordon ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cordon-nvim-tui.XXXXXX") || exit 1
sock=$tmp/tmux.sock # a private tmux server: only what this test starts lives there
cleanup() {
  tmux -S "$sock" kill-server 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
mkdir -p "$tmp/ws" "$tmp/state" "$tmp/home" "$tmp/xdg"
echo "tui test file" > "$tmp/ws/notes.txt"

# Polls capture-pane until $1 (a grep -E pattern) shows, for at most $2 tenths of a second.
wait_screen() {
  i=0
  while [ $i -lt "$2" ]; do
    tmux -S "$sock" capture-pane -p -t cordon >"$tmp/screen" 2>/dev/null
    grep -Eq -- "$1" "$tmp/screen" && return 0
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}

passed=0
failed=0
check() { # name, pattern, tenths
  if wait_screen "$2" "$3"; then
    echo "PASS $1"; passed=$((passed + 1))
  else
    echo "FAIL $1: /$2/ not on screen:"; sed 's/^/    | /' "$tmp/screen"; failed=$((failed + 1))
  fi
}

tmux -S "$sock" -f /dev/null new-session -d -s cordon -x 160 -y 30 -c "$tmp/ws" \
  env HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/xdg" XDG_DATA_HOME="$tmp/xdg" XDG_STATE_HOME="$tmp/xdg" \
  CORDON_BIN="$cordon" CORDON_STATE_DIR="$tmp/state" TERM=xterm-256color \
  nvim -n -i NONE -u "$here/minimal_init.lua" notes.txt
check "nvim starts in tmux with the plugin" "tui test file" 100
tmux -S "$sock" send-keys -t cordon ":CordonRun echo hi; echo from-the-sandbox" Enter
check ":CordonRun output shows in the cordon://output window" "^hi *$" 200
check "the second line streams too" "^from-the-sandbox *$" 200
check "the exit line shows" "\[exit 0, [0-9]+ ms\]" 200
check "the output buffer's name is in a status line" "cordon://output" 20
# An approval question through the default vim.ui.select (inputlist), answered by typing.
tmux -S "$sock" send-keys -t cordon ":CordonRun curl -fsS --max-time 10 --noproxy '' -x \"\$HTTP_PROXY\" http://127.0.0.6:9/; echo curl-exit=\$?" Enter
check "the approval question names host and port" "the sandbox wants network access to 127\.0\.0\.6:9" 200
check "the choices are listed" "3: Deny" 20
tmux -S "$sock" send-keys -t cordon "3" Enter
check "deny: the violation shows in the output" "^\[cordon\] blocked \(network\): 127\.0\.0\.6:9" 200
check "deny: the command fails" "^curl-exit=[1-9]" 200
tmux -S "$sock" send-keys -t cordon ":CordonStop" Enter
check ":CordonStop reports" "cordon: stopped" 100
tmux -S "$sock" send-keys -t cordon ":qa!" Enter
i=0
while tmux -S "$sock" has-session -t cordon 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if tmux -S "$sock" has-session -t cordon 2>/dev/null; then
  echo "FAIL nvim quits with :qa!"; failed=$((failed + 1))
else
  echo "PASS nvim quits with :qa!"; passed=$((passed + 1))
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ $passed -gt 0 ]
