"""A stand-in OAuth 2.0 token endpoint that speaks, for real, what OpenAI's
and Anthropic's workload identity federation and the generic RFCs speak:

- RFC 8693 token exchange and RFC 7523 jwt-bearer grants,
- JSON bodies (OpenAI, Anthropic) and form bodies (the RFCs),
- the subject token or assertion verified — signature against the trust
  bundle or the gateway's printed JWKS, issuer, audience, expiry,
- each provider's own parameters and headers checked,

and issues short-lived access tokens: ES256 JWTs naming the workload
(`sub`), the provider account and, when the assertion named one, the
model. Tests switch a route to failure modes and count exchanges.

Some modes are answers no HTTP library writes (`RAW_MODES`): written on
the socket as they would arrive from a broken or hostile endpoint — cut
mid-body by a reset, stalled after the headers, a status that is not a
final answer, an oversized or mislabelled answer."""

import base64
import json
import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from jwcrypto import jwk

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"

# A token answer's first bytes, as a cut answer would start.
PARTIAL = b'{"access_token": "eyJhbGciOiJFUzI1NiJ9.'
GOOD_JSON = b'{"access_token": "opaque-token", "token_type": "Bearer", "expires_in": 300}'


def _whole(body: bytes, content_type: bytes = b"application/json", status: bytes = b"200 OK") -> tuple[bytes, str]:
    head = b"HTTP/1.1 " + status + b"\r\ncontent-type: " + content_type + b"\r\ncontent-length: " + str(len(body)).encode()
    return head + b"\r\n\r\n" + body, "close"


