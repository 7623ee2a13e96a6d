"""Checks of what tasks say about each other, on the built workflow: `{{ tasks.<id>.… }}`
placeholders (in title, prompt, the prompt file's text, run and env values), and through
whenrefs.py `when:` conditions and `trigger:` rules.

A task may only read tasks upstream of it (it depends on them, directly or through other
tasks and groups): only they have settled when it starts. A key another task declares it
does not write (``output_keys``) is a typo. These checks need the expanded task graph, so
they run once the model is built; each problem points at the placeholder itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conductor.errors import Diagnostic
from conductor.spec.model import Task, Workflow
from conductor.spec.scalars import offset_position, position_in_text
from conductor.spec.suggest import did_you_mean
from conductor.spec.template import _PLACEHOLDER, Ref, TemplateError, placeholders
from conductor.spec.yamlsrc import JsonPath, Source, dotted

Problem = tuple[str, str | None]  # a message and a hint


class RefChecker:
    """Collects located problems; ``problem`` is how other checks (conditions) add theirs."""

    def __init__(self, source: Source, wf: Workflow, path: Path) -> None:
        self.src, self.wf, self.path = source, wf, path
        self.out: dict[Diagnostic, None] = {}  # an ordered set: expansions repeat problems
        self._text: str | None = None
        self._upstream: dict[tuple[str, str], bool] = {}
        self.templates = {t.template for t in wf.tasks.values() if t.template}

    def run(self) -> list[Diagnostic]:
        for task in self.wf.tasks.values():
            self.check_task(task)
        # in file order: the workflow's own problems first, then those in prompt files
        return sorted(self.out, key=lambda d: (d.path != self.src.path, d.line or 0, d.col or 0))

    # -- where -------------------------------------------------------------------------

    def file_text(self) -> str:
        if self._text is None:
            try:
                self._text = self.path.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError):
                self._text = ""
        return self._text

    def position(self, path: JsonPath, offset: int | None, needle: str = "") -> tuple[int, int]:
        """Where ``offset`` into the string at ``path`` is (or ``needle``, found in the
        value as written: an expansion's text has its matrix values filled in)."""
        start = self.src.where(path)
        value: Any = self.src.data
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, str):
            return start
        if needle:
            offset = value.find(needle)
        if offset is None or offset < 0:
            return start
        return offset_position(self.file_text(), start, value, offset)

    def problem(self, path: JsonPath, where: tuple[int, int], message: str,
                hint: str | None = None) -> None:  # fmt: skip
        self.out[Diagnostic(f"{dotted(path)}: {message}", self.src.path, *where, hint)] = None

    # -- tasks ---------------------------------------------------------------------------

    def is_upstream(self, other: str, tid: str) -> bool:
        """Whether ``tid`` depends on ``other``, directly or not. A search that stops when
        it finds it: references name near ancestors, and a chain of 1,000 tasks must not
        cost a closure per task."""
        key = (other, tid)
        found = self._upstream.get(key)
        if found is None:
            seen: set[str] = set()
            todo = list(self.wf.tasks[tid].deps)
            while todo and other not in seen:
                dep = todo.pop()
                if dep not in seen and dep in self.wf.tasks:
                    seen.add(dep)
                    todo.extend(self.wf.tasks[dep].deps)
            found = self._upstream[key] = other in seen
        return found

    def task_ref_problem(self, task: Task, ref: Ref) -> Problem | None:
        """What is wrong with ``task`` reading ``tasks.<id>…``, with a hint; None if fine."""
        other = self.wf.tasks.get(ref.name)
        if other is None:
            if ref.name in self.templates:
                some = next(t.id for t in self.wf.tasks.values() if t.template == ref.name)
                return (f"`{ref.name}` is a matrix task: name one of its expansions",
                        f"e.g. `tasks.{some}`")  # fmt: skip
            message = f"task {task.id} reads {_what(ref)} of unknown task `{ref.name}`"
            return message, did_you_mean(ref.name, self.wf.tasks)
        if other.id == task.id:
            return f"task {task.id} cannot read its own {_what(ref)}", None
        if not self.is_upstream(other.id, task.id):
            return (f"task {task.id} reads {_what(ref)} of task {other.id}, which is not "
                    f"upstream of {task.id}",
                    f"add `{other.id}` to `depends_on` of {task.id} (or of a task it depends "
                    "on): only tasks that settled before it starts can be read")  # fmt: skip
        if ref.key is not None and other.output_keys and ref.key not in other.output_keys:
            declared = ", ".join(f"`{k}`" for k in other.output_keys)
            return (f"task {task.id} reads output `{ref.key}` of task {other.id}, which "
                    "does not declare it",
                    did_you_mean(ref.key, other.output_keys)
                    or f"its `output_keys`: {declared}")  # fmt: skip
        return None

    def check_task(self, task: Task) -> None:
        base: JsonPath = ("tasks", task.template or task.id)
        fields = [("title", task.title), ("prompt", task.prompt), ("run", task.run)]
        for key, text in fields:
            if text and "{{" in text:
                self.check_text(task, (*base, key), text)
        for name, value in task.env.items():
            if "{{" in value:
                self.check_text(task, (*base, "env", name), value)
        if task.prompt_file:
            self.check_prompt_file(task, (*base, "prompt_file"))
        if task.when or task.trigger != "all_success":
            from conductor.spec.whenrefs import check_conditions, check_trigger

            check_conditions(self, task)
            check_trigger(self, task)

    def check_text(self, task: Task, path: JsonPath, text: str) -> None:
        for ph, problem in self._placeholder_problems(task, text):
            where = self.position(path, None, text[ph[0] : ph[1]])
            self.problem(path, where, *problem)

    def check_prompt_file(self, task: Task, path: JsonPath) -> None:
        file = self.wf.source_dir / str(task.prompt_file)
        try:
            body = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return  # the semantic checks said so
        shown = str(Path(self.src.path).parent / str(task.prompt_file))
        for (start, _end), (message, hint) in self._placeholder_problems(task, body):
            line, col = position_in_text(body, start)
            text = f"{dotted(path)} `{task.prompt_file}`: {message}"
            self.out[Diagnostic(text, shown, line, col, hint)] = None

    def _placeholder_problems(self, task: Task, text: str) -> list[tuple[tuple[int, int], Problem]]:
        """(span, (message, hint)) per `{{ tasks.… }}` this task may not read. Malformed
        placeholders of a plain task are reported here (fan-out tasks: by matrixchecks)."""
        out: list[tuple[tuple[int, int], Problem]] = []
        for m in _PLACEHOLDER.finditer(text):
            try:
                ref = next(iter(placeholders(m.group(0))), None)
            except TemplateError as exc:
                if task.template is None and not m.group(1).startswith("matrix."):
                    out.append((m.span(), (str(exc), None)))
                continue
            if ref is not None and ref.ref.root == "tasks":
                problem = self.task_ref_problem(task, ref.ref)
                if problem is not None:
                    out.append((m.span(), problem))
        return out


def _what(ref: Ref) -> str:
    return f"output `{ref.key}`" if ref.key is not None else "the state"


def reference_problems(source: Source, wf: Workflow, path: Path) -> list[Diagnostic]:
    """Every problem with what the tasks of ``wf`` read of each other."""
    return RefChecker(source, wf, path).run()
