"""`conductor init`: a workflow to start from, for the repository at hand.

A starter workflow (ops/initwf.py), or one made from a markdown checklist
(``--from PLAN.md``, ops/planmd.py), with the schema comment that gives editors
completion; the agent profiles are the agent CLIs found on PATH. `.conductor/` is
listed in the repository's `info/exclude` and holds the schema the comment points at.

Everything is checked before anything is written: outside a git repository, with the
target already there (without ``force``), or with a checklist it cannot read, `init`
says what and where and writes nothing. The text it would write is loaded by the real
loader first, so what it writes always validates.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from conductor.errors import ConductorError, SpecError, UserError
from conductor.git.workspace import Workspace
from conductor.ops.initwf import AGENT_CLIS, from_plan, starter
from conductor.ops.planmd import Plan, read_plan, slug
from conductor.report.log import write_atomic

SCHEMA_NAME = "workflow.schema.json"


@dataclass
class Initialized:
    path: Path  # the workflow written
    name: str
    tasks: int
    found: list[str]  # agent CLIs on PATH
    done: list[str] = field(default_factory=list)  # checked items left out of a plan


def agent_clis(environ: Mapping[str, str]) -> list[str]:
    """The agent CLIs on PATH (claude, codex, gemini, aider), in that order."""
    path = environ.get("PATH", os.defpath)
    return [cli for cli, _, _ in AGENT_CLIS if shutil.which(cli, path=path)]


def init(
    where: Path,
    target: str | None,
    plan_md: str | None,
    force: bool,
    environ: Mapping[str, str],
) -> Initialized:
    """Write the workflow (see the module's docstring); raises before writing anything."""
    ws = Workspace.discover(where)  # not a repository: a UserError, exit 2
    plan = _plan(plan_md) if plan_md else None
    name = _name(plan, plan_md, ws.root)
    path = Path(target).absolute() if target else ws.root / "workflows" / f"{name}.yaml"
    if path.exists() and not force:
        raise UserError(f"{_shown(path)} already exists: nothing was written",
                        hint="pass --force to overwrite it, or name another file")  # fmt: skip
    if path.is_dir():
        raise UserError(f"{_shown(path)} is a directory", hint="name a .yaml file")
    schema = os.path.relpath(ws.state_dir / SCHEMA_NAME, path.parent)
    found = agent_clis(environ)
    shown = _shown(path)
    if plan is None:
        text = starter(name, schema, shown, found)
    else:
        text = from_plan(plan, name, schema, plan_md or "", found)
    tasks = _validated(text, path.name)
    ws.ensure_state_dir()  # .conductor/, listed in info/exclude
    _write_schema(ws.state_dir / SCHEMA_NAME)
    write_atomic(path, text)
    done = sorted(plan.done) if plan else []
    return Initialized(path, name, tasks, found, done)


def _plan(plan_md: str) -> Plan:
    path = Path(plan_md)
    try:
        plan = read_plan(path, plan_md)
    except FileNotFoundError:
        raise UserError(f"no such file: {plan_md}") from None
    except UnicodeDecodeError:
        raise UserError(f"{plan_md} is not UTF-8 text", hint="save it as UTF-8") from None
    except OSError as exc:
        raise UserError(f"cannot read {plan_md}: {exc.strerror}") from None
    if plan.problems:
        raise SpecError(sorted(plan.problems, key=lambda d: (d.line or 0, d.col or 0)))
    return plan


def _name(plan: Plan | None, plan_md: str | None, root: Path) -> str:
    """The workflow's name: the checklist's title, else its file's name, else the
    repository's directory; always a valid name (and branch component)."""
    if plan is not None:
        text = plan.title.partition(":")[0] if plan.title else Path(plan_md or "plan").stem
    else:
        text = root.name
    return slug(text).replace(".", "-")


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies beneath it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _validated(text: str, name: str) -> int:
    """The number of tasks in ``text``, loaded by the real loader (a problem here is a
    bug of init's, not the user's: said as such)."""
    from conductor.spec.load import load_workflow

    with tempfile.TemporaryDirectory(prefix="conductor-init-") as tmp:
        probe = Path(tmp) / name
        probe.write_text(text, encoding="utf-8")
        try:
            return len(load_workflow(probe).tasks)
        except ConductorError as exc:
            raise UserError(f"init made a workflow that does not validate:\n{exc.render()}",
                            hint="please report this; nothing was written") from None


def _write_schema(target: Path) -> None:
    from conductor.spec.schema import schema_path

    write_atomic(target, schema_path().read_text(encoding="utf-8"))
