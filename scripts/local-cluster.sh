#!/usr/bin/env bash
# local-cluster.sh — run a multi-process Shoal cluster on this machine.
#
#   scripts/local-cluster.sh start N     start N agents (or restart the cluster's nodes on their data)
#   scripts/local-cluster.sh stop        stop the agents this script started
#   scripts/local-cluster.sh status      one line per node: NAME PID HTTP_URL
#   scripts/local-cluster.sh logs NODE   print a node's log
#   scripts/local-cluster.sh clean       stop the agents and remove the cluster dir
#
# Environment:
#   SHOAL_CLUSTER_DIR  cluster dir: data, logs, pids, secret (default ./.cluster)
#   SHOAL_BIN          the shoal binary (default ./bin/shoal)
#   SHOAL_HTTP_PORT    first node's HTTP port, the next ones count up (default 7470; 0 = any free port)
#   SHOAL_GOSSIP_PORT  first node's gossip port, likewise (default 7946; 0 = any free port)
#   SHOAL_START_TIMEOUT  seconds to wait for the cluster to form (default 60)
set -euo pipefail

DIR=${SHOAL_CLUSTER_DIR:-./.cluster}
# One spelling of the dir, so ./.cluster and /abs/.cluster find the same
# agents (they are recognised by the --data-dir on their command line).
DIR=$(realpath -m -- "$DIR")
BIN=${SHOAL_BIN:-./bin/shoal}
HTTP_BASE=${SHOAL_HTTP_PORT:-7470}
GOSSIP_BASE=${SHOAL_GOSSIP_PORT:-7946}
TIMEOUT=${SHOAL_START_TIMEOUT:-60}

die() { echo "local-cluster: $*" >&2; exit 1; }

usage() {
	sed -n '3,8p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# alive PIDFILE: the pid in it, if that process is a shoal agent still running.
alive() {
	local pid
	[ -f "$1" ] || return 1
	pid=$(cat "$1" 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	# Only processes we started: the command line names this node's data dir.
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--data-dir $(dirname "$1")" || return 1
	echo "$pid"
}

# field FILE KEY: a string value from an agent.json.
field() {
	sed -n "s/^ *\"$2\": *\"\([^\"]*\)\".*/\1/p" "$1" 2>/dev/null | head -n 1
}

nodes() {
	local d
	for d in "$DIR"/node*/; do
		if [ -d "$d" ]; then basename "$d"; fi
	done | sort -V
}

port() { # port BASE INDEX
	if [ "$1" = 0 ]; then echo 0; else echo $(($1 + $2 - 1)); fi
}

launch() { # launch INDEX JOIN...
	local i=$1 name="node$1" dir="$DIR/node$1"
	shift
	mkdir -p "$dir"
	rm -f "$dir/agent.json"
	local args=(agent --name "$name" --data-dir "$dir" --secret-file "$DIR/secret" --fast-gossip
		--bind "127.0.0.1:$(port "$GOSSIP_BASE" "$i")" --http "127.0.0.1:$(port "$HTTP_BASE" "$i")")
	local j
	for j in "$@"; do args+=(--join "$j"); done
	nohup "$BIN" "${args[@]}" >>"$DIR/$name.log" 2>&1 </dev/null &
	echo $! >"$dir/pid"
}

# wait_ready NAME: until the agent wrote agent.json, or it died.
wait_ready() {
	local dir="$DIR/$1" deadline=$((SECONDS + TIMEOUT))
	local pid
	pid=$(cat "$dir/pid")
	while [ ! -f "$dir/agent.json" ]; do
		# Not alive(): until nohup execs the agent, its command line is ours.
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "local-cluster: $1 exited; the end of its log ($DIR/$1.log):" >&2
			tail -n 5 "$DIR/$1.log" >&2
			exit 1
		fi
		[ $SECONDS -lt $deadline ] || die "$1 did not start within ${TIMEOUT}s (see $DIR/$1.log)"
		sleep 0.1
	done
}

running_gossip_addrs() {
	local n
	for n in $(nodes); do
		if alive "$DIR/$n/pid" >/dev/null && [ -f "$DIR/$n/agent.json" ]; then
			field "$DIR/$n/agent.json" gossip
		fi
	done
}

cmd_start() {
	local want=${1:-}
	[ -x "$BIN" ] || die "no shoal binary at $BIN (run make build, or set SHOAL_BIN)"
	local have
	have=$(nodes | wc -l)
	if [ -z "$want" ]; then
		[ "$have" -gt 0 ] || die "usage: start N (no cluster in $DIR yet)"
		want=$have
	fi
	[[ "$want" =~ ^[1-9][0-9]*$ ]] || die "start: N must be a positive number, got '$want'"
	[ "$want" -ge "$have" ] || want=$have # never forget nodes that hold data
	mkdir -p "$DIR"
	if [ ! -s "$DIR/secret" ]; then
		(umask 077 && "$BIN" keygen >"$DIR/secret")
	fi

	local i started=()
	for i in $(seq 1 "$want"); do
		alive "$DIR/node$i/pid" >/dev/null && continue
		local join
		join=$(running_gossip_addrs | tr '\n' ' ')
		# shellcheck disable=SC2086
		launch "$i" $join
		started+=("node$i")
		# The first node of a new cluster must be up before others can join it.
		[ -n "$join" ] || wait_ready "node$i"
	done
	for n in "${started[@]}"; do wait_ready "$n"; done

	# Return once every node sees all the others alive.
	for n in $(nodes); do
		local url
		url=$(field "$DIR/$n/agent.json" http)
		"$BIN" members --addr "$url" --secret-file "$DIR/secret" --wait "$want" --timeout "${TIMEOUT}s" >/dev/null ||
			die "$n does not see $want alive members (see $DIR/$n.log)"
	done
	echo "local-cluster: $want nodes up in $DIR; try: SHOAL_SECRET_FILE=$DIR/secret $BIN members --addr $(field "$DIR/node1/agent.json" http)"
}

cmd_stop() {
	local n pid pids=()
	for n in $(nodes); do
		if pid=$(alive "$DIR/$n/pid"); then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
	done
	local deadline=$((SECONDS + 15))
	for pid in "${pids[@]}"; do
		while kill -0 "$pid" 2>/dev/null; do
			if [ $SECONDS -ge $deadline ]; then
				kill -KILL "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.1
		done
	done
	[ ${#pids[@]} -eq 0 ] || echo "local-cluster: stopped ${#pids[@]} nodes"
}

cmd_status() {
	local n pid
	[ -d "$DIR" ] || die "no cluster in $DIR"
	for n in $(nodes); do
		if pid=$(alive "$DIR/$n/pid"); then
			echo "$n $pid $(field "$DIR/$n/agent.json" http)"
		else
			echo "$n - stopped"
		fi
	done
}

cmd_logs() {
	[ -n "${1:-}" ] || die "usage: logs NODE"
	[ -f "$DIR/$1.log" ] || die "no log for node '$1' in $DIR"
	cat "$DIR/$1.log"
}

case "${1:-}" in
start) shift; cmd_start "$@" ;;
stop) cmd_stop ;;
status) cmd_status ;;
logs) shift; cmd_logs "$@" ;;
clean) cmd_stop; rm -rf "$DIR" ;;
*) usage ;;
esac
