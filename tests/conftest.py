"""Shared fixtures: real git repositories in temp dirs, isolated from the user's git config."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conductor.exec import sweep
from tests.testing.repos import make_repo

_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


@pytest.fixture(autouse=True)
def _isolate_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No global config, hooks or templates of the machine leak into a test repo."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_TEMPLATE_DIR", "")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test User")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test User")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.com")
    monkeypatch.setenv("CONDUCTOR_RETRY_BACKOFF", "0.05")  # retries without the real waits
    for var in ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE", "NO_COLOR", "CONDUCTOR_RUN_ID"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def _no_subreaper_after() -> Iterator[None]:
    """A test that drives a run in this process makes it the child subreaper, as a runner
    is (conductor/run/start.py): undone after it, so every test starts in a process whose
    orphans go to init. Tests depend on it (tests/exec/test_executors.py waits for init to
    reap a killed group), and under `pytest -n` any test may follow an engine test."""
    yield
    if sweep._subreaper:
        sweep.reap_orphans()  # what came here meanwhile, before it stops coming
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        sweep._subreaper = False


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    yield make_repo(tmp_path / "repo")


# `pytest -n` (pyproject's addopts) spreads tests over workers one by one, except these:
# each prefix's tests go to one worker together, so what they share is built once, as in
# a serial run. The Ray cluster (tests/remote/conftest.py) would be too heavy once per
# worker; the files' module fixtures are each a whole run. (pytest-xdist's own
# `xdist_group` mark is not used: it relies on renaming test ids, which pytest 9 ignores.)
SHARED = (
    "tests/remote/",
    "tests/web/test_metrics.py::",
    "tests/report/test_pool_views.py::",
    "tests/report/test_gates_shown.py::",
    "tests/cli/test_views_golden.py::",
    "tests/cli/test_help.py::",
    "tests/run/test_spend_sums.py::",
)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, called only when it is used
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None  # another --dist asked for by name: xdist's own
    from xdist.scheduler import LoadScopeScheduling

    class Shared(LoadScopeScheduling):  # type: ignore[misc]
        """One work unit per test, or per SHARED prefix; the largest units go out first."""

        def _split_scope(self, nodeid: str) -> str:
            return next((p for p in SHARED if nodeid.startswith(p)), nodeid)

    return Shared(config, log)


os.environ.setdefault("COLUMNS", "120")
