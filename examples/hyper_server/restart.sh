#!/usr/bin/env bash
# A restart keeps users signed in (issue #12 §2): the example with its default store (SQLite
# under --state-dir) and a fixed CONSENT_GATE_KEY registers a client, signs in through the
# demo upstream and gets tokens; the server is killed with SIGKILL (no shutdown, nothing
# flushed on purpose) and started again on the same address; the refresh token and a bearer
# call to /mcp must still work. The same walk with `--store memory` must fail after the
# restart, or this test would prove nothing.
#
#   bash examples/hyper_server/restart.sh         # builds the example first
#   HYPER_SERVER_BIN=path/to/hyper_server bash examples/hyper_server/restart.sh
#   HYPER_SERVER_BIN=path/to/rmcp_server bash examples/hyper_server/restart.sh   # same flags
#
# Run by smoke.sh (without faults). Loopback only. Needs curl, jq, openssl, python3.
# Ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -9 "$SERVER_PID"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
if [[ -z "${HYPER_SERVER_BIN:-}" ]]; then
  cargo build --quiet --locked -p consent-gate --example hyper_server
  HYPER_SERVER_BIN="${CARGO_TARGET_DIR:-target}/debug/examples/hyper_server"
fi
PASS=0
FAIL=0
check() { # check "description" command...
  local what=$1; shift
  if "$@"; then PASS=$((PASS + 1)); echo "ok   - $what"; else FAIL=$((FAIL + 1)); echo "FAIL - $what"; fi
}
eq() { [[ "$1" == "$2" ]] || { echo "     expected [$2], got [$1]" >&2; return 1; }; }
ne() { [[ "$1" != "$2" ]] || { echo "     unexpectedly [$2]" >&2; return 1; }; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
MCP="$BASE/mcp"
export CONSENT_GATE_KEY
CONSENT_GATE_KEY=$(openssl rand -hex 32)

start() { # start LOG [ARGS...]: the server on $PORT, waiting until it answers
  local log=$1; shift
  "$HYPER_SERVER_BIN" --listen "127.0.0.1:$PORT" "$@" >/dev/null 2>"$log" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "$BASE/.well-known/oauth-authorization-server" 2>/dev/null && return 0
    sleep 0.1
  done
  cat "$log"; echo "server did not start"; exit 1
}
crash() { kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; }

req() { local url=$1; shift; curl -sS -o "$WORK/b" -D "$WORK/h" -w '%{http_code}' "$@" "$url"; }
location() { grep -i '^location:' "$WORK/h" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
field() { sed -n "s/.*name=\"$1\" value=\"\([^\"]*\)\".*/\1/p" "$WORK/b" | head -1; }
uri() { jq -rn --arg v "$1" '$v|@uri'; }

# sign_in: register, consent, the demo upstream, the callback, the code grant; sets CID, RT, AT
sign_in() {
  local cb="http://127.0.0.1:9/cb" jar="$WORK/jar" verifier challenge code
  rm -f "$jar"
  req "$BASE/register" -H 'content-type: application/json' \
    -d "{\"redirect_uris\":[\"$cb\"],\"token_endpoint_auth_method\":\"none\",\"grant_types\":[\"authorization_code\",\"refresh_token\"]}" >/dev/null
  CID=$(jq -r .client_id "$WORK/b")
  verifier=$(openssl rand -hex 32)
  challenge=$(printf '%s' "$verifier" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')
  req "$BASE/authorize?response_type=code&client_id=$(uri "$CID")&redirect_uri=$(uri "$cb")&code_challenge=$challenge&code_challenge_method=S256&state=s&resource=$(uri "$MCP")&scope=mcp" \
    -c "$jar" -b "$jar" >/dev/null
  req "$BASE/authorize" -c "$jar" -b "$jar" -d "tx=$(uri "$(field tx)")&csrf=$(uri "$(field csrf)")&decision=approve" >/dev/null
  req "$(location)" >/dev/null # the demo upstream approves silently
  req "$(location)" -c "$jar" -b "$jar" >/dev/null # the callback
  code=$(location | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
  req "$BASE/token" -d "grant_type=authorization_code&code=$code&code_verifier=$verifier&client_id=$CID&redirect_uri=$(uri "$cb")&resource=$(uri "$MCP")" >/dev/null
  AT=$(jq -r .access_token "$WORK/b")
  RT=$(jq -r .refresh_token "$WORK/b")
}
refresh() { req "$BASE/token" -d "grant_type=refresh_token&refresh_token=$(uri "$RT")&client_id=$CID"; }
ACCEPT=(-H 'accept: application/json, text/event-stream')
initialize() {
  req "$MCP" -H "authorization: Bearer $1" -H 'content-type: application/json' "${ACCEPT[@]}" \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"restart","version":"1"}}}'
}
whoami() { # whoami TOKEN: initialize, then the tool (in the session, if the server keeps one); prints its text
  initialize "$1" >/dev/null
  local sid; sid=$({ grep -i '^mcp-session-id:' "$WORK/h" || true; } | cut -d' ' -f2 | tr -d '\r')
  local session=(); [[ -z $sid ]] || session=(-H "mcp-session-id: $sid")
  req "$MCP" -H "authorization: Bearer $1" -H 'content-type: application/json' "${ACCEPT[@]}" "${session[@]}" \
    -H 'mcp-protocol-version: 2025-06-18' \
    -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}' >/dev/null
  jq -r '.result.content[0].text' "$WORK/b"
}
contains() { [[ "$1" == *"$2"* ]] || { echo "     [$2] not in [$1]" >&2; return 1; }; }

# --- the default store, SQLite under --state-dir ------------------------------------------
start "$WORK/log1" --state-dir "$WORK/state"
sign_in
check "signed in: tokens issued" ne "$RT" null
check "the store is SQLite under --state-dir" test -s "$WORK/state/consent-gate.sqlite3"
crash
start "$WORK/log2" --state-dir "$WORK/state"
check "after kill -9 and a restart, the access token still works" eq "$(initialize "$AT")" 200
check "after kill -9 and a restart, the refresh token still works" eq "$(refresh)" 200
NEW_AT=$(jq -r .access_token "$WORK/b")
check "the refreshed access token works" eq "$(initialize "$NEW_AT")" 200
check "whoami reaches the upstream with the kept upstream token" contains "$(whoami "$NEW_AT")" octocat
crash

# --- the control: in memory, the same walk must not survive ------------------------------
start "$WORK/log3" --store memory
sign_in
check "memory: signed in" eq "$(initialize "$AT")" 200
crash
start "$WORK/log4" --store memory
check "memory: the access token is dead after a restart" eq "$(initialize "$AT")" 401
check "memory: the refresh token is dead after a restart" ne "$(refresh)" 200
crash

for log in "$WORK"/log*; do
  check "log $(basename "$log") holds no token" bash -c "! grep -qF -e '$RT' -e '$AT' '$log'"
done
echo "$PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]
