#!/usr/bin/env bash
# Walks the example server through the whole flow with curl, the way a browser and an MCP
# client would, and through the attacks the gate exists for. Starts the server on a free
# loopback port, asserts every step, stops it with SIGTERM (graceful shutdown), and checks
# that no secret reached the log.
#
#   bash examples/hyper_server/smoke.sh            # builds the example first
#   bash examples/hyper_server/smoke.sh --rmcp     # the same walk against examples/rmcp_server.rs
#   SMOKE_SERVER_BIN=path/to/binary bash examples/hyper_server/smoke.sh [--rmcp]
#   bash examples/hyper_server/smoke.sh [--rmcp] --faults   # every core fault switch must make it fail
#
# `--faults` builds the example with RUSTFLAGS="--cfg consent_gate_faults" (the only builds
# in which the switches and `--fault NAME` exist) into target/faults, beside the normal
# build, whose cache it leaves alone. Both examples serve the same OAuth endpoints from the
# same core and a stateless /mcp; the few checks of what only one of them does (the hyper
# example's 2026-07-28 revision and request log lines) are skipped for the other.
# (HYPER_SERVER_BIN / HYPER_SERVER_ARGS are the older names of SMOKE_SERVER_BIN / _ARGS.)
#
# Needs curl, jq, openssl. Ends with "N passed, N failed".
set -euo pipefail

SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$SELF")/../.."
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then kill "$SERVER_PID"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   - $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $1"; }

RMCP=
FAULTS_MODE=
for arg in "$@"; do
  case $arg in
    --rmcp) RMCP=--rmcp ;;
    --faults) FAULTS_MODE=1 ;;
    *) echo "unknown argument $arg (--rmcp, --faults)"; exit 2 ;;
  esac
done
SMOKE_SERVER_BIN=${SMOKE_SERVER_BIN:-${HYPER_SERVER_BIN:-}}
SMOKE_SERVER_ARGS=${SMOKE_SERVER_ARGS:-${HYPER_SERVER_ARGS:-}}
if [[ -n $RMCP ]]; then
  EXAMPLE=rmcp_server
  BUILD=(-p consent-gate-axum --features launch --example rmcp_server)
else
  EXAMPLE=hyper_server
  BUILD=(-p consent-gate --example hyper_server)
