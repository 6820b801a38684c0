#!/usr/bin/env bash
# The viewer page's browser test (docs/viewer-page.md): starts `daybook run`, seeds a
# camera's day through the device API, drives Debian's Chromium with Playwright, checks the
# page with axe-core and saves screenshots.
#
#   DAYBOOK_BIN=target/debug/daybook web/tests/run.sh
#
# Installs what it needs once per machine: Debian's `chromium` package (apt, when missing;
# never a browser download) and the `playwright-core` and `axe-core` npm packages under
# ~/.cache/daybook/web-test. Screenshots go to $DAYBOOK_ARTIFACTS (default
# target/web-artifacts).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${DAYBOOK_CACHE:-$HOME/.cache/daybook}/web-test"
playwright_version=1.57.0
axe_version=4.14.1

: "${DAYBOOK_BIN:?set DAYBOOK_BIN to the built daybook binary (cargo build -p daybook)}"
export DAYBOOK_BIN="$(cd "$(dirname "$DAYBOOK_BIN")" && pwd)/$(basename "$DAYBOOK_BIN")"
export DAYBOOK_ARTIFACTS="${DAYBOOK_ARTIFACTS:-$root/target/web-artifacts}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [[ ! -x "$CHROMIUM" ]]; then
    echo "== installing chromium from the distribution's packages" >&2
    sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
command -v node >/dev/null || { echo "node (18 or newer) is needed to drive the browser" >&2; exit 1; }

installed() {
    [[ -f "$cache/node_modules/$1/package.json" ]] &&
        [[ $(node -p "require('$cache/node_modules/$1/package.json').version") == "$2" ]]
}
if ! installed playwright-core "$playwright_version" || ! installed axe-core "$axe_version"; then
    echo "== installing playwright-core $playwright_version and axe-core $axe_version into $cache" >&2
    mkdir -p "$cache"
    # Neither has an install script; playwright-core downloads no browser. One command for both:
    # an install of one alone would drop the other (nothing lists them in a package.json).
    (cd "$cache" && npm install --silent --no-audit --no-fund --no-save \
        "playwright-core@$playwright_version" "axe-core@$axe_version")
fi

mkdir -p "$DAYBOOK_ARTIFACTS"
DAYBOOK_NODE_MODULES="$cache/node_modules" exec node "$here/browser.test.mjs"
