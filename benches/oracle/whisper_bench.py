"""The Python side of benches/whisper.rs: the same update_many and fetch loop over the same files.

argv: dir n_files rounds points_per_update now0
Prints JSON: seconds spent in update_many and in fetch (interpreter start-up excluded).
"""
import json
import os
import sys
import time

import whisper

d, n_files, rounds, per, now0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
paths = [os.path.join(d, "m%05d.wsp" % i) for i in range(n_files)]

t_update = 0.0
now = now0
for r in range(rounds):
    batch = [(now - 10 * (per - 1 - j), float((r * per + j) % 1000) / 7.0) for j in range(per)]
    t0 = time.perf_counter()
    for p in paths:
        whisper.update_many(p, batch, now=now)
    t_update += time.perf_counter() - t0
    now += 10 * per

t0 = time.perf_counter()
fetched = 0
for p in paths:
    (_, _, _), values = whisper.fetch(p, now - 86400, now, now=now)
    fetched += len(values)
t_fetch = time.perf_counter() - t0
print(json.dumps({"update_s": t_update, "fetch_s": t_fetch, "fetched": fetched}))
