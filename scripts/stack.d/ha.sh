# Sourced by scripts/stack: the highly available services. `up --kafka-brokers 3` runs Kafka
# as three KRaft nodes (components kafka-1..3), `up --redis-sentinel` runs a Redis replica
# (redis-replica) under three Sentinels (sentinel-1..3, quorum 2: one Sentinel would itself
# be a single point of failure). The mode `up` chose is kept in $STACK/mode.
# shellcheck shell=bash

KAFKA_NODES=3
SENTINEL_NODES=3
SENTINEL_MASTER="${TICKETS_REDIS_SENTINEL_MASTER:-tickets}"
MODE_FILE="$STACK/mode"
KAFKA_CLUSTER_ID_FILE="$KAFKA_DIR/cluster-id"
# Defaults below 32768: Linux hands out 32768-60999 as ephemeral ports, and a client retrying
# a closed port there can connect to itself and keep the server from binding it.
REDIS_REPLICA_PORT="${TICKETS_REDIS_REPLICA_PORT:-26380}"

kafka_node_port() {
  case "$1" in
    1) echo "$KAFKA_PORT" ;;
    2) echo "${TICKETS_KAFKA_2_PORT:-29094}" ;;
    3) echo "${TICKETS_KAFKA_3_PORT:-29096}" ;;
  esac
}
kafka_node_controller_port() {
  case "$1" in
    1) echo "$KAFKA_CONTROLLER_PORT" ;;
    2) echo "${TICKETS_KAFKA_2_CONTROLLER_PORT:-29095}" ;;
    3) echo "${TICKETS_KAFKA_3_CONTROLLER_PORT:-29097}" ;;
  esac
}
sentinel_port() {
  case "$1" in
    1) echo "${TICKETS_SENTINEL_1_PORT:-26381}" ;;
    2) echo "${TICKETS_SENTINEL_2_PORT:-26382}" ;;
    3) echo "${TICKETS_SENTINEL_3_PORT:-26383}" ;;
  esac
}

kafka_node_dir() { echo "$KAFKA_DIR/node-$1"; }
kafka_node_props() { echo "$(kafka_node_dir "$1")/server.properties"; }
sentinel_dir() { echo "$STACK/sentinel-$1"; }

# ------------------------------------------------------------------------------- mode

# Reads the mode `up` remembered (nothing: the single-node default) and sets the services.
read_mode() {
  local line
  if [ -f "$MODE_FILE" ]; then
    while IFS='=' read -r line value; do
      case "$line" in
        KAFKA_BROKERS) KAFKA_BROKERS="$value" ;;
        REDIS_SENTINEL) REDIS_SENTINEL="$value" ;;
      esac
    done <"$MODE_FILE"
  fi
  set_services
}

set_services() {
  local n
  SERVICES=(postgres redis)
  if [ "$REDIS_SENTINEL" = 1 ]; then
    SERVICES+=(redis-replica)
    for ((n = 1; n <= SENTINEL_NODES; n++)); do SERVICES+=("sentinel-$n"); done
  fi
  if [ "$KAFKA_BROKERS" = 1 ]; then
    SERVICES+=(kafka)
  else
    for ((n = 1; n <= KAFKA_NODES; n++)); do SERVICES+=("kafka-$n"); done
  fi
  COMPONENTS=("${SERVICES[@]}" "${APPS[@]}" prometheus)
}

