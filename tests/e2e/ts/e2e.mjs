// End to end (docs/design.md#e2e): the official MCP TypeScript SDK (@modelcontextprotocol/sdk,
// pinned in package.json, run unmodified) logs in to examples/hyper_server through the
// consent gate, then calls the `whoami` tool.
//
// The SDK does all the OAuth client work itself: 401 + WWW-Authenticate → RFC 9728 PRM →
// RFC 8414 AS metadata → RFC 7591 registration → PKCE S256 authorization URL →
// `finishAuth(code)` token exchange → bearer on /mcp → refresh-token rotation. What it
// leaves to the application is the user: `redirectToAuthorization(url)` hands us the URL a
// browser would open. Here the user is a cookie-jar HTTP client (`user-agent.mjs`) that
// loads the consent page, submits Approve or Deny, and follows redirects to the client's
// loopback redirect URI, where a tiny listener catches `code`/`error`, `state` and `iss`.
//
// Usage: node e2e.mjs --server http://127.0.0.1:PORT     (or E2E_SERVER=…)
// Exit status: 0 when every scenario passed, 1 otherwise; 2 on the global timeout.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, refreshAuthorization } from '@modelcontextprotocol/sdk/client/auth.js';
import { startLoopbackListener, actAsUser } from './user-agent.mjs';

const GLOBAL_TIMEOUT_MS = 90_000;
const STEP_TIMEOUT_MS = 20_000;
// The server's default refresh grace window is 10 s (Lifetimes::refresh_grace); wait past it.
const REFRESH_GRACE_MS = 11_500;

const server = (() => {
  const i = process.argv.indexOf('--server');
  const v = i >= 0 ? process.argv[i + 1] : process.env.E2E_SERVER;
  if (!v) {
    console.error('usage: node e2e.mjs --server http://127.0.0.1:PORT');
    process.exit(1);
  }
  return v.replace(/\/+$/, '');
})();
const mcpUrl = new URL(`${server}/mcp`);

// Bounded: whatever hangs (server, SDK retry loop), the driver ends.
setTimeout(() => {
  console.error(`FAIL ts: global timeout after ${GLOBAL_TIMEOUT_MS} ms`);
  process.exit(2);
}, GLOBAL_TIMEOUT_MS).unref();

function withTimeout(promise, what, ms = STEP_TIMEOUT_MS) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

// Every request the SDK makes, for the failure report: a real client's view of the server.
const sdkLog = [];
const recordingFetch = async (url, init) => {
  const res = await fetch(url, { ...init, signal: init?.signal ?? AbortSignal.timeout(STEP_TIMEOUT_MS) });
  sdkLog.push(`${init?.method ?? 'GET'} ${url} -> ${res.status}`);
  return res;
};

/**
 * An in-memory OAuthClientProvider, the part of the SDK an application writes. It stores
 * exactly what the SDK hands it (the SDK stamps tokens and client info with the issuer).
 */
