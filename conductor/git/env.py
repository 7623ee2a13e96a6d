"""The environment git sees: the one part of the git room other rooms may import, because
it starts no process. Agents, validators and gates run git inside their worktrees too,
so the processes ``exec/`` starts for them get the same cleaned environment as
conductor's own git calls (``conductor.git.cmd``).
"""

from __future__ import annotations

from collections.abc import Mapping

# Variables git exports to hooks and aliases. When conductor (or an agent it starts) runs
# inside such a context, they would point every git call at the wrong repository or index,
# the same trap pre-commit guards against.
LEAKED_GIT_VARS = frozenset(
    {
        "GIT_DIR",
        "GIT_INDEX_FILE",
        "GIT_WORK_TREE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_PREFIX",
        "GIT_COMMON_DIR",
    }
)


def clean_env(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` minus leaked repository-locating variables, with terminal prompts disabled."""
    env = {key: value for key, value in base.items() if key not in LEAKED_GIT_VARS}
    # Unattended: a credential prompt would hang a run forever instead of failing.
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def with_ceiling(base: Mapping[str, str], ceiling: str) -> dict[str, str]:
    """``base`` with ``ceiling`` added to ``GIT_CEILING_DIRECTORIES``: git run inside an
    attempt's worktree never searches above it, so an agent that deleted its worktree's
    `.git` gets "not a git repository" instead of the user's repository further up."""
    env = dict(base)
    current = env.get("GIT_CEILING_DIRECTORIES", "")
    env["GIT_CEILING_DIRECTORIES"] = f"{current}:{ceiling}" if current else ceiling
    return env
