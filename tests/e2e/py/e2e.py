"""End to end (docs/design.md#e2e): the official MCP Python SDK (`mcp`, pinned in requirements.txt,
run unmodified) logs in to examples/hyper_server through the consent gate and calls `whoami`.

The SDK's `OAuthClientProvider` (an httpx2 Auth) does the OAuth client work: 401 +
WWW-Authenticate → RFC 9728 PRM → RFC 8414 AS metadata (issuer checked, SEP-2468) →
RFC 7591 registration → PKCE S256 authorization URL → state and RFC 9207 `iss` checks on
the callback → token exchange → bearer on /mcp → refresh when the token has expired. The
application supplies `redirect_handler` (here: "the user", `user_agent.act_as_user`, who
loads the consent page and clicks) and `callback_handler` (here: a loopback listener).

Usage: python e2e.py --server http://127.0.0.1:PORT     (or E2E_SERVER=…)
Exit status: 0 when every scenario passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import traceback

import httpx2
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from user_agent import LoopbackListener, UserRun, act_as_user

SCENARIO_TIMEOUT_S = 60.0
HTTP_TIMEOUT = httpx2.Timeout(20.0)


class MemoryStorage(TokenStorage):
    """The part of the SDK an application writes: where tokens and client info live."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class AuthorizationDenied(Exception):
    """The redirect URI received `error=…` instead of a code."""


class Login:
    """One client: SDK provider, storage, loopback redirect URI and the simulated user."""

    def __init__(self, server: str, listener: LoopbackListener, decision: str, name: str) -> None:
        self.server = server
        self.listener = listener
        self.decision = decision
        self.name = name
        self.storage = MemoryStorage()
        self.auth_urls: list[str] = []
        self.users: list[UserRun] = []
        self.callbacks: list[dict[str, str]] = []
        self.provider = OAuthClientProvider(
            server_url=f"{server}/mcp",
            client_metadata=OAuthClientMetadata(
                client_name=name,
                redirect_uris=[AnyUrl(listener.redirect_uri)],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method="none",
            ),
            storage=self.storage,
            redirect_handler=self._redirect,
            callback_handler=self._callback,
        )

    async def _redirect(self, url: str) -> None:
        # The application "opens the browser"; the user reads the page and clicks.
        self.auth_urls.append(url)
        self.users.append(await act_as_user(url, self.decision, self.listener.redirect_uri, self.name))

    async def _callback(self) -> AuthorizationCodeResult:
        query = await self.listener.next()
        self.callbacks.append(query)
        if "error" in query:
            raise AuthorizationDenied(json.dumps(query))
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    async def whoami(self) -> str:
        """A full MCP session through the SDK: initialize, tools/list, tools/call whoami."""
        async with httpx2.AsyncClient(auth=self.provider, timeout=HTTP_TIMEOUT, trust_env=False) as http:
            async with streamable_http_client(f"{self.server}/mcp", http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    tools = await session.list_tools()
                    names = [t.name for t in tools.tools]
                    assert "whoami" in names, f"tools/list: {names}"
                    result = await session.call_tool("whoami", {})
                    assert not result.is_error, f"whoami is_error: {result}"
                    text = "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")
                    return text + json.dumps(result.structured_content or {})


async def get_json(url: str) -> dict:
    async with httpx2.AsyncClient(timeout=HTTP_TIMEOUT, trust_env=False) as http:
        res = await http.get(url)
        assert res.status_code == 200, f"GET {url}: {res.status_code}"
        return res.json()


