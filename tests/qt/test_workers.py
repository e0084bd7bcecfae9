"""WorkerSlot: one worker at a time; results of a replaced or cancelled worker never arrive."""

from __future__ import annotations

import threading
import time

from qtpy.QtWidgets import QWidget

from napari_promptseg._qt.workers import WorkerSlot

WAIT_MS = 10_000


def _job(value, gate: threading.Event | None = None):
    for _ in range(200):  # quit is honoured at a yield
        if gate is None or gate.is_set():
            break
        time.sleep(0.01)
        yield 0
    return value


def test_a_replaced_worker_reports_nothing(qtbot):
    slot, returned, finished = WorkerSlot(), [], []
    gate = threading.Event()
    first = slot.start(
        _job, "first", gate, returned=returned.append, finished=lambda: finished.append(1)
    )
    second = slot.start(
        _job, "second", returned=returned.append, finished=lambda: finished.append(2)
    )
    assert first.abort_requested and slot.worker is second
    qtbot.waitUntil(lambda: finished == [2], timeout=WAIT_MS)
    gate.set()
    qtbot.waitUntil(lambda: not first.is_running, timeout=WAIT_MS)
    qtbot.wait(50)
    assert returned == ["second"] and finished == [2]


def test_finished_frees_the_slot_before_its_callback(qtbot):
    slot, seen = WorkerSlot(), []
    slot.start(_job, 1, finished=lambda: seen.append(slot.running))
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    assert seen == [False] and not slot.running


def test_cancel_drops_everything_quit_keeps_listening(qtbot):
    slot, events = WorkerSlot(), []
    gate = threading.Event()
    worker = slot.start(
        _job,
        1,
        gate,
        aborted=lambda: events.append("aborted"),
        finished=lambda: events.append("finished"),
    )
    slot.quit()  # a user's Cancel: aborted and finished still report
    qtbot.waitUntil(lambda: "finished" in events, timeout=WAIT_MS)
    assert events == ["aborted", "finished"]

    events.clear()
    worker = slot.start(
        _job,
        2,
        gate,
        aborted=lambda: events.append("aborted"),
        finished=lambda: events.append("finished"),
    )
    slot.cancel()  # a closing panel: nothing more arrives
    assert not slot.running
    qtbot.waitUntil(lambda: not worker.is_running, timeout=WAIT_MS)
    qtbot.wait(50)
    assert events == []


def test_owner_deleted_cancels_the_worker(qtbot):
    owner = QWidget()
    slot, returned = WorkerSlot(owner), []
    gate = threading.Event()
    worker = slot.start(_job, 1, gate, returned=returned.append)
    owner.deleteLater()
    qtbot.waitUntil(lambda: not slot.running, timeout=WAIT_MS)
    gate.set()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=WAIT_MS)
    qtbot.wait(50)
    assert worker.abort_requested and returned == []


def test_unknown_signal_is_refused():
    import pytest

    with pytest.raises(TypeError, match="no signal"):
        WorkerSlot().start(_job, 1, done=print)
