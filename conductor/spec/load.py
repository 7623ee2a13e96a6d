"""Workflow file → validated :class:`conductor.spec.model.Workflow`.

Three passes, all problems of all passes reported together: YAML (``yamlsrc``), the JSON
schema (``schema``), then the semantic checks (``checks``: references, cycles, task bodies,
git names). The model is built (``build``) only from a file that passed all three.
"""

from __future__ import annotations

from pathlib import Path

from conductor.errors import Diagnostic, SpecError, UserError
from conductor.spec.build import _build
from conductor.spec.checks import _Checker
from conductor.spec.model import Workflow
from conductor.spec.refs import reference_problems
from conductor.spec.violations import MAX_PROBLEMS, schema_problems
from conductor.spec.yamlsrc import Source, gc_paused, load_source


def load_workflow(path: Path) -> Workflow:
    """Load, validate and build the workflow at ``path``.

    Raises UserError for an unreadable file and SpecError with every problem found.
    """
    with gc_paused():  # the model is as allocation-heavy as the parse
        source = load_source(path)
        problems = _all_problems(source, path)
        if problems:
            raise SpecError(problems)
        wf = _build(source, path)
        # what tasks read of each other needs the expanded graph: checked on the model
        problems = reference_problems(source, wf, path)[:MAX_PROBLEMS]
        if problems:
            raise SpecError(problems)
        return wf


def spec_problems(path: Path) -> list[Diagnostic]:
    """Every problem in the workflow at ``path`` (empty when it is valid)."""
    try:
        load_workflow(path)
    except SpecError as exc:
        return list(exc.diagnostics)
    except UserError as exc:
        return [Diagnostic(str(exc), str(path), hint=exc.hint)]
    return []


def _all_problems(source: Source, path: Path) -> list[Diagnostic]:
    found = dict.fromkeys([*source.problems, *schema_problems(source),
                           *_Checker(source, path).run()])  # fmt: skip
    return sorted(found, key=lambda d: (d.line or 0, d.col or 0))[:MAX_PROBLEMS]
