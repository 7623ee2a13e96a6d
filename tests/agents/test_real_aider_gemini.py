"""The aider and gemini presets, proven against the real, unmodified CLIs.

Like tests/test_real_agents.py: a scripted model server on 127.0.0.1 (tests/modelserver_chat.py:
OpenAI Chat Completions for Aider, the Gemini API for Gemini CLI) answers the agent, and
`conductor run` runs a workflow whose agent is the real CLI in a temp git repo. Aider edits
files through its edit format (here ``whole``: the file's name, then its full content in a
fence), so its scripted answers are edit blocks; Gemini CLI calls its write_file tool.
conductor must commit, validate and merge the work. Skipped only when a CLI is not installed
(scripts/install_aider_gemini.sh). Nothing here talks to the internet.
"""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testing.modelserver_chat import ChatModelServer
from tests.testing.realcli import ROOT
from tests.testing.repos import git
from tests.testing.runner import db_rows, run_json, write_workflow

pytestmark = pytest.mark.slow  # real agent CLIs, each a full run

BINS = {
    "aider": ROOT / ".agent-clis" / "aider-venv" / "bin",
    "gemini": ROOT / ".agent-clis" / "gemini-cli" / "node_modules" / ".bin",
}
MODEL = "openai/scripted"  # litellm's openai provider: sends "scripted" to OPENAI_API_BASE
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def find(name: str) -> Path | None:
    """The CLI scripts/install_aider_gemini.sh installs (or CONDUCTOR_AGENTS_BIN's)."""
    override = os.environ.get("CONDUCTOR_AGENTS_BIN")
    for folder in (Path(override) if override else None, BINS[name]):
        if folder is not None and os.access(folder / name, os.X_OK):
            return folder / name
    return None


def _needs(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        find(name) is None,
        reason=f"the real `{name}` CLI is not installed: run scripts/install_aider_gemini.sh "
        f"(installs into {BINS[name]}) or set CONDUCTOR_AGENTS_BIN",
    )


needs_aider, needs_gemini = _needs("aider"), _needs("gemini")


@pytest.fixture
def server() -> Iterator[ChatModelServer]:
    srv = ChatModelServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def agent_env(tmp_path: Path) -> dict[str, str]:
    """An isolated HOME holding the agents' settings, and a PATH with the CLIs first."""
    home = tmp_path / "agent-home"
    (home / ".gemini").mkdir(parents=True)
    # Aider looks a model's context window and price up in litellm's price list, which it
    # otherwise downloads from GitHub on every run; a known model makes no such request,
    # and its prices make aider report a cost.
    meta = {MODEL: {"max_input_tokens": 128000, "max_output_tokens": 4096, "mode": "chat",
                    "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
                    "litellm_provider": "openai"}}  # fmt: skip
    (home / ".aider.model.metadata.json").write_text(json.dumps(meta))
    (home / ".gemini" / "settings.json").write_text(json.dumps(GEMINI_SETTINGS))
    bins = [str(p.parent) for p in (find("aider"), find("gemini")) if p]
    return {
        "PATH": os.pathsep.join([*bins, str(Path(sys.executable).parent), os.environ["PATH"]]),
        "HOME": str(home),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # litellm's own copy of that list, too
    }


# the API-key login, and no usage statistics or update checks (they would go to Google)
GEMINI_SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
}
PROFILES = {
    # whole-file edits; no repo map, whose tags cache would land in the worktree
    "aider": f"""
    preset: aider
    model: {MODEL}
    args: [--edit-format, whole, --map-tokens, "0", --no-show-model-warnings]
    env: {{OPENAI_API_BASE: "{{url}}/v1", OPENAI_API_KEY: test-key}}
    """,
    # A named model: with the default "auto" the CLI first asks a classifier model to
    # route the prompt. A fresh worktree is an untrusted folder, in which headless gemini
    # refuses to run: GEMINI_CLI_TRUST_WORKSPACE trusts it.
    "gemini": """
    preset: gemini
    model: gemini-2.5-flash
    env: {GOOGLE_GEMINI_BASE_URL: "{url}", GEMINI_API_KEY: test-key,
          GEMINI_CLI_TRUST_WORKSPACE: "true"}
    """,
}


