"""Runs whisper operations with the real Python whisper and prints their results as JSON.

Input (stdin): a JSON list of cases; each case is {"dir": path, "ops": [op, ...]}. Every op names a file
inside "dir" and carries the `now` to use, so results do not depend on the clock. whisper-fill.py and
whisper-resize.py are scripts, not modules: they are loaded from the interpreter's bin directory with
time.time() pinned to the op's `now`.
Output (stdout): a JSON list (one entry per case) of lists (one entry per op) of results.
"""
import importlib.util
import json
import os
import runpy
import sys
import time

import whisper

BIN = os.path.dirname(sys.executable)


def pinned(now):
    time.time = lambda: float(now)


def load_script(name):
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), os.path.join(BIN, name))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FILL = None


def run(op, d):
    global FILL
    kind = op["op"]
    path = os.path.join(d, op.get("file", "a.wsp"))
    now = op.get("now")
    if now is not None:
        pinned(now)
    try:
        if kind == "create":
            whisper.create(path, [tuple(a) for a in op["archives"]], op.get("xff"), op.get("method"),
                           op.get("sparse", False), op.get("fallocate", False))
            return None
        if kind == "update":
            whisper.update(path, op["value"], op.get("timestamp"), now=now)
            return None
        if kind == "update_many":
            whisper.update_many(path, [tuple(p) for p in op["points"]], now=now)
            return None
        if kind == "fetch":
            r = whisper.fetch(path, op["from"], op.get("until"), now=now, archiveToSelect=op.get("archive"))
            return None if r is None else [list(r[0]), r[1]]
        if kind == "info":
            return whisper.info(path)
        if kind == "set_agg":
            return whisper.setAggregationMethod(path, op["method"], op.get("xff"))
        if kind == "set_xff":
            return whisper.setXFilesFactor(path, op["xff"])
        if kind == "merge":
            whisper.merge(os.path.join(d, op["from_file"]), path, op.get("time_from"), op.get("time_to"), now=now)
            return None
        if kind == "diff":
            return whisper.diff(os.path.join(d, op["other"]), path, op.get("ignore_empty", False),
                                op.get("until"), now=now)
        if kind == "fill":
            if FILL is None:
                FILL = load_script("whisper-fill.py")
            FILL.fill_archives(os.path.join(d, op["src"]), path, time.time())
            return None
        if kind == "resize":
            argv = ["whisper-resize.py", path] + op["archives"] + ["--newfile", os.path.join(d, op["newfile"])]
            if op.get("aggregate"):
                argv.append("--aggregate")
            if op.get("xff") is not None:
                argv += ["--xFilesFactor", str(op["xff"])]
            if op.get("method"):
                argv += ["--aggregationMethod", op["method"]]
            sys.argv = argv
            out = sys.stdout
            sys.stdout = open(os.devnull, "w")
            try:
                runpy.run_path(os.path.join(BIN, "whisper-resize.py"), run_name="__main__")
            except SystemExit:
                pass
            finally:
                sys.stdout.close()
                sys.stdout = out
            return None
        if kind == "pyset":
            return list(set(op["values"]))
        raise ValueError("unknown op " + kind)
    except Exception as e:  # the error class is part of the result
        return {"error": type(e).__name__}


cases = json.load(sys.stdin)
print(json.dumps([[run(op, c["dir"]) for op in c["ops"]] for c in cases]))
