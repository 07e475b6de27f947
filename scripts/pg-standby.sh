#!/usr/bin/env bash
# A PostgreSQL primary and a streaming standby on loopback, apart from the main server on 5432, for
# the failover tests (test/reliability/pg-failover.reliability.ts): a failover stops this primary,
# never the main server.
#
#   scripts/pg-standby.sh start     a fresh primary (5433) and standby (5434), unless both already run as such
#   scripts/pg-standby.sh stop      stop both
#   scripts/pg-standby.sh status    what each is (primary, standby, down)
#   scripts/pg-standby.sh urls      PG_PRIMARY_URL and PG_STANDBY_URL, as shell assignments
#   scripts/pg-standby.sh failover  stop the primary at once (immediate: as a crash) and promote the standby
#
# The standby is made with `pg_basebackup -R` and replicates synchronously (synchronous_commit = on,
# synchronous_standby_names = '*'): the primary acknowledges a COMMIT once the standby has flushed it,
# so a failover loses nothing acknowledged. Runs as the postgres user; data under $PG_STANDBY_DIR.
set -euo pipefail

DIR=${PG_STANDBY_DIR:-/tmp/event-history-pg}
BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
PRIMARY_PORT=${PG_PRIMARY_PORT:-5433}
STANDBY_PORT=${PG_STANDBY_PORT:-5434}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
ready() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$1"; }
recovering() { "$BIN/psql" -h 127.0.0.1 -p "$1" -U postgres -tAc 'SELECT pg_is_in_recovery()' 2>/dev/null; }

wait_until() { # wait_until SECONDS WHAT COMMAND...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 5))); do
    if "$@"; then return 0; fi
    sleep 0.2
  done
  echo "pg-standby: $what within ${seconds}s; see $DIR/*.log" >&2
  return 1
}

stop_one() { # stop_one NAME MODE
  if [ -f "$DIR/$1/postmaster.pid" ]; then as_postgres "$BIN/pg_ctl" -D "$DIR/$1" -m "$2" -w stop >/dev/null 2>&1 || true; fi
}

fresh() {
  stop_one standby fast
  stop_one primary fast
  rm -rf "$DIR"
  mkdir -p "$DIR"
  chown postgres:postgres "$DIR"
  as_postgres "$BIN/initdb" -D "$DIR/primary" -U postgres -A trust --no-sync >"$DIR/initdb.log" 2>&1
  cat >>"$DIR/primary/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PRIMARY_PORT
unix_socket_directories = '$DIR'
wal_level = replica
max_wal_senders = 5
hot_standby = on
fsync = off
shared_buffers = 32MB
synchronous_commit = on
EOF
  echo "host replication all 127.0.0.1/32 trust" >>"$DIR/primary/pg_hba.conf"
  as_postgres "$BIN/pg_ctl" -D "$DIR/primary" -l "$DIR/primary.log" -w start >/dev/null
  "$BIN/psql" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -qc 'CREATE DATABASE test'
  as_postgres "$BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$DIR/standby" -R -X stream --checkpoint=fast --no-sync
  echo "port = $STANDBY_PORT" >>"$DIR/standby/postgresql.auto.conf"
  as_postgres "$BIN/pg_ctl" -D "$DIR/standby" -l "$DIR/standby.log" -w start >/dev/null
  # Synchronous from now on (not before: without a standby the primary's own writes would wait).
  "$BIN/psql" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -qc "ALTER SYSTEM SET synchronous_standby_names = '*'" -c 'SELECT pg_reload_conf()' >/dev/null
  wait_until 30 "the standby did not stream synchronously" streaming
}

streaming() {
  [ "$("$BIN/psql" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -tAc "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = 'sync'" 2>/dev/null)" = 1 ]
}

start() {
  [ -x "$BIN/initdb" ] || { echo "pg-standby: no PostgreSQL server binaries (initdb) under $BIN" >&2; exit 1; }
  if ready "$PRIMARY_PORT" && ready "$STANDBY_PORT" && [ "$(recovering "$PRIMARY_PORT")" = f ] &&
    [ "$(recovering "$STANDBY_PORT")" = t ] && streaming; then
    status
    return 0
  fi
  fresh
  status
}

status() {
  for pair in "primary $PRIMARY_PORT" "standby $STANDBY_PORT"; do
    set -- $pair
    if ready "$2"; then
      case "$(recovering "$2")" in t) echo "$1 127.0.0.1:$2 standby" ;; f) echo "$1 127.0.0.1:$2 primary" ;; *) echo "$1 127.0.0.1:$2 unknown" ;; esac
    else
      echo "$1 127.0.0.1:$2 down"
    fi
  done
}

failover() {
  stop_one primary immediate
  as_postgres "$BIN/pg_ctl" -D "$DIR/standby" -w promote >/dev/null
  wait_until 30 "the standby was not promoted" bash -c "[ \"\$('$BIN/psql' -h 127.0.0.1 -p $STANDBY_PORT -U postgres -tAc 'SELECT pg_is_in_recovery()')\" = f ]"
}

case "${1:-}" in
start) start ;;
stop)
  stop_one standby fast
  stop_one primary fast
  ;;
status) status ;;
urls)
  echo "PG_PRIMARY_URL=postgres://postgres@127.0.0.1:$PRIMARY_PORT/test"
  echo "PG_STANDBY_URL=postgres://postgres@127.0.0.1:$STANDBY_PORT/test"
  ;;
failover) failover ;;
*)
  echo "usage: $0 start|stop|status|urls|failover" >&2
  exit 2
  ;;
esac