def workflow(repo: Path, agent: str, url: str, task: str) -> None:
    """wf.yaml with one task T1 run by ``agent``, pointed at the scripted server at ``url``."""
    profile = textwrap.indent(textwrap.dedent(PROFILES[agent]).strip(), " " * 4)
    fields = textwrap.indent(textwrap.dedent(task).strip(), " " * 4)
    head = f"""\
version: 1
name: real
defaults: {{retries: 0, timeout: 60s, idle_timeout: 30s}}
agents:
  {agent}:
"""
    body = profile.replace("{url}", url) + f"\ntasks:\n  T1:\n    agent: {agent}\n"
    write_workflow(repo, head + body + fields + "\n")


def whole_edit(path: str, content: str) -> dict[str, Any]:
    """A model answer in aider's ``whole`` edit format: the file name, then its content."""
    return {"text": f"{path}\n```\n{content}```\n", "usage": {"input_tokens": 1000,
                                                             "output_tokens": 10}}  # fmt: skip


def run(repo: Path, env: dict[str, str], starts: int = 1) -> tuple[int, list[dict[str, Any]], str]:
    start = time.monotonic()
    code, events, err = run_json(repo, "wf.yaml", env=env)
    # nothing waited on a timeout or the network: 30 s an agent start (aider alone takes
    # ~15 s to start on a busy 2-core machine)
    assert time.monotonic() - start < 30 * starts
    return code, events, err


def failure(events: list[dict[str, Any]]) -> str:
    return "\n".join(str(e["data"]) for e in events if e["kind"] in ("task_failed", "run_finished"))


def prompt_of(body: Any) -> str:
    return "\n".join(str(m.get("content")) for m in body["messages"] if m["role"] == "user")


@needs_aider
def test_aider_edits_through_its_edit_format_and_the_work_is_merged(
    repo: Path, server: ChatModelServer, agent_env: dict[str, str]
) -> None:
    server.add(whole_edit("answer.txt", "42\n"))
    workflow(
        repo,
        "aider",
        server.url,
        """
        prompt: Write the answer to everything into answer.txt.
        outputs: [answer.txt]
        validate: [{contains: {path: answer.txt, pattern: "^42$"}}]
        """,
    )
    code, events, err = run(repo, agent_env)
    assert code == 0, failure(events) + err
    assert git(repo, "show", "conductor/real:answer.txt") == "42"
    merged = git(repo, "ls-tree", "-r", "--name-only", "conductor/real").split()
    assert not [f for f in merged if ".aider" in f], merged  # aider's own files stay out
    (turn,) = server.turns()
    assert "answer to everything into answer.txt" in prompt_of(turn.body)
    assert turn.body["model"] == "scripted"  # the profile's model reached the server
    attempts = db_rows(repo, "SELECT * FROM attempts WHERE task_id = 'T1'")
    assert [a["state"] for a in attempts] == ["succeeded"]
    # aider's printed usage line: tokens as the server counted them, the priced cost, model
    (att,) = attempts
    assert (att["tokens_in"], att["tokens_out"], att["turns"]) == (1000, 10, 1)
    assert att["cost_usd"] == pytest.approx(1000 * 1e-6 + 10 * 2e-6, abs=1e-4)
    assert att["model"] == MODEL


@needs_aider
def test_aider_retry_after_validator_failure_is_told_what_failed(
    repo: Path, server: ChatModelServer, agent_env: dict[str, str]
) -> None:
    server.add(whole_edit("answer.txt", "41\n"), whole_edit("answer.txt", "42\n"))
    workflow(
        repo,
        "aider",
        server.url,
        """
        prompt: Write the answer into answer.txt.
        retries: 1
        validate: [{contains: {path: answer.txt, pattern: "^42$"}}]
        """,
    )
    code, events, err = run(repo, agent_env, starts=2)  # the first try, then the retry
    assert code == 0, failure(events) + err
    assert git(repo, "show", "conductor/real:answer.txt") == "42"
    attempts = db_rows(repo, "SELECT state FROM attempts WHERE task_id = 'T1' ORDER BY n")
    assert [a["state"] for a in attempts] == ["failed", "succeeded"]
    first, second = server.turns()
    assert "validation failed" not in prompt_of(first.body)
    assert "validation failed" in prompt_of(second.body)  # the retry was told what failed


