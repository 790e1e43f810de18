#!/usr/bin/env bash
# Build the local test images (FROM scratch: nothing can be pulled here) and save archives for
# `docker load`:
#   opshost-test/busybox:1                              shell image for the Docker conformance suite
#   reg.example.com/oceanbase/oms:feature_X.Y.Z-ce      stand-in OMS 3.2.2, 3.3.0, 3.3.1, 4.1.1, 4.2.0
#   reg.example.com/oceanbase/odc-server:X.Y.Z          stand-in ODC 4.2.2, 4.3.0, 4.3.1
#   reg.example.com/oceanbase/odc-nginx:X.Y.Z           stand-in nginx in front of an HA ODC, 1.24.0, 1.26.2
# Usage: build.sh OMS_STANDIN_BINARY OUT_DIR [SETS]. The odc-standin binary is taken from the same
# directory as the oms-standin one. SETS is a comma-separated subset of busybox,oms,odc (default:
# all), e.g. `build.sh target/debug/oms-standin /tmp/images odc` rebuilds only the ODC images.
# Installs busybox-static and bash-static when missing.
set -euo pipefail
BIN=$(realpath "${1:?path to the oms-standin binary}")
OUT=$(realpath -m "${2:?directory for the image archives}")
ODC_BIN=$(dirname "$BIN")/odc-standin
SETS=",${3:-busybox,oms,odc},"
want() { [[ $SETS == *",$1,"* ]]; }
cd "$(dirname "$0")"
mkdir -p "$OUT"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
dpkg -s bash-static >/dev/null 2>&1 || need+=(bash-static)
if [ ${#need[@]} -gt 0 ]; then
  as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >/dev/null
fi
export DOCKER_BUILDKIT=0
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

if want busybox; then
cp /bin/busybox "$ctx/busybox"
docker build -q --label opshost.test-image=1 -t opshost-test/busybox:1 -f busybox.Dockerfile "$ctx" >/dev/null
echo "built opshost-test/busybox:1"
fi

if want oms; then
# The stand-in with the shared libraries it links (the image has no libc of its own).
root="$ctx/rootfs"
mkdir -p "$root/bin" "$root/root" "$root/opt/oms" "$root/home/admin/logs" "$root/home/ds/store" "$root/home/ds/run" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
cp /bin/bash-static "$ctx/bash"
strip -o "$root/opt/oms/oms-standin" "$BIN"
for lib in $(ldd "$BIN" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# The vendor's docker_init.sh starts OMS's services once the schema is changed: the stand-in's
# tells the waiting server (PID 1) it is done.
printf '#!/bin/bash\n# Schema changes of the rm, cm and cm_hb databases (stand-in), then the server told to start.\n/opt/oms/oms-standin init "$@" || exit $?\nkill -USR1 1 2>/dev/null\nexit 0\n' >"$root/root/docker_init.sh"
chmod +x "$root/root/docker_init.sh"
for v in 3.2.2 3.3.0 3.3.1 4.1.1 4.2.0; do
  case $v in 3.*) tag="feature_${v}_ce" ;; *) tag="feature_${v}-ce" ;; esac
  image="reg.example.com/oceanbase/oms:$tag"
  docker build -q --label opshost.test-image=1 --build-arg VERSION=$v -t "$image" -f oms.Dockerfile "$ctx" >/dev/null
  docker save "$image" | gzip -1 >"$OUT/oms-$tag.tar.gz"
  [ "$v" = 3.3.0 ] && docker save -o "$OUT/oms-$tag.tar" "$image"
  echo "built $image -> $OUT/oms-$tag.tar.gz"
done
fi

if want odc; then
[ -x "$ODC_BIN" ] || { echo "$ODC_BIN is missing: build it (cargo build -p opshost-e2e --bin odc-standin)" >&2; exit 1; }
root="$ctx/odc-rootfs"
mkdir -p "$root/bin" "$root/opt/odc/log" "$root/opt/odc/data" "$root/etc/nginx/conf.d" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
strip -o "$root/opt/odc/odc-standin" "$ODC_BIN"
for lib in $(ldd "$ODC_BIN" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
for v in 4.2.2 4.3.0 4.3.1; do
  image="reg.example.com/oceanbase/odc-server:$v"
  docker build -q --label opshost.test-image=1 --build-arg VERSION=$v --build-arg MODE=serve -t "$image" -f odc.Dockerfile "$ctx" >/dev/null
  docker save "$image" | gzip -1 >"$OUT/odc-server-$v.tar.gz"
  echo "built $image -> $OUT/odc-server-$v.tar.gz"
done
for v in 1.24.0 1.26.2; do
  image="reg.example.com/oceanbase/odc-nginx:$v"
  docker build -q --label opshost.test-image=1 --build-arg VERSION=$v --build-arg MODE=nginx -t "$image" -f odc.Dockerfile "$ctx" >/dev/null
  docker save "$image" | gzip -1 >"$OUT/odc-nginx-$v.tar.gz"
  echo "built $image -> $OUT/odc-nginx-$v.tar.gz"
done
fi
