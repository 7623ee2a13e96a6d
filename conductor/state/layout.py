"""The `.conductor/` directory: the one place that knows where each file of it lives.

```
<repo>/.conductor/
  state.db                          the store (SQLite, WAL)
  conductor.log                     the runner's rotating debug log
  bin/conductor                     runs this conductor, where no console script does
  runs/<run>/runner.lock            held by the process driving the run
  runs/<run>/runner.log             a detached runner's stdout and stderr
  runs/<run>/EXECUTION_LOG.md       the execution log, unless the workflow names another
  runs/<run>/logs/<task>-<n>.log    what an attempt printed
  runs/<run>/prompts/<task>-<n>.md  the instructions an attempt was given
  runs/<run>/outputs/<task>-<n>     its $CONDUCTOR_OUTPUT (read, masked into the store, removed)
  worktrees/<run>/<task>-<n>        an attempt's worktree
  worktrees/<run>/gate-<group>      a group gate's throwaway checkout
```

``<task>`` is the task id made safe for a file name: ``T5[module=auth]`` is
``T5-module-auth`` (``names.task_component``, the same name its branches use).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conductor.spec.names import task_component

STATE_DIR_NAME = ".conductor"
DB_NAME = "state.db"
DEBUG_LOG_NAME = "conductor.log"
GATE_PREFIX = "gate-"


@dataclass(frozen=True)
class Layout:
    """Paths under one repository's state directory (``<root>/.conductor``)."""

    state_dir: Path

    @classmethod
    def of_repo(cls, root: Path) -> Layout:
        return cls(Path(root) / STATE_DIR_NAME)

    @property
    def repo_root(self) -> Path:
        return self.state_dir.parent

    @property
    def db(self) -> Path:
        return self.state_dir / DB_NAME

    @property
    def debug_log(self) -> Path:
        return self.state_dir / DEBUG_LOG_NAME

    @property
    def conductor_wrapper(self) -> Path:
        return self.state_dir / "bin" / "conductor"

    @property
    def worktrees_home(self) -> Path:
        return self.state_dir / "worktrees"

    def run_dir(self, run_id: str) -> Path:
        return self.state_dir / "runs" / run_id

    def runner_lock(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "runner.lock"

    def runner_log(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "runner.log"

    def execution_log(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "EXECUTION_LOG.md"

    def attempt_log(self, run_id: str, task_id: str, n: int) -> Path:
        return self.run_dir(run_id) / "logs" / f"{task_component(task_id)}-{n}.log"

    def prompt_file(self, run_id: str, task_id: str, n: int) -> Path:
        return self.run_dir(run_id) / "prompts" / f"{task_component(task_id)}-{n}.md"

    def worktrees_dir(self, run_id: str) -> Path:
        return self.worktrees_home / run_id

    def attempt_worktree(self, run_id: str, task_id: str, n: int) -> Path:
        return self.worktrees_dir(run_id) / f"{task_component(task_id)}-{n}"

    def gate_worktree(self, run_id: str, group: str) -> Path:
        return self.worktrees_dir(run_id) / f"{GATE_PREFIX}{group}"


def of_db(db: Path) -> Layout:
    """The layout a store file belongs to (``<root>/.conductor/state.db``)."""
    return Layout(Path(db).parent)


def find_state_db(start: Path) -> Path | None:
    """The nearest `.conductor/state.db` at or above ``start``.

    Task worktrees live under `.conductor/worktrees/`, so walking up from inside one
    finds the main repository's store too.
    """
    here = start.resolve()
    for d in (here, *here.parents):
        db = d / STATE_DIR_NAME / DB_NAME
        if db.is_file():
            return db
    return None
