#!/usr/bin/env bash
# Bounded loopback load test: consent-gate's example server and, in the same run, the
# leading peer (FastMCP's OAuthProxy with its consent screen on), measured by the same
# tools on the same machine so that the ratios in benches/RESULTS.md mean something.
#
#   benches/load.sh [--duration SECS] [--concurrency N] [--flood SECS] [--no-peer] [--no-pin]
#
# The server under test (with its upstream) is pinned to CPU 0 and the load generators
# to CPU 1, so that both servers get one core each and the generator never competes with
# them (on a 2-core machine an unpinned generator takes half of ours and little of a
# single-threaded peer's, which would compress the ratios). --no-pin turns this off.
#
# Measured for each server (closed loop, N connections, SECS seconds each):
#   authorize_get   wrk: GET /authorize for a registered client (ours: the consent page;
#                   the peer answers 302 to its separate /consent page)
#   consent_page    benches/flows.rs: /authorize followed to the rendered consent form
#   consent_post    benches/flows.rs: the approving POST, each on a fresh pending record
#   mcp_tools_list  wrk: bearer-protected POST /mcp tools/list in an initialized session
#   flows           benches/flows.rs: complete flows (authorize → consent → upstream →
#                   callback → client redirect → POST /token), fresh browser each
# Then a memory check: a fresh example server is flooded for --flood seconds, half with
# GET /authorize, half with POST /register; VmRSS is sampled from /proc every 5 s.
#
# Needs: wrk (Debian: apt-get install -y wrk), curl, python3 with venv (for the peer, installed
# into target/bench-peer/venv from PyPI at the pinned versions below). Loopback only; every
# load is bounded in time and count; all servers started here are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=10
CONCURRENCY=32
FLOOD=60
PEER=1
PIN=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --flood) FLOOD=$2; shift 2 ;;
    --no-peer) PEER=0; shift ;;
    --no-pin) PIN=0; shift ;;
    *) echo "usage: $0 [--duration SECS] [--concurrency N] [--flood SECS] [--no-peer] [--no-pin]" >&2; exit 2 ;;
  esac
done
# The workplace's bound on any load: minutes, not hours.
[ "$DURATION" -le 60 ] && [ "$FLOOD" -le 120 ] && [ "$CONCURRENCY" -le 256 ] || {
  echo "load.sh: duration <= 60, flood <= 120, concurrency <= 256" >&2; exit 2; }

FASTMCP_VERSION=4.1.6
UVLOOP_VERSION=0.23.0
HTTPTOOLS_VERSION=0.9.0
OUT=target/bench-load
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
: > "$RESULTS"
PIDS=()
stop() { # PID: SIGTERM, then SIGKILL after 5 s (uvicorn waits for open MCP sessions)
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  for p in "${PIDS[@]}"; do stop "$p"; done
}
trap cleanup EXIT

SRV=()
GEN=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  SRV=(taskset -c 0)
  GEN=(taskset -c 1)
fi

