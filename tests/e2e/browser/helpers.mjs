// Plain-HTTP helpers for the browser driver: the client's side of OAuth (registration,
// PKCE, token exchange, one MCP call) and a small site that plays both the client's
// loopback redirect URI (http://127.0.0.1:P) and another origin (http://localhost:P) that
// frames the consent page or auto-submits a forged form.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';

const TIMEOUT_MS = 15_000;

export const randomToken = () => randomBytes(24).toString('base64url');

/** RFC 7636 S256 pair. */
export function pkcePair() {
  const verifier = randomBytes(48).toString('base64url'); // 64 unreserved chars
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

/** RFC 7591 registration of a public client; the response must echo the redirect URIs. */
export async function register(meta, { client_name, redirect_uris }) {
  const res = await fetch(meta.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name,
      redirect_uris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const body = await res.json().catch(() => ({}));
  assert.ok(res.status === 201 || res.status === 200, `register: HTTP ${res.status} ${JSON.stringify(body)}`);
  assert.ok(body.client_id, 'registration returns client_id');
  assert.deepEqual(body.redirect_uris, redirect_uris, 'registration echoes redirect_uris');
  return body;
}

/** The authorization_code grant, as a public client sends it. */
export async function exchangeCode(meta, { client, code, redirectUri, verifier, resource }) {
  const res = await fetch(meta.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      client_id: client.client_id,
      code_verifier: verifier,
      resource,
    }).toString(),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  return { status: res.status, body: await res.json().catch(() => ({})) };
}

/** Reads one JSON-RPC response from a streamable-HTTP answer (JSON or SSE). */
async function rpcBody(res) {
  const text = await res.text();
  if (/text\/event-stream/i.test(res.headers.get('content-type') ?? '')) {
    for (const event of text.split(/\r?\n\r?\n/)) {
      const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (data) {
        const msg = JSON.parse(data);
        if ('result' in msg || 'error' in msg) return msg;
      }
    }
    throw new Error(`no JSON-RPC response in SSE: ${text.slice(0, 300)}`);
  }
  return JSON.parse(text);
}

/** initialize → notifications/initialized → tools/call whoami with a bearer; returns the text. */
export async function callWhoami(mcpUrl, accessToken) {
  let session;
  let protocol;
  const send = async (msg) => {
    const res = await fetch(mcpUrl, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${accessToken}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...(session ? { 'mcp-session-id': session } : {}),
        ...(protocol ? { 'mcp-protocol-version': protocol } : {}),
      },
      body: JSON.stringify(msg),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    session ??= res.headers.get('mcp-session-id') ?? undefined;
    if (!('id' in msg)) {
      assert.ok(res.status === 202 || res.status === 200, `${msg.method}: HTTP ${res.status}`);
      return null;
    }
    assert.equal(res.status, 200, `${msg.method}: HTTP ${res.status} ${res.headers.get('www-authenticate') ?? ''}`);
    const body = await rpcBody(res);
    assert.equal(body.error, undefined, `${msg.method}: ${JSON.stringify(body.error)}`);
    return body.result;
  };
  const init = await send({
    jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'consent-gate-e2e-browser', version: '0' } },
  });
  protocol = init.protocolVersion;
  await send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  const result = await send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {} } });
  return (result.content ?? []).map((c) => c.text ?? '').join('\n') + JSON.stringify(result.structuredContent ?? {});
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (body) => `<!doctype html><html><head><meta charset="utf-8"><title>e2e</title></head><body>${body}</body></html>`;

/**
 * One listener, two origins: http://127.0.0.1:P is the client's loopback redirect URI
 * (and a frameable control page); http://localhost:P is "another site" for framing and
 * forged-form tests (localhost and 127.0.0.1 are different sites to the browser).
 */
export async function startSite() {
  const srv = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const html = (status, body) => res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' }).end(page(body));
    if (u.pathname === '/callback') return html(200, '<p>Signed in. You can close this window.</p>');
    if (u.pathname === '/client.json') {
      // A Client ID Metadata Document (R57) for this site's loopback origin.
      const origin = `http://127.0.0.1:${srv.address().port}`;
      const doc = {
        client_id: `${origin}/client.json`,
        client_name: 'E2E document client',
        redirect_uris: [`${origin}/callback`],
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'none',
      };
      return res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=600' }).end(JSON.stringify(doc));
    }
    if (u.pathname === '/frameable') return html(200, '<p>frameable</p>');
    if (u.pathname === '/embed') {
      // A "game page" framing the consent page (A5) next to a frameable control.
      return html(200, `<h1>win a prize</h1>
        <iframe id="victim" src="${esc(u.searchParams.get('victim'))}" width="600" height="400"></iframe>
        <iframe id="control" src="${esc(u.searchParams.get('control'))}" width="200" height="100"></iframe>`);
    }
    if (u.pathname === '/autosubmit') {
      // A3: a cross-site page that posts the consent decision on load.
      const spec = JSON.parse(Buffer.from(u.searchParams.get('d'), 'base64url').toString());
      const inputs = spec.fields.map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`).join('');
      return html(200, `<form id="f" method="post" action="${esc(spec.action)}">${inputs}</form>
        <script>document.getElementById('f').submit();</script>`);
    }
    return html(404, 'not found');
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  return {
    loopbackOrigin: `http://127.0.0.1:${port}`,
    embedUrl: ({ victim, control }) => `http://localhost:${port}/embed?${new URLSearchParams({ victim, control })}`,
    autoSubmitUrl: (spec) => `http://localhost:${port}/autosubmit?d=${Buffer.from(JSON.stringify(spec)).toString('base64url')}`,
    close: () => srv.close(),
  };
}
