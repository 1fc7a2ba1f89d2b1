// End to end in a real browser (docs/design.md#e2e): Debian's headless Chromium, driven by
// playwright-core (no browser download), against examples/hyper_server.
//
//  1. honest  — register a client over HTTP, open /authorize, the consent page names the
//               client and its redirect host (R12, R25), screenshot, click Approve, land on
//               the loopback redirect URI with code, state and iss (R24, R47); the code is
//               real (token + whoami as octocat) and single-use (A8, R43).
//  1b. replay — the same browser replays the upstream callback URL (A7), and links with a
//               redirect_uri that extends the registered one (A10, R16, R17): error pages,
//               no redirect, no second code.
//  2. framing — a page on another origin (http://localhost:P vs http://127.0.0.1:S) frames
//               the consent page: Chromium must refuse to render it (A5, R29), while a
//               frameable control page in the same parent renders (so the check can fail).
//  3. seed    — the D265 confused deputy (A1): the victim already logged in once (the demo
//               upstream now approves instantly); the attacker registers
//               redirect_uri=https://evil.example/cb and sends the victim the link. The
//               victim's browser stops at the consent page showing the attacker's name and
//               evil.example, and evil.example never receives a code; a cross-site
//               auto-submitted Approve with the attacker's tx/csrf (A3, R28) fails too.
//               evil.example is answered by Playwright routing: no real network is touched.
//  4. A2      — the attacker approves its own client, keeps the server's redirect to the
//               upstream (it carries the state) and sends it to the victim: the victim's
//               browser reaches /callback without the transaction cookie and is refused.
//  5. CIMD    — a client with no registration whose client_id is the URL of its metadata
//               document, served on loopback (R57, R59): the consent page names the
//               client and the domain that published the document (screenshot), Approve
//               lands with a code that redeems. Against a server that does not advertise
//               documents (the hyper example), the same link gets an error page, no code.
//
// Usage: node e2e.mjs --server http://127.0.0.1:PORT   (or E2E_SERVER=…; CHROMIUM=path)

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startSite, pkcePair, randomToken, register, exchangeCode, callWhoami } from './helpers.mjs';

const GLOBAL_TIMEOUT_MS = 120_000;
const STEP_TIMEOUT_MS = 15_000;
const ARTIFACTS = process.env.E2E_ARTIFACTS ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../target/e2e');
// The flags this machine's closed network needs (no background connections, no QUIC).
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // Nothing but loopback resolves: even a redirect Playwright cannot route stays local.
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
];

const server = (() => {
  const i = process.argv.indexOf('--server');
  const v = i >= 0 ? process.argv[i + 1] : process.env.E2E_SERVER;
  if (!v) {
    console.error('usage: node e2e.mjs --server http://127.0.0.1:PORT');
    process.exit(1);
  }
  return v.replace(/\/+$/, '');
})();

setTimeout(() => {
  console.error(`FAIL browser: global timeout after ${GLOBAL_TIMEOUT_MS} ms`);
  process.exit(2);
}, GLOBAL_TIMEOUT_MS).unref();

async function getJson(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
  assert.equal(res.status, 200, `GET ${url}`);
  return res.json();
}

const meta = await getJson(`${server}/.well-known/oauth-authorization-server`);
const prm = await getJson(`${server}/.well-known/oauth-protected-resource/mcp`);
const isLoopback = (u) => /^(data|chrome-error|about):/.test(u) || ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(u).hostname);

/** An /authorize link for `client`, as an MCP client would build it (PKCE S256, resource). */
function authorizeLink(clientId, redirectUri) {
  const pkce = pkcePair();
  const state = randomToken();
  const u = new URL(meta.authorization_endpoint);
  u.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    state,
    code_challenge: pkce.challenge,
    code_challenge_method: 'S256',
    resource: prm.resource,
    ...(prm.scopes_supported?.length ? { scope: prm.scopes_supported.join(' ') } : {}),
  });
  return { url: u.href, state, verifier: pkce.verifier };
}

