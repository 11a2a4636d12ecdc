"""The centre's packages (database driver, NATS client, console) stay out of the pole's
dependencies and imports."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_psycopg_and_nats_are_only_in_the_centre_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any("psycopg" in d for d in project["dependencies"])
    centre = project["optional-dependencies"]["centre"]
    assert any(d.startswith("psycopg") for d in centre)
    for name in ("starlette", "uvicorn", "jinja2", "argon2-cffi", "nats-py"):
        assert not any(name in d for d in project["dependencies"])
        assert any(d.startswith(name) for d in centre)


def test_the_cli_does_not_import_the_driver() -> None:
    code = (
        "import sys, agent.cli; agent.cli.build_parser(); "
        "names = ('psycopg', 'starlette', 'uvicorn', 'argon2', 'nats'); "
        "print(any(m in sys.modules for m in names))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.stdout.strip() == "False", out.stderr