class MemoryProvider {
  constructor(name, redirectUrl, onRedirect) {
    this.name = name;
    this._redirectUrl = redirectUrl;
    this._onRedirect = onRedirect;
    this._state = randomBytes(16).toString('base64url');
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this.authorizationUrls = [];
  }
  get redirectUrl() { return this._redirectUrl; }
  get clientMetadata() {
    return {
      client_name: this.name,
      redirect_uris: [this._redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() { return this._state; }
  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; }
  tokens() { return this._tokens; }
  saveTokens(tokens) { this._tokens = tokens; }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
  redirectToAuthorization(url) {
    this.authorizationUrls.push(new URL(url));
    this._onRedirect(new URL(url));
  }
}

async function fetchJson(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
  assert.equal(res.status, 200, `GET ${url}`);
  return res.json();
}

/**
 * Drives one login up to the client's redirect URI. `decision` is what the simulated user
 * clicks. Returns the provider, the transport the SDK used, and what reached the listener.
 */
async function loginUntilCallback(decision, name) {
  const listener = await startLoopbackListener();
  let userRun;
  const provider = new MemoryProvider(name, listener.redirectUri, (url) => {
    // The application opens the URL in "the browser"; the SDK does not wait for it.
    userRun = actAsUser(url, decision, listener.redirectUri, { clientName: name });
    userRun.catch(() => {}); // awaited below; this only keeps Node from calling it unhandled
  });
  const client = new Client({ name: 'consent-gate-e2e-ts', version: '0.0.0' });
  const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recordingFetch });
  try {
    // No token yet: the SDK gets 401, discovers, registers and hands us the URL.
    await assert.rejects(withTimeout(client.connect(transport), 'first connect'), (e) => {
      assert.ok(e instanceof UnauthorizedError, `expected UnauthorizedError, got ${e?.stack ?? e}`);
      return true;
    });
    assert.equal(provider.authorizationUrls.length, 1, 'SDK opened exactly one authorization URL');
    assert.ok(provider.clientInformation()?.client_id, 'SDK registered a client (RFC 7591)');
    const user = await withTimeout(userRun, 'user at the consent page');
    const callback = await withTimeout(listener.next(), 'loopback redirect');
    return { provider, transport, user, callback, authUrl: provider.authorizationUrls[0] };
  } finally {
    await transport.close().catch(() => {});
    listener.close();
  }
}