/**
 * A fresh browser profile that records where it goes. Playwright routing does not see
 * redirect hops, so hops are recorded from `request` events (which include them), and the
 * browser's resolver knows no host but localhost (CHROMIUM_ARGS): a redirect to
 * evil.example fails locally with ERR_NAME_NOT_RESOLVED, after its URL was recorded. Direct
 * (non-redirect) requests to evil.example are answered by a route; anything else
 * off-machine is aborted.
 */
async function newContext(browser) {
  const context = await browser.newContext({ viewport: { width: 900, height: 760 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  const evilHits = [];
  const offMachine = [];
  const upstreamHits = [];
  context.on('request', (req) => {
    const url = req.url();
    if (/^(data|chrome-error|about):/.test(url)) return;
    if (new URL(url).hostname === 'evil.example') evilHits.push(url);
    else if (!isLoopback(url)) offMachine.push(url);
    else if (new URL(url).pathname.startsWith('/demo-upstream/')) upstreamHits.push(url);
  });
  await context.route((url) => !isLoopback(url.href), (route) => {
    if (new URL(route.request().url()).hostname === 'evil.example') {
      return route.fulfill({ status: 200, contentType: 'text/html', body: '<h1>attacker got it</h1>' });
    }
    return route.abort();
  });
  return { context, evilHits, offMachine, upstreamHits };
}

/** Opens `link`, checks the consent page, and returns the page (not yet decided). */
async function openConsent(context, link, clientName, redirectHost, screenshot) {
  const page = await context.newPage();
  const res = await page.goto(link);
  assert.equal(res.status(), 200, `consent page status ${res.status()}: ${(await res.text()).slice(0, 300)}`);
  const h = res.headers();
  // R29: the browser is told not to frame this page (checked for real in the framing scenario).
  assert.ok(/frame-ancestors\s+'none'/.test(h['content-security-policy'] ?? '') || /deny/i.test(h['x-frame-options'] ?? ''),
    `anti-framing headers: ${JSON.stringify(h)}`);
  // R12/R25: the user sees who asks and where the result goes. innerText is what is rendered.
  const body = await page.locator('body').innerText();
  assert.ok(body.includes(clientName), `page shows ${JSON.stringify(clientName)}:\n${body}`);
  const host = await page.locator('#redirect-host').innerText();
  assert.ok(host.includes(redirectHost), `#redirect-host shows ${redirectHost}: ${JSON.stringify(host)}`);
  assert.equal(await page.locator('form[method="post" i]').count(), 1, 'one POST form');
  if (screenshot) {
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, screenshot), fullPage: true });
  }
  return { page };
}

/** Honest flow in `context`: register, consent, Approve, land on the redirect URI. */
async function honestLogin(env, site, name, screenshot = null) {
  const redirectUri = `${site.loopbackOrigin}/callback`;
  const client = await register(meta, { client_name: name, redirect_uris: [redirectUri] });
  const link = authorizeLink(client.client_id, redirectUri);
  const { page } = await openConsent(env.context, link.url, name, '127.0.0.1', screenshot);
  const statuses = [];
  page.on('response', (r) => { if (r.request().isNavigationRequest()) statuses.push([r.request().method(), r.status(), r.url()]); });
  await page.locator('button[name="decision"][value="approve"]').click();
  await page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: STEP_TIMEOUT_MS });
  const landed = new URL(page.url());
  const post = statuses.find(([m]) => m === 'POST');
  assert.ok(post, `the click POSTed the form: ${JSON.stringify(statuses)}`);
  assert.equal(post[1], 303, `R24: consent POST answered ${post[1]}`);
  assert.ok(env.upstreamHits.length > 0, 'approval went through the (demo) upstream');
  assert.equal(landed.searchParams.get('error'), null, `landed with error: ${landed.href}`);
  assert.equal(landed.searchParams.get('state'), link.state);
  assert.equal(landed.searchParams.get('iss'), meta.issuer, 'R47: iss is the exact issuer');
  const code = landed.searchParams.get('code');
  assert.ok(code, 'landed with a code');
  assert.equal(await page.locator('body').innerText(), 'Signed in. You can close this window.');
  const callbackUrl = statuses.map(([, , u]) => u).find((u) => u.startsWith(`${server}/callback?`));
  assert.ok(callbackUrl, `the upstream came back to /callback: ${JSON.stringify(statuses)}`);
  await page.close();
  return { client, link, code, redirectUri, callbackUrl };
}

