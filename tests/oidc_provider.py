"""A small OpenID Connect provider for the tests, run as a process of its own:
``python tests/oidc_provider.py --client-id ID --client-secret SECRET`` prints ``PORT <n>``
once it listens on a free loopback port.

It signs with joserfc (an RS256 key made at start, published at /jwks) and checks PKCE with
Authlib's S256 comparison; the HTTP around them is the standard library's. It serves the
discovery document, the keys, an authorization endpoint that approves the configured test
person at once, the token endpoint (client secret, single-use codes bound to their
redirect URI, the PKCE verifier), userinfo and an end-session endpoint. Tests steer it over
HTTP: ``POST /_control`` with ``{"claims": {...}, "misbehave": ..., "end_session": ...}``
sets who signs in (their claims: ``sub``, ``preferred_username``, ``groups``...), rotates the
signing key (``"rotate_key": true``: a new key id, the old key no longer published) and how the
next ID tokens go wrong -- ``forged_signature`` (another key under the same key id),
``expired``, ``wrong_audience`` (for another client, ``azp`` naming ours), ``wrong_nonce``,
``wrong_issuer``; ``GET /_log`` returns the requests it saw at its endpoints.
"""

import argparse
import base64
import contextlib
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

KID = "test-key-1"


class Provider:
    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.kid = KID
        self.key = self.new_key()
        # Another key under the same id: what a forger without the provider's key signs with.
        self.forger = RSAKey.generate_key(2048, parameters={"kid": KID, "alg": "RS256"})
        self.lock = threading.Lock()
        self.issuer = ""
        self.claims: dict = {"sub": "subject-1", "preferred_username": "dana", "groups": []}
        self.misbehave = ""
        self.end_session = True
        self.codes: dict[str, dict] = {}
        self.tokens: dict[str, dict] = {}
        self.log: dict[str, list] = {"authorize": [], "token": [], "end_session": []}

    def new_key(self) -> RSAKey:
        return RSAKey.generate_key(2048, parameters={"kid": self.kid, "use": "sig", "alg": "RS256"})

    def rotate_key(self) -> None:
        """A new signing key under a new key id; the old one is no longer published."""
        self.kid = f"test-key-{secrets.token_hex(4)}"
        self.key = self.new_key()

    def discovery(self) -> dict:
        base = self.issuer
        document = {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "profile", "email", "groups"],
        }
        if self.end_session:
            document["end_session_endpoint"] = f"{base}/end_session"
        return document

    def id_token(self, grant: dict) -> str:
        now = int(time.time())
        claims = {
            **grant["claims"],
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            "nonce": grant["nonce"],
            "sid": grant["sid"],
        }
        key = self.key
        if self.misbehave == "forged_signature":
            key = self.forger  # under the key id the provider publishes
        elif self.misbehave == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif self.misbehave == "wrong_audience":
            claims["aud"], claims["azp"] = "another-client", self.client_id
        elif self.misbehave == "wrong_nonce":
            claims["nonce"] = "not-" + grant["nonce"]
        elif self.misbehave == "wrong_issuer":
            claims["iss"] = "https://elsewhere.invalid"
        return jwt.encode({"alg": "RS256", "kid": self.kid}, claims, key)


