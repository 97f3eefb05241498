"""JWT-SVIDs for tests and the demo, signed by hand with `cryptography`.

Signing by hand (not through a JWT library) lets tests craft exactly the
malformed tokens a workload could send: `alg: none`, HMAC, extra header
parameters, forged signatures, odd claims.

    python tests/svid.py mint spiffe://example.org/ns/support/sa/bot [--ttl 3600]
"""

import argparse
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto import jwk

ROOT = Path(__file__).resolve().parent.parent
DEMO_EC_KEY = ROOT / "envoy/demo/trust-domain-key.jwk.json"
DEMO_RSA_KEY = ROOT / "envoy/demo/trust-domain-rsa-key.jwk.json"
AUDIENCE = "spiffe://example.org/modelgate"

HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_key(path=DEMO_EC_KEY) -> jwk.JWK:
    return jwk.JWK(**json.loads(Path(path).read_text()))


def new_ec_key(kid: str) -> jwk.JWK:
    """A fresh P-256 key that no gateway trusts."""
    return jwk.JWK.generate(kty="EC", crv="P-256", kid=kid)


def default_alg(key: jwk.JWK) -> str:
    if key["kty"] == "RSA":
        return "RS256"
    return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[key["crv"]]


def sign(signing_input: bytes, key: jwk.JWK, alg: str) -> bytes:
    """The JWS signature of `signing_input` (ECDSA as r || s, per RFC 7518)."""
    if alg == "none":
        return b""
    family, bits = alg[:2], alg[2:]
    if family == "HS":
        return hmac.new(key.get("k", "secret").encode(), signing_input, getattr(hashlib, f"sha{bits}")).digest()
    private = key.get_op_key("sign")
    if family == "ES":
        r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(HASHES[bits]())))
        size = (private.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if family == "RS":
        return private.sign(signing_input, padding.PKCS1v15(), HASHES[bits]())
    if family == "PS":
        pss = padding.PSS(mgf=padding.MGF1(HASHES[bits]()), salt_length=HASHES[bits]().digest_size)
        return private.sign(signing_input, pss, HASHES[bits]())
    raise ValueError(f"unsupported alg {alg}")


def encode(header: dict, claims: dict, key: jwk.JWK, alg: str) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}".encode()
    return f"{signing_input.decode()}.{b64(sign(signing_input, key, alg))}"


def mint(sub: str, *, key: jwk.JWK | None = None, alg: str | None = None, aud=AUDIENCE, ttl: int = 3600,
         iat: int | None = None, kid: str | None = "", header_extra: dict | None = None,
         claims_extra: dict | None = None, drop: tuple = ()) -> str:
    """A compact JWT-SVID for `sub`. `kid=""` takes the key's kid, `None`
    leaves it out; `drop` names claims to leave out."""
    key = key or load_key()
    alg = alg or default_alg(key)
    now = int(time.time()) if iat is None else iat
    header = {"alg": alg, "typ": "JWT"}
    key_id = key.get("kid") if kid == "" else kid
    if key_id is not None:
        header["kid"] = key_id
    header.update(header_extra or {})
    claims = {"sub": sub, "aud": aud, "iat": now, "exp": now + ttl, "jti": b64(hashlib.sha256(f"{sub}{time.time_ns()}".encode()).digest()[:12])}
    claims.update(claims_extra or {})
    for name in drop:
        claims.pop(name, None)
    return encode(header, claims, key, alg)


def main():
    parser = argparse.ArgumentParser(description="Mint a demo JWT-SVID")
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("mint", help="print a JWT-SVID signed by the demo trust domain key")
    m.add_argument("spiffe_id")
    m.add_argument("--ttl", type=int, default=3600)
    m.add_argument("--aud", default=AUDIENCE)
    m.add_argument("--key", default=str(DEMO_EC_KEY))
    args = parser.parse_args()
    print(mint(args.spiffe_id, key=load_key(args.key), aud=args.aud, ttl=args.ttl))


if __name__ == "__main__":
    main()