async function scenarioHonest(browser, site) {
  const env = await newContext(browser);
  try {
    const { client, link, code, redirectUri } = await honestLogin(env, site, 'E2E honest browser client', 'consent.png');
    const token = await exchangeCode(meta, { client, code, redirectUri, verifier: link.verifier, resource: prm.resource });
    assert.equal(token.status, 200, `token: ${JSON.stringify(token.body)}`);
    const who = await callWhoami(`${server}/mcp`, token.body.access_token);
    assert.match(who, /\boctocat\b/, `whoami: ${who}`);
    // A8/R43: the code is single-use.
    const replay = await exchangeCode(meta, { client, code, redirectUri, verifier: link.verifier, resource: prm.resource });
    assert.equal(replay.status, 400, `replayed code: ${replay.status} ${JSON.stringify(replay.body)}`);
    assert.equal(replay.body.error, 'invalid_grant');
    assert.deepEqual(env.offMachine, [], 'no off-machine request');
  } finally {
    await env.context.close();
  }
}

async function scenarioReplayAndTamper(browser, site) {
  const env = await newContext(browser);
  try {
    const name = 'E2E replay client';
    const { client, redirectUri, callbackUrl } = await honestLogin(env, site, name);
    const page = await env.context.newPage();
    const landings = [];
    page.on('request', (r) => { if (r.url().startsWith(redirectUri)) landings.push(r.url()); });
    // A7/R36: the same browser replays the upstream callback (state + upstream code): the
    // transaction is single-use, so no second code reaches the client.
    const replay = await page.goto(callbackUrl);
    assert.ok(replay.status() >= 400, `replayed /callback answered ${replay.status()}`);
    assert.deepEqual(landings, [], `replayed /callback sent the browser to the client: ${landings}`);
    // R16/R17 (A10): a redirect_uri that only extends the registered one is not "the
    // client's": an error page, never a redirect, never a consent page.
    for (const tampered of [`${redirectUri}x`, `${redirectUri}/../steal`, redirectUri.replace('127.0.0.1', 'localhost')]) {
      const link = authorizeLink(client.client_id, tampered);
      const res = await page.goto(link.url);
      assert.ok(res.status() >= 400, `redirect_uri ${tampered}: HTTP ${res.status()}`);
      assert.equal(await page.locator('form').count(), 0, `redirect_uri ${tampered} got a consent form`);
      assert.ok(page.url().startsWith(meta.authorization_endpoint), `redirect_uri ${tampered} redirected to ${page.url()}`);
    }
    assert.deepEqual(landings, [], `a tampered link reached the client: ${landings}`);
    assert.deepEqual(env.offMachine, [], 'no off-machine request');
  } finally {
    await env.context.close();
  }
}

