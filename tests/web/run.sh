#!/usr/bin/env bash
# The browser tests of the web client (ctest `web`): installs playwright-core, pinned by
# package-lock.json, on first use, then runs them against KAIWA_BINARY in Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --loglevel=error
exec node --test --test-reporter=spec chat.test.mjs
