"""Git processes per task, counted by a `git` on PATH that logs each start: what each
attempt changed is read off its own add and commit (no `diff-tree` after them), and what
upstream produced is read from the store (no `diff-tree` per dependency edge), and a merge
moves the integration branch without an `update-ref`."""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import pytest

from tests.testing.engine import start, task, workflow, writes

# options that take a value: the subcommand is the first word after them
_VALUED = {"-c", "-C", "--git-dir", "--work-tree"}


def shim(bin_dir: Path, log: Path) -> None:
    """A `git` that writes its arguments (one line, unit-separated) and runs the real one."""
    real = shutil.which("git")
    assert real is not None
    bin_dir.mkdir()
    script = bin_dir / "git"
    script.write_text(
        "#!/bin/sh\n"
        f"( IFS=$(printf '\\037'); printf '%s\\n' \"$*\" ) >> '{log}'\n"
        f'exec \'{real}\' "$@"\n'
    )
    script.chmod(0o755)


def subcommands(log: Path) -> collections.Counter[str]:
    found: collections.Counter[str] = collections.Counter()
    for line in log.read_text().splitlines():
        words = iter(line.split("\x1f"))
        for word in words:
            if word in _VALUED:
                next(words, None)
            elif not word.startswith("-"):
                found[word] += 1
                break
    return found


def test_no_diff_tree_per_task_or_per_edge(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "git.log"
    shim(tmp_path / "shim", log)
    # a DAG of no-op tasks (and two that write) with two dependencies each
    tasks = [task("T0"), task("T1", after=["T0"])]
    tasks += [task(f"T{i}", after=[f"T{i - 1}", f"T{i - 2}"]) for i in range(2, 10)]
    files = {"T3": {"three.txt": "3\n"}, "T6": {"six/six.txt": "6\n", "three.txt": "33\n"}}
    with start(workflow(repo, *tasks), writes(files)) as h:
        monkeypatch.setenv("PATH", f"{tmp_path / 'shim'}:{h.environ['PATH']}")
        log.write_text("")
        result = h.drive()
        assert result.state == "succeeded", result.states()
        rows = {a["task_id"]: a for a in h.store.attempts(h.run_id)}
    used = subcommands(log)
    assert used["add"] == used["commit"] == len(tasks)  # the calls made anyway
    assert used["diff-tree"] == 0, used
    # merges move the branch by hand (looseref.py): only the end's tidy runs update-ref
    assert used["update-ref"] <= 2, used
    assert (rows["T6"]["files_changed"], rows["T6"]["insertions"]) == (2, 2)
    assert rows["T6"]["changed_files"] == '["six/six.txt", "three.txt"]'