async function scenarioFraming(browser, site) {
  const env = await newContext(browser);
  try {
    const redirectUri = `${site.loopbackOrigin}/callback`;
    const name = 'E2E framed client';
    const client = await register(meta, { client_name: name, redirect_uris: [redirectUri] });
    const link = authorizeLink(client.client_id, redirectUri);
    const page = await env.context.newPage();
    const consoleLines = [];
    page.on('console', (m) => consoleLines.push(m.text()));
    let consentStatus = null;
    page.on('response', (r) => { if (r.url() === link.url) consentStatus = r.status(); });
    // The embedding page lives on http://localhost:P: another origin and another site.
    await page.goto(site.embedUrl({ victim: link.url, control: `${site.loopbackOrigin}/frameable` }));
    await page.waitForLoadState('load');
    const victim = await (await page.$('#victim')).contentFrame();
    const control = await (await page.$('#control')).contentFrame();
    // Control: a frameable cross-origin page in the same parent renders and is readable,
    // so "nothing readable in the victim frame" below is not an artefact of the method.
    assert.equal((await control.locator('body').innerText()).trim(), 'frameable');
    // The server did answer the framed request with the consent page (200)...
    assert.equal(consentStatus, 200, 'the framed /authorize was served');
    // ...and Chromium refused to render it: an error document, no form, no client name.
    const frameUrl = victim?.url() ?? '(no frame)';
    const rendered = victim ? await victim.evaluate(() => ({
      forms: document.querySelectorAll('form').length,
      text: document.body ? document.body.innerText : '',
    })).catch((e) => ({ forms: 0, text: '', error: String(e) })) : { forms: 0, text: '' };
    assert.equal(rendered.forms, 0, `framed consent page rendered a form (url ${frameUrl})`);
    assert.ok(!rendered.text.includes(name), `framed consent page rendered the client name (url ${frameUrl})`);
    const refused = consoleLines.filter((l) => /Refused to (display|frame)/i.test(l));
    assert.ok(frameUrl.startsWith('chrome-error://') || refused.length > 0,
      `no sign that Chromium blocked the frame: url=${frameUrl} console=${JSON.stringify(consoleLines)}`);
    console.log(`  # framing blocked: frame url ${frameUrl}; ${refused[0] ?? 'no console line'}`);
  } finally {
    await env.context.close();
  }
}

async function scenarioSeedAttack(browser, site) {
  const victim = await newContext(browser);
  const attacker = await newContext(browser);
  try {
    // 1. Earlier, the victim legitimately used an MCP client through this server, so the
    //    upstream (like GitHub for a returning user) now approves without a screen.
    await honestLogin(victim, site, 'E2E victim own client');
    // 2. The attacker registers a client whose redirect URI it controls. The name is
    //    self-asserted (R12) and carries markup that must be shown, not interpreted (R23).
    const evilRedirect = 'https://evil.example/cb';
    const evilName = 'Notes Sync <b>Pro</b> & "Co"';
    const evil = await register(meta, { client_name: evilName, redirect_uris: [evilRedirect] });
    const link = authorizeLink(evil.client_id, evilRedirect);
    // 3. The victim opens the attacker's link: the gate stops at its own consent page.
    const upstreamBefore = victim.upstreamHits.length;
    const { page } = await openConsent(victim.context, link.url, evilName, 'evil.example', 'consent-attack.png');
    assert.equal(await page.locator('b', { hasText: 'Pro' }).count(), 0, 'client name markup was interpreted');
    await page.waitForTimeout(1_500); // anything automatic (refresh, script, redirect) would act now
    assert.ok(page.url().startsWith(meta.authorization_endpoint), `victim left the consent page: ${page.url()}`);
    assert.deepEqual(victim.evilHits, [], 'evil.example was contacted without a click');
    assert.equal(victim.upstreamHits.length, upstreamBefore, 'upstream reached without a click');

    // 4. A3: the attacker reads tx/csrf from its own consent page and makes the victim's
    //    browser auto-submit "approve" from another site. The CSRF token is bound to the
    //    attacker's browser cookie, and the victim's SameSite=Lax cookie is not sent.
    const { page: atkPage } = await openConsent(attacker.context, link.url, evilName, 'evil.example', null);
    const hidden = await atkPage.locator('form[method="post" i] input[type="hidden"]').evaluateAll(
      (els) => els.map((e) => [e.name, e.value]));
    const action = await atkPage.locator('form[method="post" i]').evaluate((f) => f.action);
    const csrfPage = await victim.context.newPage();
    const posted = [];
    csrfPage.on('request', (r) => { if (r.method() === 'POST') posted.push(r.url()); });
    const post = csrfPage.waitForResponse((r) => r.request().method() === 'POST' && r.url().startsWith(action));
    await csrfPage.goto(site.autoSubmitUrl({ action, fields: [...hidden, ['decision', 'approve']] }));
    const answer = await post;
    await csrfPage.waitForLoadState('load');
    await csrfPage.waitForTimeout(500);
    assert.equal(posted.length, 1, 'the forged form was submitted');
    assert.ok(answer.status() >= 400, `forged approval answered ${answer.status()} ${answer.headers().location ?? ''}`);
    console.log(`  # forged cross-site approval: HTTP ${answer.status()}`);
    assert.deepEqual(victim.evilHits, [], 'forged approval reached evil.example');
    assert.equal(victim.upstreamHits.length, upstreamBefore, 'forged approval reached the upstream');

    // 5. The victim declines. Whether the server then redirects access_denied to the
    //    attacker's URI (docs/design.md#errors-and-redirects) or shows a page (R32), no code may
    //    reach it.
    await page.locator('button[name="decision"][value="deny"]').click();
    await page.waitForLoadState('load');
    await page.waitForTimeout(500);
    for (const hit of victim.evilHits) {
      const q = new URL(hit).searchParams;
      assert.equal(q.get('code'), null, `evil.example received a code: ${hit}`);
      assert.equal(q.get('error'), 'access_denied', `evil.example hit without access_denied: ${hit}`);
    }
    assert.equal(victim.upstreamHits.length, upstreamBefore, 'deny reached the upstream');
    assert.deepEqual([...victim.offMachine, ...attacker.offMachine], [], 'no off-machine request');
    console.log(`  # after deny: ${victim.evilHits.length ? `redirected to ${victim.evilHits[0]}` : `page ${page.url()}`}`);
  } finally {
    await victim.context.close();
    await attacker.context.close();
  }
}

