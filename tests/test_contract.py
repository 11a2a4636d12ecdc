"""The committed contract documents match the models; the AsyncAPI document is complete."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from agent.contract import MESSAGES, asyncapi, json_schemas

ROOT = Path(__file__).resolve().parent.parent


def test_committed_schemas_are_current(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "contract", "schema", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    written = sorted(Path(line).name for line in proc.stdout.split())
    committed = sorted(p.name for p in (ROOT / "docs/contract").glob("*.json"))
    assert written == committed
    for name in written:
        fresh = json.loads((tmp_path / name).read_text())
        stored = json.loads((ROOT / "docs/contract" / name).read_text())
        assert fresh == stored, f"docs/contract/{name} is stale: run pole-agent contract schema"


def test_schemas_are_valid_json_schema() -> None:
    for schema in json_schemas().values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_asyncapi_covers_every_message() -> None:
    doc = asyncapi()
    assert doc["asyncapi"].startswith("3.")
    assert set(doc["channels"]) == set(MESSAGES)
    for name, channel in doc["channels"].items():
        for param in (p.strip("{}") for p in channel["address"].split("/") if "{" in p):
            assert param in channel["parameters"], (name, param)
        ref = channel["messages"][name]["$ref"].split("/")[-1]
        assert ref in doc["components"]["messages"]
    for op in doc["operations"].values():
        assert op["action"] in {"send", "receive"}
        assert op["channel"]["$ref"].split("/")[-1] in doc["channels"]
    # every schema reference resolves inside the document
    text = json.dumps(doc)
    for ref in {r.split('"')[0] for r in text.split('"$ref": "')[1:]}:
        node = doc
        for part in ref.lstrip("#/").split("/"):
            node = node[part]


def test_every_wire_model_is_in_the_contract() -> None:
    from agent.events import WIRE_MODELS

    documented = {model for model, *_ in MESSAGES.values() if model is not None}
    missing = [m.__name__ for m in WIRE_MODELS if m not in documented]
    assert not missing, f"models on the wire without a contract entry: {missing}"
