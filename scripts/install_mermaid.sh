#!/usr/bin/env bash
# Install the mermaid CLI (mmdc) so tests can check that the execution log's mermaid
# blocks really render. Idempotent: a second run is a few fast checks.
#
#   scripts/install_mermaid.sh        -> prints the mmdc path on its last stdout line
#
# Puppeteer's own browser download is skipped (only package registries are reachable,
# and a distro chromium is smaller anyway); Debian's chromium is used through the
# puppeteer config that tests pass with `mmdc -p` (.tools/puppeteer.json).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
mmdc="$tools/node_modules/.bin/mmdc"
version="${MERMAID_CLI_VERSION:-11}"

log() { echo "install_mermaid: $*" >&2; }

find_chromium() {
    command -v chromium || command -v chromium-browser || true
}

if [ -z "$(find_chromium)" ]; then
    log "installing chromium (apt)"
    sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium >&2
fi
chromium="$(find_chromium)"
[ -n "$chromium" ] || { log "chromium not found after install"; exit 1; }

if ! command -v npm >/dev/null; then
    log "installing nodejs and npm (apt)"
    sudo_=""
    [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq nodejs npm >&2
fi

mkdir -p "$tools"
# ~500 MB of node_modules: never let it near a commit, whatever the repo's .gitignore says.
[ -f "$tools/.gitignore" ] || echo '*' >"$tools/.gitignore"
if [ ! -x "$mmdc" ]; then
    log "installing @mermaid-js/mermaid-cli@$version into $tools"
    # A package.json of its own keeps npm from walking up into the project.
    [ -f "$tools/package.json" ] || echo '{"name": "conductor-tools", "private": true}' \
        >"$tools/package.json"
    PUPPETEER_SKIP_DOWNLOAD=1 PUPPETEER_SKIP_CHROMIUM_DOWNLOAD=1 \
        npm install --prefix "$tools" --no-audit --no-fund --loglevel=error \
        "@mermaid-js/mermaid-cli@$version" >&2
fi

cat >"$tools/puppeteer.json" <<JSON
{"executablePath": "$chromium", "args": ["--no-sandbox", "--headless", "--disable-gpu"]}
JSON
echo "$mmdc"
