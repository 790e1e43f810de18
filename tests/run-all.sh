#!/usr/bin/env bash
# The README's test command: installs what is missing (the wasm32-wasip2 target, a Docker engine,
# MariaDB, Chromium for the run report's browser test), starts a Docker engine and a throwaway
# MariaDB for this run, and runs every test.
# Safe to run again; stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
log() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

log "Rust toolchain and the wasm32-wasip2 target (rust-toolchain.toml)"
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
# The multi-node test starts more Docker engines, each with a bridge of its own (ip link).
command -v ip >/dev/null || missing+=(iproute2)
command -v mariadbd >/dev/null || missing+=(mariadb-server)
command -v mariadb >/dev/null || missing+=(mariadb-client)
command -v mariadb-dump >/dev/null || missing+=(mariadb-client)
# The run report is checked in a real headless browser (screenshot and rendered DOM).
command -v chromium >/dev/null || missing+=(chromium)
# The house-rule check (tests/import-circles.py).
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

RUN_DIR=$(mktemp -d /tmp/opshost-test.XXXXXX)
started_dockerd=""
started_mariadb=""
cleanup() {
  [ -n "$started_mariadb" ] && kill "$started_mariadb" 2>/dev/null && wait "$started_mariadb" 2>/dev/null || true
  [ -n "$started_dockerd" ] && as_root kill "$started_dockerd" 2>/dev/null || true
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

log "Docker engine"
if ! docker info >/dev/null 2>&1; then
  as_root sh -c "dockerd >'$RUN_DIR/dockerd.log' 2>&1 & echo \$! >'$RUN_DIR/dockerd.pid'"
  started_dockerd=$(cat "$RUN_DIR/dockerd.pid")
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { cat "$RUN_DIR/dockerd.log"; echo "dockerd did not start" >&2; exit 1; }
fi
docker version --format 'engine {{.Server.Version}} (API {{.Server.APIVersion}})'

log "MariaDB (throwaway instance in $RUN_DIR/mariadb)"
DB_PORT=${OPSHOST_TEST_DB_PORT:-33061}
# Its own tmpdir: a MariaDB that starts (mariadb-install-db's too) deletes every `#sql*` file in
# its tmpdir, and the tests start servers of their own beside this one.
mkdir -p "$RUN_DIR/mariadb/tmp"
chown -R mysql:mysql "$RUN_DIR" 2>/dev/null || true
mariadb-install-db --user=mysql --datadir="$RUN_DIR/mariadb/data" --tmpdir="$RUN_DIR/mariadb/tmp" --auth-root-authentication-method=normal >"$RUN_DIR/mariadb-install.log" 2>&1 \
  || { cat "$RUN_DIR/mariadb-install.log"; exit 1; }
mariadbd --user=mysql --datadir="$RUN_DIR/mariadb/data" --socket="$RUN_DIR/mariadb/sock" --tmpdir="$RUN_DIR/mariadb/tmp" --port="$DB_PORT" \
  --bind-address=127.0.0.1 --skip-name-resolve --innodb-buffer-pool-size=256M --max-allowed-packet=256M \
  >"$RUN_DIR/mariadb.log" 2>&1 &
started_mariadb=$!
for _ in $(seq 1 60); do mariadb --socket="$RUN_DIR/mariadb/sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
mariadb --socket="$RUN_DIR/mariadb/sock" -uroot -e "CREATE USER IF NOT EXISTS 'opshost'@'%' IDENTIFIED BY 'opshost-test'; GRANT ALL ON *.* TO 'opshost'@'%' WITH GRANT OPTION; FLUSH PRIVILEGES;" \
  || { cat "$RUN_DIR/mariadb.log"; exit 1; }
export OPSHOST_TEST_DB_URL="mysql://opshost@127.0.0.1:$DB_PORT"
export OPSHOST_TEST_DB_PASSWORD="opshost-test"
export OPSHOST_TEST_DOCKER=1

# A one-off build: incremental caches would only take disk (gigabytes with wasmtime in every
# test binary).
export CARGO_INCREMENTAL=0

log "rustfmt and clippy (host, tests, plugins): the house rules, before anything runs"
cargo fmt --all --check
(cd plugins && cargo fmt --all --check)
cargo clippy --workspace --all-targets -- -D warnings
# The plugins build for wasm32-wasip2 (host/build.rs); clippy checks them for that target.
(cd plugins && cargo clippy --release --target wasm32-wasip2 --target-dir ../target/wasm-clippy -- -D warnings)
# No import circle between the host's files, and no backend importing the host-call path.
python3 tests/import-circles.py

log "build: host, plugins (wasm32-wasip2), stand-in OMS and ODC"
cargo build --workspace --all-targets

log "test images (FROM scratch): busybox, stand-in OMS 3.2.2 / 3.3.0 / 3.3.1 / 4.1.1 / 4.2.0, ODC 4.2.2 / 4.3.0 / 4.3.1, nginx"
bash tests/images/build.sh target/debug/oms-standin "$RUN_DIR/images"
export OPSHOST_TEST_IMAGES="$RUN_DIR/images"

# Containers an earlier, interrupted run left behind (every test image carries this label): one
# with a restart policy comes back with the engine and holds its ports and names.
leftovers() { docker ps -aq --filter label=opshost.test-image=1; }
if [ -n "$(leftovers)" ]; then
  echo "removing $(leftovers | wc -l) container(s) left by an earlier test run"
  leftovers | xargs docker rm -f >/dev/null
fi

log "cargo test (host, fake-host scenarios, end-to-end on Docker + MariaDB)"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$RUN_DIR/cargo-test.log"
status=${PIPESTATUS[0]}
# The plugins' shared library: its pure functions (config.yaml, versions, sizes) on this machine's
# target; the host calls it makes are what the scenarios above test.
(cd plugins && cargo test -p opshost-procedures --lib --target-dir ../target/plugins-native) 2>&1 | tee -a "$RUN_DIR/cargo-test.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
set -e

log "the README's stand-in site, its commands run as written (tests/standin-site.sh)"
site_status=0
readme_cmds=$(awk '/^bash tests\/standin-site.sh up/,/^bash tests\/standin-site.sh down/' README.md)
[ -n "$readme_cmds" ] || { echo "README.md lost its stand-in site commands" >&2; site_status=1; }
if [ -n "$readme_cmds" ]; then
  # Line by line as an operator types them; the README's directory is replaced by one of this
  # run's, and the images already built are reused.
  site_dir="$RUN_DIR/standin"
  export STANDIN_IMAGES="$RUN_DIR/images"
  while IFS= read -r line; do
    line=${line%%#*}
    [ -n "${line// /}" ] || continue
    line=${line//\/tmp\/opshost-standin/$site_dir}
    echo "+ $line"
    eval "$line" || { echo "stand-in site: this README command failed: $line" >&2; site_status=1; break; }
  done <<<"$readme_cmds"
  bash tests/standin-site.sh down "$site_dir" >/dev/null 2>&1 || true
fi
[ "$site_status" = 0 ] && echo "stand-in site: plan, upgrade, rollback passed" || echo "stand-in site: FAILED" >&2
[ "$status" = 0 ] && status=$site_status

log "scenarios through the CLI, as a plugin author runs them"
# Every plugin crate with a scenarios/ folder; the crate directory oms-4.2.0 builds oms_4_2_0.wasm.
for dir in plugins/*/scenarios/; do
  dir=${dir%/scenarios/}
  name=$(basename "$dir")
  ./target/debug/opshost test --trust plugins/keys/test-vendor.pub "target/debug/plugins/$(echo "$name" | tr -- '-.' '__').wasm" --scenario "$dir/scenarios"
done

exit "$status"
