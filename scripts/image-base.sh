#!/usr/bin/env bash
# Build the local base image for the container image: Debian bookworm (minbase) with
# python3, python3-venv and ca-certificates, made by mmdebstrap from the Debian mirror and
# imported into podman as localhost/gateway-proxy-base:bookworm. No container registry is
# needed (make image-test and tests/test_image.py build on it: BASE_IMAGE=local).
#
# Idempotent and instant when the image exists: podman's image store is the cache.
# Remove it to rebuild (e.g. for security updates): podman rmi localhost/gateway-proxy-base:bookworm
# GATEWAY_PROXY_BASE_IMAGE names another tag; DEBIAN_MIRROR another mirror (default
# http://deb.debian.org/debian, security updates from <mirror>-security).
set -euo pipefail

image="${GATEWAY_PROXY_BASE_IMAGE:-localhost/gateway-proxy-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if podman image exists "$image" 2>/dev/null; then
  exit 0
fi
command -v mmdebstrap >/dev/null 2>&1 \
  || { echo "image-base: mmdebstrap not found: run scripts/install-podman.sh" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "image-base: building $image with mmdebstrap (about a minute)" >&2
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$tmp/base.tar" \
  "deb $mirror bookworm main" \
  "deb $mirror bookworm-updates main" \
  "deb ${mirror}-security bookworm-security main"
podman import --quiet \
  --change 'CMD ["/bin/bash"]' \
  --change "LABEL org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --change 'LABEL org.opencontainers.image.description=Debian bookworm minbase with python3 (mmdebstrap)' \
  "$tmp/base.tar" "$image" >/dev/null
echo "image-base: $image ($(podman run --rm --runtime runc --network host "$image" python3 --version))" >&2
