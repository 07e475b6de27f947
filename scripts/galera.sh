#!/usr/bin/env bash
# A 3-node MariaDB Galera test cluster on loopback, for the cluster tests (test/reliability/galera*).
#
#   scripts/galera.sh start          start the nodes that are not running (a fresh cluster when none is)
#   scripts/galera.sh stop           shut every node down
#   scripts/galera.sh status         each node's wsrep state and the cluster size
#   scripts/galera.sh urls           the nodes' URLs, comma-separated (what GALERA_URLS holds)
#   scripts/galera.sh kill N         SIGKILL node N (1..3), as a crash would
#   scripts/galera.sh start-node N   start node N again; it rejoins and catches up (IST, else SST)
#
# Each node has its own datadir under $GALERA_DIR (default /tmp/event-history-galera), its own SQL
# port (3317, 3318, 3319), group communication port, IST port (ist.recv_addr) and SST port
# (wsrep_sst_receive_address), and runs as the mysql user so the rsync state transfer can write its
# datadir. Idempotent: a running node is left alone. Needs mariadbd and the galera-4 library.
set -euo pipefail

DIR=${GALERA_DIR:-/tmp/event-history-galera}
PROVIDER=${GALERA_PROVIDER:-/usr/lib/galera/libgalera_smm.so}
NODES=(1 2 3)

sql_port() { echo $((3316 + $1)); }
gcomm_port() { echo $((4557 + 10 * $1)); }
ist_port() { echo $((4558 + 10 * $1)); }
sst_port() { echo $((4434 + 10 * $1)); }
node_dir() { echo "$DIR/node$1"; }
socket() { echo "$(node_dir "$1")/mysqld.sock"; }

