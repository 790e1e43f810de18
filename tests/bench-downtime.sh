#!/usr/bin/env bash
# Downtime benchmark (issue 7 §3): time from the old OMS container stopping to the new one
# healthy, on the stand-in images: the seeds' 4.1.1 -> 4.2.0 procedure scripted in shell
# (docker CLI + mariadb-dump) vs `opshost upgrade`, on the same deployment, in one run.
# Usage: bash tests/bench-downtime.sh [ROWS] [IMAGE_MB] [ROUNDS]
#   ROWS      heartbeat rows before the trim (default 200000)
#   IMAGE_MB  megabytes of incompressible filler in the new image (default 0: the 7 MB stand-in).
#             Real OMS CE images are gigabytes; the seeds load the archive inside the downtime,
#             opshost before the stop, so this is where the two differ most.
#   ROUNDS    rounds of both procedures, each on a fresh deployment (default 3); medians reported
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROWS=${1:-200000}
IMAGE_MB=${2:-0}
ROUNDS=${3:-3}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
for t in dockerd mariadbd mariadb-dump; do command -v $t >/dev/null || { as_root apt-get update -qq; DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq docker.io mariadb-server mariadb-client >/dev/null; break; }; done
cargo build --release -p opshost -p opshost-e2e --bin opshost --bin oms-standin
W=$(mktemp -d /tmp/opshost-downtime.XXXXXX); mkdir "$W/tmp"; chown -R mysql:mysql "$W" 2>/dev/null || true
started_dockerd=""
if ! docker info >/dev/null 2>&1; then as_root sh -c "dockerd >'$W/dockerd.log' 2>&1 & echo \$! >'$W/dockerd.pid'"; started_dockerd=$(cat "$W/dockerd.pid"); for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; fi
PORT=33091
mariadb-install-db --user=mysql --datadir="$W/data" --tmpdir="$W/tmp" --auth-root-authentication-method=normal >/dev/null 2>&1
mariadbd --user=mysql --datadir="$W/data" --socket="$W/sock" --tmpdir="$W/tmp" --port=$PORT --bind-address=127.0.0.1 --skip-name-resolve --innodb-buffer-pool-size=512M >"$W/db.log" 2>&1 &
DB=$!
cleanup() { docker rm -f oms_411 oms_420 >/dev/null 2>&1 || true; kill $DB 2>/dev/null || true; wait $DB 2>/dev/null || true; [ -n "$started_dockerd" ] && as_root kill "$started_dockerd" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
for _ in $(seq 60); do mariadb --socket="$W/sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
mariadb --socket="$W/sock" -uroot -e "CREATE USER 'oms'@'%' IDENTIFIED BY 'oms'; GRANT ALL ON *.* TO 'oms'@'%';"
export MYSQL_PWD=oms OMS_METADB_PASSWORD=oms
SQL="mariadb -h127.0.0.1 -P$PORT -uoms"
bash tests/images/build.sh target/release/oms-standin "$W/images" oms >/dev/null
ARCHIVE="$W/images/oms-feature_4.2.0-ce.tar.gz"
OLD=reg.example.com/oceanbase/oms:feature_4.1.1-ce NEW=reg.example.com/oceanbase/oms:feature_4.2.0-ce
if [ "$IMAGE_MB" -gt 0 ]; then
  # The new image with a filler layer of the given size, saved uncompressed (as big as it is).
  mkdir -p "$W/filler" && head -c "${IMAGE_MB}M" /dev/urandom >"$W/filler/filler.bin"
  printf 'FROM %s\nCOPY filler.bin /opt/oms/filler.bin\n' "$NEW" >"$W/filler/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$NEW" "$W/filler" >/dev/null 2>&1
  ARCHIVE="$W/images/oms-feature_4.2.0-ce-${IMAGE_MB}mb.tar"
  docker save -o "$ARCHIVE" "$NEW"
  rm -rf "$W/filler"
fi
HEALTH=http://127.0.0.1:18189/oms/health
mkdir -p "$W/oms/logs" "$W/oms/store" "$W/oms/run" "$W/backup"
printf 'oms_meta_host: 127.0.0.1\noms_meta_port: %s\noms_meta_user: oms\noms_meta_password: oms\ndrc_rm_db: rm_411\ndrc_cm_db: cm_411\ndrc_cm_heartbeat_db: cm_hb_411\nnginx_server_port: 18189\n' $PORT >"$W/config.yaml"
echo deployment-bench >"$W/oms/store/standin-identity"
MOUNTS=(-v "$W/config.yaml:/home/admin/conf/config.yaml" -v "$W/oms/logs:/home/admin/logs" -v "$W/oms/store:/home/ds/store" -v "$W/oms/run:/home/ds/run")
healthy() { curl -s --max-time 1 "$HEALTH" 2>/dev/null | grep -q '"healthy":true'; }
for t in curl bc; do command -v $t >/dev/null || as_root apt-get install -y -qq $t >/dev/null; done
deploy() {
  docker rm -f oms_411 oms_420 >/dev/null 2>&1 || true
  docker rmi -f $NEW >/dev/null 2>&1 || true
  $SQL -e "DROP DATABASE IF EXISTS rm_411; DROP DATABASE IF EXISTS cm_411; DROP DATABASE IF EXISTS cm_hb_411; CREATE DATABASE rm_411; CREATE DATABASE cm_411; CREATE DATABASE cm_hb_411;"
  $SQL -D rm_411 -e "CREATE TABLE oms_normal_config (id BIGINT AUTO_INCREMENT PRIMARY KEY, cfg_name VARCHAR(128) UNIQUE, cfg_value LONGTEXT); INSERT INTO oms_normal_config (cfg_name, cfg_value) VALUES ('ha.config', '{\"enable\":true,\"refetchStoreIntervalMin\":30}'); CREATE TABLE oms_version (version VARCHAR(32)); INSERT INTO oms_version VALUES ('4.1.1'); CREATE TABLE standin_identity (identity VARCHAR(128)); INSERT INTO standin_identity VALUES ('deployment-bench'); CREATE TABLE oms_project (id BIGINT PRIMARY KEY, config JSON, description TEXT); INSERT INTO oms_project SELECT seq, CONCAT('{\"n\":', seq, '}'), REPEAT('x', 400) FROM seq_1_to_100000;"
  $SQL -D cm_411 -e "CREATE TABLE host (id INT AUTO_INCREMENT PRIMARY KEY, resource_group_id INT, ip VARCHAR(64), host_status VARCHAR(16)); INSERT INTO host (resource_group_id, ip, host_status) VALUES (1, '127.0.0.1', 'OFFLINE');"
  $SQL -D cm_hb_411 -e "CREATE TABLE heatbeat_sequence (id BIGINT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(64), gmt_created BIGINT); INSERT INTO heatbeat_sequence (node, gmt_created) SELECT '127.0.0.1', seq FROM seq_1_to_$ROWS;"
  docker run -dit --net host --pids-limit -1 --ulimit nproc=65535:65535 "${MOUNTS[@]}" -e OMS_HOST_IP=127.0.0.1 --name oms_411 $OLD >/dev/null
  for _ in $(seq 300); do healthy && break; sleep 0.1; done; healthy || { echo "stand-in OMS did not come up" >&2; exit 1; }
  # Let the server finish with the deployment's writes (flushing, purge) before either procedure.
  sleep 2
}
now() { date +%s.%N; }
# The same watcher times both procedures: when the old container stops (the engine's wait API,
# which answers the moment it does: no polling), and when the new one first answers healthy after
# that (asked every 20 ms; the old one is stopped, so only the new one can answer).
SOCK=${DOCKER_HOST:-}; SOCK=${SOCK#unix://}; [ -S "$SOCK" ] || SOCK=/var/run/docker.sock
watch() {
  rm -f "$W/t_stop" "$W/t_healthy"
  ( curl -s --unix-socket "$SOCK" -X POST "http://engine/containers/oms_411/wait?condition=not-running" >/dev/null
    now >"$W/t_stop"
    until healthy; do sleep 0.02; done
    now >"$W/t_healthy" ) &
  WATCH=$!
}
# Not in $(...): a subshell cannot wait for the watcher.
watched() { wait $WATCH; ELAPSED=$(echo "$(cat "$W/t_healthy") - $(cat "$W/t_stop")" | bc); }

# 1. The seeds' procedure, scripted.
seeds() {
  docker stop -t 5 oms_411 >/dev/null
  max=$($SQL -N -D cm_hb_411 -e "SELECT MAX(id) FROM heatbeat_sequence")
  $SQL -D cm_hb_411 -e "DELETE FROM heatbeat_sequence WHERE id < $max"
  for db in rm_411 cm_411 cm_hb_411; do mariadb-dump -h127.0.0.1 -P$PORT -uoms --triggers=false $db >"$W/backup/$db.sql"; [ -s "$W/backup/$db.sql" ]; done
  docker load -i "$ARCHIVE" >/dev/null
  docker run -dit --net host --pids-limit -1 --ulimit nproc=65535:65535 "${MOUNTS[@]}" -e OMS_HOST_IP=127.0.0.1 -e IS_UPGRADE=true --name oms_420 $NEW >/dev/null
  docker exec oms_420 bash /root/docker_init.sh >/dev/null
  until healthy; do sleep 0.05; done
}

# 2. opshost, on a fresh copy of the same deployment.
cat >"$W/site.toml" <<TOML
state_dir = "$W/state"
backup_dir = "$W/opshost-backups"
plugins_dir = "$ROOT/target/release/plugins"
trust = ["$ROOT/plugins/keys/test-vendor.pub"]
[docker_policy]
deny_privileged = true
[nodes.local]
[metadb.metadb]
host = "127.0.0.1"
port = $PORT
user = "oms"
password_env = "OMS_METADB_PASSWORD"
[products.oms]
version = "4.1.1"
[products.oms.parameters]
container = "oms_411"
new_container = "oms_420"
image_archive = "$ARCHIVE"
online_timeout_s = "120"
poll_interval_s = "1"
stop_timeout_s = "5"
[products.oms.console]
rm_db = "rm_411"
cm_db = "cm_411"
health_urls = { local = "$HEALTH" }
[grants."oms-4.2.0"]
docker = ["oms_411", "oms_420"]
image-archive = ["$ARCHIVE"]
sql = ["metadb/rm_411", "metadb/cm_411", "metadb/cm_hb_411"]
console = ["ha.config", "servers"]
TOML
opshost_upgrade() {
  rm -rf "$W/state" "$W/opshost-backups"
  U0=$(now)
  OPSHOST_CACHE_DIR="$W/cache" ./target/release/opshost upgrade --config "$W/site.toml" --product oms --to 4.2.0 --yes >"$W/opshost.log" 2>&1 || { cat "$W/opshost.log"; exit 1; }
  U1=$(now)
}

# Rounds, each the seeds then opshost on fresh deployments; the medians are reported.
SEEDS_ALL=() OPS_ALL=() RATIOS=()
for r in $(seq "$ROUNDS"); do
  deploy; watch; seeds; watched; S=$ELAPSED
  deploy; watch; opshost_upgrade; watched; O=$ELAPSED
  SEEDS_ALL+=("$S") OPS_ALL+=("$O") RATIOS+=("$(echo "$O / $S" | bc -l)")
  printf 'round %s: seeds %.2f s, opshost %.2f s, opshost / seeds %.2f' "$r" "$S" "$O" "${RATIOS[-1]}"
  # opshost's calls inside the downtime, in ms, from its transcript.
  command -v python3 >/dev/null && python3 - "$W"/state/runs/*/upgrade-calls.json <<'PY'
import json, sys
calls, stopped, parts = json.load(open(sys.argv[1])), False, []
for c in calls:
    stopped = stopped or c["call"] == "docker.stop"
    if stopped and c.get("ms", 0) >= 10:
        parts.append(f"{c['call'].split('.')[1]} {c['ms']}")
print("   (opshost's calls from the stop, ms: " + ", ".join(parts) + ")")
PY
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
SEEDS=$(median "${SEEDS_ALL[@]}") OPS=$(median "${OPS_ALL[@]}") RATIO=$(median "${RATIOS[@]}")
if command -v python3 >/dev/null; then
  printf '\nopshost, the capability calls of 20 ms or more before the stop, then every call from the stop on (from the run transcript):\n'
  python3 - "$W"/state/runs/*/upgrade-calls.json <<'PY'
import json, sys
stopped = False
for c in json.load(open(sys.argv[1])):
    stopped = stopped or c["call"] == "docker.stop"
    if stopped or c.get("ms", 0) >= 20:
        print(f"  {c.get('ms', 0):>6} ms  {c['call']} {json.dumps(c['args'])[:70]}")
PY
  # Issue 21 §5: the WASM layer's share, from the timing the run keeps beside its transcript.
  python3 - "$W"/state/runs/*/upgrade-timing.json "$(echo "$U1 - $U0" | bc)" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
command_s = float(sys.argv[2])
guest = t["plugin_and_runtime_us"] / 1e6
print(f"\nthe WASM layer (plugin code + runtime, not in host calls) in the upgrade export; apart from both, the journal's")
print(f"durable end entries and the transcript took {t.get('bookkeeping_us', 0) / 1000:.1f} ms:")
print(f"  {guest * 1000:.1f} ms of the export's {t['wall_us'] / 1e6:.2f} s ({100 * guest / (t['wall_us'] / 1e6):.2f} %), "
      f"of the whole opshost upgrade command's {command_s:.2f} s: {100 * guest / command_s:.2f} %   (goal < 1 %: {'met' if guest / command_s < 0.01 else 'NOT met'})")
PY
fi
printf '\ndowntime (old container stopped -> new one healthy, the same watcher for both), %s heartbeat rows before the trim, new image archive %s MB, median of %s rounds:\n' "$ROWS" "$(( $(stat -c %s "$ARCHIVE") / 1048576 ))" "$ROUNDS"
printf '  seeds procedure, scripted (stop, trim, mariadb-dump x3, load, run, init)  %6.2f s\n' "$SEEDS"
printf '  opshost upgrade (load before the stop; verified backups)                  %6.2f s\n' "$OPS"
printf '  opshost / seeds (median of the per-round ratios): %.2f   (goal <= 0.5: %s)\n' "$RATIO" "$( [ "$(echo "$RATIO <= 0.5" | bc -l)" = 1 ] && echo met || echo 'NOT met')"
