"""What a reload must rebuild: the stages whose config (or secret files) changed, no more.

A SIGHUP or a ``reload`` command (broadcast to a whole site at once) used to stop every
stage, so the strobe and siren of an alarm went off and the bell's input was blind while
the camera re-opened.  Now a reload compares the old and the new config section by section,
including the digests of the secret files each section names, and rebuilds only the stages
that read a changed section.  The bell is rebuilt only when its own section (or the
device's identity, which its events carry) changed, and then hands a running alarm over.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent import credentials
from agent.config import AgentConfig, secret_files

__all__ = ["Plan", "plan", "secret_digests"]

# Which config sections each stage reads.  "topics" is a change of the topic root or site:
# every stage sends through the outbox, whose topics then change.
READS: dict[str, frozenset[str]] = {
    "link": frozenset({"device", "mqtt"}),
    "commands": frozenset({"commands", "device", "spool"}),
    "vision": frozenset({"cameras", "detection", "device", "lookout"}),
    "bell": frozenset({"bell", "device"}),
}
IN_PLACE = frozenset({"health", "log"})  # read afresh where they are used


@dataclass(frozen=True)
class Plan:
    changed: frozenset[str]  # config sections that differ (secrets included)
    rebuild: frozenset[str]  # stages to build anew
    restart_needed: str | None  # why the process must restart instead, if it must

    @property
    def nothing(self) -> bool:
        return not self.changed


def secret_digests(cfg: AgentConfig) -> dict[str, str]:
    """Config key -> digest of its secret file's contents, as they are now."""
    return {key: credentials.digest(name) for key, name in secret_files(cfg).items()}


def changed_sections(
    old: AgentConfig, new: AgentConfig, old_digests: dict[str, str]
) -> frozenset[str]:
    """Top-level sections whose values, or whose secret files' contents, differ.

    ``old_digests`` are the digests taken when ``old`` was applied: the files themselves
    may have been rotated since, which is exactly what must show.
    """
    a, b = old.model_dump(mode="json"), new.model_dump(mode="json")
    out = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    new_digests = secret_digests(new)
    for key in old_digests.keys() | new_digests.keys():
        if old_digests.get(key) != new_digests.get(key):
            out.add(key.split(".", 1)[0])
    if old.mqtt.password != new.mqtt.password:  # a SecretStr dumps as '**********'
        out.add("mqtt")
    return frozenset(out)


def plan(old: AgentConfig, new: AgentConfig, old_digests: dict[str, str]) -> Plan:
    """The stages to rebuild for a change from ``old`` (applied with ``old_digests``)."""
    changed = changed_sections(old, new, old_digests)
    if new.device.id != old.device.id:
        return Plan(changed, frozenset(), "the device id changed: restart the service to apply")
    if new.spool != old.spool:  # its file is open for the whole run
        return Plan(changed, frozenset(), "the spool changed: restart the service to apply")
    topics = (old.mqtt.topic_prefix, old.device.site) != (new.mqtt.topic_prefix, new.device.site)
    if topics:
        return Plan(changed, frozenset(READS), None)
    rebuild = frozenset(stage for stage, reads in READS.items() if reads & changed)
    return Plan(changed, rebuild, None)
