#!/usr/bin/env bash
# Complete flows per store backend, in the same run as the peer (issue #12 §5): the example
# server (examples/hyper_server.rs) with `--store sqlite:PATH`, `--store redis://…` and
# `--store memory`, and FastMCP's OAuthProxy (benches/peer/fastmcp_server.py) with its
# default client storage (a Fernet-encrypted FileTreeStore on disk) and with py-key-value's
# RedisStore on the same redis-server; then the example's restart time on a SQLite file
# holding --grants live grants. Results: benches/RESULTS.md.
#
#   benches/stores.sh [--duration SECS] [--concurrency N] [--rounds R] [--grants N]
#                     [--restarts K] [--no-peer] [--no-pin]
#   nice -n -10 benches/stores.sh          # what RESULTS.md quotes (about 8 min on 2 vCPUs)
#   benches/stores.sh --duration 3 --rounds 1 --grants 10000 --restarts 2   # a quick look
#
# Per round, each server in turn (ours-sqlite, peer-default, ours-redis, peer-redis,
# ours-memory; the order reversed on every other round, so that a noisy minute hits both
# sides of a ratio), started fresh on an empty store (a new SQLite file, an emptied Redis,
# a new FastMCP data directory) for the pages and again for the flows:
#   pages     benches/flows.rs: /authorize followed to the rendered consent form
#             (N connections, SECS seconds), p50/p99 per page
#   flows     benches/flows.rs: complete flows (fresh browser each: authorize → consent →
#             approve → upstream → callback → client redirect → POST /token), N
#             connections, SECS seconds, p50/p99 per flow
#   flows_c1  the same with one connection for SECS/2 seconds: latency without queueing
# and the CPU time (utime + stime from /proc) the server and redis-server spent per flow.
# Then once: ours-sqlite's flows at 4N connections (its flows wait on fsync, not on CPU).
# Pinning as in load.sh: the server, its upstream and redis-server on CPU 0, the load
# generator on CPU 1 (--no-pin turns it off). Ours keeps one fixed CONSENT_GATE_KEY for the
# run (durable mode) and logs to /dev/null; the peer's access log is off.
#
# Restart: benches/grants.rs writes --grants real grants (each the core's own complete
# flow under the example's configuration, stored as the example's executor stores it: the
# grant, its refresh record, one registration per 100 grants) into a fresh SQLite file
# through consent_gate_store::SqliteStore, then starts the example on it --restarts times
# and reports the time from spawn to the first metadata answer and to the first answers to
# bearer-protected requests with an access token of a stored grant (GET /mcp, answered 405
# only after the token and its grant passed, then POST /mcp initialize, 200); the same on a
# file with a single grant for comparison; and the file's size. The disk's fsync cost is
# printed first (both file stores fsync every write).
#
# Needs: cargo, curl, python3 with venv (the peer goes into target/bench-peer/venv from
# PyPI at the versions pinned below), redis-server + redis-cli (Debian's, installed here
# when missing, as .ci/store does). Loopback only (127.0.0.1); every load is bounded in time
# and count; every process started here is stopped on exit (trap), the temporary
# directory removed; results stay in target/bench-stores/results.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=8
CONCURRENCY=32
ROUNDS=3
GRANTS=100000
RESTARTS=5
PEER=1
PIN=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --grants) GRANTS=$2; shift 2 ;;
    --restarts) RESTARTS=$2; shift 2 ;;
    --no-peer) PEER=0; shift ;;
    --no-pin) PIN=0; shift ;;
    *) echo "usage: $0 [--duration SECS] [--concurrency N] [--rounds R] [--grants N] [--restarts K] [--no-peer] [--no-pin]" >&2; exit 2 ;;
  esac
done
# Bounded: minutes, not hours.
[ "$DURATION" -ge 2 ] && [ "$DURATION" -le 30 ] && [ "$ROUNDS" -le 5 ] && [ "$CONCURRENCY" -le 256 ] \
  && [ "$GRANTS" -le 1000000 ] && [ "$RESTARTS" -le 20 ] || {
  echo "stores.sh: 2 <= duration <= 30, rounds <= 5, concurrency <= 256, grants <= 1000000, restarts <= 20" >&2; exit 2; }