# choose_mode BROKERS SENTINEL: the mode for this `up`; refuses to change it under running
# services or over Kafka data formatted for another cluster size.
choose_mode() {
  local brokers="$1" sentinel="$2" c
  if [ "$brokers" = "$KAFKA_BROKERS" ] && [ "$sentinel" = "$REDIS_SENTINEL" ]; then return 0; fi
  for c in "${SERVICES[@]}"; do
    is_running "$c" && die "the stack runs in another mode (kafka brokers $KAFKA_BROKERS, redis sentinel $REDIS_SENTINEL): scripts/stack down first"
  done
  if [ "$brokers" != "$KAFKA_BROKERS" ] && [ -d "$KAFKA_DATA" ] || [ -d "$KAFKA_DIR/node-1" ]; then
    if [ "$brokers" != "$KAFKA_BROKERS" ]; then
      rm -rf "$KAFKA_DATA" "$KAFKA_DIR"/node-* "$KAFKA_CLUSTER_ID_FILE"
      say "kafka: $KAFKA_BROKERS-node data removed for a $brokers-node cluster"
    fi
  fi
  KAFKA_BROKERS="$brokers"
  REDIS_SENTINEL="$sentinel"
  mkdir -p "$STACK"
  printf 'KAFKA_BROKERS=%s\nREDIS_SENTINEL=%s\n' "$KAFKA_BROKERS" "$REDIS_SENTINEL" >"$MODE_FILE"
  set_services
}

# A component name as given on the command line -> the components it means (`kafka`: every
# node of a cluster, `sentinel`: every Sentinel).
expand_component() {
  local n
  if [ "$1" = kafka ] && [ "$KAFKA_BROKERS" != 1 ]; then
    for ((n = 1; n <= KAFKA_NODES; n++)); do echo "kafka-$n"; done
  elif [ "$1" = sentinel ] && [ "$REDIS_SENTINEL" = 1 ]; then
    for ((n = 1; n <= SENTINEL_NODES; n++)); do echo "sentinel-$n"; done
  else
    echo "$1"
  fi
}

# act VERB NAME: launch_, await_ or stop_ of a component; per-node ones take the node number.
act() {
  case "$2" in
    kafka-[0-9]) "$1_kafka_node" "${2#kafka-}" ;;
    sentinel-[0-9]) "$1_sentinel" "${2#sentinel-}" ;;
    redis-replica) "$1_redis_replica" ;;
    *) "$1_$2" ;;
  esac
}

ha_port_of() {
  case "$1" in
    kafka-[0-9]) kafka_node_port "${1#kafka-}" ;;
    sentinel-[0-9]) sentinel_port "${1#sentinel-}" ;;
    redis-replica) echo "$REDIS_REPLICA_PORT" ;;
  esac
}

ha_cmd_marker_of() {
  case "$1" in
    kafka-[0-9]) kafka_node_props "${1#kafka-}" ;;
    sentinel-[0-9]) echo "redis-sentinel" ;;
    redis-replica) echo "redis-server" ;;
  esac
}

# The variables the apps read to reach the HA services.
ha_env() {
  local n list=""
  if [ "$KAFKA_BROKERS" != 1 ]; then
    for ((n = 1; n <= KAFKA_NODES; n++)); do list+="${list:+,}127.0.0.1:$(kafka_node_port "$n")"; done
    export TICKETS_KAFKA_BOOTSTRAP="$list"
    export TICKETS_KAFKA_REPLICATION_FACTOR="$KAFKA_NODES"
  fi
  if [ "$REDIS_SENTINEL" = 1 ]; then
    list=""
    for ((n = 1; n <= SENTINEL_NODES; n++)); do list+="${list:+,}127.0.0.1:$(sentinel_port "$n")"; done
    export TICKETS_REDIS_SENTINELS="$list"
    export TICKETS_REDIS_SENTINEL_MASTER="$SENTINEL_MASTER"
  fi
}
HA_ENV_VARS=(TICKETS_KAFKA_REPLICATION_FACTOR TICKETS_REDIS_SENTINELS TICKETS_REDIS_SENTINEL_MASTER)

# ------------------------------------------------------------------------ kafka cluster

kafka_voters() {
  local n voters=""
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    voters+="${voters:+,}$n@127.0.0.1:$(kafka_node_controller_port "$n")"
  done
  echo "$voters"
}

write_kafka_node_props() {
  local n="$1" t
  t="$(<"$KAFKA_SRC/cluster.properties.in")"
  t="${t//@NODE_ID@/$n}"
  t="${t//@VOTERS@/$(kafka_voters)}"
  t="${t//@KAFKA_PORT@/$(kafka_node_port "$n")}"
  t="${t//@CONTROLLER_PORT@/$(kafka_node_controller_port "$n")}"
  t="${t//@LOG_DIRS@/$(kafka_node_dir "$n")/data}"
  printf '%s\n' "$t" >"$(kafka_node_props "$n")"
}

