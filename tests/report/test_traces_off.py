"""Traces cost nothing unless asked for: without the OTEL_* variables a real run never
imports OpenTelemetry and its tasks get no TRACEPARENT; asked for without the `otel`
extra, the run goes on untraced and says why once. (The traces themselves:
test_traces.py.)"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conductor.report.tracing import traceparent, wanted
from tests.testing.harness import fake_path
from tests.testing.repos import git
from tests.testing.runner import write_workflow

# Runs `conductor run` in this interpreter, then says which opentelemetry modules it loaded.
SCRIPT = """
import sys
if sys.argv[1] == "block":  # as if the otel extra were not installed
    sys.modules["opentelemetry"] = None
from conductor.cli import main
sys.argv = ["conductor", "run", "wf.yaml"]
try:
    main()
except SystemExit as exc:
    print("EXIT", exc.code, file=sys.stderr)
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry") and sys.modules[m])
print("LOADED", " ".join(loaded) or "-", file=sys.stderr)
print("TRACES", "conductor.report.traces" in sys.modules, file=sys.stderr)
"""


def run_in_subprocess(repo: Path, mode: str, **env: str) -> tuple[str, dict[str, str]]:
    """(stdout, {EXIT/LOADED/TRACES: value}) of a run in a fresh interpreter."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACEPARENT"))}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=repo, text=True,
                          capture_output=True, timeout=120,
                          env={**base, "PATH": fake_path(), **env})  # fmt: skip
    facts = dict(line.split(" ", 1) for line in proc.stderr.splitlines()
                 if line.startswith(("EXIT", "LOADED", "TRACES")))  # fmt: skip
    return proc.stdout, facts


@pytest.fixture
def seen_repo(repo: Path, tmp_path: Path) -> Path:
    write_workflow(repo, f"""
        version: 1
        name: t
        tasks:
          A: {{run: 'echo "[$TRACEPARENT]" > {tmp_path / "seen.txt"}'}}
    """)  # fmt: skip
    git(repo, "add", "wf.yaml")
    git(repo, "commit", "-qm", "workflow")
    return repo


def test_without_the_variables_a_run_imports_no_opentelemetry(
    seen_repo: Path, tmp_path: Path
) -> None:
    _out, facts = run_in_subprocess(seen_repo, "plain")
    assert facts == {"EXIT": "0", "LOADED": "-", "TRACES": "False"}
    assert (tmp_path / "seen.txt").read_text().strip() == "[]"  # no trace context either


@pytest.mark.skipif(importlib.util.find_spec("opentelemetry") is None,
                    reason="the otel extra is not installed")  # fmt: skip
def test_with_the_variables_it_does(seen_repo: Path, tmp_path: Path) -> None:
    """The other side of the test above: the check sees an import when there is one."""
    _out, facts = run_in_subprocess(seen_repo, "plain", OTEL_TRACES_EXPORTER="console")
    assert facts["EXIT"] == "0" and facts["TRACES"] == "True"
    assert "opentelemetry.sdk.trace" in facts["LOADED"].split()
    assert (tmp_path / "seen.txt").read_text().startswith("[00-")


def test_asked_for_without_the_extra_the_run_goes_on_and_says_why(
    seen_repo: Path, tmp_path: Path
) -> None:
    out, facts = run_in_subprocess(seen_repo, "block",
                                   OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")  # fmt: skip
    assert facts["EXIT"] == "0", out
    assert out.count("no traces are exported") == 1
    assert "pip install 'conductor-dag[otel]'" in out
    assert (tmp_path / "seen.txt").read_text().strip() == "[]"


@pytest.mark.parametrize(("env", "on"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
])  # fmt: skip
def test_the_standard_variables_switch_traces_on(env: dict[str, str], on: bool) -> None:
    assert wanted(env) is on


def test_trace_context_is_derived_from_run_task_and_attempt() -> None:
    first = traceparent("20260101-000000-abcd", "A", 1)
    assert first == traceparent("20260101-000000-abcd", "A", 1)  # any process, any time
    version, trace, span, flags = first.split("-")
    assert (version, len(trace), len(span), flags) == ("00", 32, 16, "01")
    assert traceparent("20260101-000000-abcd", "A", 2).split("-")[1] == trace  # same run
    assert traceparent("20260101-000000-abcd", "A", 2).split("-")[2] != span
    assert traceparent("20260101-000000-abce", "A", 1).split("-")[1] != trace
