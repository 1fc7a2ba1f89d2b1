"""The peer for benches/load.sh: FastMCP's `OAuthProxy` with its consent screen on.

Configuration (printed at startup so the results can quote it):
* `require_authorization_consent=True` (FastMCP's default: always prompt, CSRF
  double-submit, browser-binding cookie), like consent-gate's `ConsentPolicy::Always`;
* `client_storage`, chosen by the optional third argument STORE:
  - `memory` (the default, benches/load.sh): `MemoryStore()`, no file store, no Fernet;
  - `default`: none given, so FastMCP builds its own default, a `FileTreeStore` (one JSON
    file per entry) under `$FASTMCP_HOME/oauth-proxy/<key fingerprint>/` wrapped in a
    `FernetEncryptionWrapper` (benches/stores.sh points FASTMCP_HOME at a temporary
    directory);
  - `redis://HOST:PORT`: py-key-value's `RedisStore(url=...)` (no encryption wrapper);
* `jwt_signing_key` given as 32 raw bytes (no PBKDF2 derivation at startup);
* a `StaticTokenVerifier` that knows the fake upstream's one token (no network call per
  MCP request: the peer's best case);
* one process, uvicorn with uvloop + httptools, `json_response=True`, access log off.

Usage: fastmcp_server.py PORT UPSTREAM_BASE [memory|default|redis://HOST:PORT]
"""

import logging
import sys

import fastmcp
import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth.oauth_proxy import OAuthProxy
from fastmcp.server.auth.providers.jwt import StaticTokenVerifier
from key_value.aio.stores.memory import MemoryStore

TOKEN = "gho_benchmarkupstreamtoken0000000000000"


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2].rstrip("/")
    store = sys.argv[3] if len(sys.argv) > 3 else "memory"
    if store == "memory":
        client_storage, described = MemoryStore(), "MemoryStore"
    elif store == "default":
        client_storage, described = None, "FastMCP default (Fernet-encrypted FileTreeStore)"
    elif store.startswith("redis://"):
        from key_value.aio.stores.redis import RedisStore

        client_storage, described = RedisStore(url=store), f"RedisStore({store})"
    else:
        sys.exit(f"unknown store {store!r}: memory, default or redis://HOST:PORT")
    base = f"http://127.0.0.1:{port}"
    verifier = StaticTokenVerifier(tokens={TOKEN: {"client_id": "bench-static-id", "scopes": []}})
    auth = OAuthProxy(
        upstream_authorization_endpoint=f"{upstream}/login/oauth/authorize",
        upstream_token_endpoint=f"{upstream}/login/oauth/access_token",
        upstream_client_id="bench-static-id",
        upstream_client_secret="bench-static-secret",
        token_verifier=verifier,
        base_url=base,
        client_storage=client_storage,
        jwt_signing_key=bytes(range(32)),
        require_authorization_consent=True,
    )
    mcp = FastMCP("bench", auth=auth)

    @mcp.tool
    def whoami() -> str:
        """The caller (a constant: the benchmark measures the transport and auth)."""
        return "octocat"

    print(
        f"peer: fastmcp {fastmcp.__version__}, OAuthProxy, require_authorization_consent=True, "
        f"{described}, StaticTokenVerifier, uvicorn {uvicorn.__version__} uvloop+httptools, 1 process",
        flush=True,
    )
    logging.getLogger("fastmcp").setLevel(logging.WARNING)
    app = mcp.http_app(path="/mcp", json_response=True)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