command -v wrk >/dev/null || { echo "load.sh: wrk not found (apt-get install -y wrk)" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() { # URL: up to 30 s for a server to answer
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "load.sh: $1 did not come up" >&2
  return 1
}

echo "== build"
cargo build --release --example hyper_server 2>&1 | tail -1
FLOWS=$(cargo bench --bench flows --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
[ -x "$FLOWS" ] || { echo "load.sh: flows driver not built" >&2; exit 1; }
SERVER=${CARGO_TARGET_DIR:-target}/release/examples/hyper_server

if [ "$PEER" = 1 ]; then
  VENV=target/bench-peer/venv
  if ! "$VENV/bin/python" -c "import fastmcp, uvloop, httptools; assert fastmcp.__version__ == '$FASTMCP_VERSION'" 2>/dev/null; then
    echo "== installing the peer: fastmcp==$FASTMCP_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "fastmcp==$FASTMCP_VERSION" "uvloop==$UVLOOP_VERSION" "httptools==$HTTPTOOLS_VERSION"
  fi
fi

record() { # SERVER METRIC "KEY=VALUE ..." from a RESULT/WRK line
  local line=$3 rate p50 p99 errors
  rate=$(sed -n 's/.*rate=\([0-9.]*\).*/\1/p' <<<"$line")
  p50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  errors=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$line")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "${rate:-0}" "${p50:-0}" "${p99:-0}" "${errors:-?}" >>"$RESULTS"
  printf '  %-6s %-15s %10s/s  p50 %7s ms  p99 %7s ms  errors %s  (load %s)\n' "$1" "$2" "${rate:-0}" "${p50:-0}" "${p99:-0}" "${errors:-?}" "$(cut -d' ' -f1 /proc/loadavg)"
}

# One measurement against a running server: authorize_get, consent_page, consent_post,
# mcp_tools_list or flows.
measure_one() { # NAME BASE METRIC
  local name=$1 base=$2 metric=$3 line
  local -A s=()
  case "$metric" in
    authorize_get | mcp_tools_list)
      while IFS='=' read -r k v; do s[$k]=$v; done < <("$FLOWS" session --base "$base")
      [ -n "${s[TOKEN]:-}" ] || { echo "load.sh: $name: no token from a complete flow" >&2; return 1; } ;;
  esac
  case "$metric" in
    authorize_get)
      line=$("${GEN[@]}" wrk -t2 -c"$CONCURRENCY" -d"${DURATION}s" -s benches/wrk/get.lua "${s[AUTHORIZE]}" | grep '^WRK') ;;
    consent_page)
      # --max: the duration decides (the driver's default count of 100 000 would end ours early).
      line=$("${GEN[@]}" "$FLOWS" pages --base "$base" --concurrency "$CONCURRENCY" --duration "$DURATION" --max 1000000 | grep '^RESULT') ;;
    consent_post)
      # At most 9000 pending pages, each approved once.
      line=$("${GEN[@]}" "$FLOWS" consent-post --base "$base" --concurrency "$CONCURRENCY" --duration "$DURATION" --max 9000 | grep '^RESULT consent-post ') ;;
    mcp_tools_list)
      line=$(TOKEN=${s[TOKEN]} SESSION=${s[SESSION]} "${GEN[@]}" wrk -t2 -c"$CONCURRENCY" -d"${DURATION}s" -s benches/wrk/mcp.lua "$base/mcp" | grep '^WRK') ;;
    flows)
      line=$("${GEN[@]}" "$FLOWS" flows --base "$base" --concurrency "$CONCURRENCY" --duration "$DURATION" --max 1000000 | grep '^RESULT') ;;
  esac
  record "$name" "$metric" "$line"
  if [ "$metric" = mcp_tools_list ]; then
    sed -n 's/.*(\(connect=.*\))$/    wrk errors by kind: \1/p' <<<"$line"
  fi
}

# Each measurement on a freshly started server (the peer's too, alike): ours bounds the
# sign-ins in flight (a quota of 50 000 pending consents, R64, each living ten minutes), so
# seconds of consent pages at tens of thousands per second would leave the next
# measurement nothing but 429s.
METRICS=(authorize_get consent_page consent_post mcp_tools_list flows)

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== settings: ${DURATION}s per measurement, $CONCURRENCY connections, wrk -t2, pinning: servers '${SRV[*]:-none}', generators '${GEN[*]:-none}', nice $(nice)"

echo "== ours: consent-gate examples/hyper_server (demo upstream in-process)"
# Its JSON log lines (one or two per request) go to /dev/null: the peer runs with its access
# log off and logs warnings only. Logging them to a file on this machine costs ours ~30 %.
# `--store memory` even when CONSENT_GATE_KEY is set (then the default would be SQLite).
for metric in "${METRICS[@]}"; do
  PORT=$(free_port)
  "${SRV[@]}" "$SERVER" --listen "127.0.0.1:$PORT" --store memory >/dev/null 2>&1 &
  OURS=$!
  PIDS+=("$OURS")
  wait_http "http://127.0.0.1:$PORT/.well-known/oauth-authorization-server"
  measure_one ours "http://127.0.0.1:$PORT" "$metric"
  stop "$OURS"
done

