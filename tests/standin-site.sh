#!/usr/bin/env bash
# A throwaway OMS 4.1.1 site to try the real path on before a real one: the stand-in images, a
# MariaDB of its own holding an OMS MetaDB (rm, cm, cm_hb, HA on, heartbeat rows), the stand-in
# OMS 4.1.1 container as the vendor runs it, and a ready site.toml trusting the TEST key.
#
#   bash tests/standin-site.sh up   [DIR]   build and start it in DIR (default /tmp/opshost-standin)
#   bash tests/standin-site.sh down [DIR]   remove the container, stop the MariaDB, delete DIR
#
# Then, as README "Upgrading a real deployment" shows:
#   export OPSHOST_STANDIN_DB_PASSWORD=standin
#   ./target/debug/opshost plan     --config DIR/site.toml --product oms --to 4.2.0
#   ./target/debug/opshost upgrade  --config DIR/site.toml --product oms --to 4.2.0 --yes
#   ./target/debug/opshost rollback --config DIR/site.toml --product oms --yes
#
# Needs Docker and MariaDB (tests/run-all.sh installs both). Environment: STANDIN_DB_PORT (33070),
# STANDIN_HEALTH_PORT (18990), STANDIN_IMAGES (a directory tests/images/build.sh already filled:
# skips building the images).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
cmd=${1:?usage: standin-site.sh up|down [DIR]}
DIR=$(realpath -m "${2:-/tmp/opshost-standin}")
DB_PORT=${STANDIN_DB_PORT:-33070}
HEALTH_PORT=${STANDIN_HEALTH_PORT:-18990}
PASSWORD=standin
OLD=oms_411_standin
NEW=oms_420_standin
RM=rm_411
CM=cm_411
HB=cm_hb_411
log() { printf '==> %s\n' "$*"; }

down() {
  docker rm -f "$OLD" "$NEW" >/dev/null 2>&1 || true
  if [ -f "$DIR/mariadb.pid" ]; then
    kill "$(cat "$DIR/mariadb.pid")" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$(cat "$DIR/mariadb.pid")" 2>/dev/null || break; sleep 1; done
  fi
  rm -rf "$DIR"
}

if [ "$cmd" = down ]; then
  down
  log "stand-in site in $DIR removed"
  exit 0
fi
[ "$cmd" = up ] || { echo "usage: standin-site.sh up|down [DIR]" >&2; exit 2; }
command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "no Docker engine answers: start dockerd (tests/run-all.sh installs and starts one)" >&2; exit 1; }
command -v mariadbd >/dev/null || { echo "mariadbd is missing: apt-get install mariadb-server mariadb-client (tests/run-all.sh does)" >&2; exit 1; }
[ -e "$DIR/site.toml" ] && { echo "$DIR already holds a stand-in site: bash tests/standin-site.sh down $DIR first" >&2; exit 1; }
mkdir -p "$DIR"/{logs,store,run,state,backups}

log "build: opshost, its plugins and the stand-in OMS"
cargo build -q -p opshost
cargo build -q -p opshost-e2e --bin oms-standin --bin odc-standin
IMAGES=${STANDIN_IMAGES:-$DIR/images}
if [ ! -f "$IMAGES/oms-feature_4.2.0-ce.tar.gz" ]; then
  log "stand-in images into $IMAGES"
  bash tests/images/build.sh target/debug/oms-standin "$IMAGES" oms
fi
docker image inspect reg.example.com/oceanbase/oms:feature_4.1.1-ce >/dev/null 2>&1 || docker load -q -i "$IMAGES/oms-feature_4.1.1-ce.tar.gz" >/dev/null

log "MariaDB for the MetaDB on 127.0.0.1:$DB_PORT ($DIR/mariadb)"
# As the user running this script: DIR may sit where the mysql user cannot reach.
mkdir -p "$DIR/mariadb/tmp"  # its own tmpdir: a starting MariaDB deletes the `#sql*` files in it
me=$(id -un)
mariadb-install-db --user="$me" --datadir="$DIR/mariadb/data" --tmpdir="$DIR/mariadb/tmp" --auth-root-authentication-method=normal >"$DIR/mariadb-install.log" 2>&1 \
  || { cat "$DIR/mariadb-install.log"; exit 1; }