admin() { mariadb-admin --no-defaults -S "$(socket "$1")" -u root "${@:2}"; }
query() { mariadb --no-defaults -S "$(socket "$1")" -u root -N -B -e "$2"; }
up() { admin "$1" ping >/dev/null 2>&1; }
down() { ! up "$1" && ! [ -e "$(node_dir "$1")/mysqld.pid" ]; }
synced() { [ "$(query "$1" "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2)" = Synced ]; }

wait_until() { # wait_until SECONDS WHAT COMMAND...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 5))); do
    if "$@"; then return 0; fi
    sleep 0.2
  done
  echo "galera: $what within ${seconds}s; see $DIR/node*/error.log" >&2
  return 1
}

write_config() {
  local n=$1 d
  d=$(node_dir "$n")
  local addresses=()
  for m in "${NODES[@]}"; do addresses+=("127.0.0.1:$(gcomm_port "$m")"); done
  cat >"$d/my.cnf" <<EOF
[mysqld]
user=mysql
datadir=$d/data
socket=$(socket "$n")
pid-file=$d/mysqld.pid
log-error=$d/error.log
port=$(sql_port "$n")
bind-address=127.0.0.1
skip-name-resolve
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=32M
innodb_log_file_size=16M
innodb_flush_log_at_trx_commit=2
innodb_lock_wait_timeout=10
performance_schema=OFF
max_connections=200
wsrep_on=ON
wsrep_provider=$PROVIDER
wsrep_cluster_name=event_history_test
wsrep_cluster_address=gcomm://$(IFS=,; echo "${addresses[*]}")
wsrep_node_name=node$n
wsrep_node_address=127.0.0.1:$(gcomm_port "$n")
wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:$(gcomm_port "$n");ist.recv_addr=127.0.0.1:$(ist_port "$n");gcache.size=64M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S;evs.install_timeout=PT6S"
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:$(sst_port "$n")
wsrep_slave_threads=2
EOF
}

launch() { # launch N [extra mariadbd options]
  local n=$1 d
  d=$(node_dir "$n")
  shift
  write_config "$n"
  chown -R mysql:mysql "$d"
  # mariadbd started as root switches to the mysql user itself (user= above).
  nohup mariadbd --defaults-file="$d/my.cnf" "$@" >>"$d/stdout.log" 2>&1 &
}

# One datadir, bootstrapped once and copied: nodes that start from the same state join with an empty
# incremental transfer (IST), not a full state transfer each, which takes half a minute per node.
fresh() {
  rm -rf "$DIR"
  for n in "${NODES[@]}"; do mkdir -p "$(node_dir "$n")/data"; done
  chown -R mysql:mysql "$DIR"
  mariadb-install-db --no-defaults --user=mysql --datadir="$(node_dir 1)/data" --auth-root-authentication-method=socket \
    --skip-test-db >"$(node_dir 1)/install.log" 2>&1
  launch 1 --wsrep-new-cluster
  wait_until 60 "node 1 did not bootstrap" synced 1
  query 1 "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; CREATE DATABASE IF NOT EXISTS test"
  admin 1 shutdown
  wait_until 60 "node 1 did not stop" down 1
  for n in 2 3; do
    rm -rf "$(node_dir "$n")/data"
    cp -a "$(node_dir 1)/data" "$(node_dir "$n")/data"
    rm -f "$(node_dir "$n")/data/gvwstate.dat"
  done
}

check_installed() {
  command -v mariadbd >/dev/null || { echo "galera: mariadbd is not installed" >&2; exit 1; }
  [ -f "$PROVIDER" ] || { echo "galera: the galera library $PROVIDER is missing (apt-get install galera-4)" >&2; exit 1; }
  command -v rsync >/dev/null || { echo "galera: rsync (the state transfer) is not installed" >&2; exit 1; }
}

start_node() {
  local n=$1
  if up "$n"; then return 0; fi
  local others=0
  for m in "${NODES[@]}"; do [ "$m" != "$n" ] && up "$m" && others=$((others + 1)); done
  if [ "$others" -eq 0 ]; then
    echo "galera: no other node is running; use start" >&2
    return 1
  fi
  launch "$n"
  wait_until 90 "node $n did not join and sync" synced "$n"
}

start() {
  check_installed
  local running=0
  for n in "${NODES[@]}"; do up "$n" && running=$((running + 1)); done
  if [ "$running" -eq 0 ]; then
    fresh
    launch 1 --wsrep-new-cluster
    wait_until 60 "node 1 did not bootstrap" synced 1
    launch 2
    launch 3
    wait_until 90 "node 2 did not join and sync" synced 2
    wait_until 90 "node 3 did not join and sync" synced 3
  else
    for n in "${NODES[@]}"; do up "$n" || start_node "$n"; done
  fi
  status
}

stop() {
  for n in "${NODES[@]}"; do
    if up "$n"; then admin "$n" shutdown || true; fi
  done
  for n in "${NODES[@]}"; do wait_until 60 "node $n did not stop" down "$n"; done
}

kill_node() {
  local n=$1 pid
  pid=$(cat "$(node_dir "$n")/mysqld.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid"
    wait_until 30 "node $n did not die" bash -c "! kill -0 $pid 2>/dev/null"
  fi
  rm -f "$(socket "$n")" "$(node_dir "$n")/mysqld.pid"
}

status() {
  for n in "${NODES[@]}"; do
    if up "$n"; then
      printf 'node%s 127.0.0.1:%s %s cluster_size=%s\n' "$n" "$(sql_port "$n")" \
        "$(query "$n" "SHOW STATUS LIKE 'wsrep_local_state_comment'" | cut -f2)" \
        "$(query "$n" "SHOW STATUS LIKE 'wsrep_cluster_size'" | cut -f2)"
    else
      printf 'node%s 127.0.0.1:%s down\n' "$n" "$(sql_port "$n")"
    fi
  done
}

urls() {
  local list=()
  for n in "${NODES[@]}"; do list+=("mysql://root@127.0.0.1:$(sql_port "$n")/test"); done
  (IFS=,; echo "${list[*]}")
}

node_arg() {
  case "${1:-}" in 1 | 2 | 3) ;; *) echo "galera: a node number 1..3 is needed" >&2; exit 2 ;; esac
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
urls) urls ;;
kill) node_arg "${2:-}"; kill_node "$2" ;;
start-node) node_arg "${2:-}"; check_installed; start_node "$2" ;;
*)
  echo "usage: $0 start|stop|status|urls|kill N|start-node N" >&2
  exit 2
  ;;
esac
