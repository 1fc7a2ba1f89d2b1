// The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
// package.json) against a running consent-gate server (the rmcp example in CI):
//
//   node conformance.mjs --server http://127.0.0.1:PORT
//
// 1. Its authorization-server scenarios (`conformance authorization`): the metadata
//    endpoint, and the authorization code grant. The suite prints an authorization URL for
//    "your browser" and waits on its own loopback callback; here a client is registered for
//    that callback first (DCR), and "the user" (../ts/user-agent.mjs, a cookie-jar HTTP
//    client sending a browser's headers) opens the URL, approves on the consent page and
//    follows the redirects (demo upstream, /callback) to the suite's callback. The suite
//    then checks the redirect (code, state, iss) and redeems the code (PKCE, resource).
// 2. Its server scenarios that a server with one tool (`whoami`) and no resources, prompts,
//    logging or sampling can answer, against /mcp behind the bearer guard: the suite's
//    client carries a token obtained through the same consent flow (bearer.mjs), and
//    without one the endpoint's answer is checked to be the 401 that starts discovery.
//
// Every scenario's checks are read from the suite's own checks.json; any FAILURE, a
// SKIPPED check or a missing scenario fails the run. Ends with "N passed, N failed".

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { actAsUser, startLoopbackListener } from '../ts/user-agent.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const SUITE = join(HERE, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const SCENARIO_TIMEOUT_MS = process.argv.includes('--survey') ? 900_000 : 60_000;

// The server scenarios that apply to this server, and why the others do not:
// * server-initialize, ping, tools-list: the lifecycle and the one tool, through the guard.
// * dns-rebinding-protection: a foreign Host or Origin must be refused.
// Not applicable: tools-call-* / resources-* / prompts-* / completion / logging /
// elicitation / sampling / json-schema (they call the suite's reference tools, resources
// and prompts, which this server does not have); server-sse-* and server-session-lifecycle
// (the rmcp example is stateless and answers application/json, no SSE stream, no session);
// the 2026-07-28 draft scenarios (server-stateless, caching, http-header-*, input-required-*,
// sep-2164) and extensions (tasks-*, sep-2640-*): protocol revisions rmcp does not speak.
const SERVER_SCENARIOS = ['server-initialize', 'ping', 'tools-list', 'dns-rebinding-protection'];
const AUTHORIZATION_SCENARIOS = ['authorization-server-metadata-endpoint', 'authorization-code-grant'];

const args = process.argv.slice(2);
const server = args[args.indexOf('--server') + 1];
if (!args.includes('--server') || !server) {
  console.error('usage: node conformance.mjs --server http://127.0.0.1:PORT');
  process.exit(2);
}
const BASE = server.replace(/\/$/, '');
const MCP = `${BASE}/mcp`;

let passed = 0;
let failed = 0;
const ok = (what) => { passed += 1; console.log(`ok   - ${what}`); };
const bad = (what) => { failed += 1; console.log(`FAIL - ${what}`); };

async function freePort() {
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

async function register(redirectUri, clientName) {
  const res = await fetch(`${BASE}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: clientName, redirect_uris: [redirectUri], token_endpoint_auth_method: 'none' }),
  });
  const body = await res.json();
  if (res.status !== 201 || !body.client_id) throw new Error(`register: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body.client_id;
}

/**
 * Runs the suite's CLI with `argv` (Node 22, the pinned one, as the suite needs), copying
 * its output with a prefix; `onLine` sees each stdout line. Resolves to the exit code.
 */
function runSuite(argv, { env = {}, onLine = () => {}, preload } = {}) {
  const nodeArgs = preload ? ['--import', preload] : [];
  const child = spawn(process.execPath, [...nodeArgs, SUITE, ...argv], {
    cwd: HERE,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), SCENARIO_TIMEOUT_MS);
  let pending = '';
  child.stdout.on('data', (chunk) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      console.log(`  | ${line}`);
      onLine(line);
    }
  });
  child.stderr.on('data', (chunk) => process.stdout.write(String(chunk).replace(/^/gm, '  ! ')));
  return new Promise((resolve) => child.on('close', (code, signal) => {
    clearTimeout(timer);
    resolve(signal ? `signal ${signal}` : code);
  }));
}

/** Every checks.json under `dir`, by scenario name (the directory names start with it). */
function readChecks(dir, scenarios) {
  const found = {};
  for (const entry of readdirSync(dir)) {
    const scenario = scenarios.find((s) => entry === s || entry.startsWith(`${s}-`) || entry.includes(`-${s}-`));
    if (!scenario) continue;
    found[scenario] = JSON.parse(readFileSync(join(dir, entry, 'checks.json'), 'utf8'));
  }
  return found;
}