mariadbd --user="$me" --datadir="$DIR/mariadb/data" --socket="$DIR/mariadb/sock" --tmpdir="$DIR/mariadb/tmp" --port="$DB_PORT" \
  --bind-address=127.0.0.1 --skip-name-resolve >"$DIR/mariadb.log" 2>&1 &
echo $! >"$DIR/mariadb.pid"
for _ in $(seq 1 60); do mariadb --socket="$DIR/mariadb/sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
db() { mariadb --socket="$DIR/mariadb/sock" -uroot "$@"; }
db -e "CREATE USER 'oms'@'%' IDENTIFIED BY '$PASSWORD'; GRANT ALL ON *.* TO 'oms'@'%'; FLUSH PRIVILEGES;"

log "the OMS 4.1.1 MetaDB: $RM, $CM, $HB (HA on, 5000 heartbeat rows)"
HA='{"enable":true,"enableHost":false,"enableStore":true,"enableConnector":true,"enableJdbcWriter":true,"subtopicStoreNumberThreshold":5,"checkRequestIntervalSec":600,"checkHostDownIntervalSec":540,"checkModuleExceptionIntervalSec":240,"clearAbnormalResourceHours":72}'
IDENTITY=standin-site-$(date +%s)
db <<SQL
CREATE DATABASE $RM; CREATE DATABASE $CM; CREATE DATABASE $HB; USE $RM;
CREATE TABLE $RM.oms_normal_config (id BIGINT AUTO_INCREMENT PRIMARY KEY, cfg_name VARCHAR(128) NOT NULL UNIQUE, cfg_value LONGTEXT, description VARCHAR(512), gmt_modified DATETIME(6));
INSERT INTO $RM.oms_normal_config (cfg_name, cfg_value, description, gmt_modified) VALUES ('ha.config', '$HA', 'HA', NOW(6)), ('store.retention.hours', '72', NULL, NULL);
CREATE TABLE $RM.oms_version (version VARCHAR(32) NOT NULL); INSERT INTO $RM.oms_version VALUES ('4.1.1');
CREATE TABLE $RM.standin_identity (identity VARCHAR(128)); INSERT INTO $RM.standin_identity VALUES ('$IDENTITY');
CREATE TABLE $RM.cluster_info (region VARCHAR(64), cm_url VARCHAR(256), code VARCHAR(64), is_default_cm TINYINT); INSERT INTO $RM.cluster_info VALUES ('hangzhou', 'http://127.0.0.1:8088', 'cn-hangzhou', 1);
CREATE TABLE $RM.oms_project (id BIGINT PRIMARY KEY, name VARCHAR(128), config JSON, cost DOUBLE);
INSERT INTO $RM.oms_project SELECT seq, CONCAT('project-', seq), CONCAT('{"tables":', seq, '}'), seq / 7 FROM seq_1_to_2000;
CREATE TABLE $CM.resource_group (id INT PRIMARY KEY, name VARCHAR(64)); INSERT INTO $CM.resource_group VALUES (1, 'default');
CREATE TABLE $CM.host (id INT AUTO_INCREMENT PRIMARY KEY, resource_group_id INT, ip VARCHAR(64), host_status VARCHAR(16)); INSERT INTO $CM.host (resource_group_id, ip, host_status) VALUES (1, '127.0.0.1', 'OFFLINE');
CREATE TABLE $HB.heatbeat_sequence (id BIGINT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(64), gmt_created BIGINT);
INSERT INTO $HB.heatbeat_sequence (node, gmt_created) SELECT '127.0.0.1', 1767225600000 + seq FROM seq_1_to_5000;
SQL