if [ "$PEER" = 1 ]; then
  echo "== peer: FastMCP OAuthProxy (fake GitHub upstream in a second process)"
  for metric in "${METRICS[@]}"; do
    UP_PORT=$(free_port)
    "${SRV[@]}" "$VENV/bin/python" benches/peer/fake_upstream.py "$UP_PORT" >"$OUT/upstream.log" 2>&1 &
    UP_PID=$!
    PIDS+=("$UP_PID")
    PEER_PORT=$(free_port)
    "${SRV[@]}" "$VENV/bin/python" benches/peer/fastmcp_server.py "$PEER_PORT" "http://127.0.0.1:$UP_PORT" >"$OUT/peer.log" 2>&1 &
    PEER_PID=$!
    PIDS+=("$PEER_PID")
    wait_http "http://127.0.0.1:$PEER_PORT/.well-known/oauth-authorization-server"
    if [ "$metric" = authorize_get ]; then grep '^peer:' "$OUT/peer.log" | sed 's/^/  /'; fi
    measure_one peer "http://127.0.0.1:$PEER_PORT" "$metric"
    stop "$PEER_PID"
    stop "$UP_PID"
  done
fi

rss() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
# Two halves on one fresh server: GET /authorize first (every request stores a pending
# consent), then POST /register (every request stores a client). Not both at once: the
# registration flood evicts the client the /authorize flood uses within seconds (the
# client store is bounded too), after which /authorize only answers 400.
HALF=$((FLOOD / 2))
echo "== memory: ${HALF}s GET /authorize flood, then ${HALF}s POST /register flood, fresh example server"
PORT=$(free_port)
"${SRV[@]}" "$SERVER" --listen "127.0.0.1:$PORT" --store memory >/dev/null 2>&1 &
FRESH=$!
PIDS+=("$FRESH")
wait_http "http://127.0.0.1:$PORT/.well-known/oauth-authorization-server"
AUTHZ=$("$FLOWS" session --base "http://127.0.0.1:$PORT" | sed -n 's/^AUTHORIZE=//p')
BEFORE=$(rss "$FRESH")
SAMPLES="0s:${BEFORE}"
sample() { # OFFSET: one VmRSS sample every 5 s while the flood of this half runs
  for t in $(seq 5 5 "$HALF"); do
    sleep 5
    SAMPLES="$SAMPLES $(($1 + t))s:$(rss "$FRESH")"
  done
}
"${GEN[@]}" wrk -t2 -c"$CONCURRENCY" -d"${HALF}s" -s benches/wrk/get.lua "$AUTHZ" >"$OUT/flood-authorize.txt" &
W=$!
sample 0
wait "$W" || true
MID=$(rss "$FRESH")
"${GEN[@]}" wrk -t2 -c"$CONCURRENCY" -d"${HALF}s" -s benches/wrk/register.lua "http://127.0.0.1:$PORT/register" >"$OUT/flood-register.txt" &
W=$!
sample "$HALF"
wait "$W" || true
AFTER=$(rss "$FRESH")
PEAK=$(awk '/^VmHWM/{print $2}' "/proc/$FRESH/status")
echo "  authorize flood: $(grep '^WRK' "$OUT/flood-authorize.txt")"
echo "  register flood:  $(grep '^WRK' "$OUT/flood-register.txt")"
echo "  VmRSS kB: $SAMPLES"
echo "  VmRSS before ${BEFORE} kB, after the /authorize half ${MID} kB, after ${AFTER} kB, peak (VmHWM) ${PEAK} kB"
printf 'ours\trss_kb\t%s\t%s\t%s\t%s\n' "$BEFORE" "$AFTER" "$PEAK" "$SAMPLES" >>"$RESULTS"
stop "$FRESH"

if [ "$PEER" = 1 ]; then
  echo "== ratios (ours / peer); targets: consent_page >= 40x, flows >= 100x"
  python3 - "$RESULTS" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
rate = {(r[0], r[1]): float(r[2]) for r in rows if r[1] != "rss_kb"}
targets = {"consent_page": 40, "flows": 100}
for metric in ["authorize_get", "consent_page", "consent_post", "mcp_tools_list", "flows"]:
    ours, peer = rate.get(("ours", metric), 0), rate.get(("peer", metric), 0)
    ratio = ours / peer if peer else float("inf")
    verdict = ""
    if metric in targets:
        verdict = "  target >= %dx: %s" % (targets[metric], "met" if ratio >= targets[metric] else "MISSED")
    print("  %-15s ours %10.1f/s  peer %9.1f/s  ratio %7.1fx%s" % (metric, ours, peer, ratio, verdict))
EOF
fi
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg); results in $RESULTS"