@needs_gemini
def test_gemini_writes_through_its_tools_and_the_work_is_merged(
    repo: Path, server: ChatModelServer, agent_env: dict[str, str]
) -> None:
    server.add(
        {
            "tool": "write_file",
            "input": {"file_path": "{cwd}/hello.txt", "content": "hello from gemini\n"},
            "usage": {"input_tokens": 1000, "output_tokens": 30},
        },
        {"text": "Wrote hello.txt.", "usage": {"input_tokens": 1200, "output_tokens": 5}},
    )
    workflow(
        repo,
        "gemini",
        server.url,
        """
        prompt: Create hello.txt saying hello.
        outputs: [hello.txt]
        validate: [{contains: {path: hello.txt, pattern: hello from gemini}}]
        """,
    )
    code, events, err = run(repo, agent_env)
    assert code == 0, failure(events) + err
    assert git(repo, "show", "conductor/real:hello.txt") == "hello from gemini"
    merged = git(repo, "ls-tree", "-r", "--name-only", "conductor/real").split()
    assert sorted(merged) == ["README.md", "hello.txt"], merged  # nothing of gemini's own
    turns = server.turns()
    assert len(turns) == 2 and "Create hello.txt saying hello." in turns[0].text
    assert "/models/gemini-2.5-flash:" in turns[0].path  # the profile's model reached the CLI
    (row,) = db_rows(repo, "SELECT * FROM attempts WHERE task_id = 'T1'")
    assert row["state"] == "succeeded"
    assert (row["tokens_in"], row["tokens_out"]) == (1000 + 1200, 30 + 5)
    assert (row["model"], row["tokens_cache"]) == ("gemini-2.5-flash", 0)  # init's model
    assert row["session_id"] and UUID.match(row["session_id"])


# ------------------------------------------------------------- the scripted server itself


def _post(url: str, doc: dict[str, Any]) -> tuple[int, str]:
    req = urllib.request.Request(url, json.dumps(doc).encode(), {"content-type": "x/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_chat_server_answers_streamed_plain_and_error_turns(server: ChatModelServer) -> None:
    """Runs without any CLI: the answers the aider tests rely on."""
    server.add(
        {"text": "a.txt\n```\nhi\n```", "usage": {"input_tokens": 5, "output_tokens": 3}},
        {"text": "streamed"},
        {"status": 429, "retry_after": 2},
    )
    turn = {"model": "m", "messages": [{"role": "user", "content": "go"}]}
    status, body = _post(server.url + "/v1/chat/completions", turn)
    doc = json.loads(body)
    assert status == 200 and doc["choices"][0]["message"]["content"] == "a.txt\n```\nhi\n```"
    assert doc["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    status, body = _post(server.url + "/v1/chat/completions", {**turn, "stream": True})
    data = [x[6:] for x in body.splitlines() if x.startswith("data: ")]
    assert data[-1] == "[DONE]"
    text = "".join(json.loads(d)["choices"][0]["delta"].get("content", "") for d in data[:-1])
    assert status == 200 and text == "streamed"
    status, body = _post(server.url + "/v1/chat/completions", turn)
    assert status == 429 and json.loads(body)["error"]["code"] == "rate_limit_exceeded"
    status, _ = _post(server.url + "/v1/messages", {"model": "m", "messages": []})
    assert status == 200  # tests/modelserver.py still answers its own paths
    assert [r.step is not None for r in server.requests] == [True, True, True, False]


def test_gemini_server_turns_offer_tools_and_side_requests_get_text(
    server: ChatModelServer,
) -> None:
    server.add({"tool": "write_file", "input": {"file_path": "{cwd}/a.txt", "content": "x"}})
    context = "- **Workspace Directories:**\n  - /w/t1\n"
    turn = {"contents": [{"role": "user", "parts": [{"text": context}]}],
            "tools": [{"functionDeclarations": [{"name": "write_file"}]}]}  # fmt: skip
    models = server.url + "/v1beta/models/gemini-2.5-flash"
    status, body = _post(models + ":streamGenerateContent?alt=sse", turn)
    (data,) = [json.loads(x[6:]) for x in body.splitlines() if x.startswith("data: ")]
    call = data["candidates"][0]["content"]["parts"][0]["functionCall"]
    assert status == 200 and call["args"] == {"file_path": "/w/t1/a.txt", "content": "x"}
    status, body = _post(models + ":generateContent", {"contents": turn["contents"]})
    assert json.loads(body)["candidates"][0]["content"]["parts"] == [{"text": "ok"}]
    assert [r.step is not None for r in server.requests] == [True, False]
