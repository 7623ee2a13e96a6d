"""The text `conductor init` writes: a starter workflow, or one made from a checklist.

Plain string work (YAML written by hand, so that the file reads like one a person wrote,
comments included); ops/init.py checks every text with the real loader before writing.
Strings go out JSON-quoted (a JSON string is a YAML double-quoted scalar), so no title,
id or dependency is ever read back as a number or a boolean.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from conductor.ops.planmd import Plan, PlanTask, prompt_of

# agent CLI on PATH -> (profile name, preset), in the order one is picked as the default
AGENT_CLIS = (("claude", "claude", "claude-code"), ("codex", "codex", "codex"),
              ("gemini", "gemini", "gemini"), ("aider", "aider", "aider"))  # fmt: skip


def q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def header(schema: str, lines: Sequence[str]) -> list[str]:
    """The schema comment (editor completion) and a few lines saying what to do next."""
    return [f"# yaml-language-server: $schema={schema}", "#", *(f"# {ln}" for ln in lines)]


def agents_block(found: Sequence[str]) -> tuple[str, list[str]]:
    """(default agent, the `agents:` lines): every CLI found, and `sh` for shell tasks."""
    known = [(name, preset) for cli, name, preset in AGENT_CLIS if cli in found]
    out = ["agents:"] + [f"  {name}: {{preset: {preset}}}" for name, preset in known]
    out.append("  sh: {preset: shell}  # `run:` tasks: plain shell commands")
    if not known:
        out.insert(1, "  # no agent CLI on PATH (claude, codex, gemini, aider): shell tasks only;")
        out.insert(2, "  # install one and add it here, e.g. `claude: {preset: claude-code}`")
    return (known[0][0] if known else "sh"), out


def starter(name: str, schema: str, path: str, found: Sequence[str]) -> str:
    """A small workflow that runs as it is: one agent task (a shell one without an agent
    CLI) and a shell task after it, in one group."""
    agent, agents = agents_block(found)
    lines = header(schema, [
        f"A starter workflow for {name}. Edit the tasks, then:",
        f"  conductor validate {path}    check it (nothing runs)",
        f"  conductor plan {path}        see its waves and estimates",
        f"  conductor run {path}         run it: each task in its own git worktree",
        "Agent CLIs found on PATH: " + (", ".join(found) or "none"),
    ])  # fmt: skip
    lines += ["version: 1", f"name: {name}", "description: What this phase delivers",
              f"defaults: {{agent: {agent}, timeout: 1h, idle_timeout: 20m, retries: 1}}",
              *agents, "", "groups:", "  start: {description: The first step}", "",
              "tasks:", *_notes_task(agent), *_count_task()]  # fmt: skip
    return "\n".join(lines) + "\n"


def _notes_task(agent: str) -> list[str]:
    body = ["  notes:", "    title: Write NOTES.md", "    group: start"]
    if agent == "sh":
        body.append('    run: printf \'# Notes\\n\\nWhat this repository holds.\\n\' > NOTES.md')
    else:
        body += ["    prompt: |",
                 "      Create NOTES.md at the repository root: three to five bullet points",
                 "      on what this repository contains and how it is built."]  # fmt: skip
    return [*body, "    outputs: [NOTES.md]", "    estimate: 10m"]


def _count_task() -> list[str]:
    return ["  files:", "    title: Count the tracked files", "    group: start",
            "    agent: sh", "    run: git ls-files | wc -l > FILES.txt",
            "    depends_on: [notes]", "    outputs: [FILES.txt]",
            "    estimate: 10s"]  # fmt: skip


def from_plan(plan: Plan, name: str, schema: str, source: str, found: Sequence[str]) -> str:
    """The workflow a checklist describes (see ops/planmd.py for how it is read)."""
    agent, agents = agents_block(found)
    if agent == "sh":  # its tasks are prompts: an agent must run them
        agent = "claude"
        agents = ["agents:", "  # no agent CLI on PATH: install Claude Code, or name the one",
                  "  # you have (codex, gemini, aider) here and in `defaults`",
                  "  claude: {preset: claude-code}", agents[-1]]  # fmt: skip
    lines = header(schema, [
        f"Made by `conductor init --from {source}`: each `- [ ]` item is a task, each",
        "`##` heading a group. Edit freely; `conductor validate` checks it.",
    ])  # fmt: skip
    lines += ["version: 1", f"name: {name}"]
    described = plan.title.partition(":")[2].strip() or plan.title or " ".join(plan.intro[:1])
    lines += [f"description: {q(described)}"] if described else []
    lines += [f"defaults: {{agent: {agent}}}", *agents, ""]
    used = {t.group for t in plan.tasks}
    groups = [g for g in plan.groups if g.id in used]
    if groups:
        lines += ["groups:", *(f"  {g.id}: {{description: {q(g.description)}}}" for g in groups)]
        lines.append("")
    lines.append("tasks:")
    for t in plan.tasks:
        lines += _task(t, plan)
    return "\n".join(lines) + "\n"


def _task(t: PlanTask, plan: Plan) -> list[str]:
    out = [f"  {t.id}:"]
    out += [f"    title: {q(t.title)}"] if t.title else []
    out += [f"    group: {t.group}"] if t.group else []
    deps = [a for a in dict.fromkeys(t.after) if a not in plan.done]
    out += [f"    depends_on: [{', '.join(q(a) for a in deps)}]"] if deps else []
    done = [a for a in t.after if a in plan.done]
    out += [f"    # after {', '.join(done)}: checked in the plan, done"] if done else []
    out += [f"    estimate: {t.estimate}"] if t.estimate else []
    return out + _prompt(prompt_of(t))


def _prompt(text: str) -> list[str]:
    """A literal block when it reads well as one, else a quoted string."""
    lines = text.splitlines()
    if not lines or lines[0][:1].isspace() or any("\t" in ln for ln in lines):
        return [f"    prompt: {q(text)}"]
    return ["    prompt: |", *(f"      {ln}" if ln.strip() else "" for ln in lines)]
