#!/usr/bin/env bash
# Build the dashboard's container image with Debian's own tools, no registry needed:
# podman (from Debian's packages) builds the Dockerfile on a base image made with
# debootstrap from Debian's archive (Debian 12's python3 is 3.11), then starts it once
# and reports the image size and the time until /_stcore/health answers.
#
#   sudo scripts/build_container.sh            # image localhost/xai-dashboard:latest
#   BASE=python:3.11-slim sudo scripts/build_container.sh   # where a registry is reachable
#
# Settings this needed on the machine it was written on (a container itself):
# runc instead of crun (crun refuses cgroups in hybrid mode), and no default ulimits
# (podman's defaults exceed the hard limits there). The host's pip configuration,
# CA bundle and local package index are mounted into the build's RUN steps, so the
# image installs exactly the pins of requirements.txt from the same sources.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG="${TAG:-localhost/xai-dashboard:latest}"
PORT="${PORT:-8599}"
work="${WORK:-/var/tmp/xai-container}"
mkdir -p "$work"

need=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ "${#need[@]}" -gt 0 ]; then
    echo "==> installing ${need[*]} from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        podman runc debootstrap uidmap slirp4netns fuse-overlayfs >/dev/null
fi
cat > "$work/containers.conf" <<'EOF'
[containers]
default_ulimits = []
EOF
export CONTAINERS_CONF="$work/containers.conf"
PODMAN=(podman --runtime runc)

if [ -z "${BASE:-}" ]; then
    BASE=localhost/xai-debian-python:bookworm
    if ! "${PODMAN[@]}" image exists "$BASE"; then
        echo "==> debootstrap: Debian 12 with python3 (3.11) from deb.debian.org"
        rm -rf "$work/rootfs"
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log"
        tar -C "$work/rootfs" -c . | "${PODMAN[@]}" import - "$BASE" >/dev/null
    fi
fi

mounts=()
for path in /etc/pip.conf /etc/ssl/certs/ca-certificates.crt /opt/pypi /opt/pypi-more /opt/wheels; do
    [ -e "$path" ] && mounts+=(-v "$path:$path:ro")
done
echo "==> podman build (BASE=$BASE)"
start=$(date +%s)
"${PODMAN[@]}" build --network host "${mounts[@]}" --build-arg "BASE=$BASE" -t "$TAG" .
echo "build: $(( $(date +%s) - start )) s; image size: $("${PODMAN[@]}" image inspect "$TAG" --format '{{.Size}}') bytes"

echo "==> starting it once on 127.0.0.1:$PORT"
name="xai-dashboard-check-$$"
start=$(date +%s.%N)
"${PODMAN[@]}" run -d --name "$name" -p "127.0.0.1:$PORT:8501" "$TAG" >/dev/null
trap '"${PODMAN[@]}" rm -f "$name" >/dev/null' EXIT
for _ in $(seq 1 240); do
    if python3 -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:$PORT/_stcore/health', timeout=2).read().strip() != b'ok')" 2>/dev/null; then
        echo "healthy after $(python3 -c "import time; print(round(time.time() - $start, 1))") s"
        exit 0
    fi
    sleep 0.5
done
echo "error: the container did not answer on /_stcore/health within 120 s" >&2
"${PODMAN[@]}" logs "$name" | tail -20 >&2
exit 1
