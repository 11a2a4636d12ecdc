"""The lookout audit log: one JSON line per fact, pruned after audit_days."""

from __future__ import annotations

from pathlib import Path

from agent.lookout.audit import AuditLog, read_audit


def test_written_read_and_pruned(tmp_path: Path) -> None:
    now = [1_000_000.0]
    path = tmp_path / "a" / "lookout-audit.jsonl"
    log = AuditLog(path, keep_days=1, clock=lambda: now[0])
    assert log.write("lookout", id="L1", signer="site", slots={"upper": ["red"]})
    now[0] += 3600
    assert log.write("candidate", id="L1", event="e1", score=0.8)
    got = read_audit(path)
    assert [(e["kind"], e["ts"]) for e in got] == [
        ("lookout", 1_000_000_000),
        ("candidate", 1_003_600_000),
    ]
    assert got[0]["signer"] == "site"
    assert got[0]["slots"] == {"upper": ["red"]}
    now[0] += 86_400 - 1800  # the lookout is older than a day, the candidate not
    assert log.prune() == 1
    assert [e["kind"] for e in read_audit(path)] == ["candidate"]
    # a day later the next write prunes by itself
    now[0] += 86_400
    log.write("cancel", id="L1", sent=1)
    assert [e["kind"] for e in read_audit(path)] == ["cancel"]


def test_a_damaged_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"ts": 1, "kind": "lookout"}\nnot json\n')
    assert [e["kind"] for e in read_audit(path)] == ["lookout"]
    assert read_audit(tmp_path / "missing.jsonl") == []
