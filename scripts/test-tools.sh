#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust and PostgreSQL into .tools/ (ignored by git),
# pinned, and only when missing or at another version: `make test` and `.ci/run` call it.
#
#   .tools/venv   schemathesis (the OpenAPI contract test, tests/contract.rs)
#
# Prints nothing when everything is already in place. ROSETTA_TOOLS_DIR overrides the location.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${ROSETTA_TOOLS_DIR:-$PWD/.tools}"
SCHEMATHESIS_VERSION="4.32.5"

log() { printf 'test-tools: %s\n' "$*" >&2; }

install_schemathesis() {
    local venv="$TOOLS/venv" stamp="$TOOLS/venv/.schemathesis-$SCHEMATHESIS_VERSION"
    [[ -f "$stamp" && -x "$venv/bin/st" ]] && return
    log "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
    "$venv/bin/st" --version >&2
    touch "$stamp"
}

mkdir -p "$TOOLS"
install_schemathesis
