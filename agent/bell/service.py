"""The bell thread: input -> panel -> strobe and siren, then the reports.

One thread named ``bell`` owns the input backend, the panel and the output driver.  Each
turn it opens what is not open yet (:mod:`agent.bell.reopen`), waits for the input (at
most until the panel's next deadline, at most a second), feeds the readings, runs the
commands queued by other threads (test window, acknowledge, injected press), switches the
outputs (local safety first), then hands every signal as a :class:`BellEvent`, and the
retained ``state/bell`` when it changed, to the ``bell-report`` thread
(:mod:`agent.bell.report`), which writes them to the outbox and keeps them in memory while
the outbox refuses.

It depends on nothing but its hardware: not on video, the detector, the network, the
spool or the log.  An input or output that cannot be opened is reported (``comm_fault``,
``why: open_failed: ...``) and retried; ``start()`` raises only for a bug.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.bell.inputs import CommChange, InputBackend, Reading, Waker, make_backend
from agent.bell.machine import BellSignal
from agent.bell.outputs import OutputDriver, OutputError, make_outputs
from agent.bell.panel import BellPanel
from agent.bell.preset import PresetMover
from agent.bell.reopen import Device
from agent.bell.report import Reporter
from agent.config import BellConfig, DeviceConfig
from agent.errors import BellError, CredentialError
from agent.events import BellEvent, now_ms
from agent.outbox import Outbox
from agent.worker import Worker

__all__ = ["BellError", "BellService"]

log = logging.getLogger(__name__)

MAX_WAIT_S = 1.0  # longest sleep of the loop, so last_progress moves while idle
OUTPUT_RETRY_S = 0.5
LOC_KINDS = frozenset({"pressed", "activated"})
PanelAction = Callable[[float], list[BellSignal]]


@dataclass(frozen=True)
class BellHandover:
    """What a bell rebuilt by a reload must keep: an alarm's outputs, and the lockout."""

    outputs_on: bool
    outputs_left_s: float | None  # None: on until the centre acknowledges
    lockout_left_s: float
    last_activation: int | None


