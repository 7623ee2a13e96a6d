#!/usr/bin/env bash
# Install the pinned agent CLIs that tests/agents/test_real_agents.py drives, into a project-local
# prefix (never -g), and print their bin directory on stdout.
#
#   scripts/install_agents.sh [PREFIX]      PREFIX defaults to <repo>/.agent-clis
#
# Idempotent: when both CLIs already report the pinned versions it does nothing (well under
# a second), so CI can call it on every run. Versions are pinned because the tests script a
# model server that speaks exactly what these versions send and expect.
set -euo pipefail

CLAUDE_CODE_VERSION="2.1.330"
CODEX_VERSION="0.169.0"

root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${1:-$root/.agent-clis}"
bin="$prefix/node_modules/.bin"

installed() {
  # `--version` of both CLIs is local only (no network), so this check is quick.
  [[ -x "$bin/claude" && -x "$bin/codex" ]] || return 1
  [[ "$("$bin/claude" --version 2>/dev/null)" == "$CLAUDE_CODE_VERSION"* ]] || return 1
  [[ "$("$bin/codex" --version 2>/dev/null)" == *"$CODEX_VERSION"* ]] || return 1
}

if ! installed; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "install_agents: npm not found; install Node.js >= 18 first" >&2
    exit 1
  fi
  mkdir -p "$prefix"
  # --no-save/--no-package-lock: the prefix is a scratch install dir, not a project.
  npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund \
    --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION" >&2
  if ! installed; then
    echo "install_agents: installed, but the CLIs do not report the pinned versions" >&2
    exit 1
  fi
fi
echo "$bin"
