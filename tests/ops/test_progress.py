"""`conductor progress` outside the happy path (issue 11): every failure is one message and
a non-zero exit, never a traceback; the spool it writes inside an attempt, read safely by
the runner; and the absolute `$CONDUCTOR_BIN` that works where PATH does not."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conductor.run import progress
from conductor.state.spool import spool_dir, take_reports, write_report
from conductor.state.store import open_store
from tests.testing.runner import conductor_argv

IDS = {"CONDUCTOR_RUN_ID": "r1", "CONDUCTOR_TASK_ID": "T"}


def progress_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    return subprocess.run([*conductor_argv(), "progress", *args], env={**base, **env},
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def one_message(proc: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ") and words in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2  # the message, maybe its hint


def test_outside_a_task_it_says_so(tmp_path: Path) -> None:
    one_message(progress_cli({}, "50", "x"), 2, "not inside a conductor task")
    one_message(progress_cli({"CONDUCTOR_RUN_ID": "r1"}, "50"), 2, "CONDUCTOR_TASK_ID")
    one_message(progress_cli({**IDS, "CONDUCTOR_PROGRESS_DIR": str(tmp_path)}, "150"), 2,
                "between 0 and 100")  # fmt: skip


def test_a_state_dir_without_a_store_is_not_given_one(tmp_path: Path) -> None:
    proc = progress_cli({**IDS, "CONDUCTOR_STATE_DIR": str(tmp_path)}, "50", "x")
    one_message(proc, 2, "no conductor state in")
    assert list(tmp_path.iterdir()) == []


def test_a_broken_store_is_one_message(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"not a database, not at all" * 100)
    proc = progress_cli({**IDS, "CONDUCTOR_STATE_DIR": str(tmp_path)}, "50", "x")
    one_message(proc, 2, "is not a conductor state database")


def test_an_unwritable_spool_falls_back_to_the_store_or_says_why(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        store.create_run("r1", "wf.yaml", "wf", "conductor/wf", {}, [("T", None, "sh", "running", "h")])
    blocked = {**IDS, "CONDUCTOR_PROGRESS_DIR": "/dev/null/spool"}  # not a directory, even for root
    one_message(progress_cli(blocked, "50", "x"), 1, "cannot leave the progress report in")
    proc = progress_cli({**blocked, "CONDUCTOR_STATE_DIR": str(tmp_path)}, "40", "stored")
    assert proc.returncode == 0, proc.stderr
    with open_store(tmp_path) as store:
        task = store.task("r1", "T")
        assert task is not None and (task["progress"], task["step"]) == (40, "stored")


def test_inside_an_attempt_the_report_goes_to_the_spool_not_the_store(tmp_path: Path) -> None:
    spool = spool_dir(tmp_path / "wt")
    env = {**IDS, "CONDUCTOR_PROGRESS_DIR": str(spool), "CONDUCTOR_STATE_DIR": "/nonexistent"}
    assert progress_cli(env, "25", "half way").returncode == 0
    assert progress_cli(env, "50").returncode == 0
    assert take_reports(tmp_path / "wt") == [(25.0, "half way"), (50.0, None)]
    assert take_reports(tmp_path / "wt") == []  # taken once


def test_the_runner_reads_the_spool_without_following_links(tmp_path: Path) -> None:
    wt, elsewhere = tmp_path / "wt", tmp_path / "elsewhere"
    spool = spool_dir(wt)
    write_report(spool, 10, "ok")
    (spool / "junk.json").write_text("{not json")
    (spool / "big.json").write_text('{"percent": 5, "message": "' + "x" * 70000 + '"}')
    (spool / "range.json").write_text('{"percent": 101, "message": "too far"}')
    (spool / ".half.tmp").write_text("{")
    elsewhere.mkdir()
    (elsewhere / "secret.json").write_text('{"percent": 1, "message": "outside"}')
    (spool / "link.json").symlink_to(elsewhere / "secret.json")
    assert take_reports(wt) == [(10.0, "ok")]
    assert sorted(p.name for p in spool.iterdir()) == [".half.tmp"]  # bad ones removed too
    assert take_reports(wt, final=True) == [] and not (wt / ".conductor").exists()
    assert (elsewhere / "secret.json").exists()
    # a spool that is itself a link is no spool: nothing is read or removed there
    (wt / ".conductor").mkdir(parents=True)
    (wt / ".conductor" / "progress").symlink_to(elsewhere)
    assert take_reports(wt, final=True) == [] and (elsewhere / "secret.json").exists()


def test_conductor_bin_runs_conductor_with_a_reset_path(tmp_path: Path) -> None:
    exe = progress.conductor_bin(tmp_path)
    assert Path(exe).is_absolute()
    proc = subprocess.run([exe, "--version"], env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("conductor "), proc.stderr


def test_without_a_console_script_a_wrapper_in_the_state_dir_stands_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lone = tmp_path / "python-bin"
    lone.mkdir()
    (lone / "python3").symlink_to(sys.executable)  # no `conductor` beside this interpreter
    monkeypatch.setattr(sys, "executable", str(lone / "python3"))
    monkeypatch.setattr(sys, "argv", ["/somewhere/conductor/__main__.py"])
    exe = progress.conductor_bin(tmp_path / ".conductor")
    assert exe == str(tmp_path / ".conductor" / "bin" / "conductor")
    # the link is not the virtualenv's interpreter: it is told where the dependencies are
    deps = sysconfig.get_paths()["purelib"]
    proc = subprocess.run([exe, "--version"], env={"PATH": "/usr/bin:/bin", "PYTHONPATH": deps},
                          cwd="/", capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("conductor "), proc.stderr
    assert progress.conductor_bin(tmp_path / ".conductor") == exe  # the same file again