async def scenario_approve(server: str) -> None:
    meta = await get_json(f"{server}/.well-known/oauth-authorization-server")
    async with LoopbackListener() as listener:
        login = Login(server, listener, "approve", "E2E Python SDK client")
        text = await login.whoami()
        assert "octocat" in text, f"whoami: {text}"
        assert len(login.auth_urls) == 1, f"one authorization, got {len(login.auth_urls)}"
        assert "code_challenge_method=S256" in login.auth_urls[0]
        user, cb = login.users[0], login.callbacks[0]
        assert user.chain[0][0] == 303, f"R24: consent POST answered {user.chain[0][0]}"
        assert any("/demo-upstream/" in url for _, url in user.chain), "approval goes to the upstream"
        # The SDK already checked state and iss (RFC 9207); check the exact string too (R47).
        assert cb.get("iss") == meta["issuer"], f"iss {cb.get('iss')!r} != issuer {meta['issuer']!r}"
        first = login.storage.tokens
        assert first is not None and first.access_token and first.refresh_token, f"tokens: {first}"

        # R53: once the access token has expired the SDK refreshes by itself. Expiry is
        # simulated by moving the provider's recorded expiry into the past (the same field
        # `expires_in` sets), so the test does not sleep for the token lifetime.
        login.provider.context.token_expiry_time = time.time() - 1
        text = await login.whoami()
        assert "octocat" in text, f"whoami after refresh: {text}"
        second = login.storage.tokens
        assert len(login.auth_urls) == 1, "refresh must not send the user to the consent page again"
        # The access token may be byte-identical (a MAC over grant, audience and expiry second),
        # so only the refresh token's rotation is asserted.
        assert second.refresh_token and second.refresh_token != first.refresh_token, "refresh token rotated"
        # Inside the server's grace window (default 10 s) a concurrent refresh with the rotated
        # token gets the same successor instead of a fork (docs/design.md#refresh-rotation,
        # FastMCP #4901); the TypeScript driver waits the window out and checks family revocation.
        async with httpx2.AsyncClient(timeout=HTTP_TIMEOUT, trust_env=False) as http:
            res = await http.post(
                meta["token_endpoint"],
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": first.refresh_token,
                    "client_id": login.storage.client_info.client_id,
                },
            )
        assert res.status_code == 200, f"grace-window reuse: {res.status_code} {res.text}"
        assert res.json()["refresh_token"] == second.refresh_token, "grace-window reuse returns the same successor"


async def scenario_deny(server: str) -> None:
    meta = await get_json(f"{server}/.well-known/oauth-authorization-server")
    async with LoopbackListener() as listener:
        login = Login(server, listener, "deny", "E2E Python SDK client (deny)")
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "0"}},
        }
        raised: BaseException | None = None
        # The SDK logs the expected AuthorizationDenied with a traceback; keep the output clean.
        logging.getLogger("mcp.client.auth.oauth2").disabled = True
        async with httpx2.AsyncClient(auth=login.provider, timeout=HTTP_TIMEOUT, trust_env=False) as http:
            try:
                # The provider is an httpx2 Auth: one POST to /mcp drives its whole flow.
                res = await http.post(
                    f"{server}/mcp", json=init, headers={"accept": "application/json, text/event-stream"}
                )
            except AuthorizationDenied as e:
                raised = e
            finally:
                logging.getLogger("mcp.client.auth.oauth2").disabled = False
        assert raised is not None, f"deny must not yield an MCP response, got {res.status_code}"
        cb = login.callbacks[0]
        assert cb.get("error") == "access_denied", cb
        assert "code" not in cb, "no code on deny"
        assert cb.get("iss") == meta["issuer"], cb
        assert cb.get("state"), "state echoed on deny"
        assert not any("/demo-upstream/" in url for _, url in login.users[0].chain), "deny never reaches the upstream"
        assert login.storage.tokens is None, "no token after deny"


SCENARIOS = [
    ("approve: SDK discovers, registers, user approves, session + whoami, refresh rotation", scenario_approve),
    ("deny: user denies, client gets access_denied and no token", scenario_deny),
]


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default=os.environ.get("E2E_SERVER"))
    args = parser.parse_args()
    if not args.server:
        parser.error("--server http://127.0.0.1:PORT is required")
    server = args.server.rstrip("/")
    failed = 0
    for name, run in SCENARIOS:
        try:
            await asyncio.wait_for(run(server), SCENARIO_TIMEOUT_S)
            print(f"ok - py sdk {name}", flush=True)
        except BaseException as e:  # noqa: BLE001 - report every failure, including timeouts
            if isinstance(e, KeyboardInterrupt):
                raise
            failed += 1
            detail = "".join(traceback.format_exception(e)).rstrip().replace("\n", "\n  ")
            print(f"not ok - py sdk {name}\n  {detail}", flush=True)
    print(f"py summary: {len(SCENARIOS) - failed} ok, {failed} not ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
