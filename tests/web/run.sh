#!/usr/bin/env bash
# The browser tests of the web client (ctest `web`): installs playwright-core, pinned by
# package-lock.json, on first use, then runs them against KAIWA_BINARY in Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --loglevel=error
# One file at a time: each starts a node and a browser, and the machine has few cores.
exec node --test --test-concurrency=1 --test-reporter=spec chat.test.mjs readside.test.mjs conversation.test.mjs reconnect.test.mjs operator.test.mjs
