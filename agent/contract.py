"""Generated contract documents: JSON Schemas of every message and an AsyncAPI 3 document.

Both come from the pydantic models in :mod:`agent.events`, so they cannot drift from what
the agent sends.  ``pole-agent contract schema --out DIR`` writes them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent import __version__
from agent.events import (
    SCHEMA_VERSION,
    BellEvent,
    CameraEvent,
    CommandRequest,
    CommandResultEvent,
    HealthEvent,
    LookoutEvent,
    ObjectEvent,
    RuleEvent,
    StateMessage,
    StatusMessage,
    SystemEvent,
)

__all__ = ["MESSAGES", "asyncapi", "json_schemas", "write"]

BASE = "{prefix}/{site}/{device}"
# name: (model or None for binary, address, action from the device's side, description)
MESSAGES: dict[str, tuple[type[BaseModel] | None, str, str, str]] = {
    "status": (
        StatusMessage,
        f"{BASE}/status",
        "send",
        "Retained. Birth (online) on every connect; last will and clean stop (offline).",
    ),
    "bell": (BellEvent, f"{BASE}/event/bell", "send", "Emergency bell events (alarm priority)."),
    "object": (ObjectEvent, f"{BASE}/event/object", "send", "Track start, update and end."),
    "rule": (RuleEvent, f"{BASE}/event/rule", "send", "Intrusion, loitering, line, crowding."),
    "camera": (CameraEvent, f"{BASE}/event/camera", "send", "Stream lost, restored, tampered."),
    "system": (
        SystemEvent,
        f"{BASE}/event/system",
        "send",
        "Faults of the agent itself: spool degraded or salvaged, link refused, reload failed.",
    ),
    "lookout": (
        LookoutEvent,
        f"{BASE}/event/lookout",
        "send",
        "A lookout's candidate: a track matching its slots; its thumbnail on snapshot/<id>.",
    ),
    "heartbeat": (HealthEvent, f"{BASE}/heartbeat", "send", "Periodic health facts."),
    "cmd_result": (
        CommandResultEvent,
        f"{BASE}/cmd-result",
        "send",
        "Exactly one result per command request.",
    ),
    "state": (
        StateMessage,
        f"{BASE}/state/{{name}}",
        "send",
        "Retained current state of a part (state/bell).",
    ),
    "snapshot": (
        None,
        f"{BASE}/snapshot/{{event_id}}",
        "send",
        "A JPEG (privacy masks applied) linked to the event with that id.",
    ),
    "command": (
        CommandRequest,
        f"{BASE}/cmd/{{command}}",
        "receive",
        "A command from the centre; also on {prefix}/{site}/_site/cmd/{command}.",
    ),
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every JSON message, by message name."""
    return {n: m.model_json_schema() for n, (m, *_rest) in MESSAGES.items() if m is not None}


def asyncapi() -> dict[str, Any]:
    """An AsyncAPI 3.0 document describing every topic and payload."""
    params = {
        "prefix": {"description": "Topic root, mqtt.topic_prefix (default 'pole')."},
        "site": {"description": "device.site"},
        "device": {"description": "device.id"},
        "name": {"description": "State name, e.g. bell."},
        "event_id": {"description": "Id of the event the snapshot belongs to."},
        "command": {
            "description": "snapshot, bell-test, bell-ack, arm, disarm, reload, ping, "
            "config-get, lookout, lookout-cancel."
        },
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for name, (model, address, action, text) in MESSAGES.items():
        if model is None:
            payload: dict[str, Any] = {"type": "string", "format": "binary"}
            content_type = "image/jpeg"
        else:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
            payload = {"$ref": f"#/components/schemas/{model.__name__}"}
            content_type = "application/json"
        messages[name] = {
            "name": name,
            "contentType": content_type,
            "payload": payload,
            "summary": text,
        }
        used = [p.strip("{}") for p in address.split("/") if p.startswith("{")]
        channels[name] = {
            "address": address,
            "description": text,
            "parameters": {p: params[p] for p in used},
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"{action}_{name}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/{name}"}],
            "bindings": {"mqtt": {"qos": 1, "retain": name in {"status", "state"}}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "pole-agent MQTT contract",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": f"Messages between a city-safety pole and its control centre "
            f"(pole-agent {__version__}). QoS 1 everywhere; events are delivered at "
            "least once: deduplicate on `id`.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "centre": {
                "host": "broker.example.org:8883",
                "protocol": "secure-mqtt",
                "protocolVersion": "5.0",
                "description": "The centre's broker (TLS).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def write(out: Path) -> list[Path]:
    """Write every schema and the AsyncAPI document into ``out``; returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = out / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    path = out / "asyncapi.json"
    path.write_text(json.dumps(asyncapi(), indent=2, ensure_ascii=False) + "\n")
    written.append(path)
    return written
