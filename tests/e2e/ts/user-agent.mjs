// "The user" for the SDK driver: what a person's browser does between the SDK's
// `redirectToAuthorization(url)` and the client's loopback redirect URI, as plain HTTP with a
// cookie jar. It sends the headers a browser sends (Sec-Fetch-Site, Origin on the form POST),
// keeps cookies per host and path like a browser (host-only; ports share cookies), submits
// the one consent form with the button the user clicks, and follows the redirect chain.
// The real browser (Chromium) drives the same page in ../browser/.

import http from 'node:http';

const HOP_LIMIT = 12;
const REQUEST_TIMEOUT_MS = 15_000;

/** A tiny loopback HTTP listener serving as the client's redirect URI (RFC 8252 §7.3). */
export async function startLoopbackListener() {
  const arrived = [];
  const waiters = [];
  const srv = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    if (req.method !== 'GET' || u.pathname !== '/callback') {
      res.writeHead(404).end();
      return;
    }
    const w = waiters.shift();
    if (w) w(u.searchParams);
    else arrived.push(u.searchParams);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<p>Signed in. You can close this window.</p>');
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  return {
    redirectUri: `http://127.0.0.1:${port}/callback`,
    /** The query of the next request that reaches /callback. */
    next: () => (arrived.length ? Promise.resolve(arrived.shift()) : new Promise((r) => waiters.push(r))),
    close: () => srv.close(),
  };
}

/** Cookies keyed by host name (RFC 6265: cookies do not isolate by port). */
class CookieJar {
  constructor() { this.cookies = []; }

  store(url, setCookieHeaders) {
    for (const line of setCookieHeaders) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = url.pathname.replace(/\/[^/]*$/, '') || '/';
      let expired = false;
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        const key = k.trim().toLowerCase();
        if (key === 'path' && v.startsWith('/')) path = v;
        if (key === 'max-age' && Number(v) <= 0) expired = true;
        if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      this.cookies = this.cookies.filter((c) => !(c.host === url.hostname && c.name === name && c.path === path));
      if (!expired) this.cookies.push({ host: url.hostname, name, value, path });
    }
  }

  header(url) {
    const matching = this.cookies.filter(
      (c) => c.host === url.hostname && (url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)),
    );
    return matching.map((c) => `${c.name}=${c.value}`).join('; ');
  }
}

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", '#39': "'", '#x27': "'", '#x2F': '/', '#x2f': '/' };
function unescapeHtml(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) => {
    if (ENTITIES[e] !== undefined) return ENTITIES[e];
    if (e[0] === '#') return String.fromCodePoint(e[1].toLowerCase() === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return m;
  });
}

function attributes(tag) {
  const out = {};
  for (const m of tag.matchAll(/([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*(?:=\s*("([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g)) {
    out[m[1].toLowerCase()] = unescapeHtml(m[3] ?? m[4] ?? m[5] ?? '');
  }
  return out;
}

/** The consent page's forms, with their inputs and buttons (the contract: exactly one POST form). */
export function parseForms(html) {
  const forms = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = attributes(m[1]);
    const fields = [...m[2].matchAll(/<(input|button)\b([^>]*)>/gi)].map((f) => ({ tag: f[1].toLowerCase(), ...attributes(f[2]) }));
    forms.push({ method: (attrs.method ?? 'get').toLowerCase(), action: attrs.action, fields });
  }
  return forms;
}

async function request(jar, url, { method = 'GET', headers = {}, body } = {}) {
  const cookie = jar.header(url);
  const res = await fetch(url, {
    method,
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    headers: { 'user-agent': 'consent-gate-e2e-user/1', accept: 'text/html', ...(cookie ? { cookie } : {}), ...headers },
  });
  jar.store(url, res.headers.getSetCookie());
  return res;
}

/**
 * Opens `authUrl` as a user would, checks the consent page names the client and the
 * redirect host (R12, R25), clicks `decision` ("approve" or "deny"), and follows redirects
 * until the browser lands on `redirectUri`. Returns the page and every hop after the POST.
 */
export async function actAsUser(authUrl, decision, redirectUri, { clientName } = {}) {
  const jar = new CookieJar();
  const target = new URL(redirectUri);
  const pageUrl = new URL(authUrl);
  const page = await request(jar, pageUrl, {
    headers: { 'sec-fetch-site': 'none', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' },
  });
  const html = await page.text();
  if (page.status !== 200) throw new Error(`consent page: HTTP ${page.status}: ${html.slice(0, 400)}`);
  if (!/text\/html/i.test(page.headers.get('content-type') ?? '')) throw new Error(`consent page content-type ${page.headers.get('content-type')}`);
  if (clientName && !html.includes(clientName)) throw new Error(`consent page does not show the client name ${JSON.stringify(clientName)}`);
  const host = /id\s*=\s*["']?redirect-host["']?[^>]*>([\s\S]*?)<\//i.exec(html);
  if (!host || !unescapeHtml(host[1]).includes(target.hostname)) {
    throw new Error(`consent page #redirect-host does not show ${target.hostname}: ${host ? host[1] : 'missing'}`);
  }
  const posts = parseForms(html).filter((f) => f.method === 'post');
  if (posts.length !== 1) throw new Error(`expected one <form method="post">, found ${posts.length}`);
  const [form] = posts;
  const buttons = form.fields.filter((f) => f.name === 'decision').map((f) => f.value);
  if (!buttons.includes('approve') || !buttons.includes('deny')) throw new Error(`decision buttons: ${JSON.stringify(buttons)}`);
  const body = new URLSearchParams();
  for (const f of form.fields) {
    if (f.tag === 'input' && f.name && !['submit', 'button', 'image', 'reset'].includes((f.type ?? 'text').toLowerCase())) {
      body.append(f.name, f.value ?? '');
    }
  }
  for (const required of ['tx', 'csrf']) if (!body.has(required)) throw new Error(`form lacks hidden field ${required}`);
  body.append('decision', decision);

  const action = new URL(form.action || pageUrl.href, pageUrl);
  const chain = [];
  let res = await request(jar, action, {
    method: 'POST',
    body: body.toString(),
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      origin: pageUrl.origin,
      'sec-fetch-site': action.origin === pageUrl.origin ? 'same-origin' : 'cross-site',
      'sec-fetch-mode': 'navigate',
      'sec-fetch-dest': 'document',
    },
  });
  let url = action;
  let crossed = action.origin !== pageUrl.origin;
  for (let hop = 0; hop < HOP_LIMIT; hop += 1) {
    const location = res.headers.get('location');
    chain.push({ url: url.href, status: res.status, location });
    if (![301, 302, 303, 307, 308].includes(res.status) || !location) {
      const text = await res.text();
      throw new Error(`stopped at HTTP ${res.status} ${url.href} before the redirect URI: ${text.slice(0, 400)}`);
    }
    if ([307, 308].includes(res.status)) throw new Error(`R24: ${res.status} after a POST would re-post the consent form (${url.href})`);
    url = new URL(location, url);
    crossed ||= url.origin !== pageUrl.origin;
    if (url.origin === target.origin && url.pathname === target.pathname) {
      // The browser loads the client's redirect URI: the loopback listener receives it.
      const landed = await request(jar, url, { headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' } });
      chain.push({ url: url.href, status: landed.status, location: null });
      return { html, form, chain, landedAt: url };
    }
    res = await request(jar, url, {
      headers: { 'sec-fetch-site': crossed ? 'cross-site' : 'same-origin', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' },
    });
  }
  throw new Error(`more than ${HOP_LIMIT} redirects: ${JSON.stringify(chain)}`);
}