/** One line per scenario: passes only if it ran, has a SUCCESS and no FAILURE or SKIPPED check. */
function judge(kind, scenarios, checks, exitCode) {
  for (const scenario of scenarios) {
    const list = checks[scenario];
    if (!list) {
      bad(`${kind} ${scenario}: no result (suite exit ${exitCode})`);
      continue;
    }
    const by = (status) => list.filter((c) => c.status === status);
    const failures = [...by('FAILURE'), ...by('SKIPPED')];
    const summary = `${by('SUCCESS').length} checks passed, ${by('WARNING').length} warnings`;
    if (failures.length === 0 && by('SUCCESS').length > 0) {
      ok(`${kind} ${scenario} (${summary})`);
      for (const w of by('WARNING')) console.log(`     warning ${w.id}: ${w.errorMessage ?? w.description}`);
    } else {
      const why = failures.map((c) => `${c.status} ${c.id}: ${c.errorMessage ?? c.description}`).join('; ');
      bad(`${kind} ${scenario}: ${why || 'no check passed'}`);
    }
  }
}

// --- 1. authorization-server scenarios ------------------------------------------------
async function authorizationScenarios() {
  const port = await freePort();
  const redirectUri = `http://127.0.0.1:${port}/callback`;
  const clientName = 'MCP conformance suite';
  const clientId = await register(redirectUri, clientName);
  const out = mkdtempSync(join(tmpdir(), 'cg-conformance-as-'));
  let user = null;
  const code = await runSuite(
    ['authorization', '--url', BASE, '--client-id', clientId, '--resource', MCP, '--port', String(port), '--output-dir', out],
    {
      onLine: (line) => {
        // "Access the following URL in your browser …", then the URL on a line of its own.
        if (user === null && line.startsWith(`${BASE}/authorize?`)) {
          user = actAsUser(line.trim(), 'approve', redirectUri, { clientName }).then(
            (r) => ({ ok: true, hops: r.chain.length }),
            (e) => ({ ok: false, error: e }),
          );
        }
      },
    },
  );
  const acted = await user;
  if (!acted) bad('the suite printed no authorization URL');
  else if (!acted.ok) bad(`the user could not approve: ${acted.error.message}`);
  else ok(`the user approved on the consent page and reached the suite's callback (${acted.hops} hops)`);
  judge('authorization', AUTHORIZATION_SCENARIOS, readChecks(out, AUTHORIZATION_SCENARIOS), code);
  rmSync(out, { recursive: true, force: true });
}

// --- 2. server scenarios through the bearer guard -------------------------------------
async function accessToken() {
  const listener = await startLoopbackListener();
  try {
    const clientId = await register(listener.redirectUri, 'MCP conformance suite (server scenarios)');
    const verifier = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url');
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
    const challenge = Buffer.from(digest).toString('base64url');
    const state = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64url');
    const q = new URLSearchParams({
      response_type: 'code', client_id: clientId, redirect_uri: listener.redirectUri, scope: 'mcp',
      state, code_challenge: challenge, code_challenge_method: 'S256', resource: MCP,
    });
    const arrived = listener.next();
    await actAsUser(`${BASE}/authorize?${q}`, 'approve', listener.redirectUri);
    const params = await arrived;
    if (params.get('state') !== state || params.get('iss') !== BASE) throw new Error(`redirect: ${params}`);
    const res = await fetch(`${BASE}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code', code: params.get('code'), code_verifier: verifier,
        client_id: clientId, redirect_uri: listener.redirectUri, resource: MCP,
      }),
    });
    const body = await res.json();
    if (res.status !== 200 || !body.access_token) throw new Error(`token: HTTP ${res.status} ${JSON.stringify(body)}`);
    return body.access_token;
  } finally {
    listener.close();
  }
}

async function serverScenarios() {
  // Without a token the suite's client cannot get past the guard: the 401 it sees is
  // the one that starts an MCP client's discovery (RFC 9728).
  const anon = await fetch(MCP, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  const challenge = anon.headers.get('www-authenticate') ?? '';
  if (anon.status === 401 && challenge.includes(`resource_metadata="${BASE}/.well-known/oauth-protected-resource/mcp"`)) {
    ok('without a token /mcp is 401 naming the resource metadata');
  } else {
    bad(`without a token /mcp answered ${anon.status} ${challenge}`);
  }
  const token = await accessToken();
  ok('a token for the server scenarios, through consent');
  for (const scenario of SERVER_SCENARIOS) {
    const out = mkdtempSync(join(tmpdir(), 'cg-conformance-server-'));
    const code = await runSuite(['server', '--url', MCP, '--scenario', scenario, '--output-dir', out], {
      preload: join(HERE, 'bearer.mjs'),
      env: { CONFORMANCE_BEARER: token, CONFORMANCE_MCP_URL: MCP },
    });
    judge('server', [scenario], readChecks(out, [scenario]), code);
    rmSync(out, { recursive: true, force: true });
  }
}

// `--survey`: every active server scenario once, with the token, printed and not judged
// (to revisit the list above when rmcp or the suite changes).
async function survey() {
  const token = await accessToken();
  const code = await runSuite(['server', '--url', MCP, '--timeout', '15000'], {
    preload: join(HERE, 'bearer.mjs'),
    env: { CONFORMANCE_BEARER: token, CONFORMANCE_MCP_URL: MCP },
  });
  console.log(`survey: the suite exited ${code}`);
  process.exit(0);
}

try {
  if (args.includes('--survey')) await survey();
  await authorizationScenarios();
  await serverScenarios();
} catch (e) {
  bad(`driver error: ${e.stack ?? e}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
