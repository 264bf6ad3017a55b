#!/usr/bin/env bash
# Chromium for the drawing demo's browser tests (tests/test_demo_page.py): Debian's package,
# installed when it is not there. Playwright drives it; its own browser downloads are not used.
set -euo pipefail
command -v chromium >/dev/null && exit 0
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
echo "Installing Debian's chromium for the browser tests ..."
"${as_root[@]}" apt-get install -y -qq chromium >/dev/null 2>&1 \
  || { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq chromium; }
