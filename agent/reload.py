"""What a reload must rebuild: the stages whose config (or secret files) changed, no more.

A SIGHUP or a ``reload`` command (broadcast to a whole site at once) used to stop every
stage, so the strobe and siren of an alarm went off and the bell's input was blind while
the camera re-opened.  Now a reload compares the old and the new config section by section,
including the digests of the secret files each section names, and rebuilds only the stages
that read a changed section.  The bell is rebuilt only when its own section (or the
device's identity, which its events carry) changed, and then hands a running alarm over.

A rebuilt bell whose input is another device (a new serial port, other GPIO lines) opens
it before the old bell lets go of its own: a device that cannot be opened (missing, busy)
refuses the reload, and the old bell keeps watching.  The same device is not opened twice
(a serial port is opened exclusively, a GPIO line is requested once): it passes from the
old bell to the new one at the handover.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from agent import credentials
from agent.config import AgentConfig, BellConfig, secret_files
from agent.errors import BellError

__all__ = [
    "Plan",
    "discard_bell",
    "moves_input",
    "open_bell_input",
    "plan",
    "probe_bell_input",
    "replace_bell",
    "replace_stage",
    "secret_digests",
]

log = logging.getLogger(__name__)


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


def moves_input(old: BellConfig, new: BellConfig) -> bool:
    """True when a bell of ``new`` would open an input the bell of ``old`` does not hold (a
    disabled bell holds nothing: enabling one opens its input before the swap too)."""
    from agent.bell.inputs import held_devices, input_devices

    if not new.enabled:
        return False
    return not old.enabled or not input_devices(new) & held_devices(old)


def open_bell_input(old: BellConfig, bell: object) -> None:
    """Open the new bell's input now if it is another device than the running bell's.

    Raises with a paragraph for the technician when it cannot be opened; the new bell is
    then discarded (nothing of it stays open) and the running one is left alone.
    """
    from agent.bell.inputs import input_devices
    from agent.bell.service import BellService

    if not isinstance(bell, BellService) or not moves_input(old, bell.cfg):
        return

    try:
        bell.open_input()
    except Exception as exc:
        bell.discard()
        watching = ", ".join(sorted(input_devices(old)))
        raise BellError(
            f"the new bell input cannot be opened, so the running bell keeps watching "
            f"{watching}: {exc}"
        ) from exc


def probe_bell_input(old: AgentConfig, new: AgentConfig) -> str | None:
    """Why the bell of ``new`` could not open its input now (opened and closed again), or None.

    For the ``reload`` command's answer; the reload itself opens it again before the handover.
    """
    if not moves_input(old.bell, new.bell):
        return None
    from agent.bell.inputs import Waker, make_backend

    waker = Waker()
    backend = make_backend(new.bell, waker)
    try:
        backend.open()
    except Exception as exc:  # noqa: BLE001 - any reason is the answer
        return str(exc) or type(exc).__name__
    finally:
        backend.close()
        waker.close()
    return None


def discard_bell(bell: object, running: object) -> None:
    """Release a new bell that will not run (another stage of the reload failed to build)."""
    from agent.bell.service import BellService

    if bell is not running and isinstance(bell, BellService):
        bell.discard()


def replace_stage(name: str, before: Any, after: Any) -> None:
    """Stop a stage and start its successor (either may be None)."""
    stopped = False
    if before is not None:
        try:
            stopped = before.stop(3.0) is not False
        except Exception:
            log.exception("reload: the old %s did not stop cleanly", name)
    if after is not None:
        carry_on = getattr(after, "carry_on_from", None)
        if stopped and callable(carry_on):
            # what the predecessor told the centre (vision's crash states); only from one
            # whose threads are done, as they would go on using it
            carry_on(before)
        after.start()


def replace_bell(before: Any, after: Any) -> None:
    """Stop the old bell and start the new one, handing a running alarm over."""
    from agent.bell.service import BellService

    handed = before.handover(3.0) if isinstance(before, BellService) else None
    if handed is not None and isinstance(after, BellService):
        after.adopt(handed)
    elif before is not None and handed is None:
        before.stop(3.0)
    if after is not None:
        after.start()