fi
if [[ -n $FAULTS_MODE ]]; then
  # A checker that catches nothing proves nothing: with each fault switch of the core
  # turned on, this same walk must fail.
  FAULTS_TARGET="${CARGO_TARGET_DIR:-target}/faults"
  RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }--cfg consent_gate_faults" \
    cargo build --quiet --locked "${BUILD[@]}" --target-dir "$FAULTS_TARGET"
  FAULTS_BIN="$FAULTS_TARGET/debug/examples/$EXAMPLE"
  read -r -a FAULTS <<<"$("$FAULTS_BIN" --listen 127.0.0.1:0 --fault '?' 2>&1 | sed -n 's/.*(one of: \(.*\))$/\1/p')"
  [[ ${#FAULTS[@]} -gt 0 ]] || { echo "could not list the fault switches"; exit 1; }
  for fault in "${FAULTS[@]}"; do
    if SMOKE_SERVER_BIN="$FAULTS_BIN" SMOKE_SERVER_ARGS="--fault $fault" \
      bash "$SELF" $RMCP >"$WORK/$fault.out" 2>&1; then
      bad "fault $fault went unnoticed ($EXAMPLE)"
    else
      ok "fault $fault caught ($EXAMPLE) by: $(grep '^FAIL' "$WORK/$fault.out" | head -3 | cut -c8- | paste -sd';')"
    fi
  done
  echo "$PASS passed, $FAIL failed"
  [[ $FAIL -eq 0 ]]
  exit
fi
if [[ -z "$SMOKE_SERVER_BIN" ]]; then
  [[ -n $RMCP ]] || cargo test --quiet -p consent-gate --example hyper_server # the store's unit tests
  cargo build --quiet --locked "${BUILD[@]}"
  SMOKE_SERVER_BIN="${CARGO_TARGET_DIR:-target}/debug/examples/$EXAMPLE"
fi
check() { # check "description" command...
  local what=$1; shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
eq() { [[ "$1" == "$2" ]] || { echo "     expected [$2], got [$1]" >&2; return 1; }; }
has() { [[ "$1" == *"$2"* ]] || { echo "     [$2] not in [${1:0:300}]" >&2; return 1; }; }
hasnt() { [[ "$1" != *"$2"* ]] || { echo "     [$2] unexpectedly in [${1:0:300}]" >&2; return 1; }; }

# start_server LOG [ARGS...]: starts the server on a free port; sets SERVER_PID, MCP, BASE
start_server() {
  local log=$1
  shift
  : >"$WORK/stdout"
  # shellcheck disable=SC2086 # word splitting of the extra arguments is intended
  "$SMOKE_SERVER_BIN" --listen 127.0.0.1:0 $SMOKE_SERVER_ARGS "$@" >"$WORK/stdout" 2>"$log" &
  SERVER_PID=$!
  for _ in $(seq 100); do
    grep -q '^MCP server: ' "$WORK/stdout" 2>/dev/null && break
    sleep 0.1
  done
  MCP=$(sed -n 's/^MCP server: //p' "$WORK/stdout")
  [[ -n "$MCP" ]] || { cat "$log"; echo "server did not start"; exit 1; }
  BASE=${MCP%/mcp}
  echo "# server at $BASE (pid $SERVER_PID) $*"
}
# stop_server: SIGTERM, and the exit must be clean and prompt (graceful shutdown)
stop_server() {
  kill -TERM "$SERVER_PID"
  for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SERVER_PID" 2>/dev/null; then bad "SIGTERM stops the server"; else
    if wait "$SERVER_PID"; then ok "SIGTERM stops the server cleanly"; else bad "server exit status"; fi
  fi
}
if [[ -z "$SMOKE_SERVER_ARGS" ]]; then
  # A build without `--cfg consent_gate_faults` has no switch to turn on (.ci/release-guard
  # proves it for the release build of the hyper example).
  out=$(timeout 10 "$SMOKE_SERVER_BIN" --listen 127.0.0.1:0 --fault callback_unbound 2>&1 || true)
  check "without the faults flag, --fault is an unknown argument" has "$out" "unknown argument --fault"
fi
start_server "$WORK/log"

# status URL [curl args...]: prints the status; headers in $WORK/h, body in $WORK/b
req() {
  local url=$1; shift
  curl -sS -o "$WORK/b" -D "$WORK/h" -w '%{http_code}' "$@" "$url"
}
header() { { grep -i "^$1:" "$WORK/h" || true; } | head -1 | cut -d' ' -f2- | tr -d '\r'; }
body() { cat "$WORK/b"; }
field() { # hidden form field from the consent page in $WORK/b
  sed -n "s/.*name=\"$1\" value=\"\([^\"]*\)\".*/\1/p" "$WORK/b" | head -1
}
qparam() { # qparam NAME URL: a decoded query parameter
  local v
  v=$(printf '%s' "$2" | tr '?&' '\n\n' | sed -n "s/^$1=//p" | head -1)
  printf '%b' "${v//%/\\x}"
}
uri() { jq -rn --arg v "$1" '$v|@uri'; }
pkce() { # prints "verifier challenge"
  local v
  v=$(openssl rand -hex 32)
  printf '%s %s' "$v" "$(printf '%s' "$v" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')"
}

# --- discovery (R1–R9) -------------------------------------------------------------------
s=$(req "$MCP")
check "unauthenticated /mcp is 401" eq "$s" 401
check "401 points at the PRM (R2)" has "$(header www-authenticate)" "resource_metadata=\"$BASE/.well-known/oauth-protected-resource/mcp\""
s=$(req "$BASE/.well-known/oauth-protected-resource/mcp")
check "path-inserted PRM (R3)" eq "$s" 200
check "PRM resource is the MCP URL (R4)" eq "$(body | jq -r .resource)" "$MCP"
check "PRM names our issuer (R1)" eq "$(body | jq -r '.authorization_servers[0]')" "$BASE"
check "metadata has CORS for browser clients" eq "$(header access-control-allow-origin)" "*"
check "root PRM" eq "$(req "$BASE/.well-known/oauth-protected-resource")" 200
s=$(req "$BASE/.well-known/oauth-authorization-server")
check "AS metadata" eq "$s" 200
check "AS issuer is identical (R6)" eq "$(body | jq -r .issuer)" "$BASE"
check "S256 advertised (R7)" eq "$(body | jq -c .code_challenge_methods_supported)" '["S256"]'

# --- an honest client --------------------------------------------------------------------
CB="http://127.0.0.1:9/cb"
s=$(req "$BASE/register" -H 'content-type: application/json' \
  -d "{\"client_name\":\"Honest Client\",\"redirect_uris\":[\"$CB\"],\"token_endpoint_auth_method\":\"none\",\"grant_types\":[\"authorization_code\",\"refresh_token\"]}")
check "register is 201" eq "$s" 201
check "registration echoes redirect_uris" eq "$(body | jq -r '.redirect_uris[0]')" "$CB"
CID=$(body | jq -r .client_id)

# authorize_url CLIENT_ID REDIRECT CHALLENGE STATE
authorize_url() {
  printf '%s/authorize?response_type=code&client_id=%s&redirect_uri=%s&code_challenge=%s&code_challenge_method=S256&state=%s&resource=%s&scope=mcp' \
    "$BASE" "$(uri "$1")" "$(uri "$2")" "$3" "$4" "$(uri "$MCP")"
}

read -r VERIFIER CHALLENGE <<<"$(pkce)"
JAR="$WORK/victim.jar"
s=$(req "$(authorize_url "$CID" "$CB" "$CHALLENGE" st-1)" -c "$JAR" -b "$JAR")
check "GET /authorize shows the consent page" eq "$s" 200
check "consent page names the client" has "$(body)" "Honest Client"
check "consent page shows the redirect host (R12)" has "$(body)" 'id="redirect-host">127.0.0.1<'
check "consent page cannot be framed (R29)" has "$(header content-security-policy)" "frame-ancestors 'none'"
check "no CORS on /authorize" eq "$(header access-control-allow-origin)" ""
TX=$(field tx)
CSRF=$(field csrf)
s=$(req "$BASE/authorize" -c "$JAR" -b "$JAR" -d "tx=$(uri "$TX")&csrf=$(uri "$CSRF")&decision=approve")
check "approve is 303 (R24)" eq "$s" 303
UP=$(header location)
check "approve goes to the (demo) upstream" has "$UP" "$BASE/demo-upstream/authorize?"
check "approve sets the binding cookie (R34)" has "$(header set-cookie)" "cg-bind-"
s=$(req "$BASE/authorize" -c "$JAR" -b "$JAR" -d "tx=$(uri "$TX")&csrf=$(uri "$CSRF")&decision=approve")
check "the same consent form cannot be submitted twice" eq "$s" 400

s=$(req "$UP")
check "demo upstream approves silently (302, like GitHub)" eq "$s" 302
CALLBACK=$(header location)
check "demo upstream sends iss (RFC 9207)" has "$CALLBACK" "iss="
s=$(req "$CALLBACK" -c "$JAR" -b "$JAR")
check "callback is 303 to the client" eq "$s" 303
TO_CLIENT=$(header location)
check "code goes to the registered redirect URI" has "$TO_CLIENT" "$CB?code="
check "client state is echoed" eq "$(qparam state "$TO_CLIENT")" st-1
check "iss is our issuer (R47)" eq "$(qparam iss "$TO_CLIENT")" "$BASE"
CODE=$(qparam code "$TO_CLIENT")
s=$(req "$CALLBACK" -c "$JAR" -b "$JAR")
check "a replayed upstream callback is refused (A7)" eq "$s" 400
# A13, mix-up: the victim's own trip, answered in another authorization server's name. State
# and binding cookie match, so only the issuer check (R40) stops it.
read -r _ MIX_CHALLENGE <<<"$(pkce)"
req "$(authorize_url "$CID" "$CB" "$MIX_CHALLENGE" st-mix)" -c "$JAR" -b "$JAR" >/dev/null
req "$BASE/authorize" -c "$JAR" -b "$JAR" -d "tx=$(uri "$(field tx)")&csrf=$(uri "$(field csrf)")&decision=approve" >/dev/null
req "$(header location)" >/dev/null
MIXED=$(header location | sed 's|iss=[^&]*|iss=https%3A%2F%2Fas.evil.example|')
check "the mix-up answer names the attacker's server" has "$MIXED" "iss=https%3A%2F%2Fas.evil.example"
s=$(req "$MIXED" -c "$JAR" -b "$JAR")
check "a callback naming another issuer is refused (A13)" eq "$s $(header location)" "403 "

token_code() { # token_code CODE VERIFIER
  req "$BASE/token" -d "grant_type=authorization_code&code=$(uri "$1")&code_verifier=$2&client_id=$CID&redirect_uri=$(uri "$CB")&resource=$(uri "$MCP")"
}
s=$(token_code "$CODE" "$(openssl rand -hex 32)")
check "wrong PKCE verifier is invalid_grant (R44)" eq "$s $(body | jq -r .error)" "400 invalid_grant"
# That attempt spent the code (single use, taken before checking): start over for tokens.
new_code() { # new_code STATE: a fresh code for the honest client, VERIFIER/CODE set
  read -r VERIFIER CHALLENGE <<<"$(pkce)"
  req "$(authorize_url "$CID" "$CB" "$CHALLENGE" "$1")" -c "$JAR" -b "$JAR" >/dev/null
  req "$BASE/authorize" -c "$JAR" -b "$JAR" -d "tx=$(uri "$(field tx)")&csrf=$(uri "$(field csrf)")&decision=approve" >/dev/null
  req "$(header location)" >/dev/null
  req "$(header location)" -c "$JAR" -b "$JAR" >/dev/null
  CODE=$(qparam code "$(header location)")
}
new_code st-2
s=$(token_code "$CODE" "$VERIFIER")
check "code grant is 200" eq "$s" 200
check "token response is no-store (R46)" eq "$(header cache-control)" "no-store"
AT=$(body | jq -r .access_token)
RT=$(body | jq -r .refresh_token)
check "refresh token issued" test "$RT" != null

# --- MCP over streamable HTTP --------------------------------------------------------------
mcp() { # mcp JSON [extra curl args]
  local json=$1; shift
  req "$MCP" -H "authorization: Bearer $AT" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' "$@" -d "$json"
}
s=$(mcp '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"smoke","version":"1"}}}')
check "initialize is 200" eq "$s" 200
check "protocol version negotiated" eq "$(body | jq -r .result.protocolVersion)" 2025-06-18
if [[ -z $RMCP ]]; then
  check "tools capability" eq "$(body | jq -c .result.capabilities.tools)" '{"listChanged":false}'
else
  check "tools capability" has "$(body | jq -c .result.capabilities.tools)" '{'
fi
check "stateless: no session id" test -z "$(header mcp-session-id)"
if [[ -z $RMCP ]]; then # the hyper example's endpoint speaks the 2026-07-28 revision too
  s=$(mcp '{"jsonrpc":"2.0","id":0,"method":"server/discover"}' -H 'mcp-protocol-version: 2026-07-28')
  check "server/discover lists 2026-07-28" eq "$s $(body | jq -r '.result.supportedVersions[0]')" "200 2026-07-28"
fi
S=(-H 'mcp-protocol-version: 2025-06-18')
check "notifications/initialized is 202" eq "$(mcp '{"jsonrpc":"2.0","method":"notifications/initialized"}' "${S[@]}")" 202
s=$(mcp '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' "${S[@]}")
check "tools/list lists whoami" eq "$s $(body | jq -r '.result.tools[0].name')" "200 whoami"
s=$(mcp '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami","arguments":{}}}' "${S[@]}")
check "whoami answers with the upstream identity" has "$(body | jq -r '.result.content[0].text')" "octocat"
check "whoami is not an error" eq "$(body | jq -r '.result.isError // false')" false
check "ping" eq "$(mcp '{"jsonrpc":"2.0","id":4,"method":"ping"}' "${S[@]}")" 200
check "unknown MCP-Protocol-Version is 400" eq "$(mcp '{"jsonrpc":"2.0","id":5,"method":"ping"}' -H 'mcp-protocol-version: 1999-01-01')" 400
check "DELETE /mcp is 405 (no sessions)" eq "$(mcp '{"jsonrpc":"2.0","id":6,"method":"ping"}' -X DELETE)" 405
check "GET /mcp is 405 (no server stream)" eq "$(req "$MCP" -H "authorization: Bearer $AT")" 405
if [[ -z $RMCP ]]; then
  check "malformed JSON-RPC is 400" eq "$(mcp '{nope' "${S[@]}")" 400
else # rmcp's transport answers an unparsable body 415
  check "malformed JSON-RPC is a 4xx" eq "$(mcp '{nope' "${S[@]}" | cut -c1)" 4
fi
check "oversized body to the guarded endpoint is 413" eq "$(mcp "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\",\"params\":{\"pad\":\"$(head -c 70000 /dev/zero | tr '\0' a)\"}}" "${S[@]}")" 413
check "foreign Origin on /mcp is 403" eq "$(mcp '{"jsonrpc":"2.0","id":7,"method":"ping"}' "${S[@]}" -H 'origin: http://evil.example')" 403
check "the upstream token never reaches the client (R41)" hasnt "$(body)" "gho_"

s=$(req "$BASE/token" -d "grant_type=refresh_token&refresh_token=$(uri "$RT")&client_id=$CID")
check "refresh grant rotates (R53)" eq "$s" 200
RT2=$(body | jq -r .refresh_token)
AT2=$(body | jq -r .access_token)
check "rotated refresh token differs" test "$RT2" != "$RT"
AT=$AT2
check "new access token works" eq "$(mcp '{"jsonrpc":"2.0","id":8,"method":"ping"}' "${S[@]}")" 200
check "the new token answers for the same grant" eq "$(body | jq -c .result)" '{}'

# A replayed code revokes the grant it created, and with it every token (R43, A8).
s=$(token_code "$CODE" "$VERIFIER")
check "code replay is invalid_grant" eq "$s $(body | jq -r .error)" "400 invalid_grant"
check "code replay revoked the access token" eq "$(mcp '{"jsonrpc":"2.0","id":11,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}')" 401
check "revoked token gets invalid_token" has "$(header www-authenticate)" 'error="invalid_token"'

# Revocation (RFC 7009) on a fresh grant.
new_code st-3
token_code "$CODE" "$VERIFIER" >/dev/null
AT=$(body | jq -r .access_token)
RT=$(body | jq -r .refresh_token)
check "fresh token works" eq "$(mcp '{"jsonrpc":"2.0","id":12,"method":"initialize","params":{}}')" 200
check "revoke is 200" eq "$(req "$BASE/revoke" -d "token=$(uri "$RT")&client_id=$CID")" 200
check "revoking the refresh token killed the access token" eq "$(mcp '{"jsonrpc":"2.0","id":13,"method":"initialize","params":{}}')" 401

# --- deny ----------------------------------------------------------------------------------
read -r VERIFIER CHALLENGE <<<"$(pkce)"
req "$(authorize_url "$CID" "$CB" "$CHALLENGE" st-deny)" -c "$JAR" -b "$JAR" >/dev/null
s=$(req "$BASE/authorize" -c "$JAR" -b "$JAR" -d "tx=$(uri "$(field tx)")&csrf=$(uri "$(field csrf)")&decision=deny")
check "deny is 303 to the client" eq "$s" 303
DENIED=$(header location)
check "deny carries access_denied" eq "$(qparam error "$DENIED")" access_denied
check "deny carries state and iss" eq "$(qparam state "$DENIED") $(qparam iss "$DENIED")" "st-deny $BASE"
check "deny never went upstream" hasnt "$DENIED" "demo-upstream"

# --- the seed attack: an attacker-registered client (A1) ----------------------------------
s=$(req "$BASE/register" -H 'content-type: application/json' \
  -d '{"client_name":"Honest Client","redirect_uris":["https://evil.example/cb"],"token_endpoint_auth_method":"none"}')
check "attacker registers a client" eq "$s" 201
EVIL=$(body | jq -r .client_id)
read -r _ EVIL_CHALLENGE <<<"$(pkce)"
LINK=$(authorize_url "$EVIL" "https://evil.example/cb" "$EVIL_CHALLENGE" x)
# The victim, already signed in upstream (the demo upstream never asks), opens the link.
s=$(req "$LINK" -c "$JAR" -b "$JAR")
check "A1: the victim sees a consent page, not a redirect" eq "$s" 200
check "A1: the page shows where the code would go" has "$(body)" 'id="redirect-host">evil.example<'
check "A1: no Location, no code without a click" eq "$(header location)" ""
VICTIM_TX=$(field tx)
# A3: the attacker loads its own consent page and makes the victim's browser post it.
AJAR="$WORK/attacker.jar"
req "$LINK" -c "$AJAR" -b "$AJAR" >/dev/null
s=$(req "$BASE/authorize" -c "$JAR" -b "$JAR" -d "tx=$(uri "$(field tx)")&csrf=$(uri "$(field csrf)")&decision=approve")
check "A3: a consent form from another browser is refused" eq "$s" 403
check "A3: and does not go upstream" hasnt "$(header location)" "demo-upstream"
s=$(req "$BASE/authorize" -c "$JAR" -b "$JAR" -H 'origin: https://evil.example' -H 'sec-fetch-site: cross-site' \
  -d "tx=$(uri "$VICTIM_TX")&csrf=x&decision=approve")
check "A3: a cross-site POST is refused" eq "$s" 403
# A2: the attacker approves its own client in its own browser and sends the victim the
# upstream link; the callback lands in the victim's browser without the binding cookie.
req "$LINK" -c "$AJAR" -b "$AJAR" >/dev/null
req "$BASE/authorize" -c "$AJAR" -b "$AJAR" -d "tx=$(uri "$(field tx)")&csrf=$(uri "$(field csrf)")&decision=approve" >/dev/null
req "$(header location)" >/dev/null # the victim's browser at the upstream: silent approval
s=$(req "$(header location)" -c "$JAR" -b "$JAR")
check "A2: a callback in a browser that did not consent is refused" eq "$s" 403
check "A2: no code for evil.example" hasnt "$(header location)" "evil.example"

# --- malformed input: clear 4xx, never 5xx ------------------------------------------------
check "unknown path is 404" eq "$(req "$BASE/nope")" 404
check "wrong method is 405" eq "$(req "$BASE/token" -X GET)" 405
check "bad registration JSON is 400" eq "$(req "$BASE/register" -H 'content-type: application/json' -d '{')" 400
check "javascript: redirect refused (A17)" eq "$(req "$BASE/register" -H 'content-type: application/json' -d '{"redirect_uris":["javascript:alert(1)"]}')" 400
check "unknown client gets an error page, not a redirect (R16)" eq "$(req "$BASE/authorize?response_type=code&client_id=nope") $(header location)" "400 "
check "redirect_uri mismatch gets an error page (R17)" eq "$(req "$(authorize_url "$CID" "http://127.0.0.1:9/other" "$CHALLENGE" x)") $(header location)" "400 "
# A10: a client registered https://app.example/cb; only that exact string is accepted.
req "$BASE/register" -H 'content-type: application/json' -d '{"redirect_uris":["https://app.example/cb"]}' >/dev/null
APP=$(body | jq -r .client_id)
for tricky in "https://app.example/cb/../evil" "https://app.example/cb?x=" "https://app.example/cb/" \
  "https://app.example.evil.com/cb" "HTTPS://APP.example/cb" "https://app.example:8443/cb"; do
  check "A10: $tricky gets an error page" eq "$(req "$(authorize_url "$APP" "$tricky" "$CHALLENGE" x)") $(header location)" "400 "
done
check "A10: a loopback look-alike host is refused" eq "$(req "$(authorize_url "$CID" "http://127.0.0.1.evil.com:9/cb" "$CHALLENGE" x)")" 400
check "R18: a loopback redirect may change only its port" eq "$(req "$(authorize_url "$CID" "http://127.0.0.1:5555/cb" "$CHALLENGE" x)")" 200
check "oversized body is 413" eq "$(head -c 70000 /dev/zero | tr '\0' a | req "$BASE/token" --data-binary @-)" 413
check "the 413 is never cached nor sniffed" eq "$(header cache-control) $(header x-content-type-options)" "no-store nosniff"
check "garbage consent form is 400" eq "$(req "$BASE/authorize" -d 'tx=%zz')" 400
check "garbage callback is 400" eq "$(req "$BASE/callback?state=x&code=y&code=z")" 400
check "huge header is 431" eq "$(req "$BASE/mcp" -H "x-big: $(head -c 20000 /dev/zero | tr '\0' a)")" 431
check "upstream token is not an MCP token (R50)" eq "$(AT=gho_16C7e42F292c6912E7710c838347Ae178B4a mcp '{}')" 401

# --- shutdown and the log -------------------------------------------------------------------
stop_server
LOG=$(cat "$WORK/log")
[[ -z "${SMOKE_KEEP_LOG:-}" ]] || cp "$WORK/log" "$SMOKE_KEEP_LOG"
# The hyper example logs one line per request; the axum crate leaves request logs to the host.
[[ -n $RMCP ]] || check "one log line per request" eq "$(jq -c 'select(.event=="request" and .path=="/token" and .status==200) | [.method, has("ms")]' <<<"$LOG" | head -1)" '["POST",true]'
check "request lines carry no query string" eq "$(jq -r 'select(.event=="request") | .path' <<<"$LOG" | grep -c '?' || true)" 0
check "consent approvals are logged" has "$LOG" '"event":"consent_approved"'
check "binding mismatches are logged" has "$LOG" '"event":"binding_mismatch"'
check "code replay is logged" has "$LOG" '"event":"code_replay_grant_revoked"'
for secret in "$AT" "$RT" "$RT2" "$CODE" "$VERIFIER" "$TX" "$CSRF" "$(qparam state "$UP")" gho_; do
  check "log holds no secret (${secret:0:6}…)" hasnt "$LOG" "$secret"
done

# --- remembered consent (opt-in, R31): per client, and never for cross-site navigations ----
start_server "$WORK/log2" --remember-consent
JAR="$WORK/victim2.jar"
req "$BASE/register" -H 'content-type: application/json' -d "{\"redirect_uris\":[\"$CB\"],\"token_endpoint_auth_method\":\"none\"}" >/dev/null
CID=$(body | jq -r .client_id)
req "$BASE/register" -H 'content-type: application/json' -d '{"client_name":"Honest Client","redirect_uris":["https://evil.example/cb"],"token_endpoint_auth_method":"none"}' >/dev/null
EVIL=$(body | jq -r .client_id)
read -r VERIFIER CHALLENGE <<<"$(pkce)"
NAV=(-H 'sec-fetch-site: none') # the user opened the link themselves
s=$(req "$(authorize_url "$CID" "$CB" "$CHALLENGE" r1)" -c "$JAR" -b "$JAR" "${NAV[@]}")
check "remember: the first time asks" eq "$s" 200
s=$(req "$BASE/authorize" -c "$JAR" -b "$JAR" -H 'sec-fetch-site: same-origin' -H "origin: $BASE" \
  -d "tx=$(uri "$(field tx)")&csrf=$(uri "$(field csrf)")&decision=approve")
check "remember: approval is remembered in a cookie" has "$(grep -i '^set-cookie:' "$WORK/h")" "cg-consent="
s=$(req "$(authorize_url "$CID" "$CB" "$CHALLENGE" r2)" -c "$JAR" -b "$JAR" "${NAV[@]}")
check "remember: the same client goes straight upstream" eq "$s $(header location | cut -d'?' -f1)" "303 $BASE/demo-upstream/authorize"
s=$(req "$(authorize_url "$CID" "$CB" "$CHALLENGE" r3)" -c "$JAR" -b "$JAR" -H 'sec-fetch-site: cross-site')
check "remember: a cross-site navigation still asks (A4)" eq "$s" 200
s=$(req "$(authorize_url "$EVIL" "https://evil.example/cb" "$CHALLENGE" r4)" -c "$JAR" -b "$JAR" "${NAV[@]}")
check "remember: another client still asks (A1)" eq "$s $(header location)" "200 "
stop_server

# --- a restart keeps users signed in (restart.sh; not in the fault runs) -----------------
if [[ -z "$SMOKE_SERVER_ARGS" ]]; then
  if HYPER_SERVER_BIN=$SMOKE_SERVER_BIN bash "$(dirname "$SELF")/restart.sh" >"$WORK/restart.out" 2>&1; then
    ok "restart.sh: $(tail -1 "$WORK/restart.out")"
  else
    sed 's/^/     /' "$WORK/restart.out"
    bad "restart.sh: $(tail -1 "$WORK/restart.out")"
  fi
fi

echo "$PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]
