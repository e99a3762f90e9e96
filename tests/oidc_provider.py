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
``wrong_issuer``, ``alg_none`` (unsigned), ``hs256_public_key`` (HS256 with the published
public key as the secret), ``no_audience``, ``audiences`` (ours and another's, no ``azp``);
``"fail": {"discovery" | "jwks" | "token": "html" | "error" | "slow" | "not_an_object"}``
makes an endpoint answer an HTML page, a 500, nothing for ``slow_seconds`` or JSON that is
no object, and ``"discovery_without": [names]`` leaves entries out of the discovery
document; ``"jwks_body"`` is served at /jwks instead of the keys, and ``"token_extra"`` is
merged into the token endpoint's answer (null removes an entry); ``GET /_log`` returns the
requests it saw at its endpoints.
"""

import argparse
import base64
import contextlib
import hashlib
import hmac
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
        self.fail: dict[str, str] = {}
        self.slow_seconds = 10.0
        self.discovery_without: list[str] = []
        self.jwks_body = None
        self.token_extra: dict = {}
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
        for name in self.discovery_without:
            document.pop(name, None)
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
        elif self.misbehave == "no_audience":
            del claims["aud"]
        elif self.misbehave == "audiences":
            claims["aud"] = [self.client_id, "another-client"]
        elif self.misbehave == "alg_none":
            return _compact({"alg": "none", "kid": self.kid}, claims, lambda data: b"")
        elif self.misbehave == "hs256_public_key":
            public = self.key.as_pem(private=False)  # what every JWKS reader has
            return _compact(
                {"alg": "HS256", "kid": self.kid},
                claims,
                lambda data: hmac.new(public, data, hashlib.sha256).digest(),
            )
        return jwt.encode({"alg": "RS256", "kid": self.kid}, claims, key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(header: dict, claims: dict, sign) -> str:
    """A JWS written by hand: what a forger sends (joserfc refuses to make these)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


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
        if body is not None and "Content-Type" not in (headers or {}):
            kind = "application/json" if not isinstance(body, str) else "text/plain"
            self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def failed(self, endpoint: str) -> bool:
        """Answers as ``fail`` says for this endpoint (True), or leaves it to answer."""
        p = self.provider
        with p.lock:
            how, seconds = p.fail.get(endpoint, ""), p.slow_seconds
        if how == "slow":
            time.sleep(seconds)
            return False
        if how == "html":
            page = "<html><body>Sign in to the corporate proxy</body></html>"
            self.answer(200, page, headers={"Content-Type": "text/html"})
        elif how == "error":
            self.answer(500, "<html><body>Internal Server Error</body></html>")
        elif how == "not_an_object":
            self.answer(200, ["not", "an", "object"])
        return bool(how)

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
        step = {"/.well-known/openid-configuration": "discovery", "/jwks": "jwks"}.get(url.path)
        if step and self.failed(step):
            return None
        with p.lock:
            if url.path == "/.well-known/openid-configuration":
                return self.answer(200, p.discovery())
            if url.path == "/jwks":
                keys = KeySet([p.key]).as_dict() if p.jwks_body is None else p.jwks_body
                return self.answer(200, keys)
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
        if url.path == "/token" and self.failed("token"):
            return None
        with p.lock:
            if url.path == "/_control":
                if "claims" in body:
                    p.claims = body["claims"]
                if "misbehave" in body:
                    p.misbehave = body["misbehave"] or ""
                if "end_session" in body:
                    p.end_session = bool(body["end_session"])
                if "fail" in body:
                    p.fail = dict(body["fail"] or {})
                if "slow_seconds" in body:
                    p.slow_seconds = float(body["slow_seconds"])
                if "discovery_without" in body:
                    p.discovery_without = list(body["discovery_without"] or [])
                if "jwks_body" in body:
                    p.jwks_body = body["jwks_body"]
                if "token_extra" in body:
                    p.token_extra = dict(body["token_extra"] or {})
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
        answer = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": p.id_token(grant),
        }
        answer.update(p.token_extra)
        return self.answer(200, {k: v for k, v in answer.items() if v is not None})


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
