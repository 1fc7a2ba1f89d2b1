"""An instant GitHub stand-in for the peer benchmark (benches/load.sh).

Like github.com for a user who authorized the OAuth app before, `/login/oauth/authorize`
shows no screen: it redirects straight back with a code. The token and user endpoints
answer in GitHub's JSON shapes. It is the peer's counterpart of the example server's
built-in `/demo-upstream/*`, so both servers talk to an upstream that costs nothing.

Every token it issues is the same string, so the peer's token verifier can be a static,
in-memory lookup (no network call per MCP request: the peer's best case).

Loopback only; started and stopped by load.sh.
"""

import secrets
import sys
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

TOKEN = "gho_benchmarkupstreamtoken0000000000000"
USER = {"login": "octocat", "id": 1, "name": "monalisa octocat", "email": None}


async def authorize(request):
    q = request.query_params
    redirect_uri = q.get("redirect_uri", "")
    if not redirect_uri.startswith("http://127.0.0.1:"):
        return JSONResponse({"error": "redirect_uri_mismatch"}, status_code=400)
    params = {"code": secrets.token_hex(10), "state": q.get("state", "")}
    return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)


async def access_token(request):
    await request.body()
    return JSONResponse({"access_token": TOKEN, "token_type": "bearer", "scope": "read:user"})


async def user(request):
    if request.headers.get("authorization", "").split(" ")[-1] != TOKEN:
        return JSONResponse({"message": "Bad credentials"}, status_code=401)
    return JSONResponse(USER)


app = Starlette(
    routes=[
        Route("/login/oauth/authorize", authorize),
        Route("/login/oauth/access_token", access_token, methods=["POST"]),
        Route("/user", user),
    ]
)

if __name__ == "__main__":
    port = int(sys.argv[1])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", loop="uvloop", http="httptools")
