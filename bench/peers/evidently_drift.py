"""Time Evidently's data drift preset (KS per column) on the benchmark data
(run in bench/.venv-evidently)."""

import json
import sys
import time

import numpy as np
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

ref = np.load(sys.argv[1])
win = np.load(sys.argv[2])
repeats = int(sys.argv[3])
columns = [f"f{j}" for j in range(ref.shape[1])]
reference = pd.DataFrame(ref, columns=columns)
current = pd.DataFrame(win, columns=columns)
times = []
for _ in range(repeats):
    started = time.perf_counter()
    snapshot = Report([DataDriftPreset(method="ks")]).run(current, reference)
    times.append(time.perf_counter() - started)
count = snapshot.dict()["metrics"][0]["value"]["count"]
print(json.dumps({"seconds": sorted(times)[len(times) // 2], "drifted": int(count)}))