launch_kafka_node() {
  local n="$1" name="kafka-$1" props
  [ -d "$KAFKA_LIB" ] || die "kafka: jars missing in $KAFKA_LIB (run: scripts/stack install)"
  require_free_port "$name-controller" "$(kafka_node_controller_port "$n")"
  mkdir -p "$(kafka_node_dir "$n")/data" "$LOGS" "$RUN"
  props="$(kafka_node_props "$n")"
  write_kafka_node_props "$n"
  # Every node of one cluster is formatted with the same cluster id.
  [ -s "$KAFKA_CLUSTER_ID_FILE" ] || random_cluster_id >"$KAFKA_CLUSTER_ID_FILE"
  if [ ! -f "$(kafka_node_dir "$n")/data/meta.properties" ]; then
    say "$name: formatting storage..."
    java -cp "$KAFKA_LIB/*" -Dlog4j.configuration="file:$KAFKA_SRC/log4j.properties" \
      kafka.tools.StorageTool format -t "$(<"$KAFKA_CLUSTER_ID_FILE")" -c "$props" \
      >>"$(log_file "$name")" 2>&1 || fail_with_log "$name" "storage format failed"
  fi
  say "$name: starting..."
  start_bg "$name" java -Xms128m -Xmx512m -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$KAFKA_SRC/log4j.properties" \
    -cp "$KAFKA_LIB/*" kafka.Kafka "$props"
}

# A node is ready when the cluster lists it as a live broker (shared.topics --node).
KAFKA_NODE_CHECKED=""
kafka_node_ready() {
  port_open "$(kafka_node_port "$KAFKA_NODE_CHECKED")" || return 1
  timeout 30 "$VENV/bin/python" -m shared.topics --node "$KAFKA_NODE_CHECKED" \
    >"$LOGS/kafka-$KAFKA_NODE_CHECKED-check.log" 2>&1
}
await_kafka_node() {
  KAFKA_NODE_CHECKED="$1"
  wait_for "kafka-$1" kafka_node_ready "$LOGS/kafka-$1-check.log"
}
stop_kafka_node() { stop_pid "kafka-$1" 60; }

# The whole cluster: every node listed, topics created, a produce/consume round trip.
await_kafka_cluster() { wait_for kafka kafka_ready "$LOGS/kafka-check.log"; }

# ------------------------------------------------------------------------ redis sentinel

sentinel_cli() { redis-cli -h 127.0.0.1 -p "$(sentinel_port "$1")" "${@:2}" 2>/dev/null; }

# The port of the primary as the Sentinels know it (empty when none answers).
sentinel_master_port() {
  local n addr
  for ((n = 1; n <= SENTINEL_NODES; n++)); do
    is_running "sentinel-$n" || continue
    addr="$(sentinel_cli "$n" sentinel get-master-addr-by-name "$SENTINEL_MASTER" | tail -n 1)"
    if [[ "$addr" =~ ^[0-9]+$ ]]; then echo "$addr"; return 0; fi
  done
}

launch_sentinel() {
  local n="$1" dir conf
  dir="$(sentinel_dir "$n")"
  conf="$dir/sentinel.conf"
  mkdir -p "$dir" "$LOGS" "$RUN"
  # Written once: a Sentinel rewrites its file with what it learns (the current primary, the
  # other Sentinels, the replicas), and a restarted one must start from that.
  if [ ! -f "$conf" ]; then
    cat >"$conf" <<EOF
sentinel monitor $SENTINEL_MASTER 127.0.0.1 $REDIS_PORT 2
sentinel down-after-milliseconds $SENTINEL_MASTER 1000
sentinel failover-timeout $SENTINEL_MASTER 5000
sentinel parallel-syncs $SENTINEL_MASTER 1
EOF
  fi
  say "sentinel-$n: starting..."
  redis-sentinel "$conf" --port "$(sentinel_port "$n")" --bind 127.0.0.1 --daemonize yes \
    --pidfile "$(pid_file "sentinel-$n")" --logfile "$(log_file "sentinel-$n")" --dir "$dir" \
    || fail_with_log "sentinel-$n" "redis-sentinel failed to start"
}
SENTINEL_CHECKED=""
sentinel_ready() { [ "$(sentinel_cli "$SENTINEL_CHECKED" ping)" = PONG ]; }
await_sentinel() {
  SENTINEL_CHECKED="$1"
  wait_for "sentinel-$1" sentinel_ready
}
stop_sentinel() { stop_pid "sentinel-$1"; }

# Under Sentinel either server may be the primary. A server starts as a replica of the one
# the Sentinels name; when they name this very server (it died before they noticed), the
# other one is promoted first if it runs: a primary that comes back empty would otherwise be
# copied over its replica and the data would be gone from both.
redis_role_args() {
  local port="$1" other="$2" master
  master="$(sentinel_master_port)"
  if [ "$master" = "$port" ] && redis_up "$other"; then
    say "redis on :$port: the Sentinels still name it the primary; failing over to :$other first" >&2
    sentinel_failover_to "$other"
    master="$other"
  fi
  if [ -z "$master" ]; then
    [ "$port" = "$REDIS_PORT" ] || master="$REDIS_PORT"
  fi
  if [ -n "$master" ] && [ "$master" != "$port" ]; then echo "--replicaof 127.0.0.1 $master"; fi
}

redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }

sentinel_failover_to() {
  local want="$1" n i
  for ((n = 1; n <= SENTINEL_NODES; n++)); do
    is_running "sentinel-$n" || continue
    sentinel_cli "$n" sentinel failover "$SENTINEL_MASTER" >/dev/null && break
  done
  for ((i = 0; i < TIMEOUT * 4; i++)); do
    [ "$(sentinel_master_port)" = "$want" ] && return 0
    sleep 0.25
  done
  die "redis: the Sentinels did not promote :$want within ${TIMEOUT}s"
}

# launch_redis_server NAME PORT OTHER_PORT
launch_redis_server() {
  local name="$1" port="$2" other="$3" role
  mkdir -p "$REDIS_DIR/$name" "$LOGS" "$RUN"
  role="$(redis_role_args "$port" "$other")"
  say "$name: starting${role:+ as a replica of :${role##* }}..."
  # shellcheck disable=SC2086 # $role is two words or none
  redis-server --port "$port" --bind 127.0.0.1 --daemonize yes \
    --pidfile "$(pid_file "$name")" --logfile "$(log_file "$name")" --dir "$REDIS_DIR/$name" \
    --save '' --appendonly no --protected-mode yes --repl-diskless-sync-delay 0 $role \
    || fail_with_log "$name" "redis-server failed to start"
}

# A server is ready when it answers and, as a replica, has its copy of the primary.
REDIS_CHECKED=""
redis_server_ready() {
  local info
  info="$(redis-cli -h 127.0.0.1 -p "$REDIS_CHECKED" info replication 2>/dev/null)" || return 1
  [[ "$info" == *role:master* ]] || [[ "$info" == *master_link_status:up* ]]
}

# The Sentinels can agree on a failover only once each knows the others and the replica
# (they learn of them within seconds of starting).
sentinels_watching() {
  local n info
  for ((n = 1; n <= SENTINEL_NODES; n++)); do
    info="$(sentinel_cli "$n" sentinel master "$SENTINEL_MASTER" | paste -sd' ')"
    [[ "$info" =~ num-slaves\ ([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge 1 ] || return 1
    [[ "$info" =~ num-other-sentinels\ ([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge 2 ] || return 1
  done
}
await_sentinels_watching() { wait_for sentinel sentinels_watching; }

launch_redis_replica() { launch_redis_server redis-replica "$REDIS_REPLICA_PORT" "$REDIS_PORT"; }
await_redis_replica() {
  REDIS_CHECKED="$REDIS_REPLICA_PORT"
  wait_for redis-replica redis_server_ready
}
stop_redis_replica() { stop_pid redis-replica; }
