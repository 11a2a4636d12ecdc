"""The agent's own process needs neither numpy, OpenCV nor onnxruntime: vision has them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def parent_imports() -> list[str]:
    """Heavy modules in a fresh process that built the CLI and imported the runner."""
    code = (
        "import sys, agent.cli, agent.runner, agent.vision.process\n"
        "agent.cli.build_parser()\n"
        "print(' '.join(m for m in ('numpy', 'cv2', 'onnxruntime') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout.split()


def test_cli_and_runner_load_no_numpy_opencv_or_onnxruntime() -> None:
    assert parent_imports() == []


def test_lazy_package_names_still_resolve() -> None:
    import agent.detect
    import agent.lookout
    import agent.model

    assert agent.detect.Detections.__name__ == "Detections"
    assert callable(agent.lookout.judge)
    assert agent.model.Agreement.__name__ == "Agreement"