async function scenarioForwardedUpstreamUrl(browser, site) {
  const victim = await newContext(browser);
  const attacker = await newContext(browser);
  try {
    await honestLogin(victim, site, 'E2E victim own client (A2)');
    const evilRedirect = 'https://evil.example/cb';
    const evilName = 'E2E A2 attacker client';
    const evil = await register(meta, { client_name: evilName, redirect_uris: [evilRedirect] });
    const link = authorizeLink(evil.client_id, evilRedirect);
    // A2 step 1-2: the attacker approves its own client in its own browser and stops at the
    // server's redirect to the upstream, keeping the URL (it carries the server's state).
    const { page: atkPage } = await openConsent(attacker.context, link.url, evilName, 'evil.example', null);
    const fields = await atkPage.locator('form[method="post" i] input[type="hidden"]').evaluateAll(
      (els) => Object.fromEntries(els.map((e) => [e.name, e.value])));
    const action = await atkPage.locator('form[method="post" i]').evaluate((f) => f.action);
    // The context's request API shares the attacker browser's cookies; no redirect is followed.
    const approved = await attacker.context.request.post(action, {
      form: { ...fields, decision: 'approve' },
      headers: { origin: new URL(action).origin, 'sec-fetch-site': 'same-origin' },
      maxRedirects: 0,
    });
    assert.equal(approved.status(), 303, `attacker's own approval answered ${approved.status()}`);
    const upstreamUrl = new URL(approved.headers().location, action).href;
    assert.ok(upstreamUrl.includes('/demo-upstream/'), `approval redirects upstream: ${upstreamUrl}`);
    // Step 3: the victim opens that URL. The upstream approves at once and sends the victim's
    // browser to /callback with the attacker's state, but the victim's browser lacks the
    // transaction cookie set on the attacker's approval (R34, R35): refused, no code.
    const page = await victim.context.newPage();
    const callbacks = [];
    page.on('response', (r) => { if (new URL(r.url()).pathname === '/callback') callbacks.push(r.status()); });
    // A failure here would end at evil.example (ERR_NAME_NOT_RESOLVED): keep the error for
    // last so the assertion that names the leaked code is the one reported.
    const navError = await page.goto(upstreamUrl).then(() => null, (e) => e);
    await page.waitForTimeout(500);
    assert.deepEqual(victim.evilHits, [], `a forwarded upstream URL reached evil.example: ${victim.evilHits}`);
    assert.ok(callbacks.length > 0, 'the upstream sent the victim to /callback');
    assert.ok(callbacks.every((st) => st >= 400), `/callback answered ${JSON.stringify(callbacks)}`);
    assert.equal(navError, null, `navigation: ${navError}`);
    console.log(`  # forwarded upstream URL: /callback answered ${callbacks.join(', ')}`);
  } finally {
    await victim.context.close();
    await attacker.context.close();
  }
}

