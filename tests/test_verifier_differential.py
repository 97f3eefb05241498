"""The two signature verifiers must give identical answers: Envoy's
BoringSSL (the `verify_signature` foreign function) and the pure-Rust one
modelgate falls back to. One corpus of valid and broken signatures for every
algorithm goes through two real Envoys, one verifying on the host and one in
the VM, with the verified-SVID cache off; every token must get the same
answer from both, valid ones accepted, broken ones refused.
"""

import json

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwcrypto import jwk

import svid
from conftest import running_gateway

WORKLOAD = "spiffe://example.org/ns/research/sa/agent"
ORDERS = {
    "P-256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "P-384": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
    "P-521": 6864797660130609714981900799081393217269435300143305409394463459185543183397655394245057746333217197532963996371363321113864768612440380340372808892707005449,
}


def keys():
    """A key for each algorithm family, with the JWK the bundle holds."""
    out = {}
    for crv, cls, alg in (("P-256", ec.SECP256R1, "ES256"), ("P-384", ec.SECP384R1, "ES384"), ("P-521", ec.SECP521R1, "ES512")):
        k = jwk.JWK.from_pyca(ec.generate_private_key(cls()))
        k["kid"] = f"diff-{crv}"
        out[alg] = k
    r = jwk.JWK.from_pyca(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    r["kid"] = "diff-rsa"
    for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
        out[alg] = r
    return out


def bundle(keys_by_alg):
    seen, out = set(), []
    for k in keys_by_alg.values():
        if k["kid"] in seen:
            continue
        seen.add(k["kid"])
        public = json.loads(k.export_public())
        public["use"] = "jwt-svid"
        out.append(public)
    return {"keys": out}


def mutations(token: str, alg: str, key) -> list[tuple[str, str, bool]]:
    """(name, token, valid) for the valid token and broken variants."""
    head, sig_b64 = token.rsplit(".", 1)
    sig = svid.base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))

    def with_sig(s: bytes) -> str:
        return f"{head}.{svid.b64(s)}"

    cases = [("valid", token, True)]
    for i in (0, 1, len(sig) // 2 - 1, len(sig) // 2, len(sig) - 1):
        flipped = bytearray(sig)
        flipped[i] ^= 0x01
        cases.append((f"bit_flip_{i}", with_sig(bytes(flipped)), False))
    cases += [
        ("truncated", with_sig(sig[:-1]), False),
        ("extended", with_sig(sig + b"\x00"), False),
        ("leading_zero", with_sig(b"\x00" + sig), False),
        ("zeros", with_sig(bytes(len(sig))), False),
        ("ones", with_sig(b"\xff" * len(sig)), False),
        ("empty", with_sig(b""), False),
    ]
    if alg.startswith("ES"):
        half = len(sig) // 2
        r, s = sig[:half], sig[half:]
        n = ORDERS[key["crv"]]
        high_s = (n - int.from_bytes(s, "big")).to_bytes(half, "big")
        cases += [
            ("swapped", with_sig(s + r), False),
            ("r_zero", with_sig(bytes(half) + s), False),
            ("s_zero", with_sig(r + bytes(half)), False),
            ("r_is_order", with_sig(n.to_bytes(half, "big") + s), False),
            # The same signature with s replaced by n - s: valid ECDSA,
            # both verifiers must agree on it.
            ("high_s", with_sig(r + high_s), None),
        ]
    else:
        n = int(key["n"] and jwk.base64url_decode(key["n"]).hex(), 16)
        cases.append(("signature_is_modulus", with_sig(n.to_bytes(len(sig), "big")), False))
    # The same signature on other claims.
    other = svid.mint(WORKLOAD, key=key, alg=alg, claims_extra={"jti": "other"})
    cases.append(("moved", f"{other.rsplit('.', 1)[0]}.{sig_b64}", False))
    return cases


def corpus():
    ks = keys()
    out = []
    for alg, key in ks.items():
        for round_ in range(2):
            token = svid.mint(WORKLOAD, key=key, alg=alg, claims_extra={"jti": f"round-{round_}"})
            for name, t, valid in mutations(token, alg, key):
                out.append((f"{alg}:{round_}:{name}", t, valid))
    return ks, out


def answer(gw, token):
    r = requests.post(f"{gw.url}/openai/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []},
                      headers={"authorization": f"Bearer {token}"}, timeout=10)
    return r.status_code, r.headers.get("x-modelgate-reason")


def test_host_and_pure_rust_verifiers_agree_on_every_signature():
    ks, cases = corpus()
    assert len(cases) >= 250
    policy = {"trust_domains": [{"name": "example.org", "jwt_bundle": bundle(ks)}]}
    identity = lambda verifier: {"identity": {"jwt_svid": {"audiences": [svid.AUDIENCE], "cache_size": 0,  # noqa: E731
                                                           "signature_verifier": verifier}, "require": "jwt"}}
    with running_gateway({**policy, **identity("auto")}) as host, running_gateway({**policy, **identity("pure_rust")}) as pure:
        disagreements, wrong = [], []
        for name, token, valid in cases:
            a, b = answer(host, token), answer(pure, token)
            if a != b:
                disagreements.append((name, a, b))
            elif valid is not None and (a[0] == 200) != valid:
                wrong.append((name, a))
        assert disagreements == [], disagreements
        # ECDSA's (r, n - s) twin of a valid signature: both accept it, as
        # BoringSSL and RustCrypto do for the NIST curves (a twin is another
        # token, so another cache entry; it names the same workload).
        twins = {a for name, token, _ in cases if name.endswith(":high_s") for a in [answer(pure, token)]}
        assert twins == {(200, None)}, twins
        assert wrong == [], wrong
        host_log = host.envoy_log.read_text()
        assert "verifying in the VM" not in host_log, "the host verifier was not used"
