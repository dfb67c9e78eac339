#!/usr/bin/env python3
"""Runs examples/agent_session.py against a real cordon binary and checks its results.

usage: check_agent_session.py /path/to/cordon
Checks the exit code, the key lines of the output, and the real workspace on disk
afterwards; plus two failure paths (missing binary, non-demo workspace) that must exit 1
without touching anything. Prints `N passed, N failed`; exit status 1 on any failure.
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "agent_session.py"
TIMEOUT = 100

results = []


def check(name, cond, detail=""):
    results.append((name, bool(cond)))
    print(("PASS " if cond else "FAIL ") + name + ("" if cond or not detail else "\n    " + detail))


def run(args, env=None):
    try:
        p = subprocess.run([sys.executable, str(EXAMPLE), "--color", "never", *args],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired as e:
        return 124, str(e.stdout or ""), f"timed out after {TIMEOUT} s"
    return p.returncode, p.stdout, p.stderr


def main():
    if len(sys.argv) != 2:
        print("usage: check_agent_session.py /path/to/cordon")
        return 2
    cordon = sys.argv[1]
    if not os.access(cordon, os.X_OK):
        print(f"FAIL: cordon binary not executable: {cordon}")
        return 1

    with tempfile.TemporaryDirectory(prefix="cordon-example-test-") as tmp:
        ws = Path(tmp) / "ws"
        code, out, err = run(["--cordon", cordon, "--workspace", str(ws),
                              "--state-dir", str(Path(tmp) / "state")])
        full = out + "\n--- stderr ---\n" + err
        check("demo exits 0", code == 0, f"exit {code}")
        for line in [
            "[1/9] start the server: cordon serve --stdio",
            "ok  home not visible, network denied and reported: attacker.example",
            "ok  writes outside the sandbox refused and reported: /etc/profile",
            "ok  cordon ",
            "ok  session s-",
            "$ sh build.sh",
            "| compiling src/greeting.txt -> dist/greeting.out",
            "! build ok",
            "changed in the sandbox: modified VERSION, added dist/farewell.out, added dist/greeting.out",
            "ok  edited README.md",
            "+Status: built in a cordon sandbox (0.2.0)",
            "ok  real workspace unchanged before apply",
            "ok  applied 4 files: README.md, VERSION, dist/farewell.out, dist/greeting.out",
            "ok  real workspace changed after apply: VERSION is now 0.2.0",
            "ok  nothing left pending in the session",
            "ok  server exited cleanly (code 0)",
            "demo complete: every step succeeded and was verified",
        ]:
            check(f"output has {line!r}", line in out)
        if not all(ok for _, ok in results):
            print("--- the demo's output ---\n" + full[-6000:] + "\n--- end ---")
        # Independent of the demo's own checks: the real files on disk.
        check("real VERSION is 0.2.0 after the demo",
              (ws / "VERSION").exists() and (ws / "VERSION").read_text() == "0.2.0\n")
        check("real dist/greeting.out was applied",
              (ws / "dist/greeting.out").exists()
              and (ws / "dist/greeting.out").read_text() == "HELLO FROM THE SANDBOX\n")

        code, out, err = run(["--cordon", str(Path(tmp) / "no-such-cordon")])
        check("a missing binary fails with exit 1", code == 1 and "cordon binary not found" in err,
              f"exit {code}: {err}")

        other = Path(tmp) / "someone-elses-project"
        other.mkdir()
        (other / "main.c").write_text("int main;\n")
        code, out, err = run(["--cordon", cordon, "--workspace", str(other)])
        check("a non-demo workspace is refused with exit 1", code == 1 and "not a demo workspace" in err,
              f"exit {code}: {err}")
        check("the refused workspace is untouched",
              sorted(p.name for p in other.iterdir()) == ["main.c"])

    passed = sum(ok for _, ok in results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
