#!/usr/bin/env bash
# Two versions of opshost's dump side by side on one data set, in one run: the bench binary of
# REV (built in a temporary worktree) and of the working tree, each `--child dump`, with
# `mydumper -t 2` between them, alternating for N rounds, with medians. Answers "did the dump get
# slower?" without comparing runs on a machine whose speed moves between them.
# Usage: bash tests/bench-ab.sh REV [ROUNDS]   (e.g. bash tests/bench-ab.sh 6f40ef7 5)
set -euo pipefail
cd "$(dirname "$0")/.."
REV=${1:?give the revision to compare with, e.g. 6f40ef7}
ROUNDS=${2:-5}
WORK=$(mktemp -d /tmp/opshost-ab.XXXXXX)
PORT=${OPSHOST_BENCH_DB_PORT:-33072}
cleanup() {
  [ -n "${DB_PID:-}" ] && kill "$DB_PID" 2>/dev/null && wait "$DB_PID" 2>/dev/null
  git worktree remove --force "$WORK/old" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
git worktree add -f "$WORK/old" "$REV" >/dev/null
# Each side builds in its own target directory: they must not share the plugins' build.
(cd "$WORK/old" && cargo build --release -p opshost-e2e --bin opshost-bench --target-dir "$WORK/old-target")
cp "$WORK/old-target/release/opshost-bench" "$WORK/old-bench"
cargo build --release -p opshost-e2e --bin opshost-bench
cp target/release/opshost-bench "$WORK/new-bench"
mkdir -p "$WORK/db/tmp"; chmod 755 "$WORK"; chown -R mysql:mysql "$WORK/db" 2>/dev/null || true
mariadb-install-db --user=mysql --datadir="$WORK/db/data" --tmpdir="$WORK/db/tmp" --auth-root-authentication-method=normal >/dev/null 2>&1
mariadbd --user=mysql --datadir="$WORK/db/data" --socket="$WORK/db/sock" --tmpdir="$WORK/db/tmp" --port="$PORT" --bind-address=127.0.0.1 \
  --skip-name-resolve --innodb-buffer-pool-size=1G --max-allowed-packet=256M >"$WORK/db/mariadb.log" 2>&1 &
DB_PID=$!
for _ in $(seq 1 60); do mariadb --socket="$WORK/db/sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
mariadb --socket="$WORK/db/sock" -uroot -e "CREATE USER 'bench'@'%' IDENTIFIED BY 'bench'; GRANT ALL ON *.* TO 'bench'@'%';"
export OPSHOST_TEST_DB_URL="mysql://bench@127.0.0.1:$PORT" OPSHOST_TEST_DB_PASSWORD=bench
"$WORK/new-bench" --build-only
seconds() {
  local s e
  s=$(date +%s%N)
  "$@" >/dev/null 2>"$WORK/last.err" || { cat "$WORK/last.err"; exit 1; }
  e=$(date +%s%N)
  printf '%d.%03d\n' $(((e - s) / 1000000000)) $((((e - s) / 1000000) % 1000))
}
: >"$WORK/times"
for i in $(seq 1 "$ROUNDS"); do
  for side in old new mydumper; do
    rm -rf "$WORK/out"; mkdir -p "$WORK/out"; sync; sleep 2
    case $side in
      old) t=$(seconds "$WORK/old-bench" --child dump "$WORK/out") ;;
      new) t=$(seconds "$WORK/new-bench" --child dump "$WORK/out") ;;
      mydumper) t=$(seconds mydumper -h 127.0.0.1 -P "$PORT" -u bench -p bench -t 2 --regex '^bench_' -o "$WORK/out") ;;
    esac
    echo "round $i $side $t" | tee -a "$WORK/times"
  done
done
python3 - "$WORK/times" "$REV" <<'PY'
import statistics, sys
rounds = {}
for line in open(sys.argv[1]):
    _, i, side, t = line.split()
    rounds.setdefault(i, {})[side] = float(t)
for side, name in (("old", sys.argv[2]), ("new", "working tree")):
    ratios = [r[side] / r["mydumper"] for r in rounds.values()]
    print(f"{name}: dump median {statistics.median(r[side] for r in rounds.values()):.2f} s, "
          f"{statistics.median(ratios):.2f}x mydumper -t 2 (rounds {', '.join(f'{x:.2f}' for x in ratios)})")
print(f"mydumper -t 2: median {statistics.median(r['mydumper'] for r in rounds.values()):.2f} s")
PY
