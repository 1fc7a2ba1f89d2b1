#!/usr/bin/env python3
"""R64 on a running server: a flood from one address makes nobody else forgotten.

    flood.py BASE          (BASE: http://127.0.0.1:PORT of examples/rmcp_server.rs)

Client A registers and signs in from 127.0.0.1. Then 127.0.0.2 sends 3,000 registrations
of 16 KiB and 10,000 self-approvals (consent page + approval for its own client, which
127.0.0.3 registered), 32 connections at a time. Afterwards A's refresh token, a bearer
call and a new consent page for A all still work, no answer was a 5xx, and the flood was
mostly held back by 429s. Standard library only; loopback only.
"""
import base64
import hashlib
import http.client
import json
import re
import sys
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

BASE = sys.argv[1]
HOST, PORT = urllib.parse.urlsplit(BASE).hostname, urllib.parse.urlsplit(BASE).port
REDIRECT = "http://127.0.0.1:9/cb"
VERIFIER = "dBjftJeZ4CVP-mJ0kZ0GqGJVWEbvJmwOzEo2h4J5Ztmp7Q"
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()


def request(method, url, body=None, headers=None, source="127.0.0.1"):
    """One request on a new connection from `source`; (status, headers, body). A
    connection the server refused or reset is status 0."""
    try:
        return send(method, url, body, headers, source)
    except ConnectionError:
        return 0, http.client.HTTPMessage(), b""


def send(method, url, body, headers, source):
    parts = urllib.parse.urlsplit(url if "://" in url else BASE + url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30, source_address=(source, 0))
    path = parts.path + ("?" + parts.query if parts.query else "")
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp.headers, data


def register(source, pad=0):
    meta = {"redirect_uris": [REDIRECT], "client_name": "Flood" if pad else "Client A",
            "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"]}
    if pad:
        meta["x_padding"] = "x" * pad
    status, _, body = request("POST", "/register", json.dumps(meta), {"content-type": "application/json"}, source)
    return status, (json.loads(body).get("client_id") if status == 201 else None)


def authorize_query(client_id):
    return "/authorize?" + urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
        "code_challenge": CHALLENGE, "code_challenge_method": "S256", "state": "s",
        "scope": "mcp", "resource": BASE + "/mcp"})


def consent_page(client_id, source):
    status, headers, body = request("GET", authorize_query(client_id), source=source)
    cookies = "; ".join(c.split(";")[0] for c in headers.get_all("set-cookie") or [])
    fields = dict(re.findall(r'name="(tx|csrf)" value="([^"]*)"', body.decode()))
    return status, cookies, fields


def approve(fields, cookies, source):
    form = urllib.parse.urlencode({**fields, "decision": "approve"})
    return request("POST", "/authorize", form, {
        "content-type": "application/x-www-form-urlencoded", "origin": BASE,
        "sec-fetch-site": "same-origin", "cookie": cookies}, source)


def sign_in(client_id):
    status, cookies, fields = consent_page(client_id, "127.0.0.1")
    assert status == 200, status
    status, headers, _ = approve(fields, cookies, "127.0.0.1")
    assert status == 303, status
    cookies += "; " + "; ".join(c.split(";")[0] for c in headers.get_all("set-cookie") or [])
    _, up, _ = request("GET", headers["location"])
    status, back, _ = request("GET", up["location"], headers={"cookie": cookies})
    assert status == 303, status
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(back["location"]).query)["code"][0]
    return token({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                  "client_id": client_id, "code_verifier": VERIFIER, "resource": BASE + "/mcp"})


def token(form):
    status, _, body = request("POST", "/token", urllib.parse.urlencode(form),
                              {"content-type": "application/x-www-form-urlencoded"})
    assert status == 200, (status, body)
    return json.loads(body)


def bearer(access):
    init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "a", "version": "1"}}})
    status, _, _ = request("POST", "/mcp", init, {"authorization": "Bearer " + access,
                           "content-type": "application/json", "accept": "application/json, text/event-stream"})
    return status


statuses = Counter()
client_a = register("127.0.0.1")[1]
tokens = sign_in(client_a)
assert bearer(tokens["access_token"]) == 200

flooder = register("127.0.0.3")[1]
start = time.monotonic()


def one_registration(_):
    return register("127.0.0.2", pad=16 * 1024 - 200)[0]


def one_self_approval(_):
    status, cookies, fields = consent_page(flooder, "127.0.0.2")
    if status != 200:
        return status
    return approve(fields, cookies, "127.0.0.2")[0]


with ThreadPoolExecutor(32) as pool:
    for status in pool.map(one_registration, range(3000)):
        statuses["register %d" % status] += 1
    for status in pool.map(one_self_approval, range(10000)):
        statuses["self-approval %d" % status] += 1
elapsed = time.monotonic() - start
print("flood from 127.0.0.2 in %.1f s: %s" % (elapsed, dict(sorted(statuses.items()))))
assert not [s for s in statuses if s.split()[-1].startswith("5")], "a 5xx during the flood"

refreshed = token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_a})
assert bearer(refreshed["access_token"]) == 200, "client A's new access token"
assert consent_page(client_a, "127.0.0.1")[0] == 200, "a new consent page for client A"
print("after the flood: client A's refresh, bearer call and a new consent page work")
# Held back: answered 429 by the rate limits, or refused at the per-address connection cap.
held = lambda what: statuses[what + " 429"] + statuses[what + " 0"]
assert held("register") > 2500 and held("self-approval") > 9000, "the flood was not held back"
