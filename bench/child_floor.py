"""The vision child's memory floor, in fresh interpreters: imports, then the session.

    python bench/child_floor.py [--runs 15]

1. Imports in the child's order (pydantic, the agent's config, numpy, OpenCV, onnxruntime,
   the vision modules): RSS added by each, in one interpreter.
2. The default model's session at 640 with 2 threads, one fresh interpreter per setting:
   RSS after creating it and after ``--runs`` runs of a random input, CPU ms per run.
   Settings: ``balanced`` (the default: ORT_ENABLE_ALL, no memory pattern, CPU arena),
   other optimisation levels, one thread, no prepacking, no arena.
3. The same ``balanced`` session under glibc's malloc knobs (``MALLOC_ARENA_MAX``,
   ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``), given to the interpreter's
   environment (the agent's child does not take them: its environment is an allow-list).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

IMPORTS = r"""
import importlib, json
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
out = [["python", rss()]]
for m in ["pydantic", "agent.config", "numpy", "cv2", "onnxruntime", "agent.vision.protocol",
          "agent.vision.service", "agent.lookout.active"]:
    before = rss(); importlib.import_module(m); out.append([m, rss() - before])
print(json.dumps(out))
"""

SESSION = r"""
import json, sys, time
import numpy as np, onnxruntime as ort
from agent import assets
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
opts, runs = json.loads(sys.argv[1]), int(sys.argv[2])
so = ort.SessionOptions()
so.enable_mem_pattern = False
so.enable_cpu_mem_arena = opts.get("arena", True)
so.intra_op_num_threads = opts.get("threads", 2)
so.inter_op_num_threads = 1
levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
          "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
          "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}
so.graph_optimization_level = levels[opts.get("level", "all")]
for key, value in opts.get("config", {}).items():
    so.add_session_config_entry(key, value)
before = rss()
s = ort.InferenceSession(str(assets.verify("model")), so, providers=["CPUExecutionProvider"])
made = rss()
x = np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)
t = time.process_time()
for _ in range(runs):
    s.run(None, {"images": x})
cpu = (time.process_time() - t) / runs * 1000
print(json.dumps({"session": made - before, "runs": rss() - made, "total": rss(), "cpu_ms": cpu}))
"""

SETTINGS = [
    ("balanced (default)", {}),
    ("ORT_ENABLE_EXTENDED", {"level": "extended"}),
    ("ORT_ENABLE_BASIC", {"level": "basic"}),
    ("1 intra-op thread", {"threads": 1}),
    ("session.disable_prepacking", {"config": {"session.disable_prepacking": "1"}}),
    ("no CPU arena", {"arena": False}),
]
MALLOC = [
    ("(none)", {}),
    ("MALLOC_ARENA_MAX=2", {"MALLOC_ARENA_MAX": "2"}),
    ("MALLOC_ARENA_MAX=1", {"MALLOC_ARENA_MAX": "1"}),
    (
        "ARENA_MAX=2, TRIM/MMAP_THRESHOLD_=131072",
        {
            "MALLOC_ARENA_MAX": "2",
            "MALLOC_TRIM_THRESHOLD_": "131072",
            "MALLOC_MMAP_THRESHOLD_": "131072",
        },
    ),
]


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> object:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=full, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    print(f"load average: {os.getloadavg()}\n1. imports, MB added")
    for name, mb in _run(IMPORTS):  # type: ignore[attr-defined]
        print(f"   {name:24s} {mb:6.1f}")
    print(f"\n2. session at 640, {args.runs} runs: MB created / + runs / total, CPU ms per run")
    for name, opts in SETTINGS:
        r = _run(SESSION, json.dumps(opts), str(args.runs))
        print(f"   {name:28s} {r['session']:6.1f} {r['runs']:6.1f} {r['total']:7.1f} "  # type: ignore[index]
              f"{r['cpu_ms']:7.1f}")  # type: ignore[index]  # fmt: skip
    for mode, opts in (("balanced", {}), ("no arena", {"arena": False})):
        print(f"\n3. {mode} session under glibc's malloc knobs: MB total, CPU ms per run")
        for name, env in MALLOC:
            r = _run(SESSION, json.dumps(opts), str(args.runs), env=env)
            print(f"   {name:42s} {r['total']:7.1f} {r['cpu_ms']:7.1f}")  # type: ignore[index]


if __name__ == "__main__":
    main()
