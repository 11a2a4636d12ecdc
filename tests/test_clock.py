"""Clock facts: the kernel's sync state is read for real; steps are counted both ways."""

from __future__ import annotations

from agent.clock import ClockWatch, kernel_sync


def test_kernel_sync_reads_adjtimex() -> None:
    facts = kernel_sync()
    # This machine's kernel answers adjtimex: a real boolean and an error estimate.
    assert isinstance(facts["sync"], bool)
    assert facts["est_err_ms"] >= 0


def test_steps_back_and_forward_are_counted() -> None:
    wall = [1_700_000_000.0]
    mono = [100.0]
    watch = ClockWatch(lambda: wall[0], lambda: mono[0], lambda: {"sync": True})
    mono[0] += 30
    wall[0] += 30.2  # drift, not a step
    assert watch.facts() == {"sync": True, "steps": 0}
    mono[0] += 30
    wall[0] -= 3600  # NTP steps the clock back an hour
    facts = watch.facts()
    assert facts["steps"] == 1
    assert facts["last_step_s"] == -3630.0
    mono[0] += 30
    wall[0] += 86_400 + 30  # and forward a day
    assert watch.facts()["steps"] == 2
    assert watch.check() == 0.0