FASTMCP_VERSION=4.1.6
UVLOOP_VERSION=0.23.0
HTTPTOOLS_VERSION=0.9.0
REDIS_PY_VERSION=8.1.0
PY_KEY_VALUE_VERSION=0.4.6
TARGET=${CARGO_TARGET_DIR:-target}
OUT=target/bench-stores
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
: >"$RESULTS"
WORK=$(mktemp -d "$PWD/$OUT/run.XXXXXX")
PIDS=()
stop() { # PID: SIGTERM, then SIGKILL after 5 s
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  for p in "${PIDS[@]}"; do stop "$p"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

SRV=()
GEN=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  SRV=(taskset -c 0)
  GEN=(taskset -c 1)
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_http() { # URL: up to 30 s for a server to answer
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "stores.sh: $1 did not come up" >&2
  return 1
}
load() { cut -d' ' -f1 /proc/loadavg; }

echo "== build"
cargo build --locked --release --example hyper_server 2>&1 | tail -1
exe() { # BENCH: the path of a bench binary
  cargo bench --locked --bench "$1" --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1
}
FLOWS=$(exe flows)
GRANTS_BIN=$(exe grants)
[ -x "$FLOWS" ] && [ -x "$GRANTS_BIN" ] || { echo "stores.sh: bench drivers not built" >&2; exit 1; }
SERVER=$TARGET/release/examples/hyper_server

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "== installing redis-server (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
fi

if [ "$PEER" = 1 ]; then
  VENV=target/bench-peer/venv
  if ! "$VENV/bin/python" -c "import fastmcp, uvloop, httptools, redis; from importlib.metadata import version as v; assert fastmcp.__version__ == '$FASTMCP_VERSION' and redis.__version__ == '$REDIS_PY_VERSION' and v('py-key-value-aio') == '$PY_KEY_VALUE_VERSION'" 2>/dev/null; then
    echo "== installing the peer: fastmcp==$FASTMCP_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "fastmcp==$FASTMCP_VERSION" "uvloop==$UVLOOP_VERSION" \
      "httptools==$HTTPTOOLS_VERSION" "redis==$REDIS_PY_VERSION" "py-key-value-aio==$PY_KEY_VALUE_VERSION"
  fi
  PEER_VERSIONS=$("$VENV/bin/pip" list 2>/dev/null | awk 'tolower($1) ~ /^(fastmcp|py-key-value-aio|cryptography|redis|uvicorn|uvloop|httptools|mcp)$/ {printf "%s==%s ", $1, $2}')
fi

# redis-server: a free loopback port, no persistence, its files in the temporary directory,
# on the servers' CPU (a backend's cost counts against the server that uses it).
REDIS_PORT=$(free_port)
"${SRV[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$WORK" --logfile "$WORK/redis.log" &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for _ in $(seq 100); do
  [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
  sleep 0.05
done
[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping)" = PONG ] || { cat "$WORK/redis.log" >&2; exit 1; }
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

CONSENT_GATE_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export CONSENT_GATE_KEY

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== versions: $(rustc --version); redis-server $(redis-server --version | grep -o 'v=[0-9.]*'); ${PEER_VERSIONS:-no peer}"
# The disk under both file stores: what one fsync costs here (SQLite's FULL commits and
# FastMCP's FileTreeStore both fsync every write).
FSYNC=$(python3 - "$WORK" <<'EOF'
import os, statistics, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
t = []
with open(path, "wb") as f:
    for _ in range(200):
        f.write(b"x" * 4096)
        f.flush()
        t0 = time.perf_counter()
        os.fsync(f.fileno())
        t.append((time.perf_counter() - t0) * 1e3)
os.unlink(path)
t.sort()
print("fsync of a 4 KiB append: median %.2f ms, p99 %.2f ms (200 samples)" % (statistics.median(t), t[197]))
EOF
)
echo "== disk: $FSYNC"
echo "== settings: ${DURATION}s per measurement, $CONCURRENCY connections, $ROUNDS rounds, pinning: servers '${SRV[*]:-none}', generators '${GEN[*]:-none}', nice $(nice)"

record() { # ROUND SERVER METRIC LINE: one RESULT line of the flows driver
  local line=$4 rate p50 p99 ok errors
  rate=$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<<"$line")
  p50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$line")
  errors=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$line")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${rate:-0}" "${p50:-0}" "${p99:-0}" "${errors:-?}" "$(load)" >>"$RESULTS"
  printf '  %-12s %-8s %9s/s  p50 %8s ms  p99 %8s ms  ok %6s  errors %s  (load %s)\n' \
    "$2" "$3" "${rate:-0}" "${p50:-0}" "${p99:-0}" "${ok:-0}" "${errors:-?}" "$(load)"
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # PID: utime + stime, in clock ticks
HZ=$(getconf CLK_TCK)
# The consent pages and the flows each run on a fresh server and store: the pages leave
# tens of thousands of pending consents behind (each lives ten minutes), which would fill
# the example's quota for sign-ins in flight (50 000, R64) and turn the flows into 429s.
pages() { # ROUND NAME BASE: consent pages against a running server
  local line
  line=$("${GEN[@]}" "$FLOWS" pages --base "$3" --concurrency "$CONCURRENCY" --duration "$DURATION" --max 1000000 | grep '^RESULT' || true)
  record "$1" "$2" pages "$line"
}

flows() { # ROUND NAME BASE PID: complete flows, their CPU, and flows at one connection
  local round=$1 name=$2 base=$3 pid=$4 line half=$((DURATION / 2)) c0 r0 ok cpu rcpu
  c0=$(ticks "$pid") r0=$(ticks "$REDIS_PID")
  line=$("${GEN[@]}" "$FLOWS" flows --base "$base" --concurrency "$CONCURRENCY" --duration "$DURATION" --max 1000000 | grep '^RESULT' || true)
  record "$round" "$name" flows "$line"
  # CPU per complete flow (the server process; redis-server's own beside it): how much of
  # a flow is work on the server's core, and how much is waiting (fsync, the network).
  ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$line")
  if [ "${ok:-0}" -gt 0 ]; then
    cpu=$(( ($(ticks "$pid") - c0) * 1000000 / HZ / ok ))
    rcpu=$(( ($(ticks "$REDIS_PID") - r0) * 1000000 / HZ / ok ))
    printf '%s\t%s\tcpu_us_per_flow\t%s\t%s\t0\t0\t%s\n' "$round" "$name" "$cpu" "$rcpu" "$(load)" >>"$RESULTS"
    echo "    CPU per flow: server $cpu us, redis-server $rcpu us"
  fi
  sleep 1
  line=$("${GEN[@]}" "$FLOWS" flows --base "$base" --concurrency 1 --duration "$half" --max 1000000 | grep '^RESULT' || true)
  record "$round" "$name" flows_c1 "$line"
}

start_ours() { # ROUND BACKEND PHASE: a fresh example server on a fresh store; sets PID, BASE
  local round=$1 backend=$2 phase=$3 store port
  case "$backend" in
    sqlite) store="sqlite:$WORK/ours-$round-$phase.sqlite3"; rm -f "$WORK/ours-$round-$phase.sqlite3"* ;;
    redis) store=$REDIS_URL; rcli flushall >/dev/null ;;
    memory) store=memory ;;
  esac
  port=$(free_port)
  "${SRV[@]}" "$SERVER" --listen "127.0.0.1:$port" --store "$store" >/dev/null 2>&1 &
  PID=$!
  PIDS+=("$PID")
  BASE="http://127.0.0.1:$port"
  wait_http "$BASE/.well-known/oauth-authorization-server"
}

