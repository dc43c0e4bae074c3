#!/usr/bin/env bash
# Builds the offline base image `localbase` (Debian bookworm + python3, i.e. Python 3.11 like the
# host) once per machine, from apt's own Debian mirror with mmdebstrap: no image registry is
# reachable here. Headwater and plugins are NOT in it: builds install them per image from host wheels.
# Idempotent (guarded by `podman image exists`), safe to run concurrently (flock), needs root.
# Usage: scripts/podman-base-image.sh [IMAGE_NAME]   (default: localbase)
set -euo pipefail
IMAGE="${1:-localbase}"
HERE="$(cd "$(dirname "$0")" && pwd)"
command -v podman >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1 \
  || bash "$HERE/system-deps.d/containers.sh"
podman image exists "$IMAGE" && exit 0

LOCK=/var/lock/headwater-podman-base.lock
exec 8>>"$LOCK"
flock 8
podman image exists "$IMAGE" && exit 0   # another process built it while we waited

MIRROR=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
WORK=$(mktemp -d /var/tmp/headwater-base.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
echo "building the offline base image $IMAGE from $MIRROR (about a minute)..." >&2
mmdebstrap --quiet --variant=apt --include=python3 \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  bookworm "$WORK/base.tar" "$MIRROR" >&2
podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' "$WORK/base.tar" "$IMAGE" >/dev/null
podman image exists "$IMAGE"
echo "built $IMAGE" >&2
