"""`${VAR}` references in `env` values: resolution before a run, redaction everywhere after.

DESIGN §2: a variable referenced by a profile or task `env` is read from the environment
when the run starts; a missing one is an error before anything starts, and secret values
never reach logs, events or exports. `$${VAR}` is an escape for a literal `${VAR}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from conductor.errors import UserError
from conductor.spec.model import Workflow

# Group 1 is the escaping extra `$`; group 2 the variable name (POSIX shell rules).
_REF = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Shorter values are too likely to occur by chance ("yes", "develop") to be masked:
# masking them would garble every log, so a run refuses them (preflight) instead.
MIN_SECRET_LEN = 8
# What is masked at all: a run that was never preflighted with today's values (`resume`
# after the environment changed) still masks a short value, but never 1-3 characters
# (a line of a PEM such as "==" would mask every "==").
_MASK_FLOOR = 4
MASK = "***"


def refs_in(text: str) -> list[str]:
    """The variable names a value references, escaped references excluded."""
    return [m.group(2) for m in _REF.finditer(text) if not m.group(1)]


@dataclass(frozen=True)
class Secrets:
    """The values of every referenced variable, for expansion and for redaction."""

    values: dict[str, str] = field(default_factory=dict)

    def expand(self, text: str) -> str:
        """Replace each `${VAR}` with its value; unknown ones stay as written."""

        def sub(m: re.Match[str]) -> str:
            if m.group(1):  # `$${VAR}` is the literal text `${VAR}`
                return m.group(0)[1:]
            return self.values.get(m.group(2), m.group(0))

        return _REF.sub(sub, text) if "${" in text else text

    def redact(self, text: str) -> str:
        """Mask every secret value; called per output line, so one precompiled regex."""
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None else text

    @cached_property
    def forms(self) -> list[str]:
        """Every text to mask, longest first: each value whole and, for a multi-line value
        (a PEM key), each of its lines, since output reaches the sinks split into lines."""
        found: set[str] = set()
        for value in self.values.values():
            found.add(value)
            found.update(line.strip("\r") for line in value.split("\n"))
            # agents print JSON lines (stream-json): there a quote, backslash, newline or
            # non-ASCII character of the value is escaped, and the line is masked as printed
            found.update(json.dumps(value, ensure_ascii=a)[1:-1] for a in (True, False))
        return sorted((f for f in found if len(f) >= _MASK_FLOOR), key=len, reverse=True)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where the masked forms occur in ``text`` (start, end), as `redact` finds them."""
        pattern = self._pattern
        return [m.span() for m in pattern.finditer(text)] if pattern is not None else []

    @property
    def longest(self) -> int:
        """The length of the longest form: how much output a cut must hold back."""
        return len(self.forms[0]) if self.forms else 0

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        # cached_property writes the instance __dict__ directly, which a frozen
        # dataclass allows. Longest first so a secret containing another is masked whole.
        if not self.forms:
            return None
        return re.compile("|".join(re.escape(v) for v in self.forms))


def collect_refs(wf: Workflow) -> dict[str, list[str]]:
    """VAR -> every place it is referenced, e.g. ``agents.mine.env.MY_TOKEN``."""
    refs: dict[str, list[str]] = {}
    for name, profile in wf.agents.items():
        for key, value in profile.env.items():
            for var in refs_in(value):
                refs.setdefault(var, []).append(f"agents.{name}.env.{key}")
    for tid, task in wf.tasks.items():
        for key, value in task.env.items():
            for var in refs_in(value):
                refs.setdefault(var, []).append(f"tasks.{tid}.env.{key}")
    return refs


def resolve(wf: Workflow, environ: Mapping[str, str]) -> Secrets:
    """Read every referenced variable from ``environ``; all missing ones fail together.
    Variables the top-level `secrets:` lists are masked too, when set: the agent inherits
    them from the environment without the workflow naming them in `env`."""
    refs = collect_refs(wf)
    missing = [var for var in refs if var not in environ]
    if missing:
        lines = [f"  {var} (referenced by {', '.join(refs[var])})" for var in missing]
        noun = "variable" if len(missing) == 1 else "variables"
        raise UserError(
            f"{wf.path}: missing environment {noun}:\n" + "\n".join(lines),
            hint="export " + " ".join(f"{var}=..." for var in missing) + " before running",
        )
    listed = {var: environ[var] for var in wf.secrets if var in environ}
    return Secrets({**listed, **{var: environ[var] for var in refs}})


def short_values(wf: Workflow, environ: Mapping[str, str]) -> dict[str, int]:
    """VAR -> length, for each secret whose value is set but too short to mask."""
    names = set(collect_refs(wf)) | set(wf.secrets)
    return {
        v: len(environ[v]) for v in sorted(names) if 0 < len(environ.get(v, "")) < MIN_SECRET_LEN
    }