run_ours() { # ROUND BACKEND: pages, then flows, each on a fresh server and store
  local round=$1 backend=$2
  start_ours "$round" "$backend" pages
  pages "$round" "ours-$backend" "$BASE"
  stop "$PID"
  start_ours "$round" "$backend" flows
  flows "$round" "ours-$backend" "$BASE" "$PID"
  case "$backend" in
    sqlite) echo "    sqlite file after the flows: $(du -skc "$WORK/ours-$round-flows.sqlite3"* | tail -1 | cut -f1) KiB (with -wal/-shm)" ;;
    redis) echo "    redis after the flows: $(rcli dbsize) keys, $(rcli info memory | sed -n 's/^used_memory_human:\(.*\)\r$/\1/p') used" ;;
  esac
  stop "$PID"
}

start_peer() { # ROUND BACKEND PHASE: a fresh FastMCP OAuthProxy and its fake upstream on a
  # fresh store; sets PID, UP_PID, BASE
  local round=$1 backend=$2 phase=$3 store up_port port
  case "$backend" in
    default) store=default; export FASTMCP_HOME="$WORK/fastmcp-$round-$phase"; rm -rf "$FASTMCP_HOME" ;;
    redis) store=$REDIS_URL; rcli flushall >/dev/null ;;
  esac
  up_port=$(free_port)
  "${SRV[@]}" "$VENV/bin/python" benches/peer/fake_upstream.py "$up_port" >"$WORK/upstream.log" 2>&1 &
  UP_PID=$!
  PIDS+=("$UP_PID")
  port=$(free_port)
  "${SRV[@]}" "$VENV/bin/python" benches/peer/fastmcp_server.py "$port" "http://127.0.0.1:$up_port" "$store" >"$WORK/peer-$backend-$round-$phase.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  BASE="http://127.0.0.1:$port"
  wait_http "$BASE/.well-known/oauth-authorization-server"
  if [ "$round" = 1 ] && [ "$phase" = pages ]; then grep '^peer:' "$WORK/peer-$backend-$round-$phase.log" | sed 's/^/    /' || true; fi
}

