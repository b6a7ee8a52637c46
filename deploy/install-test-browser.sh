#!/usr/bin/env bash
# Install the headless browser the run-report test uses (Debian's chromium package).
# Idempotent: does nothing when chromium is already installed. The test runs it with
# --headless, no sandbox, no network services; nothing is started here.
set -euo pipefail

for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then
    echo "chromium is already installed: $(command -v "$name")"
    exit 0
  fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-test-browser.sh: installing chromium needs root or sudo." >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium
command -v chromium >/dev/null 2>&1 || {
  echo "install-test-browser.sh: chromium is still missing." >&2
  exit 1
}
echo "chromium installed: $(chromium --version 2>/dev/null || echo chromium)"