class BellService(Worker):
    """Watches the bell. ``start()`` starts the threads; hardware that fails is retried."""

    def __init__(
        self,
        cfg: BellConfig,
        device: DeviceConfig,
        outbox: Outbox,
        *,
        snapshot: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__("bell", clock=clock)
        self.cfg, self.device, self.outbox = cfg, device, outbox
        self.snapshot = snapshot
        self.clock = clock
        self.panel = BellPanel(cfg)
        self.waker = Waker()
        self.backend: InputBackend = make_backend(cfg, waker=self.waker)
        self.outputs: OutputDriver = make_outputs(cfg, getattr(self.backend, "line", None))
        self.input_dev = Device(f"bell input ({self.backend.name})", self.backend.open, clock=clock)
        self.output_dev = Device(
            f"bell outputs ({self.outputs.name})", self.outputs.open, link="outputs", clock=clock
        )
        self.reporter = Reporter(outbox)
        self.preset = PresetMover(cfg.preset) if cfg.preset is not None else None
        self.preset_error: str | None = None
        self._actions: queue.Queue[PanelAction] = queue.Queue(maxsize=64)
        self._driven = False
        self._output_retry = 0.0
        self._output_failing = False
        self._early: list[CommChange] = []  # open failures seen by start(), reported by the thread
        self._state: tuple[str, dict[str, Any]] | None = None
        self._since = now_ms()
        self.crashed: str | None = None
        self.last_activation: int | None = None
        self._facts: dict[str, Any] = {}
        self._handing_over = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Try the input and outputs once, start the threads. Never raises for hardware:
        what cannot be opened is reported as ``comm_fault`` and retried by the bell thread."""
        self._early = [c for c in (self.input_dev.try_open(), self.output_dev.try_open()) if c]
        if self.preset is not None:
            try:
                self.preset.start()
            except CredentialError as exc:  # the camera turn is a nicety; the bell goes on
                self.preset_error = str(exc)
                self.preset = None
                log.error("bell: camera preset disabled: %s", exc)
        self._publish_state()  # the first retained state/bell, written by the reporter
        self.reporter.start()
        super().start()
        opened = "watching" if self.input_dev.is_open else "cannot open yet (retrying)"
        log.info(
            "bell: %s the %s input (%s policy)", opened, self.backend.name, self.cfg.policy.mode
        )

    def stop(self, timeout: float) -> bool:
        """Stop the thread (outputs off, input closed); waits at most ``timeout``.

        False when the bell thread did not stop: its input, outputs and waker stay open.
        """
        end = time.monotonic() + timeout
        if not super().stop(timeout):
            return False
        self.reporter.stop(max(end - time.monotonic(), 0.1))
        if self.preset is not None:
            self.preset.stop(timeout)
        self.waker.close()
        return True

    def _wake(self) -> None:
        self.waker.set()

    def handover(self, timeout: float) -> BellHandover:
        """Stop for a reload without switching the outputs off; what the next bell keeps.

        The input and the output driver are closed so that the next service can open them;
        it switches the outputs on again at its first turn when an alarm is running.
        """
        self._handing_over = True
        self.stop(timeout)
        t = self.clock()
        out, machine = self.panel.outputs, self.panel.machine
        left = None if out.until is None else max(0.0, out.until - t)
        return BellHandover(
            outputs_on=out.on,
            outputs_left_s=left,
            lockout_left_s=max(0.0, machine.lockout_until - t),
            last_activation=self.last_activation,
        )

    def adopt(self, h: BellHandover) -> None:
        """Take over a previous bell's alarm (before :meth:`start`)."""
        t = self.clock()
        out = self.panel.outputs
        out.on = h.outputs_on and out.cfg.backend != "none"
        out.until = None if h.outputs_left_s is None or not out.on else t + h.outputs_left_s
        if h.lockout_left_s > 0:
            self.panel.machine.lockout_until = t + h.lockout_left_s
        self.last_activation = h.last_activation

    def open_input(self) -> None:
        """Open the input now, before :meth:`start` (which then finds it open).

        A reload calls it while the old bell still watches its own device; it raises
        (BellInputError for a missing or busy device) with the input closed again.
        """
        try:
            self.input_dev.open_now()
        except Exception:
            self._close_quietly(self.backend)
            raise

    def discard(self) -> None:
        """Release what a service that never started holds (a refused reload's bell)."""
        self._close_quietly(self.backend)
        self._close_quietly(self.outputs)
        self.waker.close()

    def threads(self) -> list[threading.Thread]:
        """The bell thread, its reporter and the camera preset helper when configured."""
        helpers = self.preset.threads() if self.preset is not None else []
        own = [*super().threads(), *self.reporter.threads()]
        return [t for t in own if t is not None] + helpers

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
        for change in self._early:
            self._report(self.panel.feed(change))
        while not self._stop.is_set():
            self._turn()

    def _crashed(self, exc: Exception) -> None:
        self.crashed = f"{type(exc).__name__}: {exc}"
        log.error("bell thread crashed, the bell is NOT watched: %s", self.crashed, exc_info=exc)

    def _finish(self) -> None:
        try:
            self._shutdown()
        except Exception:
            log.exception("bell: shutting down the input and outputs failed")

    def _turn(self) -> None:
        signals: list[BellSignal] = []
        for dev in (self.input_dev, self.output_dev):
            change = dev.try_open()
            if change is not None:
                signals += self.panel.feed(change)
        for reading in self._poll():
            signals += self.panel.feed(reading)
        while True:
            try:
                action = self._actions.get_nowait()
            except queue.Empty:
                break
            signals += action(self.clock())
        signals += self.panel.tick(self.clock())
        signals += self._drive()  # local safety first: the strobe and siren, then the reports
        self._report(signals)
        self.progress()

    def _poll(self) -> list[Reading]:
        due = [self.panel.deadline(), self.input_dev.due(), self.output_dev.due()]
        wait = min([d - self.clock() for d in due if d is not None], default=MAX_WAIT_S)
        wait = min(max(wait, 0.0), MAX_WAIT_S)
        if not self.input_dev.is_open:
            self.waker.wait(wait)
            return []
        try:
            return self.backend.poll(wait)
        except Exception as exc:  # noqa: BLE001 - a vanished device is a fault, not an exit
            self._close_quietly(self.backend)
            change = self.input_dev.lost(exc)
            return [change] if change is not None else []

    def _report(self, signals: list[BellSignal]) -> None:
        for sig in signals:
            self._emit(sig)
        self._publish_state()

    def _shutdown(self) -> None:
        if not self._handing_over:  # a reload hands a running alarm over instead
            signals = self.panel.outputs.stop(self.clock())
            signals += self._drive()
            self._report(signals)
        self._close_quietly(self.backend)
        self._close_quietly(self.outputs)

    @staticmethod
    def _close_quietly(dev: InputBackend | OutputDriver) -> None:
        try:
            dev.close()
        except Exception:  # closing a failed device must not end the bell
            log.exception("bell: closing %s failed", dev.name)

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
        self.reporter.put(event)
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

    def _drive(self) -> list[BellSignal]:
        """Switch the outputs to what the panel wants; a failure is retried, and reported."""
        want = self.panel.outputs.on
        if want == self._driven or not self.output_dev.is_open:
            return []
        if self.clock() < self._output_retry:
            return []
        try:
            self.outputs.set(want)
        except (OutputError, OSError) as exc:
            self._output_retry = self.clock() + OUTPUT_RETRY_S
            log.error("bell: cannot switch the outputs %s: %s", "on" if want else "off", exc)
            return self._outputs_link(False, f"switch_failed: {exc}")
        self._driven = want
        return self._outputs_link(True, "switched")

    def _outputs_link(self, ok: bool, why: str) -> list[BellSignal]:
        if ok != self._output_failing:
            return []
        self._output_failing = not ok
        return self.panel.feed(CommChange(ok, self.clock(), why, "outputs"))

    def _publish_state(self) -> None:
        state, detail = self.panel.status(self.clock())
        detail = {**detail, "backend": self.backend.name, "driven": self._driven}
        if self._state != (state, detail):
            if self._state is None or self._state[0] != state:
                self._since = now_ms()
            self._state = (state, detail)
            self.reporter.put_state(state, self._since, detail)
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
            "flapping": self.panel.flaps(),
            "devices": {"input": self.input_dev.facts(), "outputs": self.output_dev.facts()},
            "report": self.reporter.facts(),
            "alive": self.crashed is None,
            **self._preset_facts(),
        }

    def _preset_facts(self) -> dict[str, Any]:
        if self.preset is not None:
            return {"preset": self.preset.facts()}
        return {"preset": {"error": self.preset_error}} if self.preset_error else {}
