"""The runner: builds every stage from the config, owns their threads, starts and stops them.

Start order: spool (opened), link, bell, vision, then the main thread supervises:
heartbeat, systemd watchdog, thread liveness, reload.  Stop order is the reverse; the
spool closes last, after the link has flushed what it could and said ``offline``.

A dead critical thread (bell, link) stops the agent with exit code 1 so that systemd
restarts it.  Vision is not critical: a failing camera or detector is reported and the
bell keeps working.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from agent import __version__, credentials, logs
from agent.clock import ClockWatch
from agent.config import AgentConfig, ConfigError, config_hash, load, secret_files
from agent.config.lookout import audit_path, index_path
from agent.events import EventStamper, Topics
from agent.faults import FaultWatch
from agent.health import Notifier, heartbeat
from agent.mqtt.link import Link, StatusInfo
from agent.outbox import Outbox
from agent.reload import (
    IN_PLACE,
    Plan,
    discard_bell,
    open_bell_input,
    plan,
    replace_bell,
    replace_stage,
    secret_digests,
)
from agent.spool import Spool, SpoolError
from agent.vision import make_vision

__all__ = ["Runner", "Service"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CRASHED = 1


class Service(Protocol):
    """What the runner needs from a stage that owns threads."""

    def start(self) -> None: ...
    def stop(self, timeout: float) -> bool | None: ...  # False: a thread did not stop
    def threads(self) -> list[threading.Thread]: ...
    def last_progress(self) -> float: ...
    def facts(self) -> dict[str, Any]: ...


@dataclass
class Stages:
    link: Link
    outbox: Outbox
    bell: Service | None = None
    vision: Service | None = None
    commands: Service | None = None


class Runner:
    """One per process. ``run()`` blocks until stopped and returns the exit code."""

    def __init__(self, config_path: str | Path, *, notifier: Notifier | None = None) -> None:
        self.config_path = Path(config_path)
        self.cfg: AgentConfig = load(self.config_path)
        self.notifier = notifier or Notifier()
        self.started = time.monotonic()
        self.clock = ClockWatch()
        self.stamper = EventStamper(self.cfg.device.id)
        self._tids: dict[str, int] = {}  # per camera, the first track id a new vision gives
        self.spool = Spool(
            self._spool_path(self.cfg),
            max_rows=self.cfg.spool.max_rows,
            max_bytes=self.cfg.spool.max_bytes,
            telemetry_ttl_s=self.cfg.spool.telemetry_ttl_s,
        )
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.exit_code = EXIT_OK
        self.stages: Stages | None = None
        self._reported_dead: set[str] = set()
        self._signalled = 0  # set by the SIGTERM/SIGINT handler (no locks in a handler)
        self._hup = False  # set by the SIGHUP handler
        self.faults = FaultWatch(self._current_outbox, self.spool)
        # The secret files' digests as applied: a rotation since then is what a reload finds.
        self.applied_digests = secret_digests(self.cfg)
        self.cfg_hash = config_hash(self.cfg)

    @staticmethod
    def _spool_path(cfg: AgentConfig) -> Path:
        return Path(cfg.spool.path)

    # ------------------------------------------------------------------ building
    def _topics(self, cfg: AgentConfig) -> Topics:
        return Topics(cfg.mqtt.topic_prefix, cfg.device.site, cfg.device.id)

    def _build(self, cfg: AgentConfig) -> Stages:
        outbox = Outbox(self.spool, self._topics(cfg), self.stamper)
        stages = Stages(link=self._build_link(cfg), outbox=outbox)
        outbox.packet_limit = self._packet_limit
        stages.commands = self._build_commands(cfg, outbox)
        stages.vision = self._build_vision(cfg, outbox)
        stages.bell = self._build_bell(cfg, outbox)
        return stages

    def _build_link(self, cfg: AgentConfig) -> Link:
        status = StatusInfo(cfg.device, self.stamper.boot_id, __version__, config_hash(cfg))
        # Commands go through the runner, so that a reload may replace the command service
        # without touching the link, and the other way round.
        # A row the broker will never take goes to the spool's dead table (FaultWatch says so).
        return Link(
            cfg.mqtt,
            self.spool,
            self._topics(cfg),
            status,
            on_command=self._command,
            dead_letter=self.spool.set_aside,
        )

    def _build_bell(self, cfg: AgentConfig, outbox: Outbox) -> Service | None:
        if not cfg.bell.enabled:
            return None
        from agent.bell.service import BellService

        return BellService(cfg.bell, cfg.device, outbox, snapshot=self._snapshot)

    def _command(self, topic: str, payload: bytes) -> None:
        submit = getattr(self.stages.commands if self.stages else None, "submit", None)
        if submit is not None:
            submit(topic, payload)

    def _snapshot(self, event_id: str) -> bool:
        request = getattr(self.stages.vision if self.stages else None, "request_snapshot", None)
        return bool(request(event_id)) if request is not None else False

    def _packet_limit(self) -> int | None:
        return self.stages.link.max_packet if self.stages is not None else None

    def _current_outbox(self) -> Outbox | None:
        return self.stages.outbox if self.stages is not None else None

    def _attach(self, stages: Stages) -> None:
        if stages.commands is not None:
            stages.commands.attach(runner=self, bell=stages.bell, vision=stages.vision)  # type: ignore[attr-defined]

    def _build_vision(
        self, cfg: AgentConfig, outbox: Outbox, before: Service | None = None
    ) -> Service | None:
        """``before``: the vision stage this one replaces, whose track ids it carries on."""
        if not cfg.cameras:
            return None
        try:
            lookout = None
            if cfg.lookout.enabled:
                where = str(index_path(cfg.lookout, cfg.spool.path))
                audit = str(audit_path(cfg.lookout, cfg.spool.path))
                lookout = cfg.lookout.model_copy(update={"index_path": where, "audit_path": audit})
            handed = getattr(before, "next_tids", None)
            for cam, first in (handed() if callable(handed) else {}).items():
                # kept across a vision that failed to build, too: one id per track and boot
                self._tids[cam] = max(first, self._tids.get(cam, 1))
            return make_vision(
                cfg.cameras, cfg.detection, outbox, lookout=lookout, first_tids=self._tids
            )
        except Exception as exc:  # noqa: BLE001 - a broken model must not take the bell down
            log.error("vision disabled: %s", exc)
            return None

    def _build_commands(self, cfg: AgentConfig, outbox: Outbox) -> Service | None:
        from agent.control.service import CommandService

        service: Service = CommandService(cfg, outbox)
        return service

    # ------------------------------------------------------------------ start / stop
    def _start(self, stages: Stages) -> None:
        # The link first so that the bell's first event finds it; the bell before the
        # cameras, which may take seconds to open.
        self._attach(stages)
        stages.link.start()
        log.info("link: started towards %s", ", ".join(self.cfg.mqtt.hosts or ()))
        if stages.commands is not None:
            stages.commands.start()
        if stages.bell is not None:
            stages.bell.start()  # never raises for hardware: it reports and retries
        if stages.vision is not None:
            stages.vision.start()
            log.info("vision: %d camera(s) started", len(self.cfg.cameras))

    def _stop_stages(self, stages: Stages, timeout: float) -> None:
        # One budget for all: systemd's TimeoutStopSec must never be reached by the sum.
        end = time.monotonic() + timeout
        for name in ("vision", "bell", "commands"):
            stage = getattr(stages, name)
            if stage is not None:
                try:
                    stage.stop(max(0.5, (end - time.monotonic()) / 2))
                except Exception:
                    log.exception("%s did not stop cleanly", name)
        stages.link.stop(max(1.0, end - time.monotonic()))

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    # ------------------------------------------------------------------ main loop
    def run(self) -> int:
        self._install_signals()
        self.stages = self._build(self.cfg)
        self._start(self.stages)
        self.notifier.ready(self._status_line())
        log.info(
            "pole-agent %s running as %s (boot %s, config %s)",
            __version__,
            self.cfg.device.id,
            self.stamper.boot_id,
            self.cfg_hash,
        )
        try:
            self._supervise()
        finally:
            self.notifier.stopping()
            log.info("stopping")
            self._stop_stages(self.stages, timeout=8.0)
            self.spool.close()
            self.notifier.close()
            log.info("stopped (exit code %d)", self.exit_code)
        return self.exit_code

    def _supervise(self) -> None:
        next_beat = time.monotonic() + 1.0
        next_ping = 0.0
        # A quarter of the interval: with the 0.25 s tick, the longest gap between pings
        # stays under half the interval (systemd asks for at least one per interval).
        ping_every = (self.notifier.watchdog_s or 0) / 4
        while not self._stop.wait(0.25):
            if self._signalled:
                log.info("received %s", signal.Signals(self._signalled).name)
                return
            if self._hup:
                self._hup = False
                self._reload.set()
            assert self.stages is not None
            dead = self._dead_critical(self.stages)
            if dead:
                log.critical(
                    "critical thread %s died; stopping so that systemd restarts the agent", dead
                )
                self.exit_code = EXIT_CRASHED
                return
            now = time.monotonic()
            if ping_every and now >= next_ping and self._critical_progressing(self.stages):
                self.notifier.watchdog()
                next_ping = now + ping_every
            if now >= next_beat:
                self._heartbeat(self.stages)
                self.notifier.status(self._status_line())
                next_beat = now + self.cfg.health.heartbeat_s
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            self.spool.recover()  # a degraded spool retries its disk here, not on the bell
            self.faults.check(self.stages.link.facts())

    def _critical(self, stages: Stages) -> list[tuple[str, Service | Link]]:
        out: list[tuple[str, Service | Link]] = [("link", stages.link)]
        if stages.bell is not None:
            out.append(("bell", stages.bell))
        return out

    def _dead_critical(self, stages: Stages) -> str | None:
        for name, stage in self._critical(stages):
            for t in stage.threads():
                if not t.is_alive():
                    return t.name or name
        self._note_dead_optional(stages)
        return None

    def _note_dead_optional(self, stages: Stages) -> None:
        # Vision and commands are not worth a restart of the bell, but a dead one is said.
        for name in ("vision", "commands"):
            stage = getattr(stages, name)
            if stage is None:
                continue
            for t in stage.threads():
                if not t.is_alive() and t.name not in self._reported_dead:
                    self._reported_dead.add(t.name)
                    log.error("%s thread %s died; the bell and the link keep working", name, t.name)

    def _critical_progressing(self, stages: Stages) -> bool:
        # A broker outage keeps the link loop turning (it waits in select with a timeout),
        # so only a hung thread stops the pings, never a missing network.
        grace = self.cfg.health.watchdog_grace_s
        now = time.monotonic()
        return all(now - s.last_progress() < grace for _, s in self._critical(stages))

    def _heartbeat(self, stages: Stages) -> None:
        self.spool.purge_expired()
        event = heartbeat(
            self.stamper.health,
            started=self.started,
            version=__version__,
            config_hash=self.cfg_hash,
            cams=stages.vision.facts if stages.vision is not None else None,
            detector=getattr(stages.vision, "detector_facts", None),
            bell=stages.bell.facts if stages.bell is not None else None,
            spool=self.spool.stats,
            link=stages.link.facts,
            commands=stages.commands.facts if stages.commands is not None else None,
            more_sys={"clock": self.clock.facts, "log": logs.stats},
            spool_path=self._spool_path(self.cfg),
        )
        stages.outbox.emit(event)

    def _status_line(self) -> str:
        stages = self.stages
        if stages is None:
            return "starting"
        parts = [f"link {stages.link.state}", f"spool {len(self.spool)} waiting"]
        if stages.bell is not None:
            parts.insert(0, f"bell {stages.bell.facts().get('state', '?')}")
        if stages.vision is not None:
            cams = stages.vision.facts()
            parts.append(", ".join(f"{k} {v.get('state', '?')}" for k, v in cams.items()))
        return "; ".join(parts)

    # ------------------------------------------------------------------ reload
    def reload(self) -> tuple[bool, str]:
        """Re-read the config and rebuild only what changed; the running stages stay on error.

        A bad file, or one that validates but cannot be built (a missing password file, a
        new bell input that is missing or busy), is refused and said.  The bell is rebuilt
        only when its own section changed, then keeps a running alarm (outputs, lockout)
        across the swap; a new input device is opened before the old bell is stopped, the
        same device passes over at the swap (:func:`agent.reload.open_bell_input`).
        """
        self.notifier.reloading()
        try:
            new = load(self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", exc.report())
            return self._reloaded(False, exc.report(), "the config file is invalid")
        todo = plan(self.cfg, new, self.applied_digests)
        if todo.restart_needed:
            log.error("reload refused: %s", todo.restart_needed)
            return self._reloaded(False, todo.restart_needed, todo.restart_needed)
        if todo.nothing:
            log.info("reload: config %s unchanged (secret files too)", config_hash(new))
            return self._reloaded(True, "unchanged", None)
        log.info(
            "reload: applying config %s (changed: %s; rebuilding: %s)",
            config_hash(new),
            ", ".join(sorted(todo.changed)),
            ", ".join(sorted(todo.rebuild)) or "nothing",
        )
        try:
            built = self._build_some(new, todo)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the running stages stay
            why = f"the new config cannot be built, the running stages stay: {exc}"
            log.error("reload refused: %s", why)
            return self._reloaded(False, why, why)
        self._swap(built, todo)
        if "link" not in todo.rebuild:
            try:
                built.link.refresh_status(config_hash(new))
            except SpoolError as exc:  # the reload stands; the next connect's birth says it
                log.error("reload: the new birth could not be spooled: %s", exc)
        self.cfg = new
        self.applied_digests = secret_digests(new)
        self.cfg_hash = config_hash(new)
        if "log" in todo.changed:
            logging.getLogger().setLevel(new.log.level.upper())
        rebuilt = ", ".join(sorted(todo.rebuild)) or "nothing"
        in_place = ", ".join(sorted(todo.changed & IN_PLACE))
        self.faults.say(
            "notice",
            "reload",
            f"applied config {self.cfg_hash}; rebuilt {rebuilt}"
            + (f"; applied in place: {in_place}" if in_place else ""),
            {"changed": sorted(todo.changed), "rebuilt": sorted(todo.rebuild)},
        )
        return self._reloaded(True, f"applied config {self.cfg_hash}", None)

    def _reloaded(self, ok: bool, answer: str, fault: str | None) -> tuple[bool, str]:
        if fault is not None and self.stages is not None:
            self.faults.say("fault", "reload", fault[:500])
        prefix = "" if ok else "reload refused; "
        self.notifier.notify("READY=1", f"STATUS={prefix}{self._status_line()}")
        return ok, answer

    def _build_some(self, cfg: AgentConfig, todo: Plan) -> Stages:
        """New objects for the stages to rebuild (nothing started, nothing stopped yet)."""
        assert self.stages is not None
        # Every secret a rebuilt stage will read must be readable now, or nothing is swapped.
        for key, name in secret_files(cfg).items():
            if key.split(".", 1)[0] in todo.changed:
                credentials.read_bytes(name, key)
        old = self.stages
        outbox = old.outbox
        if self._topics(cfg) != self._topics(self.cfg):
            outbox = Outbox(self.spool, self._topics(cfg), self.stamper)
            outbox.packet_limit = self._packet_limit
        new = Stages(link=old.link, outbox=outbox, bell=old.bell, vision=old.vision)
        new.commands = old.commands
        if "bell" in todo.rebuild:  # first: a new input that cannot be opened costs nothing else
            new.bell = self._build_bell(cfg, outbox)
            open_bell_input(self.cfg.bell, new.bell)  # raises, the new bell discarded
        try:
            if "link" in todo.rebuild:
                new.link = self._build_link(cfg)
            if "commands" in todo.rebuild:
                new.commands = self._build_commands(cfg, outbox)
            if "vision" in todo.rebuild:
                new.vision = self._build_vision(cfg, outbox, old.vision)
        except Exception:
            discard_bell(new.bell, old.bell)
            raise
        return new

    def _swap(self, new: Stages, todo: Plan) -> None:
        """Stop each replaced stage and start its successor; the bell last, handing over."""
        old = self.stages
        assert old is not None
        self.stages = new
        self._attach(new)
        for name in ("commands", "link", "vision"):
            if name in todo.rebuild:
                replace_stage(name, getattr(old, name), getattr(new, name))
        if "bell" in todo.rebuild:
            replace_bell(old.bell, new.bell)

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        # A handler runs between two bytecodes of the main thread, which may hold a lock at
        # that moment (a queue's, an Event's): taking any lock here can deadlock the stop.
        # So the handlers only set plain attributes; the main loop reads them every tick.
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            self._signalled = signum

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            self._hup = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
