"""Secrets never reach disk: every file under `.conductor/` (state.db included, as raw
bytes), the execution log, the export and the commit messages, for each form of a secret:
a multi-line value line by line and whole, one straddling the 64 KiB line cut, one in a
`conductor progress` message, one in a failing hook's output, one only listed in
`secrets:`. A value too short to mask is refused before the run starts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conductor.exec.output import Lines, Sink
from conductor.spec.secrets import Secrets
from tests.testing.repos import git
from tests.testing.runner import cli, db_rows, latest_run, write_workflow

PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
    "kQ2ZWxsb3dvcmxkc2VjcmV0a2V5bWF0\n"
    "-----END PRIVATE KEY-----"
)
LONG = "long-line-secret-7c1d9e"
PROGRESS = "progress-secret-4b8a2f"
HOOK = "hook-output-secret-9d3e"
LISTED = "listed-only-secret-5e6f"

WORKFLOW = """
version: 1
name: t
on:
  task_completed: [bash, -c, 'echo "hook saw $HOOK_SECRET"; exit 3']
tasks:
  PEM:
    run: 'printf "%s\\n" "$KEY"; echo "inline: $KEY"'
    env: {KEY: "${PEM_KEY}"}
  CUT:
    run: 'head -c 65530 /dev/zero | tr "\\0" x; printf "%s" "$TOK"'
    env: {TOK: "${LONG_SECRET}"}
  PROG:
    run: 'conductor progress 50 "deploying with $P"; sleep 2'
    env: {P: "${PROGRESS_SECRET}", H: "${HOOK_SECRET}"}
"""


def _leaks(repo: Path, proc: subprocess.CompletedProcess[str], forms: list[str]) -> list[str]:
    """Where each form of a secret is found: every file under `.conductor/` as raw bytes
    (state.db and its WAL included; the execution log is there too), the JSON export, the
    commit messages of every ref, and what the run printed."""
    export = cli(repo, "export", latest_run(repo), "--format", "json")
    assert export.returncode == 0, export.stderr
    places = {str(f): f.read_bytes() for f in (repo / ".conductor").rglob("*") if f.is_file()}
    assert any(k.endswith("EXECUTION_LOG.md") for k in places)
    places["export"] = export.stdout.encode()
    places["git log"] = git(repo, "log", "--all", "--format=%B").encode()
    places["terminal"] = (proc.stdout + proc.stderr).encode()
    return [f"{form!r} in {where}" for form in forms for where, data in places.items()
            if form.encode() in data]  # fmt: skip


def _logs(repo: Path) -> bytes:
    return b"".join(f.read_bytes() for f in (repo / ".conductor").rglob("*.log"))


def test_no_form_of_a_secret_reaches_disk_exports_or_commits(repo: Path) -> None:
    write_workflow(repo, WORKFLOW)
    env = {"PEM_KEY": PEM, "LONG_SECRET": LONG, "PROGRESS_SECRET": PROGRESS,
           "HOOK_SECRET": HOOK}  # fmt: skip
    proc = cli(repo, "run", "wf.yaml", "--verbose", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    logs = _logs(repo)  # the run did print what the secrets were hidden in
    assert b"inline: ***" in logs and b"hook saw ***" in logs and b"xxx***" in logs
    # the progress message was recorded, masked (status drops it once the task is done)
    steps = db_rows(repo, "SELECT data FROM events WHERE kind = 'task_progress'")
    assert any("deploying with ***" in row["data"] for row in steps)
    assert _leaks(repo, proc, [PEM, *PEM.split("\n"), LONG, PROGRESS, HOOK]) == []


def test_a_variable_listed_in_secrets_is_masked_though_unreferenced(repo: Path) -> None:
    write_workflow(
        repo,
        """
        version: 1
        name: t
        secrets: [LISTED_SECRET]
        tasks:
          S: {run: 'echo "listed: $LISTED_SECRET"'}
        """,
    )
    proc = cli(repo, "run", "wf.yaml", "--verbose", env={"LISTED_SECRET": LISTED})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert b"listed: ***" in _logs(repo)
    assert _leaks(repo, proc, [LISTED]) == []


def test_a_secret_too_short_to_mask_is_refused_before_the_run(repo: Path) -> None:
    write_workflow(
        repo,
        """
        version: 1
        name: t
        secrets: [SHORT_TOO]
        tasks:
          S: {run: "true", env: {TOKEN: "${SHORT_ONE}"}}
        """,
    )
    proc = cli(repo, "run", "wf.yaml", env={"SHORT_ONE": "dev", "SHORT_TOO": "yes"})
    assert proc.returncode == 2
    assert "SHORT_ONE" in proc.stderr and "SHORT_TOO" in proc.stderr
    assert "too short" in proc.stderr and "Traceback" not in proc.stderr
    assert not (repo / ".conductor" / "state.db").exists()


def test_masking_forms_and_the_line_cut() -> None:
    secrets = Secrets({"K": PEM, "T": LONG})
    assert secrets.redact(f"a {PEM} b") == "a *** b"
    assert all(secrets.redact(line) == "***" for line in PEM.split("\n"))
    for filler in (65530, 65536 - len(LONG) // 2, 65536 - len(LONG), 65536, 2 * 65536 - 3):
        out: list[str] = []
        sink, lines = Sink(None, out.append, secrets.redact), Lines()
        data = b"x" * filler + LONG.encode() + b"y" * 10
        for i in range(0, len(data), 4096):
            sink.emit(lines.feed(data[i : i + 4096]))
        sink.emit(lines.flush())
        sink.close()
        text = "".join(out)
        assert LONG[:6] not in text and LONG[-6:] not in text, filler
        assert text == "x" * filler + "***" + "y" * 10


def test_an_agent_error_quoting_a_secret_is_stored_masked(repo: Path) -> None:
    from conductor.exec.base import Request
    from conductor.exec.fake import Reply
    from tests.testing.engine import start, task, workflow

    def crash(request: Request) -> Reply:
        return Reply(exit_code=1, error=f"crashed while using {LONG}")

    wf = workflow(repo, task("A", env={"TOK": "${LONG_SECRET}"}))
    with start(wf, crash, environ={**os.environ, "LONG_SECRET": LONG}) as h:
        h.drive()
        rows = [*h.store.tasks(h.run_id), *h.store.attempts(h.run_id)]
    errors = [str(r["error"]) for r in rows]
    assert errors and all(LONG not in e for e in errors)
    assert any("crashed while using ***" in e for e in errors), errors
