#!/usr/bin/env bash
# Install the pinned Aider and Gemini CLIs that tests/agents/test_real_aider_gemini.py drives, into
# project-local prefixes (never system-wide), and print their bin directories on stdout, one
# a line (aider's first).
#
#   scripts/install_aider_gemini.sh [PREFIX]      PREFIX defaults to <repo>/.agent-clis
#
# aider-chat goes into its own venv (PREFIX/aider-venv): it pins many libraries that must not
# mix with the project's. @google/gemini-cli goes into PREFIX/gemini-cli, not PREFIX itself:
# `npm install --no-save` into a prefix prunes packages it did not install, which would
# remove the claude/codex that scripts/install_agents.sh put there.
#
# Idempotent: when both report the pinned versions it does nothing, so CI can call it on
# every run. Pinned because the tests script a model server for exactly these versions.
set -euo pipefail

AIDER_VERSION="0.86.2"
GEMINI_CLI_VERSION="0.61.0"

root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${1:-$root/.agent-clis}"
venv="$prefix/aider-venv"
gemini_prefix="$prefix/gemini-cli"
gemini_bin="$gemini_prefix/node_modules/.bin"

aider_installed() {
  # pip metadata, not `aider --version`: aider's import takes seconds
  [[ -x "$venv/bin/aider" ]] || return 1
  [[ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("aider-chat"))' \
    2>/dev/null)" == "$AIDER_VERSION" ]]
}

gemini_installed() {
  [[ -x "$gemini_bin/gemini" ]] || return 1
  local pkg="$gemini_prefix/node_modules/@google/gemini-cli/package.json"
  [[ "$(node -p "require('$pkg').version" 2>/dev/null)" == "$GEMINI_CLI_VERSION" ]]
}

if ! aider_installed; then
  python="${PYTHON:-python3}"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "aider-chat==$AIDER_VERSION" >&2
  aider_installed || { echo "install_aider_gemini: aider-chat not at $AIDER_VERSION" >&2; exit 1; }
fi

if ! gemini_installed; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "install_aider_gemini: npm not found; install Node.js >= 20 first" >&2
    exit 1
  fi
  mkdir -p "$gemini_prefix"
  npm install --prefix "$gemini_prefix" --no-save --no-package-lock --no-audit --no-fund \
    --loglevel=error "@google/gemini-cli@$GEMINI_CLI_VERSION" >&2
  gemini_installed || {
    echo "install_aider_gemini: gemini-cli not at $GEMINI_CLI_VERSION" >&2
    exit 1
  }
fi
echo "$venv/bin"
echo "$gemini_bin"
