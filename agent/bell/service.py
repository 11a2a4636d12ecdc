"""The bell thread: input -> panel -> spool, and the strobe and siren.

One thread named ``bell`` owns the input backend, the panel and the output driver.  Each
turn it waits for the input (at most until the panel's next deadline, at most a second),
feeds the readings, runs the commands queued by other threads (test window, acknowledge,
injected press), emits every signal as a :class:`BellEvent` through the outbox (one spool
commit with fsync each; that is the bound on its latency), switches the outputs and
replaces the retained ``state/bell`` when it changed.

It never waits on video, the detector or the network: the snapshot callable only queues a
request, and the outbox writes to the local spool, which the link thread publishes from.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.bell.inputs import BellInputError, InputBackend, Waker, make_backend
from agent.bell.machine import BellSignal
from agent.bell.outputs import OutputDriver, OutputError, make_outputs
from agent.bell.panel import BellPanel
from agent.bell.preset import PresetMover
from agent.config import BellConfig, DeviceConfig
from agent.errors import BellError, CredentialError
from agent.events import BellEvent, now_ms
from agent.outbox import Outbox

__all__ = ["BellError", "BellService"]

log = logging.getLogger(__name__)

MAX_WAIT_S = 1.0  # longest sleep of the loop, so last_progress moves while idle
OUTPUT_RETRY_S = 0.5
LOC_KINDS = frozenset({"pressed", "activated"})
PanelAction = Callable[[float], list[BellSignal]]


class BellService:
    """Watches the bell. ``start()`` opens the input (errors are BellError) and the thread."""

    def __init__(
        self,
        cfg: BellConfig,
        device: DeviceConfig,
        outbox: Outbox,
        *,
        snapshot: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg, self.device, self.outbox = cfg, device, outbox
        self.snapshot = snapshot
        self.clock = clock
        self.panel = BellPanel(cfg)
        self.waker = Waker()
        self.backend: InputBackend = make_backend(cfg, waker=self.waker)
        self.outputs: OutputDriver = make_outputs(cfg, getattr(self.backend, "line", None))
        self.preset = PresetMover(cfg.preset) if cfg.preset is not None else None
        self._actions: queue.Queue[PanelAction] = queue.Queue(maxsize=64)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress = clock()
        self._driven = False
        self._output_retry = 0.0
        self._state: tuple[str, dict[str, Any]] | None = None
        self._since = now_ms()
        self.crashed: str | None = None
        self.events = 0
        self.emit_failed = 0
        self.last_activation: int | None = None
        self._facts: dict[str, Any] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Open the input and outputs, publish the initial state, start the thread."""
        try:
            self.backend.open()
        except BellInputError as exc:
            raise BellError(str(exc)) from None
        try:
            self.outputs.open()
        except (OutputError, BellInputError) as exc:
            self.backend.close()
            raise BellError(f"bell outputs: {exc}") from None
        if self.preset is not None:
            try:
                self.preset.start()
            except CredentialError as exc:
                self.backend.close()
                self.outputs.close()
                raise BellError(str(exc)) from None
        self._publish_state()
        self._thread = threading.Thread(target=self._run, name="bell", daemon=True)
        self._thread.start()
        log.info("bell: watching the %s input (%s policy)", self.backend.name, self.cfg.policy.mode)

    def stop(self, timeout: float) -> None:
        """Stop the thread (outputs off, input closed); waits at most ``timeout``."""
        self._stop.set()
        self.waker.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("bell: thread did not stop within %.1f s", timeout)
                return
        if self.preset is not None:
            self.preset.stop(timeout)
        self.waker.close()

    def threads(self) -> list[threading.Thread]:
        """The bell thread, and the camera preset helper when configured."""
        helpers = self.preset.threads() if self.preset is not None else []
        return ([self._thread] if self._thread is not None else []) + helpers

    def last_progress(self) -> float:
        return self._progress

    def facts(self) -> dict[str, Any]:
        """JSON-able numbers for the heartbeat (a copy made by the bell thread)."""
        return dict(self._facts)

    # ------------------------------------------------------------------ commands
    def start_test(self, duration_s: float) -> bool:
        """Open a test window: events in it carry ``test``. False if the queue is full."""
        return self._submit(lambda t: self.panel.start_test(t, duration_s))

    def end_test(self) -> bool:
        return self._submit(self.panel.end_test)

    def acknowledge(self) -> bool:
        """The centre acknowledged: silence strobe and siren."""
        return self._submit(self.panel.acknowledge)

    def simulate_press(self, hold_s: float = 0.2) -> bool:
        """A press of ``hold_s`` seconds through the whole path (the bell-test command)."""
        return self._submit(lambda t: self.panel.inject_press(t, hold_s))

    def _submit(self, action: PanelAction) -> bool:
        try:
            self._actions.put_nowait(action)
        except queue.Full:
            log.warning("bell: command queue full; command dropped")
            return False
        self.waker.set()
        return True

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._turn()
        except Exception as exc:
            self.crashed = f"{type(exc).__name__}: {exc}"
            log.exception("bell thread crashed, the bell is NOT watched: %s", self.crashed)
        finally:
            try:
                self._shutdown()
            except Exception:
                log.exception("bell: shutting down the input and outputs failed")

    def _turn(self) -> None:
        deadline = self.panel.deadline()
        wait = MAX_WAIT_S if deadline is None else deadline - self.clock()
        readings = self.backend.poll(min(max(wait, 0.0), MAX_WAIT_S))
        signals: list[BellSignal] = []
        for reading in readings:
            signals += self.panel.feed(reading)
        while True:
            try:
                action = self._actions.get_nowait()
            except queue.Empty:
                break
            signals += action(self.clock())
        signals += self.panel.tick(self.clock())
        for sig in signals:
            self._emit(sig)
        self._drive()
        self._publish_state()
        self._progress = self.clock()

    def _shutdown(self) -> None:
        for sig in self.panel.outputs.stop(self.clock()):
            self._emit(sig)
        self._drive()
        self._publish_state()
        self.backend.close()
        self.outputs.close()

    # ------------------------------------------------------------------ effects
    def _emit(self, sig: BellSignal) -> None:
        ts = now_ms() - round((self.clock() - sig.t) * 1000)
        fields: dict[str, Any] = {"ev": sig.kind, "inp": sig.inp, "ts": ts}
        if sig.held_ms is not None:
            fields["held"] = sig.held_ms
        if sig.why:
            fields["why"] = sig.why
        if sig.test:
            fields["test"] = True
        if sig.kind in LOC_KINDS:
            d = self.device
            fields["loc"] = {"pole": d.pole, "lat": d.latitude, "lon": d.longitude}
        event = self.outbox.stamper.bell(**fields)
        if sig.kind == "activated":
            self.last_activation = ts
            event = self._with_snapshot(event)
            if self.preset is not None and self.preset.request(event.id):
                event = event.model_copy(update={"preset": self.preset.cfg.preset})
        if self.outbox.emit(event):
            self.events += 1
        else:
            self.emit_failed += 1
        level = (
            logging.WARNING if sig.kind in ("activated", "comm_fault", "stuck") else logging.INFO
        )
        log.log(level, "bell %s (%s)%s", sig.kind, sig.inp, f": {sig.why}" if sig.why else "")

    def _with_snapshot(self, event: BellEvent) -> BellEvent:
        if self.snapshot is None:
            return event
        try:
            will = self.snapshot(event.id)
        except Exception:  # the vision side's bug must not cost the alarm
            log.exception("bell: snapshot request failed")
            return event
        return event.model_copy(update={"snap": True}) if will else event

    def _drive(self) -> None:
        want = self.panel.outputs.on
        if want == self._driven or self.clock() < self._output_retry:
            return
        try:
            self.outputs.set(want)
        except OutputError as exc:
            self._output_retry = self.clock() + OUTPUT_RETRY_S
            log.error("bell: cannot switch the outputs %s: %s", "on" if want else "off", exc)
            return
        self._driven = want

    def _publish_state(self) -> None:
        state, detail = self.panel.status(self.clock())
        detail = {**detail, "backend": self.backend.name, "driven": self._driven}
        if self._state != (state, detail):
            if self._state is None or self._state[0] != state:
                self._since = now_ms()
            self._state = (state, detail)
            self.outbox.state("bell", state, self._since, detail)
        self._facts = self._make_facts(state, detail)

    def _make_facts(self, state: str, detail: dict[str, Any]) -> dict[str, Any]:
        m = self.panel.machine
        return {
            "state": state,
            "since": self._since,
            "faults": detail["faults"],
            "test": detail["test"],
            "outputs": self._driven,
            "backend": self.backend.name,
            "input": self.backend.facts(),
            "presses": m.presses,
            "activations": m.activations,
            "last_activation": self.last_activation,
            "bounces": m.debounce.rejected,
            "events": self.events,
            "emit_failed": self.emit_failed,
            "alive": self.crashed is None,
            **({"preset": self.preset.facts()} if self.preset is not None else {}),
        }
