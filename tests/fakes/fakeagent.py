"""Shared engine of the fake agent CLIs (claude, codex, gemini, aider) used by the tests.

Each fake parses the same flags conductor's presets pass (unknown flags exit 2, like a real
CLI's argument parser) and prints the real CLI's output format. What it *does* comes from a
fenced block in its prompt:

    ```fake-agent
    write path/to/file.txt hello\\nworld   # the rest of the line, \\n \\t \\\\ escapes, + newline
    append path text
    run <shell command>                    # in cwd; shown as a shell tool call
    commit message words                   # git add -A && git commit -m
    say some text                          # an assistant message
    sleep 0.5                              # shown as a shell tool call
    silent 100                             # no output at all for N seconds
    fail some error text                   # error result, exit 1
    fail-once MARKER error text            # fail unless the marker exists; creates it
    limit-once MARKER N                    # usage limit (resets in N s) unless the marker exists
    limit 60                               # usage limit, resets in N seconds; exit 1
    crash 3                                # exit 3 without any result
    hang                                   # sleep forever
    ```

Lines starting with `#` are comments; so is `  # ...` after the arguments of any command but
write/append/run (their text is taken verbatim). Without a block the fake succeeds doing
nothing. A prompt that points at a file (`instructions from the file `PATH``) is read from
that file. Standard library only, and nothing heavy: the fakes must start fast.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

# Startup time matters (every fake is a process per task attempt), so no pathlib, typing,
# uuid or subprocess at import time; the annotations below are never evaluated.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

FILE_REF = re.compile(r"instructions from the file `([^`]+)`")
BLOCK_START = re.compile(r"^(`{3,})fake-agent\s*$")
VERBATIM = {"write", "append", "run"}


class Usage(Exception):
    """A command-line error: reported on stderr with exit status 2."""


class Stop(Exception):
    """The script ends the agent with this exit status (after its final output)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# ------------------------------------------------------------------------------ arguments


def parse_args(
    argv: list[str], flags: set[str], options: set[str]
) -> tuple[dict[str, str], list[str]]:
    """Options (flag -> "1", option -> value) and positionals; strict like clap/commander."""
    opts: dict[str, str] = {}
    pos: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            pos += argv[i + 1 :]
            break
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if arg.startswith("-") and arg != "-":
            if name in flags and not eq:
                opts[name] = "1"
            elif name in options:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise Usage(f"option '{name}' argument missing")
                    value = argv[i]
                opts[name] = value
            else:
                raise Usage(f"unknown option '{arg}'")
        else:
            pos.append(arg)
        i += 1
    return opts, pos


def load_prompt(prompt: str) -> str:
    """The prompt itself, or the file it says to read."""
    m = FILE_REF.search(prompt)
    if m and len(prompt) < 1000:
        return read_text(m.group(1))
    return prompt


def parse_script(prompt: str) -> list[tuple[str, str]]:
    """(verb, rest) for each command of the first ```fake-agent block."""
    steps: list[tuple[str, str]] = []
    fence = None
    for raw in prompt.splitlines():
        line = raw.strip()
        if fence is None:
            m = BLOCK_START.match(line)
            fence = m.group(1) if m else None
            continue
        if line.startswith(fence) and not line.strip("`"):
            break
        if not line or line.startswith("#"):
            continue
        verb, _, rest = line.partition(" ")
        if verb not in VERBATIM:
            rest = re.sub(r"\s{2,}#.*$", "", rest).strip()
        steps.append((verb, rest))
    return steps


def unescape(text: str) -> str:
    return re.sub(r"\\([nt\\])", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}[m.group(1)], text)