async function scenarioMetadataDocument(browser, site) {
  const env = await newContext(browser);
  try {
    const clientId = `${site.loopbackOrigin}/client.json`;
    const redirectUri = `${site.loopbackOrigin}/callback`;
    const link = authorizeLink(clientId, redirectUri);
    if (meta.client_id_metadata_document_supported !== true) {
      // No documents here: the URL is an unknown client id, an error page, never a redirect.
      const page = await env.context.newPage();
      const res = await page.goto(link.url);
      assert.ok(res.status() >= 400, `a document client without support: ${res.status()}`);
      assert.equal(new URL(page.url()).origin, new URL(server).origin, 'no redirect');
      console.log('  # the server does not advertise documents: refused as an unknown client');
      return;
    }
    const { page } = await openConsent(env.context, link.url, 'E2E document client', '127.0.0.1', 'consent-cimd.png');
    const domain = await page.locator('#client-domain').innerText();
    assert.equal(domain, '127.0.0.1', `R59: the publishing domain: ${domain}`);
    await page.locator('button[name="decision"][value="approve"]').click();
    await page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: STEP_TIMEOUT_MS });
    const landed = new URL(page.url());
    assert.equal(landed.searchParams.get('state'), link.state);
    const code = landed.searchParams.get('code');
    assert.ok(code, `landed with a code: ${landed.href}`);
    const client = { client_id: clientId };
    const token = await exchangeCode(meta, { client, code, redirectUri, verifier: link.verifier, resource: prm.resource });
    assert.equal(token.status, 200, `token: ${JSON.stringify(token.body)}`);
    const who = await callWhoami(`${server}/mcp`, token.body.access_token);
    assert.match(who, /\boctocat\b/, `whoami: ${who}`);
    assert.deepEqual(env.offMachine, [], 'no off-machine request');
  } finally {
    await env.context.close();
  }
}

const scenarios = [
  ['honest: consent page shows client + redirect host, Approve lands with code+iss, code works once', scenarioHonest],
  ['replay + tampering: replayed /callback and prefix-extended redirect_uri get error pages (A7, A10, R16)', scenarioReplayAndTamper],
  ['framing: cross-origin iframe of the consent page is blocked (A5, R29)', scenarioFraming],
  ['seed attack: evil.example client shown, no code without a click, forged approve fails (A1, A3)', scenarioSeedAttack],
  ['forwarded upstream URL: the victim lands on /callback without the binding cookie (A2)', scenarioForwardedUpstreamUrl],
  ['metadata document client: consent names the publishing domain, the flow completes (R57, R59)', scenarioMetadataDocument],
];

const site = await startSite();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: CHROMIUM_ARGS,
  timeout: 30_000,
});
let failed = 0;
try {
  for (const [name, run] of scenarios) {
    try {
      await run(browser, site);
      console.log(`ok - browser ${name}`);
    } catch (e) {
      failed += 1;
      console.log(`not ok - browser ${name}\n  ${String(e?.stack ?? e).replaceAll('\n', '\n  ')}`);
    }
  }
} finally {
  await browser.close();
  site.close();
}
console.log(`browser summary: ${scenarios.length - failed} ok, ${failed} not ok (screenshots in ${ARTIFACTS})`);
process.exit(failed ? 1 : 0);