class Handler(BaseHTTPRequestHandler):
    provider: Provider

    def log_message(self, format, *args):  # quiet: the tests read /_log
        pass

    def answer(self, status: int, body=None, headers=None) -> None:
        data = b""
        if body is not None:
            data = (json.dumps(body) if not isinstance(body, str) else body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            kind = "application/json" if not isinstance(body, str) else "text/plain"
            self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def redirect(self, url: str) -> None:
        self.answer(302, headers={"Location": url})

    def form(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(raw or "{}")
        return {k: v[0] for k, v in parse_qs(raw).items()}

    def do_GET(self):
        p = self.provider
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with p.lock:
            if url.path == "/.well-known/openid-configuration":
                return self.answer(200, p.discovery())
            if url.path == "/jwks":
                return self.answer(200, KeySet([p.key]).as_dict())
            if url.path == "/authorize":
                return self.authorize(query)
            if url.path == "/userinfo":
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                grant = p.tokens.get(token)
                return self.answer(200, grant["claims"]) if grant else self.answer(401, {})
            if url.path == "/end_session":
                p.log["end_session"].append(query)
                back = query.get("post_logout_redirect_uri")
                if back:
                    state = query.get("state")
                    return self.redirect(
                        back + (f"?{urlencode({'state': state})}" if state else "")
                    )
                return self.answer(200, "signed out")
            if url.path == "/_log":
                return self.answer(200, p.log)
        return self.answer(404, {"error": "not_found"})

    def authorize(self, query: dict) -> None:
        p = self.provider
        p.log["authorize"].append(query)
        problems = [
            name
            for name, ok in {
                "client_id": query.get("client_id") == p.client_id,
                "response_type": query.get("response_type") == "code",
                "scope": "openid" in query.get("scope", "").split(),
                "redirect_uri": bool(query.get("redirect_uri")),
                "state": bool(query.get("state")),
                "nonce": bool(query.get("nonce")),
                "code_challenge": bool(query.get("code_challenge")),
                "code_challenge_method": query.get("code_challenge_method") == "S256",
            }.items()
            if not ok
        ]
        if problems:
            return self.answer(400, f"invalid authorization request: {', '.join(problems)}")
        code = secrets.token_urlsafe(24)
        p.codes[code] = {
            "redirect_uri": query["redirect_uri"],
            "nonce": query["nonce"],
            "challenge": query["code_challenge"],
            "claims": dict(p.claims),
            "sid": secrets.token_hex(8),
        }
        back = urlencode({"code": code, "state": query["state"]})
        return self.redirect(f"{query['redirect_uri']}?{back}")

    def do_POST(self):
        p = self.provider
        url = urlsplit(self.path)
        body = self.form()
        with p.lock:
            if url.path == "/_control":
                if "claims" in body:
                    p.claims = body["claims"]
                if "misbehave" in body:
                    p.misbehave = body["misbehave"] or ""
                if "end_session" in body:
                    p.end_session = bool(body["end_session"])
                if body.get("rotate_key"):
                    p.rotate_key()
                if body.get("forget_log"):
                    p.log = {"authorize": [], "token": [], "end_session": []}
                return self.answer(200, {"ok": True})
            if url.path == "/token":
                return self.token(body)
        return self.answer(404, {"error": "not_found"})

    def token(self, body: dict) -> None:
        p = self.provider
        p.log["token"].append({k: v for k, v in body.items() if k != "client_secret"})
        client_id, secret = body.get("client_id"), body.get("client_secret")
        basic = self.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        if client_id != p.client_id or secret != p.client_secret:
            return self.answer(401, {"error": "invalid_client"})
        grant = p.codes.pop(body.get("code", ""), None)  # a code is good once
        if body.get("grant_type") != "authorization_code" or grant is None:
            return self.answer(400, {"error": "invalid_grant", "error_description": "no such code"})
        if body.get("redirect_uri") != grant["redirect_uri"]:
            return self.answer(400, {"error": "invalid_grant", "error_description": "redirect_uri"})
        verifier = body.get("code_verifier", "")
        if not verifier or not compare_s256_code_challenge(verifier, grant["challenge"]):
            return self.answer(400, {"error": "invalid_grant", "error_description": "PKCE"})
        access = secrets.token_urlsafe(24)
        p.tokens[access] = grant
        return self.answer(
            200,
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": p.id_token(grant),
            },
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    args = parser.parse_args()
    provider = Provider(args.client_id, args.client_secret)
    handler = type("BoundHandler", (Handler,), {"provider": provider})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    provider.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"PORT {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
