#!/usr/bin/env bash
# Build the local test images (FROM scratch: nothing can be pulled here) and save archives for
# `docker load`. Needs busybox-static and bash-static from Debian (installed when missing).
set -euo pipefail
cd "$(dirname "$0")"
OUT=${1:-/tmp/opshost-images}
mkdir -p "$OUT"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
dpkg -s bash-static >/dev/null 2>&1 || need+=(bash-static)
if [ ${#need[@]} -gt 0 ]; then
  as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >/dev/null
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp /bin/busybox "$ctx/busybox"
docker build -q -t opshost-test/busybox:1 -f busybox.Dockerfile "$ctx" >/dev/null
echo "built opshost-test/busybox:1"