log "the stand-in OMS 4.1.1 container $OLD (--net host, health on port $HEALTH_PORT)"
cat >"$DIR/config.yaml" <<YAML
oms_meta_host: 127.0.0.1
oms_meta_port: $DB_PORT
oms_meta_user: oms
oms_meta_password: $PASSWORD
drc_rm_db: $RM
drc_cm_db: $CM
drc_cm_heartbeat_db: $HB
cm_location: 1
nginx_server_port: $HEALTH_PORT
standin_heartbeat_ms: 200
YAML
printf '%s' "$IDENTITY" >"$DIR/store/standin-identity"
docker rm -f "$OLD" "$NEW" >/dev/null 2>&1 || true
docker run -dit --net host --pids-limit -1 --ulimit nproc=65535:65535 --name "$OLD" \
  -v "$DIR/config.yaml:/home/admin/conf/config.yaml" -v "$DIR/logs:/home/admin/logs" -v "$DIR/store:/home/ds/store" -v "$DIR/run:/home/ds/run" \
  -e OMS_HOST_IP=127.0.0.1 reg.example.com/oceanbase/oms:feature_4.1.1-ce >/dev/null
# The console's health URL answers 200 (bash's /dev/tcp: no HTTP client needed).
healthy() {
  local status
  # In a subshell: a refused connection ends only it.
  status=$( (exec 3<>"/dev/tcp/127.0.0.1/$HEALTH_PORT" && printf 'GET /oms/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && head -1 <&3) 2>/dev/null) || return 1
  [[ $status == *" 200 "* ]]
}
# Up to three minutes: a loaded machine (CI right after the test suite) starts it slowly.
for _ in $(seq 1 180); do healthy && break; sleep 1; done
healthy || {
  docker logs "$OLD" | tail -20
  docker inspect -f 'state {{.State.Status}}, exit {{.State.ExitCode}}, started {{.State.StartedAt}}' "$OLD" || true
  echo "port $HEALTH_PORT answers: $( (exec 3<>"/dev/tcp/127.0.0.1/$HEALTH_PORT" && printf 'GET /oms/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && head -1 <&3) 2>&1)" >&2
  (ss -ltnp 2>/dev/null || true) | grep ":$HEALTH_PORT " >&2 || true
  echo "the stand-in OMS did not become healthy on port $HEALTH_PORT within 180 s" >&2
  exit 1
}

cat >"$DIR/site.toml" <<TOML
# A stand-in OMS 4.1.1 site (tests/standin-site.sh). The same shape as a real site's config.
state_dir  = "$DIR/state"
backup_dir = "$DIR/backups"
plugins_dir = "$ROOT/target/debug/plugins"
trust = ["$ROOT/plugins/keys/test-vendor.pub"]   # the TEST key: only for stand-ins

[docker_policy]
deny_privileged = $( [ "${STANDIN_PRIVILEGED:-}" = 1 ] && echo false || echo true )   # an engine in a sandbox refuses --privileged

[nodes.local]

[metadb.metadb]
host = "127.0.0.1"
port = $DB_PORT
user = "oms"
password_env = "OPSHOST_STANDIN_DB_PASSWORD"

[products.oms]
version = "4.1.1"
nodes = ["local"]

[products.oms.parameters]
container = "$OLD"
new_container = "$NEW"
image_archive = "$IMAGES/oms-feature_4.2.0-ce.tar.gz"
rm_db = "$RM"
cm_db = "$CM"
cm_hb_db = "$HB"
online_timeout_s = "90"
poll_interval_s = "1"

[products.oms.console]
rm_db = "$RM"
cm_db = "$CM"
health_urls = { local = "http://127.0.0.1:$HEALTH_PORT/oms/health" }

[grants."oms-4.2.0"]
docker = ["local/$OLD", "local/$NEW"]
image-archive = ["$IMAGES/oms-feature_4.2.0-ce.tar.gz"]
sql = ["metadb/$RM", "metadb/$CM", "metadb/$HB"]
console = ["ha.config", "servers"]
TOML

log "ready: $DIR/site.toml"
cat <<EOF
  export OPSHOST_STANDIN_DB_PASSWORD=$PASSWORD
  ./target/debug/opshost plan     --config $DIR/site.toml --product oms --to 4.2.0
  ./target/debug/opshost upgrade  --config $DIR/site.toml --product oms --to 4.2.0 --yes
  ./target/debug/opshost rollback --config $DIR/site.toml --product oms --yes
  bash tests/standin-site.sh down $DIR
EOF
