"""Secrets in the last sinks that reached disk raw: records logged to conductor.log by
conductor itself (not events, which are masked before), and the error text of an attempt
paused on a usage limit, stored in `tasks.error` and `attempts.error`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from conductor.run.debuglog import close_runner_log, setup_runner_log
from conductor.spec.secrets import Secrets
from tests.run.test_secrets_everywhere import LONG, PEM, _leaks
from tests.testing.runner import cli, db_rows, write_workflow

FORMS = [PEM, *PEM.split("\n"), LONG]
# a password with a quote, a backslash and a non-ASCII letter: a JSON line shows it escaped,
# so masking the printed line misses it unless the escaped form is masked too
QUOTED = 'pass"word\\with-ünicode-71'
QUOTED_FORMS = [QUOTED, json.dumps(QUOTED)[1:-1], json.dumps(QUOTED, ensure_ascii=False)[1:-1]]


def test_conductor_log_masks_every_record(tmp_path: Path) -> None:
    secrets = Secrets({"K": PEM, "T": LONG})
    logger = setup_runner_log(tmp_path, "git version 2.40.0", redact=secrets.redact)
    try:
        logger.warning("the key is %s", PEM)  # in the arguments, all lines at once
        logger.info(f"token {LONG} inline")  # in the message itself
        logging.getLogger("conductor.run.hooks").warning("child logger: %s", PEM)
        try:
            raise RuntimeError(f"failed with {PEM}")
        except RuntimeError:
            logger.exception("boom %s", LONG)  # in the traceback text
        logger.error("stack", stack_info=True, extra={"x": 1})
    finally:
        close_runner_log(tmp_path)
    text = (tmp_path / "conductor.log").read_text()
    assert "the key is ***" in text and "token *** inline" in text
    assert "child logger: ***" in text and "RuntimeError: failed with ***" in text
    assert [f for f in FORMS if f in text] == []


def test_a_later_run_in_the_same_process_masks_its_own_secrets(tmp_path: Path) -> None:
    setup_runner_log(tmp_path, "git version 2.40.0", redact=Secrets({"A": PEM}).redact)
    logger = setup_runner_log(tmp_path, "git version 2.40.0", redact=Secrets({"T": LONG}).redact)
    try:
        logger.warning("now %s", LONG)
        files = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
        assert len(files) == 1 and len(files[0].filters) == 1
    finally:
        close_runner_log(tmp_path)
    assert LONG not in (tmp_path / "conductor.log").read_text()


AGENT = """
import json, os, sys, time
print(json.dumps({"type": "system", "subtype": "init", "session_id": "s1"}))
if os.path.exists(os.environ["MARK"]):
    print(json.dumps({"type": "result", "subtype": "success", "is_error": False,
                      "result": "done", "session_id": "s1"}))
    sys.exit(0)
open(os.environ["MARK"], "w").close()
reset = int(time.time()) + 1
message = (f"Claude AI usage limit reached|{reset} for key {os.environ['KEY']}"
           f" and {os.environ['PEM']} with {os.environ['PASSWORD']}")
print(json.dumps({"type": "result", "subtype": "success", "is_error": True,
                  "result": message, "session_id": "s1"}))
sys.exit(1)
"""


def test_a_paused_attempts_limit_message_is_masked(repo: Path, tmp_path: Path) -> None:
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    write_workflow(
        repo,
        f"""
        version: 1
        name: t
        defaults: {{retries: 0}}
        agents:
          limited: {{command: [python3, "{agent}"]}}
        tasks:
          A:
            agent: limited
            prompt: go
            env:
              KEY: "${{LONG_SECRET}}"
              PEM: "${{PEM_KEY}}"
              PASSWORD: "${{PASSWORD}}"
              MARK: "{tmp_path / 'mark'}"
        """,
    )
    proc = cli(repo, "run", "wf.yaml", "--verbose",
               env={"LONG_SECRET": LONG, "PEM_KEY": PEM, "PASSWORD": QUOTED})  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    states = [r["state"] for r in db_rows(repo, "SELECT state FROM attempts ORDER BY n")]
    assert states == ["paused", "succeeded"]
    paused = db_rows(repo, "SELECT error FROM attempts WHERE n = 1")[0]["error"]
    assert "usage limit reached" in paused and "for key ***" in paused
    assert paused.endswith("with ***")
    assert _leaks(repo, proc, FORMS + QUOTED_FORMS) == []
