"""An agent log the disk stops taking (ENOSPC) is given up on, not raised out of the
executor: every line still reaches `on_line`, the pipe keeps being drained (a command
printing megabytes after the disk filled is not blocked), the loss is noted once in
conductor.log and, once there is room again, at the end of the log itself.

The full disk is a file object that refuses writes past a budget, injected where the
Sink opens its log; tests/run/test_store_faults.py fills a real tmpfs end to end."""

from __future__ import annotations

import errno
import io
import logging
from pathlib import Path
from typing import Any

import pytest

from conductor.exec import output
from conductor.exec.local import LocalExecutor
from conductor.exec.output import Lines, Sink
from tests.testing.requests import request


class _FullDisk(io.StringIO):
    """A log file on a disk with ``room`` characters left: then ENOSPC on write/flush."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room
        self.kept = ""

    def write(self, text: str) -> int:
        if self.room < len(text):
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(text)
        self.kept += text
        return len(text)


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> list[_FullDisk]:
    """Every log a Sink opens gets 200 characters of room; the opened files, in order."""
    opened: list[_FullDisk] = []
    real = open

    def fake_open(path: Any, mode: str = "r", **kw: Any) -> Any:
        if "a" not in mode:
            return real(path, mode, **kw)
        if opened:  # the note at close: the disk has room again
            return real(path, mode, **kw)
        opened.append(_FullDisk(200))
        return opened[-1]

    monkeypatch.setattr(output, "open", fake_open, raising=False)
    return opened


def test_a_full_disk_stops_the_log_not_the_lines(
    tmp_path: Path, full_disk: list[_FullDisk], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    log = tmp_path / "agent.log"
    sink, lines = Sink(log, seen.append, None), Lines()
    caplog.set_level(logging.WARNING, logger="conductor")
    for i in range(100):
        sink.emit(lines.feed(f"line {i}\n".encode()))
    sink.note("# conductor: a note after the disk filled")
    sink.close()
    assert seen == [f"line {i}" for i in range(100)]  # every line still handed on
    assert isinstance(sink.fault, OSError) and sink.fault.errno == errno.ENOSPC
    assert full_disk[0].kept.startswith("line 0\n")  # what fitted was written
    notes = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(notes) == 1 and str(log) in notes[0] and "No space left" in notes[0]
    # the disk had room again at close: the gap is explained in the log itself
    assert "output after this is not logged" in log.read_text()


def test_the_executor_drains_a_chatty_command_after_the_disk_filled(
    tmp_path: Path, full_disk: list[_FullDisk]
) -> None:
    count: list[int] = [0]

    def on_line(_line: str) -> None:
        count[0] += 1

    script = "for i in $(seq 1 40000); do echo \"line $i of output after the disk filled\"; done"
    req = request(["bash", "-c", script], tmp_path, log_path=tmp_path / "task.log",
                  on_line=on_line, timeout_s=60)  # fmt: skip
    result = LocalExecutor(grace_s=0.3).run(req)  # ~1.5 MB: blocks if the pipe is not read
    assert (result.reason, result.exit_code) == ("exited", 0), result
    assert count[0] == 40000
    assert "output after this is not logged" in (tmp_path / "task.log").read_text()
