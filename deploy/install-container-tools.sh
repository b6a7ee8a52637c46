#!/usr/bin/env bash
# Install rootful podman and the tools that build Persévérance's images offline
# (buildah, mmdebstrap), from Debian 12's packages, and write the settings podman needs on
# these machines into /etc/containers/containers.conf (see ../shared/CONTAINERS.md):
#   - runtime = "runc": crun refuses the hybrid cgroup layout;
#   - cgroup_manager = "cgroupfs", events_logger = "file": no systemd;
#   - default_ulimits: the machine lacks CAP_SYS_RESOURCE, so the limits must not exceed
#     the hard limits the process already has (nofile = `ulimit -Hn`).
# Idempotent: installs only what is missing, rewrites only the block it owns.
# Usage: sudo bash deploy/install-container-tools.sh
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"  # never wait for a password: fail instead
  else
    echo "install-container-tools.sh: needs root or sudo." >&2
    exit 1
  fi
fi

PACKAGES=(podman buildah netavark aardvark-dns slirp4netns fuse-overlayfs uidmap runc
          iptables mmdebstrap ca-certificates)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
else
  echo "Container tools already installed."
fi

# The settings this script owns, between two markers; whatever else the file holds stays.
CONF=/etc/containers/containers.conf
NOFILE="$(ulimit -Hn)"
[ "$NOFILE" = "unlimited" ] && NOFILE=1048576
BEGIN="# >>> perseverance (deploy/install-container-tools.sh) >>>"
END="# <<< perseverance <<<"
BLOCK="$BEGIN
[containers]
default_ulimits = [\"nofile=${NOFILE}:${NOFILE}\", \"nproc=32768:32768\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
$END"

$SUDO mkdir -p /etc/containers
current=""
[ -f "$CONF" ] && current="$($SUDO cat "$CONF")"
if printf '%s\n' "$current" | grep -qF "$BEGIN"; then
  # Drop the old block, then append the fresh one.
  current="$(printf '%s\n' "$current" | sed "/^# >>> perseverance/,/^# <<< perseverance <<</d")"
fi
if printf '%s\n' "$current" | grep -Eq '^\s*\[(containers|engine)\]'; then
  echo "install-container-tools.sh: $CONF already has its own [containers] or [engine]" \
       "table; add the settings above to it by hand:" >&2
  printf '%s\n' "$BLOCK" >&2
  exit 1
fi
new="$(printf '%s\n\n%s\n' "$current" "$BLOCK" | sed '/./,$!d')"
if [ "$new" != "$($SUDO cat "$CONF" 2>/dev/null || true)" ]; then
  printf '%s\n' "$new" | $SUDO tee "$CONF" >/dev/null
  echo "Wrote the podman settings to $CONF"
fi

# A quick check: podman answers and can run a container's runtime.
podman --version
podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}} {{.Store.GraphDriverName}}' 2>/dev/null \
  || { echo "install-container-tools.sh: podman info failed" >&2; exit 1; }
