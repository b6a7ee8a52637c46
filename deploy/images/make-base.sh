#!/usr/bin/env bash
# Make a Debian 12 base image from Debian's archive with mmdebstrap: no image registry.
# Usage: deploy/images/make-base.sh python|build|proxy TAG [TARBALL]
#   python: python3 (3.11) and its venv module: the base of the app, SuperLink and
#           SuperNode images (their Python packages come from the wheelhouse);
#   build:  the same plus binutils: the build stage of the images, which strips the
#           wheels' shared libraries (never shipped itself);
#   proxy:  nginx and envsubst (gettext-base): the base of the ministry's proxy.
# dpkg unpacks without syncing each file (force-unsafe-io: the result is a tarball made
# again from scratch if anything fails; a third of the time on a busy disk).
# Both carry the host's CA bundle (HTTPS through the re-signing proxy of these machines),
# no man pages, docs (copyright files kept) or locales, and the user `app` (uid/gid
# 49999, as Flower's images) the images run as. The apt sources are the host's
# /etc/apt/sources.list.d/debian.sources (or $DEBIAN_SOURCES): a mirror of the ministry's
# own works the same way. Needs root (mmdebstrap --mode=root) and podman.
set -euo pipefail

VARIANT="${1:?python, build or proxy}"
TAG="${2:?image tag, e.g. localhost/perseverance-base:bookworm-r1}"
TARBALL="${3:-$(mktemp -d)/base.tar}"
SOURCES="${DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}"

case "$VARIANT" in
  python) PACKAGES="python3,python3-venv" ;;
  build)  PACKAGES="python3,python3-venv,binutils" ;;
  proxy)  PACKAGES="nginx,gettext-base" ;;
  *) echo "make-base.sh: unknown variant $VARIANT (python, build or proxy)" >&2; exit 2 ;;
esac

# The CA bundle: Debian's file plus this machine's own CAs, if any.
CA_FILES=(/etc/ssl/certs/ca-certificates.crt)
shopt -s nullglob
LOCAL_CAS=(/usr/local/share/ca-certificates/*.crt)
shopt -u nullglob

HOOKS=()
for ca in "${LOCAL_CAS[@]}"; do
  HOOKS+=("--customize-hook=upload $ca /usr/local/share/ca-certificates/$(basename "$ca")")
done

mkdir -p "$(dirname "$TARBALL")"
mmdebstrap --variant=minbase --mode=root --format=tar \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --include="$PACKAGES" \
  --dpkgopt='force-unsafe-io' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --dpkgopt='path-exclude=/usr/share/linda/*' \
  --customize-hook='mkdir -p "$1/etc/ssl/certs" "$1/usr/local/share/ca-certificates"' \
  --customize-hook="upload ${CA_FILES[0]} /etc/ssl/certs/ca-certificates.crt" \
  "${HOOKS[@]}" \
  --customize-hook='echo "app:x:49999:49999:app:/home/app:/usr/sbin/nologin" >> "$1/etc/passwd"' \
  --customize-hook='echo "app:x:49999:" >> "$1/etc/group"' \
  --customize-hook='echo "app:!:19000::::::" >> "$1/etc/shadow"' \
  --customize-hook='mkdir -p "$1/home/app" && chown 49999:49999 "$1/home/app"' \
  --customize-hook='rm -rf "$1"/var/cache/apt/*.bin "$1"/var/log/apt/* "$1"/var/log/dpkg.log' \
  bookworm "$TARBALL" "$SOURCES"

podman import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  --message "perseverance base ($VARIANT), mmdebstrap bookworm" \
  "$TARBALL" "$TAG"
echo "Base image $TAG: $(podman image inspect --format '{{.Size}}' "$TAG") bytes"
