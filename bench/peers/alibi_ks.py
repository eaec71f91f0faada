"""Time alibi-detect's KSDrift on the benchmark data (run in bench/.venv-alibi)."""

import json
import sys
import time

import numpy as np
from alibi_detect.cd import KSDrift

ref = np.load(sys.argv[1])
win = np.load(sys.argv[2])
repeats = int(sys.argv[3])
detector = KSDrift(ref, p_val=0.05, correction="fdr")
times = []
for _ in range(repeats):
    started = time.perf_counter()
    result = detector.predict(win, return_p_val=True, return_distance=True)
    times.append(time.perf_counter() - started)
pvalues = result["data"]["p_val"]
print(
    json.dumps(
        {
            "seconds": sorted(times)[len(times) // 2],
            "drifted": int(np.sum(pvalues < 0.05 / 1)),
            "pvalues": [float(p) for p in pvalues],
        }
    )
)