def read_text(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def in_git_repo(path: str) -> bool:
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


def session_id(resume: str | None) -> str:
    """The resumed session, or a fresh uuid4-shaped id (without importing uuid)."""
    if resume:
        return resume
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


# ------------------------------------------------------------------------------- emitters


def emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


class Emitter:
    """How one CLI shows a run; the base class prints plain text (aider, text mode)."""

    def __init__(self, session: str, final_only: bool = False) -> None:
        self.session = session
        self.steps = 0
        self.final_only = final_only  # `--output-format json`: only the final object

    def emit(self, event: dict[str, Any], final: bool = False) -> None:
        if final or not self.final_only:
            emit(event)

    def start(self) -> None:
        pass

    def tool(self, kind: str, target: str, action: Callable[[], tuple[str, int]]) -> None:
        """kind "shell" (target = command) or "write"/"append" (target = absolute path)."""
        self.steps += 1
        out, _code = action()
        verb = "Running" if kind == "shell" else "Applied edit to"
        print(f"{verb} {target}", flush=True)
        if out.strip():
            print(out.rstrip(), flush=True)

    def say(self, text: str) -> None:
        print(text, flush=True)

    def finish(self, ok: bool, text: str) -> None:
        print(text, flush=True)

    def limit(self, seconds: int) -> None:
        print("litellm.RateLimitError: rate limit exceeded, please retry later", flush=True)


class ClaudeEmitter(Emitter):
    def start(self) -> None:
        tools = ["Bash", "Edit", "Read", "Write"]
        self.emit(
            {
                "type": "system",
                "subtype": "init",
                "cwd": os.getcwd(),
                "session_id": self.session,
                "tools": tools,
                "model": "fake",
                "permissionMode": "bypassPermissions",
            }
        )

    def _message(self, role: str, content: list[dict[str, Any]]) -> None:
        self.emit(
            {
                "type": role,
                "message": {"role": role, "content": content},
                "session_id": self.session,
                "uuid": session_id(None),
            }
        )

    def tool(self, kind: str, target: str, action: Callable[[], tuple[str, int]]) -> None:
        self.steps += 1
        tid = f"toolu_{self.steps:04d}"
        name = {"shell": "Bash", "write": "Write", "append": "Edit"}[kind]
        params = {"command": target} if kind == "shell" else {"file_path": target}
        self._message("assistant", [{"type": "tool_use", "id": tid, "name": name, "input": params}])
        out, code = action()
        self._message(
            "user",
            [{"type": "tool_result", "tool_use_id": tid, "content": out, "is_error": code != 0}],
        )

    def say(self, text: str) -> None:
        self._message("assistant", [{"type": "text", "text": text}])

    def finish(self, ok: bool, text: str) -> None:
        turns = self.steps + 1
        result: dict[str, Any] = {
            "type": "result",
            "subtype": "success" if ok else "error_during_execution",
            "is_error": not ok,
            "duration_ms": 10 * turns,
            "duration_api_ms": 8 * turns,
            "num_turns": turns,
            "session_id": self.session,
            "total_cost_usd": round(0.001 * turns, 6),
            "usage": {
                "input_tokens": 100 * turns,
                "cache_creation_input_tokens": 10,
                "cache_read_input_tokens": 5,
                "output_tokens": 20 * turns,
            },
            "permission_denials": [],
            "uuid": session_id(None),
        }
        result.update({"result": text} if ok else {"errors": [text]})
        self.emit(result, final=True)

    def limit(self, seconds: int) -> None:
        reset = int(time.time()) + seconds
        self.emit(
            {
                "type": "rate_limit_event",
                "rate_limit_info": {
                    "status": "rejected",
                    "resetsAt": reset,
                    "rateLimitType": "five_hour",
                },
                "session_id": self.session,
            }
        )
        self.emit(
            {
                "type": "result",
                "subtype": "success",
                "is_error": True,
                "num_turns": 1,
                "result": f"Claude AI usage limit reached|{reset}",
                "session_id": self.session,
                "total_cost_usd": 0,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
            final=True,
        )


class CodexEmitter(Emitter):
    def start(self) -> None:
        self.emit({"type": "thread.started", "thread_id": self.session})
        self.emit({"type": "turn.started"})

    def tool(self, kind: str, target: str, action: Callable[[], tuple[str, int]]) -> None:
        self.steps += 1
        iid = f"item_{self.steps}"
        if kind == "shell":
            item: dict[str, Any] = {
                "id": iid,
                "type": "command_execution",
                "command": target,
                "aggregated_output": "",
                "exit_code": None,
                "status": "in_progress",
            }
            self.emit({"type": "item.started", "item": item})
            out, code = action()
            status = "completed" if code == 0 else "failed"
            item.update(aggregated_output=out, exit_code=code, status=status)
            self.emit({"type": "item.completed", "item": item})
            return
        new = not os.path.exists(target)
        out, code = action()  # file changes are only reported once applied
        change = {"path": target, "kind": "add" if new else "update"}
        self.emit(
            {
                "type": "item.completed",
                "item": {
                    "id": iid,
                    "type": "file_change",
                    "changes": [change],
                    "status": "completed" if code == 0 else "failed",
                },
            }
        )

    def say(self, text: str) -> None:
        self.steps += 1
        self.emit(
            {
                "type": "item.completed",
                "item": {"id": f"item_{self.steps}", "type": "agent_message", "text": text},
            }
        )

    def finish(self, ok: bool, text: str) -> None:
        if not ok:
            self.emit({"type": "turn.failed", "error": {"message": text}})
            return
        self.say(text)
        n = self.steps + 1
        self.emit(
            {
                "type": "turn.completed",
                "usage": {
                    "input_tokens": 200 * n,
                    "cached_input_tokens": 50,
                    "output_tokens": 30 * n,
                },
            }
        )

    def limit(self, seconds: int) -> None:
        mins, secs = divmod(seconds, 60)
        text = (
            "You've hit your usage limit. Upgrade to Pro (https://openai.com/chatgpt/pricing)"
            f" or try again in {mins} minutes {secs} seconds."
        )
        self.emit({"type": "error", "message": text})
        self.emit({"type": "turn.failed", "error": {"message": text}})


class GeminiEmitter(Emitter):
    def _ts(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())

    def start(self) -> None:
        self.emit(
            {"type": "init", "timestamp": self._ts(), "session_id": self.session, "model": "fake"}
        )

    def tool(self, kind: str, target: str, action: Callable[[], tuple[str, int]]) -> None:
        self.steps += 1
        tid = f"tool_{self.steps}"
        name = "run_shell_command" if kind == "shell" else "write_file"
        params = {"command": target} if kind == "shell" else {"file_path": target}
        self.emit(
            {
                "type": "tool_use",
                "timestamp": self._ts(),
                "tool_name": name,
                "tool_id": tid,
                "parameters": params,
            }
        )
        out, code = action()
        self.emit(
            {
                "type": "tool_result",
                "timestamp": self._ts(),
                "tool_id": tid,
                "status": "success" if code == 0 else "error",
                "output": out,
            }
        )

    def say(self, text: str) -> None:
        self.emit(
            {
                "type": "message",
                "timestamp": self._ts(),
                "role": "assistant",
                "content": text,
                "delta": True,
            }
        )

    def finish(self, ok: bool, text: str) -> None:
        n = self.steps + 1
        stats = {
            "total_tokens": 150 * n,
            "input_tokens": 120 * n,
            "output_tokens": 30 * n,
            "cached": 0,
            "input": 120 * n,
            "duration_ms": 5,
            "tool_calls": self.steps,
        }
        event: dict[str, Any] = {"type": "result", "timestamp": self._ts(), "stats": stats}
        if ok:
            self.say(text)
            event["status"] = "success"
        else:
            event.update(status="error", error={"type": "Error", "message": text})
        self.emit(event, final=True)

    def limit(self, seconds: int) -> None:
        text = "Quota exceeded for quota metric 'Gemini requests' (RESOURCE_EXHAUSTED)"
        self.emit({"type": "error", "timestamp": self._ts(), "severity": "error", "message": text})
        self.finish(False, text)


# -------------------------------------------------------------------------------- runtime


def shell(command: str) -> tuple[str, int]:
    import subprocess  # only scripts that run commands pay for it

    proc = subprocess.run(command, shell=True, capture_output=True, text=True)
    return (proc.stdout + proc.stderr)[-4000:], proc.returncode


def nap(seconds: float) -> tuple[str, int]:
    time.sleep(seconds)
    return "", 0


def write_file(path: str, text: str, mode: str) -> tuple[str, int]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode, encoding="utf-8") as fh:
        fh.write(unescape(text) + "\n")
    return "ok", 0


def marker_path(name: str) -> str:
    """Per run and task, so a retry of the same task sees the marker of its first attempt."""
    base = os.environ.get("HOME") or os.environ.get("TMPDIR") or "/tmp"
    run = os.environ.get("CONDUCTOR_RUN_ID", "norun")
    task = os.environ.get("CONDUCTOR_TASK_ID", "notask")
    return os.path.join(base, ".fake-agent", f"{run}-{task}", f".fake-{name}")


def step(out: Emitter, verb: str, rest: str) -> None:
    """Perform one script command; raises Stop to end the agent."""
    if verb in ("write", "append"):
        rel, _, text = rest.partition(" ")
        target = os.path.join(os.getcwd(), rel)
        mode = "w" if verb == "write" else "a"
        out.tool(verb, target, lambda: write_file(target, text, mode))
    elif verb == "run":
        out.tool("shell", rest, lambda: shell(rest))
    elif verb == "commit":
        cmd = f"git add -A && git commit -q -m {json.dumps(rest or 'fake agent commit')}"
        out.tool("shell", cmd, lambda: shell(cmd))
    elif verb == "sleep":
        out.tool("shell", f"sleep {rest}", lambda: nap(float(rest)))
    elif verb == "say":
        out.say(rest)
    elif verb == "silent":
        time.sleep(float(rest))
    elif verb == "hang":
        while True:
            time.sleep(3600)
    elif verb in ("fail", "fail-once"):
        fail(out, verb, rest)
    elif verb == "limit":
        out.limit(int(float(rest or "60")))
        raise Stop(1)
    elif verb == "limit-once":
        name, _, secs = rest.partition(" ")
        marker = marker_path(name)
        if not os.path.exists(marker):
            os.makedirs(os.path.dirname(marker), exist_ok=True)
            open(marker, "w").close()
            out.limit(int(float(secs or "60")))
            raise Stop(1)
    elif verb == "crash":
        raise Stop(int(rest or "1"))
    else:
        out.finish(False, f"fake-agent: unknown script command {verb!r}")
        raise Stop(1)


def fail(out: Emitter, verb: str, rest: str) -> None:
    if verb == "fail-once":
        name, _, rest = rest.partition(" ")
        marker = marker_path(name)
        if os.path.exists(marker):
            return
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        open(marker, "w").close()
    out.finish(False, rest or "fake agent failed")
    raise Stop(1)


def run(out: Emitter, prompt: str) -> int:
    """Run the prompt's script through ``out``; the process exit status."""
    out.start()
    try:
        for verb, rest in parse_script(load_prompt(prompt)):
            step(out, verb, rest)
    except Stop as stop:
        return stop.code
    out.finish(True, "Done.")
    return 0


def main(cli: Callable[[list[str]], int]) -> None:
    """Entry point of a fake: usage errors exit 2, as clap/commander/argparse do."""
    versions = {"claude": "2.1.330 (Claude Code)", "codex": "codex-cli 0.169.0",
                "gemini": "0.20.0", "aider": "aider 0.86.1"}  # fmt: skip
    if sys.argv[1:] == ["--version"]:  # like the real CLIs, for conductor's preflight
        print(versions.get(os.path.basename(sys.argv[0]), "0.0.0"))
        sys.exit(0)
    try:
        code = cli(sys.argv[1:])
    except Usage as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except BrokenPipeError:
        code = 1
    sys.exit(code)
