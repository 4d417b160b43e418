#!/usr/bin/env bash
# A Redis Cluster of 3 masters and 3 replicas on loopback ports, for the tests and benchmarks of
# the Redis store backend (Sources/VoCoStoreRedis, docs/store-redis.md).
#
#   Tools/redis-cluster.sh start [BASE_PORT [DIR]]   nodes on BASE_PORT .. BASE_PORT+5 (default 7000)
#   Tools/redis-cluster.sh stop  [BASE_PORT [DIR]]   stops them and removes DIR
#
# DIR (default $TMPDIR/voco-redis-cluster-BASE_PORT) holds one folder per node: redis.conf,
# nodes.conf, the AOF, redis.log and redis.pid. The nodes run with the settings the store's
# guarantees rest on (appendonly yes, appendfsync always, maxmemory-policy noeviction) and a short
# cluster-node-timeout (2 s), so that a replica takes over from a killed master within seconds.
# `start` prints VOCO_REDIS_CLUSTER=127.0.0.1:BASE_PORT once every slot is served and every master
# has its replica; it exits 1 (and leaves nothing running) when a node cannot start.
set -euo pipefail

command=${1:-}
base=${2:-7000}
dir=${3:-${TMPDIR:-/tmp}/voco-redis-cluster-$base}
ports=($(seq "$base" $((base + 5))))

cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }

stop() {
  for port in "${ports[@]}"; do
    local pidfile=$dir/$port/redis.pid
    if [ -f "$pidfile" ]; then
      local pid; pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      # Gone once it no longer answers on its port (an exited daemon may linger as a zombie).
      for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$dir"
}

start() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
    echo "redis-cluster.sh: redis-server or redis-cli is not installed (Tools/deps.sh installs them)" >&2; exit 1; }
  for port in "${ports[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || (exec 3<>"/dev/tcp/127.0.0.1/$((port + 10000))") 2>/dev/null; then
      echo "redis-cluster.sh: port $port or $((port + 10000)) is in use; pass another base port" >&2; exit 1
    fi
  done
  rm -rf "$dir"
  for port in "${ports[@]}"; do
    mkdir -p "$dir/$port"
    cat > "$dir/$port/redis.conf" <<CONF
port $port
bind 127.0.0.1
dir $dir/$port
daemonize yes
pidfile $dir/$port/redis.pid
logfile $dir/$port/redis.log
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 2000
cluster-replica-validity-factor 0
appendonly yes
appendfsync always
maxmemory-policy noeviction
save ""
CONF
    if ! redis-server "$dir/$port/redis.conf"; then
      echo "redis-cluster.sh: redis-server on port $port did not start (see $dir/$port/redis.log)" >&2; stop; exit 1
    fi
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 100); do cli "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  local nodes=(); for port in "${ports[@]}"; do nodes+=("127.0.0.1:$port"); done
  if ! redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1; then
    echo "redis-cluster.sh: redis-cli --cluster create failed:" >&2; cat "$dir/create.log" >&2; stop; exit 1
  fi
  # Ready when every node sees a healthy cluster, lists a replica for every master (CLUSTER SLOTS
  # learns replicas by gossip, a little after they are in sync) and every master has its replica in sync.
  for _ in $(seq 300); do
    local ready=yes
    for port in "${ports[@]}"; do
      cli "$port" cluster info 2>/dev/null | grep -q "cluster_state:ok" || ready=no
      [ "$(cli "$port" cluster shards 2>/dev/null | grep -c '^replica$')" = 3 ] || ready=no
      if cli "$port" role 2>/dev/null | head -1 | grep -q master; then
        [ "$(cli "$port" info replication | tr -d '\r' | sed -n 's/^connected_slaves://p')" = 1 ] || ready=no
        cli "$port" info replication | grep -q "state=online" || ready=no
      fi
    done
    if [ "$ready" = yes ]; then echo "VOCO_REDIS_CLUSTER=127.0.0.1:$base"; return; fi
    sleep 0.1
  done
  echo "redis-cluster.sh: the cluster on ports ${ports[0]}-${ports[5]} did not become ready in 30 s" >&2; stop; exit 1
}

case "$command" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop [BASE_PORT [DIR]]" >&2; exit 2 ;;
esac
