#!/usr/bin/env bash
# Install the system packages the deployment tests need (nginx, from Debian's packages).
# Idempotent: does nothing when nginx is already installed. Never starts the system
# service: the loopback launcher runs its own nginx master with its own configuration.
set -euo pipefail

for candidate in "$(command -v nginx 2>/dev/null || true)" /usr/sbin/nginx /usr/local/sbin/nginx; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    echo "nginx is already installed: $candidate"
    exit 0
  fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"  # never wait for a password: fail instead
  else
    echo "install-system-packages.sh: installing nginx needs root or sudo." >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit code 101 tells dpkg not to start services: keep the system nginx stopped.
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  CREATED_POLICY=1
fi
cleanup() {
  if [ "$CREATED_POLICY" -eq 1 ]; then $SUDO rm -f "$POLICY"; fi
}
trap cleanup EXIT

APT="$SUDO env DEBIAN_FRONTEND=noninteractive apt-get"
$APT update -q
$APT install -y -q --no-install-recommends nginx
[ -x /usr/sbin/nginx ] || { echo "install-system-packages.sh: nginx is still missing." >&2; exit 1; }
echo "nginx installed: $(/usr/sbin/nginx -v 2>&1)"
