#!/usr/bin/env bash
# The benchmark command: opshost's backup and restore vs mariadb-dump / the stock client (the
# seeds' way) and mydumper / myloader -t 2, on the same synthetic OMS MetaDB in one run, printed
# as ratios; plus opshost's peak memory and plugin start. Release build, throwaway MariaDB.
# Usage: bash tests/bench.sh [--scale 1.0] [--rounds N]   (1.0 is about 550 MB on disk, 2.6M heartbeat
# rows; N rounds report each tool's median)
#        bash tests/bench.sh --autoinc [--rows N] [--rounds N]   (one big AUTO_INCREMENT table loaded
# every way a client can: the bound behind the heartbeat shape's restore)
# OPSHOST_BENCH_SERVER_ARGS adds options to the throwaway server, to measure a MetaDB configured
# otherwise (e.g. "--innodb-autoinc-lock-mode=2", MySQL 8's default).
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v mariadbd >/dev/null || missing+=(mariadb-server)
command -v mariadb-dump >/dev/null || missing+=(mariadb-client)
command -v mydumper >/dev/null || missing+=(mydumper)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --release -p opshost-e2e --bin opshost-bench
RUN_DIR=$(mktemp -d /tmp/opshost-bench.XXXXXX)
mkdir "$RUN_DIR/tmp"  # its own tmpdir: a starting MariaDB deletes the `#sql*` files in it
chown -R mysql:mysql "$RUN_DIR" 2>/dev/null || true
PORT=${OPSHOST_BENCH_DB_PORT:-33071}
mariadb-install-db --user=mysql --datadir="$RUN_DIR/data" --tmpdir="$RUN_DIR/tmp" --auth-root-authentication-method=normal >/dev/null 2>&1
mariadbd --user=mysql --datadir="$RUN_DIR/data" --socket="$RUN_DIR/sock" --tmpdir="$RUN_DIR/tmp" --port="$PORT" --bind-address=127.0.0.1 \
  --skip-name-resolve --innodb-buffer-pool-size=1G --max-allowed-packet=256M ${OPSHOST_BENCH_SERVER_ARGS:-} >"$RUN_DIR/mariadb.log" 2>&1 &
DB_PID=$!
trap 'kill $DB_PID 2>/dev/null; wait $DB_PID 2>/dev/null; rm -rf "$RUN_DIR"' EXIT
for _ in $(seq 1 60); do mariadb --socket="$RUN_DIR/sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
mariadb --socket="$RUN_DIR/sock" -uroot -e "CREATE USER 'bench'@'%' IDENTIFIED BY 'bench'; GRANT ALL ON *.* TO 'bench'@'%';"
OPSHOST_BENCH_SERVER_PID=$DB_PID OPSHOST_TEST_DB_URL="mysql://bench@127.0.0.1:$PORT" OPSHOST_TEST_DB_PASSWORD=bench ./target/release/opshost-bench "$@"