run_peer() { # ROUND BACKEND: pages, then flows, each on a fresh server and store
  local round=$1 backend=$2
  start_peer "$round" "$backend" pages
  pages "$round" "peer-$backend" "$BASE"
  stop "$PID"
  stop "$UP_PID"
  start_peer "$round" "$backend" flows
  flows "$round" "peer-$backend" "$BASE" "$PID"
  case "$backend" in
    default) echo "    FastMCP data directory after the flows: $(find "$FASTMCP_HOME" -type f | wc -l) files, $(du -sk "$FASTMCP_HOME" | cut -f1) KiB" ;;
    redis) echo "    redis after the flows: $(rcli dbsize) keys, $(rcli info memory | sed -n 's/^used_memory_human:\(.*\)\r$/\1/p') used" ;;
  esac
  unset FASTMCP_HOME
  stop "$PID"
  stop "$UP_PID"
}

ORDER=(ours:sqlite peer:default ours:redis peer:redis ours:memory)
for round in $(seq 1 "$ROUNDS"); do
  turns=("${ORDER[@]}")
  if [ $((round % 2)) = 0 ]; then
    turns=()
    for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do turns+=("${ORDER[$i]}"); done
  fi
  echo "== round $round ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
  for turn in "${turns[@]}"; do
    side=${turn%%:*} backend=${turn#*:}
    if [ "$side" = ours ]; then
      run_ours "$round" "$backend"
    elif [ "$PEER" = 1 ]; then
      run_peer "$round" "$backend"
    fi
  done
done

# One more for the SQLite backend: its flows wait on fsync (group commit), not on its CPU,
# so more connections put more jobs into each commit. Not a ratio: the peer is bound by its
# CPU (its CPU per flow times its rate is about one core), and at 4x the connections its
# flows would pass the driver's 10 s limit per flow.
WIDE=$((CONCURRENCY * 4 > 256 ? 256 : CONCURRENCY * 4))
echo "== ours-sqlite at $WIDE connections, fresh server and file"
PORT=$(free_port)
rm -f "$WORK/wide.sqlite3"*
"${SRV[@]}" "$SERVER" --listen "127.0.0.1:$PORT" --store "sqlite:$WORK/wide.sqlite3" >/dev/null 2>&1 &
WIDE_PID=$!
PIDS+=("$WIDE_PID")
wait_http "http://127.0.0.1:$PORT/.well-known/oauth-authorization-server"
LINE=$("${GEN[@]}" "$FLOWS" flows --base "http://127.0.0.1:$PORT" --concurrency "$WIDE" --duration "$DURATION" --max 1000000 | grep '^RESULT' || true)
record wide ours-sqlite "flows_c$WIDE" "$LINE"
stop "$WIDE_PID"

echo "== restart with $GRANTS grants ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
DB=$WORK/grants.sqlite3
POP=$("$GRANTS_BIN" populate --db "$DB" --base "$BASE" --count "$GRANTS")
grep '^POPULATED' <<<"$POP" | sed 's/^/  /'
TOKEN=$(sed -n 's/^TOKEN=//p' <<<"$POP")
SIZE=$(du -skc "$DB"* | tail -1 | cut -f1)
ROWS=$(python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(" ".join(f"{k}={n}" for k,n in c.execute("SELECT kind, COUNT(*) FROM entries GROUP BY kind")))' "$DB")
echo "  file: $SIZE KiB ($(stat -c %s "$DB") bytes main file; -wal/-shm included in the KiB); rows: $ROWS"
printf 'restart\tfile_kib\t%s\t%s\n' "$SIZE" "$ROWS" >>"$RESULTS"
restart() { # LABEL DB TOKEN
  local line
  for i in $(seq 1 "$RESTARTS"); do
    line=$("$GRANTS_BIN" restart --server "$SERVER" --pin "${SRV[*]:-}" --db "$2" --base "$BASE" --token "$3" | grep '^RESTART')
    echo "  $1 #$i: ${line#RESTART }  (load $(load))"
    printf 'restart\t%s\t%s\t%s\n' "$1" "$i" "${line#RESTART }" >>"$RESULTS"
  done
}
restart "grants=$GRANTS" "$DB" "$TOKEN"
# The same on a file with no grant at all: how much of the start is the 100k grants'.
# Its token is one stored grant's too (one flow), so the bearer request has the same work.
EMPTY=$WORK/one.sqlite3
ONE=$("$GRANTS_BIN" populate --db "$EMPTY" --base "$BASE" --count 1)
restart "grants=1" "$EMPTY" "$(sed -n 's/^TOKEN=//p' <<<"$ONE")"
echo "  file after the restarts: $(du -skc "$DB"* | tail -1 | cut -f1) KiB"

echo "== summary (medians over rounds; ratio = ours / peer on flows)"
python3 - "$RESULTS" "$PEER" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
runs = {}
for r in rows:
    if r[0] == "restart":
        continue
    runs.setdefault((r[1], r[2]), []).append((float(r[3]), float(r[4]), float(r[5]), r[6]))
def med(server, metric, i):
    v = runs.get((server, metric))
    return statistics.median(x[i] for x in v) if v else 0.0
for server in ["ours-memory", "ours-sqlite", "ours-redis", "peer-default", "peer-redis"]:
    wide = sorted({m for (srv, m) in runs if srv == server and m.startswith("flows_c") and m != "flows_c1"})
    for metric in ["pages", "flows", "flows_c1", "cpu_us_per_flow"] + wide:
        v = runs.get((server, metric))
        if not v:
            continue
        rates = sorted(x[0] for x in v)
        if metric == "cpu_us_per_flow":
            print("  %-12s CPU per flow: server median %.0f us [%s], redis-server median %.0f us"
                  % (server, med(server, metric, 0), " ".join("%.0f" % x for x in rates), med(server, metric, 1)))
            continue
        print("  %-12s %-8s rate median %9.1f/s [%s]  p50 %8.2f ms  p99 %8.2f ms  errors %s"
              % (server, metric, med(server, metric, 0), " ".join("%.1f" % x for x in rates),
                 med(server, metric, 1), med(server, metric, 2), ",".join(x[3] for x in v)))
if sys.argv[2] == "1":
    for ours, peer, target in [("ours-sqlite", "peer-default", 100), ("ours-redis", "peer-redis", 50)]:
        o, p = runs.get((ours, "flows"), []), runs.get((peer, "flows"), [])
        per_round = [a[0] / b[0] for a, b in zip(o, p) if b[0] > 0]
        ratio = med(ours, "flows", 0) / med(peer, "flows", 0) if med(peer, "flows", 0) else float("inf")
        print("  flows %s / %s: %.1fx (medians), per round %s; target >= %dx: %s"
              % (ours, peer, ratio, " ".join("%.1fx" % x for x in per_round), target,
                 "met" if per_round and min(per_round) >= target else "NOT MET (lowest round)" if per_round else "?"))
restarts = {}
for r in rows:
    if r[0] == "restart" and r[1] != "file_kib":
        kv = dict(x.split("=") for x in r[3].split())
        restarts.setdefault(r[1], []).append(tuple(float(kv[k]) for k in ["ready_ms", "bearer_get_ms", "bearer_init_ms"]))
for label, v in restarts.items():
    print("  restart %-14s from spawn, median of %d [range]: metadata %.1f ms [%.1f-%.1f], "
          "bearer GET /mcp (405) %.1f ms [%.1f-%.1f], initialize (200) %.1f ms [%.1f-%.1f]"
          % ((label, len(v)) + tuple(y for i in range(3) for y in (statistics.median(x[i] for x in v),
             min(x[i] for x in v), max(x[i] for x in v)))))
EOF
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg); results in $RESULTS"