async function scenarioApprove(asMeta, prm) {
  const { provider, transport, user, callback, authUrl } = await loginUntilCallback('approve', 'E2E TS SDK client');
  // What the SDK put in the authorization request (it chose these from the metadata).
  assert.equal(authUrl.searchParams.get('code_challenge_method'), 'S256');
  assert.equal(authUrl.searchParams.get('resource'), prm.resource, 'SDK sends PRM resource (R4)');
  // R24: 303 after the consent POST. The chain then goes through the demo upstream and /callback.
  assert.equal(user.chain[0].status, 303, `consent POST answered ${user.chain[0].status}`);
  assert.ok(user.chain.some((h) => h.url.includes('/demo-upstream/')), 'approval goes to the upstream');
  // R47 / RFC 9207: the client redirect carries the exact issuer and the SDK's state.
  assert.equal(callback.get('error'), null, `callback error=${callback.get('error')}`);
  assert.ok(callback.get('code'), 'callback carries a code');
  assert.equal(callback.get('state'), provider.state(), 'state echoed');
  assert.equal(callback.get('iss'), asMeta.issuer, 'iss equals the metadata issuer');

  // The SDK exchanges the code (PKCE verifier, redirect_uri, resource) at /token.
  await withTimeout(transport.finishAuth(callback.get('code')), 'finishAuth');
  const first = provider.tokens();
  assert.ok(first?.access_token, 'access token saved');
  assert.equal(first.token_type.toLowerCase(), 'bearer');

  await callWhoami(provider, 'after finishAuth');

  // R53: an expired/rejected access token makes the SDK refresh by itself, and the refresh
  // token rotates.
  assert.ok(first.refresh_token, 'token response carries a refresh token');
  provider.saveTokens({ ...first, access_token: `${first.access_token}x-invalid` });
  await callWhoami(provider, 'after a 401 made the SDK refresh');
  const second = provider.tokens();
  assert.ok(second.refresh_token && second.refresh_token !== first.refresh_token, 'refresh token rotated');
  assert.equal(provider.authorizationUrls.length, 1, 'refresh did not send the user to the consent page');
  // (The access token may be byte-identical: it is a MAC over grant, audience and expiry
  // second, with no per-issue nonce, so a refresh in the same second re-mints the same one.)
  const refreshWith = (refreshToken) => withTimeout(refreshAuthorization(asMeta.issuer, {
    metadata: asMeta,
    clientInformation: provider.clientInformation(),
    refreshToken,
    resource: new URL(prm.resource),
    fetchFn: recordingFetch,
  }), 'refresh');
  // Inside the grace window (default 10 s) a concurrent refresh with the rotated token gets
  // the same successor, not a fork (docs/design.md#refresh-rotation, peer bug FastMCP #4901).
  const concurrent = await refreshWith(first.refresh_token);
  assert.equal(concurrent.refresh_token, second.refresh_token, 'grace-window reuse returns the same successor');
  // After it, reuse of the rotated token is theft: refused, and the whole family revoked,
  // including the live refresh token and access token (R53).
  await new Promise((r) => setTimeout(r, REFRESH_GRACE_MS));
  const isInvalidGrant = (e) => /invalid_grant/i.test(`${e?.errorCode ?? ''} ${e?.constructor?.name ?? ''} ${e?.message ?? ''}`)
    || assert.fail(`expected invalid_grant, got ${e}`);
  await assert.rejects(refreshWith(first.refresh_token), isInvalidGrant, 'reused refresh token is refused');
  await assert.rejects(refreshWith(second.refresh_token), isInvalidGrant, 'the family is revoked');
  const res = await recordingFetch(mcpUrl, {
    method: 'POST',
    headers: { authorization: `Bearer ${second.access_token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
  });
  assert.equal(res.status, 401, 'access token of a revoked grant is refused at /mcp');
}

async function callWhoami(provider, when) {
  const client = new Client({ name: 'consent-gate-e2e-ts', version: '0.0.0' });
  const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recordingFetch });
  try {
    await withTimeout(client.connect(transport), `connect ${when}`);
    const tools = await withTimeout(client.listTools(), 'tools/list');
    assert.ok(tools.tools.some((t) => t.name === 'whoami'), `tools/list has whoami: ${JSON.stringify(tools.tools.map((t) => t.name))}`);
    const result = await withTimeout(client.callTool({ name: 'whoami', arguments: {} }), 'tools/call whoami');
    assert.notEqual(result.isError, true, `whoami isError: ${JSON.stringify(result)}`);
    const text = (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
    const structured = JSON.stringify(result.structuredContent ?? {});
    assert.match(`${text}\n${structured}`, /\boctocat\b/, `whoami names the upstream user: ${JSON.stringify(result)}`);
  } finally {
    await client.close().catch(() => {});
  }
}

async function scenarioDeny(asMeta) {
  const { provider, user, callback } = await loginUntilCallback('deny', 'E2E TS SDK client (deny)');
  // docs/design.md#errors-and-redirects: deny after the page was seen → 303 straight to the client,
  // never upstream.
  assert.equal(user.chain[0].status, 303);
  assert.ok(!user.chain.some((h) => h.url.includes('/demo-upstream/')), 'deny never reaches the upstream');
  assert.equal(callback.get('error'), 'access_denied');
  assert.equal(callback.get('code'), null, 'no code on deny');
  assert.equal(callback.get('state'), provider.state());
  assert.equal(callback.get('iss'), asMeta.issuer);
  assert.equal(provider.tokens(), undefined, 'no token after deny');
}

const scenarios = [
  ['approve: SDK discovers, registers, user approves, token, tools/list + whoami, refresh rotation', scenarioApprove],
  ['deny: user denies, client gets access_denied and no token', scenarioDeny],
];

let failed = 0;
const asMeta = await fetchJson(`${server}/.well-known/oauth-authorization-server`);
const prm = await fetchJson(`${server}/.well-known/oauth-protected-resource/mcp`);
for (const [name, run] of scenarios) {
  sdkLog.length = 0;
  try {
    await run(asMeta, prm);
    console.log(`ok - ts sdk ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`not ok - ts sdk ${name}\n  ${String(e?.stack ?? e).replaceAll('\n', '\n  ')}`);
    console.log(`  SDK requests:\n    ${sdkLog.join('\n    ')}`);
  }
}
console.log(`ts summary: ${scenarios.length - failed} ok, ${failed} not ok`);
process.exit(failed ? 1 : 0);
