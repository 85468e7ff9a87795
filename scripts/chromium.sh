#!/usr/bin/env bash
# Installs what tests/html_report.rs needs to look at the review report as a reader would: headless
# Chromium and CJK fonts, from Debian's packages (`chromium`, `fonts-noto-cjk`). Does nothing when both
# are there. scripts/test.sh runs it before the tests; the test fails (it is not skipped) without them.
#
# Needs apt-get and root (or sudo). On a machine without apt, install Chromium and a CJK font yourself
# and point CLAIMGATE_CHROMIUM at the browser.
set -euo pipefail

need=()
if [ -z "${CLAIMGATE_CHROMIUM:-}" ] && ! [ -x /usr/bin/chromium ]; then
    need+=(chromium)
fi
# Not `fc-list | grep -q`: grep stops at the first match, fc-list dies of SIGPIPE, and pipefail would
# call the fonts missing.
fonts="$(fc-list : family 2>/dev/null || true)"
if ! grep -qi 'Noto Sans CJK' <<<"$fonts"; then
    need+=(fonts-noto-cjk)
fi
[ "${#need[@]}" -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/chromium.sh: ${need[*]} missing and apt-get is not available: install them by hand" \
         "(tests/html_report.rs needs them)" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
started=$(date +%s)
echo "scripts/chromium.sh: installing ${need[*]} (apt-get; once per machine)" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
echo "scripts/chromium.sh: installed ${need[*]} in $(( $(date +%s) - started )) s" >&2
