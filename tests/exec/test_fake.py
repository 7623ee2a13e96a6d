"""The fake executor: what the engine's tests stand on must behave like a real executor."""

from __future__ import annotations

import threading
from pathlib import Path

from conductor.exec.base import Limits, Request
from conductor.exec.fake import FakeExecutor, Reply


def _request(tmp: Path, **kw: object) -> Request:
    return Request(["bash", "-c", "make"], cwd=tmp, env={"CONDUCTOR_TASK_ID": "T"},
                   log_path=tmp / "t.log", limits=Limits(timeout_s=5), **kw)  # type: ignore[arg-type]  # fmt: skip


def test_a_reply_writes_files_prints_masked_lines_and_logs_like_a_real_run(tmp_path: Path) -> None:
    lines: list[str] = []

    def handler(req: Request) -> Reply:
        return Reply(exit_code=3, output=["key s3cret", "done"], files={"a/b.txt": "hi\n"})

    ex = FakeExecutor(handler)
    res = ex.run(_request(tmp_path, on_line=lines.append, redact=lambda s: s.replace("s3cret", "*")))
    assert (res.reason, res.exit_code, res.ok) == ("exited", 3, False)
    assert (tmp_path / "a" / "b.txt").read_text() == "hi\n"
    assert lines == ["key *", "done"]
    log = (tmp_path / "t.log").read_text().splitlines()
    assert log[0].startswith("# conductor: started") and log[1:3] == ["key *", "done"]
    assert log[-1].startswith("# conductor: exited, exit code 3")
    assert ex.argvs() == [["bash", "-c", "make"]]


def test_an_int_or_none_is_an_exit_code_and_the_default_succeeds(tmp_path: Path) -> None:
    assert FakeExecutor().run(_request(tmp_path)).ok
    assert FakeExecutor(lambda r: None).run(_request(tmp_path)).ok
    assert FakeExecutor(lambda r: 7).run(_request(tmp_path)).exit_code == 7
    timeout = FakeExecutor(lambda r: Reply(reason="timeout", error="timed out after 5s"))
    res = timeout.run(_request(tmp_path))
    assert (res.reason, res.exit_code, res.error) == ("timeout", None, "timed out after 5s")


def test_a_request_cancelled_before_start_never_reaches_the_handler(tmp_path: Path) -> None:
    called: list[Request] = []
    cancel = threading.Event()
    cancel.set()
    res = FakeExecutor(lambda r: called.append(r)).run(_request(tmp_path, cancel=cancel))
    assert (res.reason, res.error) == ("cancelled", "cancelled before start") and not called
