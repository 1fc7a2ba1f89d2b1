""""The user" for the Python SDK driver: what a person's browser does between the SDK's
`redirect_handler(url)` and the client's loopback redirect URI, as plain HTTP with a cookie
jar (host-only, path-scoped, shared across ports as browsers do). It sends the headers a
browser sends (Sec-Fetch-Site, Origin on the form POST), submits the one consent form with
the button the user clicks, and follows the redirect chain until the redirect URI.

Independent of the TypeScript driver's copy on purpose: two implementations of "the user"
that agree make a parsing accident in either one unlikely to hide a server bug.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx2

HOP_LIMIT = 12
TIMEOUT = httpx2.Timeout(15.0)


class LoopbackListener:
    """A one-path HTTP listener on 127.0.0.1 acting as the client's redirect URI (RFC 8252 §7.3)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._server: asyncio.base_events.Server | None = None
        self.redirect_uri = ""

    async def __aenter__(self) -> LoopbackListener:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.redirect_uri = f"http://127.0.0.1:{port}/callback"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            parts = urlsplit(target)
            if method == "GET" and parts.path == "/callback":
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                await self._queue.put(query)
                body, status = b"<p>Signed in. You can close this window.</p>", "200 OK"
            else:
                body, status = b"not found", "404 Not Found"
            writer.write(
                f"HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {len(body)}\r\n"
                "connection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        finally:
            writer.close()

    async def next(self, timeout: float = 20.0) -> dict[str, str]:
        """The query of the next request that reaches /callback."""
        return await asyncio.wait_for(self._queue.get(), timeout)


@dataclass
class _Cookie:
    host: str
    name: str
    value: str
    path: str


@dataclass
class CookieJar:
    cookies: list[_Cookie] = field(default_factory=list)

    def store(self, url: str, set_cookies: list[str]) -> None:
        u = urlsplit(url)
        for line in set_cookies:
            pair, *attrs = [p.strip() for p in line.split(";")]
            name, sep, value = pair.partition("=")
            if not sep or not name:
                continue
            path = u.path.rsplit("/", 1)[0] or "/"
            expired = False
            for a in attrs:
                k, _, v = a.partition("=")
                k = k.strip().lower()
                if k == "path" and v.startswith("/"):
                    path = v
                elif k == "max-age" and v.strip().lstrip("-").isdigit() and int(v) <= 0:
                    expired = True
                elif k == "expires":
                    try:
                        expired = parsedate_to_datetime(v).timestamp() <= time.time()
                    except (TypeError, ValueError):
                        pass
            host = u.hostname or ""
            self.cookies = [c for c in self.cookies if (c.host, c.name, c.path) != (host, name, path)]
            if not expired:
                self.cookies.append(_Cookie(host, name, value, path))

    def header(self, url: str) -> str:
        u = urlsplit(url)
        path = u.path or "/"

        def matches(c: _Cookie) -> bool:
            prefix = c.path if c.path.endswith("/") else c.path + "/"
            return c.host == u.hostname and (path == c.path or path.startswith(prefix))

        return "; ".join(f"{c.name}={c.value}" for c in self.cookies if matches(c))


class _FormParser(HTMLParser):
    """Collects forms (with their inputs and buttons) and the #redirect-host element's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._in_form = False
        self._host_depth = 0
        self.redirect_host: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._in_form = True
            self.forms.append({"method": a.get("method", "get").lower(), "action": a.get("action"), "fields": []})
        elif tag in ("input", "button") and self._in_form:
            self.forms[-1]["fields"].append({"tag": tag, **a})
        if a.get("id") == "redirect-host":
            self._host_depth = 1
            self.redirect_host = ""
        elif self._host_depth:
            self._host_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        if self._host_depth:
            self._host_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._host_depth and self.redirect_host is not None:
            self.redirect_host += data


@dataclass
class UserRun:
    html: str
    chain: list[tuple[int, str]]  # (status, url) of every hop after the consent POST
    landed_at: str


async def act_as_user(auth_url: str, decision: str, redirect_uri: str, client_name: str) -> UserRun:
    """Open `auth_url`, check the consent page names the client and the redirect host (R12,
    R25), click `decision`, and follow redirects until the browser reaches `redirect_uri`."""
    jar = CookieJar()
    target = urlsplit(redirect_uri)
    async with httpx2.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as http:

        async def request(method: str, url: str, headers: dict[str, str], body: str | None = None) -> httpx2.Response:
            cookie = jar.header(url)
            h = {"user-agent": "consent-gate-e2e-user/1", "accept": "text/html", **headers}
            if cookie:
                h["cookie"] = cookie
            res = await http.request(method, url, headers=h, content=body)
            http.cookies.clear()  # the jar above is the only cookie store
            jar.store(url, res.headers.get_list("set-cookie"))
            return res

        nav = {"sec-fetch-mode": "navigate", "sec-fetch-dest": "document"}
        page = await request("GET", auth_url, {"sec-fetch-site": "none", **nav})
        html = page.text
        if page.status_code != 200:
            raise AssertionError(f"consent page: HTTP {page.status_code}: {html[:400]}")
        if "text/html" not in page.headers.get("content-type", ""):
            raise AssertionError(f"consent page content-type {page.headers.get('content-type')}")
        parsed = _FormParser()
        parsed.feed(html)
        if client_name not in html:
            raise AssertionError(f"consent page does not show the client name {client_name!r}")
        if parsed.redirect_host is None or (target.hostname or "") not in parsed.redirect_host:
            raise AssertionError(f"#redirect-host does not show {target.hostname}: {parsed.redirect_host!r}")
        posts = [f for f in parsed.forms if f["method"] == "post"]
        if len(posts) != 1:
            raise AssertionError(f'expected one <form method="post">, found {len(posts)}')
        form = posts[0]
        buttons = {f.get("value") for f in form["fields"] if f.get("name") == "decision"}
        if not {"approve", "deny"} <= buttons:
            raise AssertionError(f"decision buttons: {buttons}")
        fields = [
            (f["name"], f.get("value", ""))
            for f in form["fields"]
            if f["tag"] == "input" and f.get("name") and f.get("type", "text").lower() not in ("submit", "button", "image", "reset")
        ]
        names = {n for n, _ in fields}
        if not {"tx", "csrf"} <= names:
            raise AssertionError(f"form lacks hidden fields tx/csrf: {names}")
        action = urljoin(auth_url, form["action"] or auth_url)
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(auth_url))
        res = await request(
            "POST",
            action,
            {
                "content-type": "application/x-www-form-urlencoded",
                "origin": origin,
                "sec-fetch-site": "same-origin",
                **nav,
            },
            urlencode([*fields, ("decision", decision)]),
        )
        url, chain, crossed = action, [], False
        for _ in range(HOP_LIMIT):
            chain.append((res.status_code, url))
            location = res.headers.get("location")
            if res.status_code not in (301, 302, 303, 307, 308) or not location:
                raise AssertionError(f"stopped at HTTP {res.status_code} {url} before the redirect URI: {res.text[:400]}")
            if res.status_code in (307, 308):
                raise AssertionError(f"R24: {res.status_code} after a POST would re-post the consent form ({url})")
            url = urljoin(url, location)
            u = urlsplit(url)
            crossed = crossed or not url.startswith(origin + "/")
            if (u.scheme, u.netloc, u.path) == (target.scheme, target.netloc, target.path):
                landed = await request("GET", url, {"sec-fetch-site": "cross-site", **nav})
                chain.append((landed.status_code, url))
                return UserRun(html=html, chain=chain, landed_at=url)
            res = await request("GET", url, {"sec-fetch-site": "cross-site" if crossed else "same-origin", **nav})
        raise AssertionError(f"more than {HOP_LIMIT} redirects: {chain}")
