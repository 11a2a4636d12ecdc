"""The INT8 default model for benchmarks: made once with ``pole-agent model quantize``.

    python bench/int8.py          # prints the path, quantizing first if not cached

Cached as ``<cache>/bench/yolo11n-int8.onnx`` (the asset cache, ``$POLE_AGENT_CACHE`` or
``~/.cache/pole-agent``), next to a note of the FP32 model's sha256 it was made from, so a
changed default model is quantized again.  Needs the ``quantize`` extra (``onnx``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent import assets  # noqa: E402


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def int8_model() -> Path:
    """The cached INT8 model of the default FP32 model, made by the CLI when missing."""
    fp32 = assets.verify("model")
    cache = Path(os.environ.get("POLE_AGENT_CACHE", "~/.cache/pole-agent")).expanduser()
    out = cache / "bench" / "yolo11n-int8.onnx"
    note = out.with_suffix(".source")
    want = _sha(fp32)
    if out.is_file() and note.is_file() and note.read_text().strip() == want:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"quantizing {fp32.name} -> {out} (pole-agent model quantize)", flush=True)
    subprocess.run(
        [sys.executable, "-m", "agent", "model", "quantize", str(fp32), str(out)],
        check=True,
        cwd=ROOT,
    )
    note.write_text(want + "\n")
    return out


if __name__ == "__main__":
    print(int8_model())
