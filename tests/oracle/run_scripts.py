"""Runs whisper-*.py scripts for tests/whisper_cli.rs, many cases in one interpreter.

Reads a JSON list of cases on stdin: {"dir", "script", "argv", "stdin", "now", "tz", "out"}. Each case runs in
a forked child: cwd = dir, time.time pinned to `now`, stdin from the given text, stdout and stderr
written to out + ".stdout" / ".stderr", and the exit status the script would have had (SystemExit's
code, 1 with the message for a string, 1 with a traceback for an uncaught exception) to out + ".code".
Forking after `import whisper` keeps the whole table to well under a second of interpreter start-up.
"""

import json
import os
import runpy
import sys
import tempfile
import time
import traceback

import whisper  # noqa: F401  imported once, before the forks

cases = json.load(sys.stdin)
sys.stdout.flush()
sys.stderr.flush()

for case in cases:
    with tempfile.TemporaryFile() as stdin_file:
        stdin_file.write((case.get("stdin") or "").encode())
        stdin_file.flush()
        stdin_file.seek(0)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                out = os.open(case["out"] + ".stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                err = os.open(case["out"] + ".stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(stdin_file.fileno(), 0)
                os.dup2(out, 1)
                os.dup2(err, 2)
                sys.stdin = open(0, "r", closefd=False)
                os.chdir(case["dir"])
                os.environ["TZ"] = case.get("tz") or "UTC"
                time.tzset()
                now = float(case["now"])
                time.time = lambda: now
                sys.argv = [os.path.basename(case["script"])] + case["argv"]
                try:
                    runpy.run_path(case["script"], run_name="__main__")
                    code = 0
                except SystemExit as e:
                    if e.code is None:
                        code = 0
                    elif isinstance(e.code, int):
                        code = e.code
                    else:
                        print(e.code, file=sys.stderr)
                        code = 1
                except BaseException:
                    traceback.print_exc()
                    code = 1
                sys.stdout.flush()
                sys.stderr.flush()
                with open(case["out"] + ".code", "w") as f:
                    f.write(str(code))
            finally:
                os._exit(code)
        os.waitpid(pid, 0)