CUT_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n"
RAW_MODES = {
    # 200, its headers and part of its body, then a TCP reset.
    "cut_after_headers": lambda: (CUT_HEAD + PARTIAL, "reset"),
    # The request read, then a reset: no byte of answer.
    "reset_before_headers": lambda: (b"", "reset"),
    # 200, its headers and part of its body, then nothing until long past
    # the call-out's timeout.
    "stall_after_headers": lambda: (CUT_HEAD + PARTIAL, "stall"),
    # An informational answer and no final one: the connection is reset.
    "informational_only": lambda: (b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n", "reset"),
    # A status no HTTP class has, on an otherwise good token answer.
    "odd_status": lambda: _whole(GOOD_JSON, status=b"099 Odd"),
    # A well-formed token answer padded past the token reader's 64 KiB.
    "oversized": lambda: _whole(GOOD_JSON[:-1] + b" " * (100 * 1024) + b"}"),
    # Past the 1 MiB a call-out was once read to.
    "huge": lambda: _whole(GOOD_JSON[:-1] + b" " * (2 * 1024 * 1024) + b"}"),
    # A good token answer, labelled as a web page.
    "wrong_content_type": lambda: _whole(GOOD_JSON, b"text/html; charset=utf-8"),
    # JSON that stops in the middle of a member.
    "garbage_json": lambda: _whole(b'{"access_token": "opaque-token", "token_type": "Bearer", "expires_in": '),
}


def write_raw(connection: socket.socket, data: bytes, then: str, stall: float = 3.0) -> None:
    """Writes `data` on the socket, then resets it (`reset`), leaves it
    silent for `stall` seconds (`stall`) or closes it (`close`)."""
    try:
        connection.sendall(data)
        if then == "stall":
            time.sleep(stall)
        elif then == "reset":
            time.sleep(0.05)  # the bytes leave before the reset
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    except OSError:
        pass


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_es256(token: str, keys: dict) -> dict:
    """The claims of an ES256 JWT signed by one of `keys` (kid → JWK), or
    ValueError."""
    header_b64, claims_b64, signature_b64 = token.split(".")
    header = json.loads(unb64(header_b64))
    if header.get("alg") != "ES256" or header.get("kid") not in keys:
        raise ValueError(f"unexpected header {header}")
    signature = unb64(signature_b64)
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    keys[header["kid"]].get_op_key("verify").verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    return json.loads(unb64(claims_b64))


class TokenServer:
    """Routes: path → {"grant", "encoding", "keys" (kid → JWK), "issuer",
    "audience", "required" (params), "headers" (required headers),
    "expires_in", "mode"}."""

    def __init__(self):
        self.lock = threading.Lock()
        self.routes: dict[str, dict] = {}
        self.exchanges: list[dict] = []
        self.key = jwk.JWK.generate(kty="EC", crv="P-256", kid="token-server-1")
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with server.lock:
                    route = dict(server.routes.get(self.path, {}))
                if route.get("mode") in RAW_MODES:
                    with server.lock:
                        server.exchanges.append({"path": route["path"], "at": time.time()})
                    data, then = RAW_MODES[route["mode"]]()
                    self.close_connection = True
                    write_raw(self.connection, data, then, route.get("delay", 3.0))
                    return
                status, answer, delay = server.answer(route, self.headers, body)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.handler = Handler
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def down(self) -> None:
        """Stops listening: connections are refused until `up()`."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def up(self) -> None:
        """Listens again on the same port, with the same routes and key."""
        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def route(self, path: str, **settings):
        with self.lock:
            self.routes[path] = {**self.routes.get(path, {}), **settings, "path": path}

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for e in self.exchanges if e["path"] == path)

    def answer(self, route: dict, headers, body: bytes) -> tuple[int, bytes, float]:
        def error(status, code, description):
            return status, json.dumps({"error": code, "error_description": description}).encode(), 0

        if not route:
            return error(404, "not_found", "no such token endpoint")
        with self.lock:
            self.exchanges.append({"path": route["path"], "at": time.time()})
        mode = route.get("mode", "ok")
        if mode == "status_500":
            return 500, b'{"error":"server_error"}', 0
        if mode == "slow":
            delay = route.get("delay", 3.0)
        else:
            delay = 0.0
        for name, value in route.get("headers", {}).items():
            if value not in [v.strip() for v in (headers.get(name) or "").split(",")]:
                return error(400, "invalid_request", f"missing header {name}: {value}")
        if route["encoding"] == "json":
            if headers.get("content-type") != "application/json":
                return error(400, "invalid_request", "content-type must be application/json")
            try:
                fields = json.loads(body)
            except ValueError:
                return error(400, "invalid_request", "not JSON")
            if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
                return error(400, "invalid_request", "fields must be strings")
        else:
            if headers.get("content-type") != "application/x-www-form-urlencoded":
                return error(400, "invalid_request", "content-type must be application/x-www-form-urlencoded")
            pairs = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True)
            fields = dict(pairs)
            if len(fields) != len(pairs):
                return error(400, "invalid_request", "repeated parameter")
        if route["grant"] == "token_exchange":
            if fields.get("grant_type") != TOKEN_EXCHANGE or fields.get("subject_token_type") != JWT_TYPE:
                return error(400, "unsupported_grant_type", f"{fields.get('grant_type')}")
            subject = fields.get("subject_token", "")
        else:
            if fields.get("grant_type") != JWT_BEARER:
                return error(400, "unsupported_grant_type", f"{fields.get('grant_type')}")
            subject = fields.get("assertion", "")
        for name, value in route.get("required", {}).items():
            if fields.get(name) != value and not (value is None and fields.get(name)):
                return error(400, "invalid_request", f"{name} is {fields.get(name)!r}")
        try:
            claims = verify_es256(subject, route["keys"])
        except Exception as e:  # noqa: BLE001 - any failure is an invalid grant
            return error(400, "invalid_grant", f"the subject token does not verify: {e}")
        now = int(time.time())
        aud = claims.get("aud")
        if route["audience"] not in (aud if isinstance(aud, list) else [aud]):
            return error(400, "invalid_grant", f"audience {aud}")
        if route.get("issuer") and claims.get("iss") != route["issuer"]:
            return error(400, "invalid_grant", f"issuer {claims.get('iss')}")
        if claims.get("exp", 0) <= now:
            return error(400, "invalid_grant", "expired")
        expires_in = route.get("expires_in", 300)
        token_claims = {"sub": claims["sub"], "account": fields.get("service_account_id"), "iat": now,
                        "exp": now + expires_in, "jti": f"t{len(self.exchanges)}"}
        if "model" in claims:
            token_claims["model"] = claims["model"]
        token = self.sign(token_claims)
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": expires_in,
                  "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}
        if mode == "not_json":
            return 200, b"<html>sign in</html>", delay
        if mode == "no_expires_in":
            del answer["expires_in"]
        if mode == "mac_token":
            answer["token_type"] = "mac"
        return 200, json.dumps(answer).encode(), delay

    def sign(self, claims: dict) -> str:
        header = {"alg": "ES256", "kid": self.key["kid"], "typ": "JWT"}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}".encode()
        r, s = decode_dss_signature(self.key.get_op_key("sign").sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return f"{signing_input.decode()}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def verify_issued(self, token: str) -> dict:
        """The claims of a token this server issued (what the provider checks)."""
        return verify_es256(token, {self.key["kid"]: self.key})

    def close(self):
        self.httpd.shutdown()
