"""modelgate's JWT-SVID validation against py-spiffe's
(`JwtSvid.parse_and_validate`, the SPIFFE project's Python library). One
seeded population of valid tokens and mutations — every algorithm, and
every header, subject, audience, time, signature and structural oddity we
know of — goes through a real Envoy and through py-spiffe, with the same
keys and the same clock. Every token must get the same verdict from both
(and, when both accept, name the same SPIFFE ID), unless its disagreement is
in ALLOWED below, with the reason.

MODELGATE_DIFF_TOKENS tokens are sent (300 by default, what CI runs; the
full run is 2500); MODELGATE_DIFF_SEED picks the population. Every case is
sent at least once, the rest are drawn at random.

py-spiffe is given the bundle of example.org, the one trust domain the
gateway trusts: its docstring asks callers to pass the bundle of the
subject's trust domain, and a token of any other one is refused either way.
"""

import base64
import collections
import hashlib
import hmac
import json
import os
import random
import string
import time
from dataclasses import dataclass

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwcrypto import jwk
from spiffe import JwtBundle, JwtSvid, TrustDomain

import svid
from conftest import running_gateway

TOKENS = int(os.environ.get("MODELGATE_DIFF_TOKENS", "300"))
SEED = int(os.environ.get("MODELGATE_DIFF_SEED", "20240611"))
TD = "spiffe://example.org"
AUD = svid.AUDIENCE
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

# Disagreements that are expected, as "<kind>:<case>" -> why. A kind is
# `modelgate_stricter` (modelgate refuses what py-spiffe accepts),
# `modelgate_laxer` (the other way) or `different_id` (both accept, naming
# different workloads). Only a deliberate difference with a reason the
# standards give belongs here (each is listed in docs/identity.md); any
# other disagreement fails the test.
HEADER_PARAMS = "JWT-SVID §2: a header parameter other than alg, kid, typ MUST NOT be included"
TYP = "JWT-SVID §2.3: typ, if set, MUST be JWT or JOSE (py-spiffe skips any falsy value)"
DUPLICATE_HEADER = "RFC 7515 §4: a JWS parser MUST reject repeated header names or keep the last; modelgate rejects"
DUPLICATE_CLAIM = "RFC 7519 §4: a JWT parser MUST reject repeated claim names or keep the last; modelgate rejects"
UTF16 = "RFC 7515 §5.2, RFC 7519 §7.2, RFC 8259 §8.1: the header and claims are UTF-8"
BOM = "RFC 8259 §8.1: a byte-order mark MUST NOT be sent; a parser MAY, not must, ignore it"
PADDING = "RFC 7515 §2: base64url with all trailing '=' omitted"
NOT_JSON = "RFC 8259 §6: NaN and Infinity are not JSON"
LIFETIME = ("JWT-SVID §3 (exp): validity SHOULD be as short as reasonable; the operator bounds exp - iat "
            "(max_lifetime_seconds, 24 h here)")
IAT_FUTURE = ("the lifetime bound reads iat: an iat in the future would let a long-lived token pass it "
              "(RFC 7519 §4.1.6 iat is the time of issue)")
INTEGER_DATE = "JWT-SVID.schema: exp, nbf and iat are integers (NumericDate fractions are not)"
ALLOWED: dict[str, str] = {
    **{f"modelgate_stricter:header_{p}": HEADER_PARAMS
       for p in ("jku", "x5u", "x5c", "jwk", "cty", "private", "b64_true", "crit_b64")},
    **{f"modelgate_stricter:typ_{t}": TYP for t in ("empty_string", "null", "falsy_non_string")},
    "modelgate_stricter:sub_upper_case_trust_domain":
        "SPIFFE-ID §2.1: the trust domain MUST be lower case (py-spiffe lower-cases it)",
    "modelgate_stricter:sub_upper_case_scheme": "SPIFFE-ID §2: the scheme MUST be `spiffe` (py-spiffe takes any case)",
    "modelgate_stricter:sub_trust_domain_only":
        "JWT-SVID §3.1: sub is a workload's SPIFFE ID; the trust domain's own names none (X509-SVID §3.1 agrees)",
    "modelgate_stricter:sub_id_over_2048_bytes": "SPIFFE-ID §2.3: IDs are supported up to 2048 bytes, SHOULD NOT be longer",
    "modelgate_stricter:sub_trailing_newline":
        "SPIFFE-ID §2.2: path segments hold only [a-zA-Z0-9.-_] (py-spiffe's regex `$` lets a final newline through)",
    "modelgate_stricter:header_duplicate_alg": DUPLICATE_HEADER,
    "modelgate_stricter:header_duplicate_kid": DUPLICATE_HEADER,
    **{f"modelgate_stricter:claims_duplicate_{c}": DUPLICATE_CLAIM for c in ("sub", "sub_escaped", "aud", "exp")},
    "modelgate_stricter:header_utf16": UTF16,
    "modelgate_stricter:claims_utf16": UTF16,
    "modelgate_stricter:header_bom": BOM,
    "modelgate_stricter:claims_bom": BOM,
    **{f"modelgate_stricter:{part}_padded_base64": PADDING for part in ("header", "claims", "sig")},
    "modelgate_stricter:exp_float_fraction": "JWT-SVID.schema: exp is an integer",
    "modelgate_stricter:exp_string": "RFC 7519 §4.1.4: exp MUST be a number",
    "modelgate_stricter:nbf_string": "RFC 7519 §4.1.5: nbf MUST be a number",
    "modelgate_stricter:iat_string": "RFC 7519 §4.1.6: iat MUST be a number",
    "modelgate_stricter:iat_not_number": "RFC 7519 §4.1.6: iat MUST be a number (py-spiffe never reads iat)",
    "modelgate_stricter:claims_nan": NOT_JSON,
    "modelgate_stricter:claims_iat_nan": NOT_JSON,
    "modelgate_stricter:claims_number_out_of_range": "RFC 8259 §9: a parser may limit the range of numbers",
    "modelgate_stricter:claims_lone_surrogate":
        "RFC 8259 §8.2: lone surrogates make results unpredictable (I-JSON, RFC 7493 §2.1, forbids them)",
    "modelgate_stricter:claims_deep_nesting": "RFC 8259 §9: a parser may limit the depth of nesting",
    "modelgate_stricter:token_over_16k": "RFC 8259 §9: a parser may limit the size of texts (modelgate reads 16 KiB)",
    # Clock leeway: modelgate allows leeway_seconds (30 here; 0 agrees with py-spiffe).
    "modelgate_laxer:exp_in_leeway": "RFC 7519 §4.1.4: implementers MAY provide for some small leeway for clock skew",
    "modelgate_laxer:nbf_in_leeway": "RFC 7519 §4.1.5: implementers MAY provide for some small leeway for clock skew",
    # The operator's lifetime bound (identity.jwt_svid.max_lifetime_seconds).
    **{f"modelgate_stricter:{c}": LIFETIME
       for c in ("lifetime_over_24h", "lifetime_over_24h_no_iat", "lifetime_over_24h_old_iat", "exp_huge",
                 "iat_negative")},
    "modelgate_stricter:iat_future": IAT_FUTURE,
    "modelgate_stricter:iat_huge": IAT_FUTURE,
    "modelgate_stricter:iat_float": INTEGER_DATE,
    "modelgate_stricter:nbf_float": INTEGER_DATE,
}

ALGS = ["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
EC_ALGS, RSA_ALGS = ALGS[:3], ALGS[3:]
CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
RSA_BITS = {"RS256": 2048, "RS384": 3072, "RS512": 2048, "PS256": 2048, "PS384": 3072, "PS512": 4096}
SEGMENT_CHARS = string.ascii_letters + string.digits + "._-"
BAD_PATH_CHARS = [" ", "+", "~", "*", "@", ":", "\u00e9", "!", "$", ";", "=", "\\", "\u0000", "\n", "%"]
DROP = object()  # a header or claim value: leave the member out


def new_key(alg: str, kid: str) -> jwk.JWK:
    if alg in CURVES:
        k = jwk.JWK.from_pyca(ec.generate_private_key(CURVES[alg]()))
    else:
        k = jwk.JWK.from_pyca(rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS[alg]))
    k["kid"] = kid
    return k


def bundle(keys) -> dict:
    out = []
    for k in keys.values():
        public = json.loads(k.export_public())
        public["use"] = "jwt-svid"
        out.append(public)
    return {"keys": out}


# --- encoding ----------------------------------------------------------------------

b64 = svid.b64


def padded(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def std_alphabet(data: bytes) -> str:
    return base64.b64encode(data).rstrip(b"=").decode()


def dumps(value) -> bytes:
    return json.dumps(value).encode()


def members(pairs) -> bytes:
    """A JSON object with exactly these members, repeats included."""
    return ("{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}").encode()


def with_raw(obj: dict, raw: dict) -> bytes:
    """`obj` as JSON, each value "@name" replaced by the JSON text raw[name]."""
    text = json.dumps(obj)
    for name, value in raw.items():
        text = text.replace(json.dumps(f"@{name}"), value)
    return text.encode()


def compact(header, claims, key, alg, *, enc_header=b64, enc_claims=b64) -> str:
    """A compact JWS of `header` and `claims` (dicts, or exact bytes), signed
    with `key` and `alg` over exactly the segments sent."""
    h = header if isinstance(header, bytes) else dumps(header)
    c = claims if isinstance(claims, bytes) else dumps(claims)
    signing_input = f"{enc_header(h)}.{enc_claims(c)}"
    return f"{signing_input}.{b64(svid.sign(signing_input.encode(), key, alg))}"


def split_sig(token: str) -> tuple[str, bytes]:
    head, sig = token.rsplit(".", 1)
    return head, base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))


def short(value, n=60) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = text.encode("unicode_escape").decode()
    return text if len(text) <= n else f"{text[:n - 18]}…({len(value)} bytes)"


# --- the population --------------------------------------------------------------


@dataclass
class Ctx:
    """What a case builds its token from: the keys, its own RNG and `now`."""

    keys: dict
    strangers: dict  # keys no gateway trusts, with the kids of trusted ones
    rng: random.Random
    now: int

    def pick(self, *choices):
        return self.rng.choice(choices)

    def alg(self, among=ALGS) -> str:
        return self.rng.choice(among)

    def segment(self) -> str:
        while True:
            s = "".join(self.rng.choice(SEGMENT_CHARS) for _ in range(self.rng.randint(1, 12)))
            if s not in (".", ".."):
                return s

    def workload(self, depth=None) -> str:
        if depth is None and self.rng.random() < 0.5:
            return f"{TD}/ns/{self.segment()}/sa/{self.segment()}"
        return TD + "".join("/" + self.segment() for _ in range(depth or self.rng.randint(1, 6)))

    def header(self, alg: str, **extra) -> dict:
        return {"alg": alg, "typ": "JWT", "kid": self.keys[alg]["kid"], **extra}

    def claims(self, sub=None, **extra) -> dict:
        sub = self.workload() if sub is None else sub
        return {"sub": sub, "aud": AUD, "iat": self.now, "exp": self.now + 3600, "jti": b64(self.rng.randbytes(9)), **extra}

    def token(self, alg=None, header=None, claims=None, **kw) -> tuple[str, str]:
        alg = alg or self.alg()
        h = self.header(alg) if header is None else header
        c = self.claims() if claims is None else claims
        return compact(h, c, self.keys[alg], alg, **kw), alg

    def with_claims(self, note: str, **changes) -> tuple[str, str]:
        c = {**self.claims(), **changes}
        for name in [n for n, v in changes.items() if v is DROP]:
            c.pop(name)
        token, alg = self.token(claims=c)
        return token, f"{alg} {note}"

    def with_sub(self, sub: str) -> tuple[str, str]:
        token, alg = self.token(claims=self.claims(sub=sub))
        return token, f"{alg} sub={short(sub)}"

    def with_header(self, note: str, **changes) -> tuple[str, str]:
        """A token signed by one of the keys, its header changed."""
        alg = self.alg()
        h = {**self.header(alg), **changes}
        for name in [n for n, v in changes.items() if v is DROP]:
            h.pop(name)
        token, _ = self.token(alg, header=h)
        return token, f"{alg} {note}"


def path_of_length(c: Ctx, total: int) -> str:
    """A valid SPIFFE ID of exactly `total` bytes."""
    path, room = "", total - len(TD)
    while room - len(path) > 70:
        path += "/" + "".join(c.rng.choice(string.ascii_letters + string.digits) for _ in range(c.rng.randint(1, 60)))
    return TD + path + "/" + "".join(c.rng.choice(string.ascii_lowercase) for _ in range(room - len(path) - 1))


# Algorithms and keys


def alg_none(c: Ctx):
    alg = c.alg()
    header = {**c.header(alg), "alg": c.pick("none", "None", "NONE")}
    signing_input = f"{b64(dumps(header))}.{b64(dumps(c.claims()))}"
    if c.rng.random() < 0.5:
        return f"{signing_input}.", f"alg={header['alg']}, empty signature, kid of {alg}"
    signature = b64(svid.sign(signing_input.encode(), c.keys[alg], alg))
    return f"{signing_input}.{signature}", f"alg={header['alg']} with a real {alg} signature"


def hs256_public_key(c: Ctx):
    alg = c.alg()
    public = c.keys[alg].get_op_key("verify")
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64(dumps({**c.header(alg), 'alg': 'HS256'}))}.{b64(dumps(c.claims()))}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}", f"HS256 keyed with the PEM of {alg}'s public key, kid of {alg}"


def signed_by(c: Ctx, header_alg: str, kid_alg: str, key, sign_alg: str, note: str):
    header = c.header(header_alg, kid=c.keys[kid_alg]["kid"])
    return compact(header, c.claims(), key, sign_alg), note


def curve_mismatch(c: Ctx):
    header_alg, kid_alg = c.pick(("ES256", "ES384"), ("ES384", "ES512"), ("ES512", "ES256"), ("ES384", "ES256"))
    return signed_by(c, header_alg, kid_alg, c.keys[kid_alg], header_alg,
                     f"alg={header_alg}, kid of the {kid_alg} key, signed by it with {header_alg}'s hash")


def ec_alg_rsa_kid(c: Ctx):
    ec_alg, rsa_alg = c.alg(EC_ALGS), c.alg(RSA_ALGS)
    return signed_by(c, ec_alg, rsa_alg, c.keys[rsa_alg], rsa_alg, f"alg={ec_alg}, kid of an RSA key, signed {rsa_alg}")


def rsa_alg_ec_kid(c: Ctx):
    ec_alg, rsa_alg = c.alg(EC_ALGS), c.alg(RSA_ALGS)
    return signed_by(c, rsa_alg, ec_alg, c.keys[ec_alg], ec_alg, f"alg={rsa_alg}, kid of the {ec_alg} key, signed {ec_alg}")


def rsa_other_alg(c: Ctx):
    kid_alg, header_alg = c.rng.sample(RSA_ALGS, 2)
    return signed_by(c, header_alg, kid_alg, c.keys[kid_alg], header_alg,
                     f"alg={header_alg}, kid of the {kid_alg} RSA key, signed by it with {header_alg}")


def untrusted_key(c: Ctx):
    alg = c.alg(list(c.strangers))
    return compact(c.header(alg), c.claims(), c.strangers[alg], alg), f"{alg} kid of a trusted key, signed by an untrusted one"


def other_trusted_key(c: Ctx):
    kid_alg, key_alg = c.pick(("RS256", "RS512"), ("PS256", "RS256"), ("RS384", "PS384"))
    return signed_by(c, kid_alg, kid_alg, c.keys[key_alg], kid_alg, f"{kid_alg} kid of one trusted RSA key, signed by another")


# Signatures


def sig_case(mutate):
    def case(c: Ctx):
        token, alg = c.token()
        head, sig = split_sig(token)
        new, note = mutate(c, alg, head, sig)
        return new, f"{alg} {note}"
    return case


def bit_flip(c: Ctx, alg, head, sig):
    flipped = bytearray(sig)
    flipped[c.rng.randrange(len(sig))] ^= 1 << c.rng.randrange(8)
    return f"{head}.{b64(bytes(flipped))}", "one bit flipped"


def der_sig(c: Ctx):
    token, alg = c.token(c.alg(EC_ALGS))
    head, sig = split_sig(token)
    half = len(sig) // 2
    der = encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"))
    return f"{head}.{b64(der)}", f"{alg} signature DER-encoded instead of r || s"


def padded_sig(c: Ctx):
    # Signatures of these keys are 64 or 256 bytes: their base64url needs padding.
    token, alg = c.token(c.alg(["ES256", "RS256", "RS512", "PS256"]))
    head, sig = split_sig(token)
    return f"{head}.{padded(sig)}", f"{alg} signature base64url with '=' padding"


def std_alphabet_sig(c: Ctx):
    while True:
        token, alg = c.token()
        head, sig = token.rsplit(".", 1)
        if "-" in sig or "_" in sig:
            return f"{head}.{sig.replace('-', '+').replace('_', '/')}", f"{alg} signature in the standard base64 alphabet"


def moved_sig(c: Ctx):
    alg = c.alg()
    a, b = c.token(alg)[0], c.token(alg)[0]
    return f"{a.rsplit('.', 1)[0]}.{b.rsplit('.', 1)[1]}", f"{alg} signature of another token"


# Structure and encoding


def padded_segment(which: str):
    def case(c: Ctx):
        while True:
            alg = c.alg()
            header, claims = c.header(alg, typ=c.pick("JWT", "JOSE")), c.claims()
            if len(dumps(header if which == "header" else claims)) % 3:  # padding needed
                kw = {"enc_header": padded} if which == "header" else {"enc_claims": padded}
                return c.token(alg, header=header, claims=claims, **kw)[0], f"{alg} {which} base64url with '=' padding (signed)"
    return case


def std_alphabet_claims(c: Ctx):
    while True:
        claims = c.claims(note="".join(c.rng.choice(string.printable[:94]) for _ in range(12)))
        encoded = base64.b64encode(dumps(claims)).decode()
        if "+" in encoded or "/" in encoded:
            token, alg = c.token(claims=claims, enc_claims=std_alphabet)
            return token, f"{alg} claims in the standard base64 alphabet (signed)"


def segments(note, build):
    def case(c: Ctx):
        token, alg = c.token()
        return build(c, *token.split(".")), f"{alg} {note}"
    return case


def whitespace(c: Ctx, h, cl, s):
    return c.pick(f"{h}. {cl}.{s}", f"{h}.{cl}.{s[:10]} {s[10:]}", f"{h}.{cl[:5]} {cl[5:]}.{s}")


def json_serialization(c: Ctx):
    token, alg = c.token()
    h, cl, s = token.split(".")
    flattened = json.dumps({"protected": h, "payload": cl, "signature": s}, separators=(",", ":"))
    return flattened, f"{alg} JWS JSON serialization (flattened)"


def raw(note, build, part="claims"):
    """A token signed over exactly the bytes `build(c, alg)` returns, as its claims (or header)."""
    def case(c: Ctx):
        alg = c.alg()
        data = build(c, alg)
        token, _ = c.token(alg, **{part: data})
        return token, f"{alg} {note}"
    return case


def raw_claim(note, text, name="x"):
    """Claims with `name` set to the JSON text `text(c)`, as is."""
    return raw(note, lambda c, alg: with_raw({**c.claims(), name: f"@{name}"}, {name: text(c)}))


def dup_claim(name, first):
    return lambda c, alg: members([(name, first(c)), *c.claims().items()])


def escaped_dup_sub(c: Ctx, alg):
    text = dumps(c.claims()).decode()
    return ("{" + f'"\\u0073ub": {json.dumps(c.workload())}, ' + text[1:]).encode()


def escaped_names(c: Ctx, alg):
    return dumps(c.claims()).decode().replace('"sub"', '"\\u0073ub"').replace('"aud"', '"a\\u0075d"').encode()


def deep_nesting(c: Ctx):
    depth = c.pick(129, 200, 500)
    return "[" * depth + "]" * depth


def big_token(c: Ctx):
    token, alg = c.token(claims=c.claims(blob="a" * c.pick(12_500, 20_000)))
    return token, f"{alg} token of {len(token)} bytes (a large extra claim)"


def valid(alg):
    return lambda c: (c.token(alg)[0], f"{alg} valid")


def utf(*codecs):
    return lambda c, obj: json.dumps(obj).encode(c.pick(*codecs))


UTF16_CODECS = ("utf-16", "utf-16-le", "utf-16-be")
BOM8 = b"\xef\xbb\xbf"

# name -> build(ctx) -> (token, note). The "valid_*" cases must be accepted
# by both sides: the test checks its own setup with them.
CASES = {f"valid_{alg}": valid(alg) for alg in ALGS}
CASES.update({
    "valid_deep_path": lambda c: c.with_sub(c.workload(depth=c.rng.randint(8, 40))),
    "valid_upper_case_path": lambda c: c.with_sub(f"{TD}/NS/{c.segment().upper()}/SA/Bot"),
    "valid_dots_in_segments": lambda c: c.with_sub(f"{TD}/{c.pick('...', '.a', 'a..b', '.-_', '..a')}/x"),
    "valid_id_2048_bytes": lambda c: c.with_sub(path_of_length(c, 2048)),
    "valid_typ_jose": lambda c: c.with_header("typ=JOSE", typ="JOSE"),
    "valid_typ_absent": lambda c: c.with_header("no typ", typ=DROP),
    "valid_aud_array": lambda c: c.with_claims("aud=[ours]", aud=[AUD]),
    "valid_aud_array_with_others": lambda c: c.with_claims("aud=[other, ours, other]", aud=[f"{TD}/x", AUD, "reports"]),
    "valid_no_iat": lambda c: c.with_claims("no iat", iat=DROP),
    "valid_no_jti": lambda c: c.with_claims("no jti", jti=DROP),
    "valid_nbf_past": lambda c: c.with_claims("nbf=now-60", nbf=c.now - 60),
    "valid_exp_soon": lambda c: c.with_claims("exp=now+10", exp=c.now + 10),
    "valid_lifetime_just_under_24h": lambda c: c.with_claims("exp-iat=24h-2m", exp=c.now + 86400 - 120),
    "valid_extra_claims": lambda c: c.with_claims("extra claims (iss, groups, nested)", iss="https://issuer.example",
                                                  groups=["a", "b"], meta={"k": [1, 2, {"x": None}]}),
    "valid_pretty_json": raw("claims as indented JSON", lambda c, alg: json.dumps(c.claims(), indent=2).encode()),
    "valid_escaped_member_names": raw("claims with \\u-escaped member names", escaped_names),
})
CASES.update({
    # alg, kid
    "alg_none": alg_none,
    "alg_hs256_public_key_secret": hs256_public_key,
    "alg_unknown": lambda c: c.with_header(f"alg={(a := c.pick('ES256K', 'EdDSA', 'RS1', 'es256', 'ES256 ', 'HS512'))}", alg=a),
    "alg_missing": lambda c: c.with_header("no alg", alg=DROP),
    "alg_not_string": lambda c: c.with_header(f"alg={json.dumps(a := c.pick(256, None, ['ES256'], True))}", alg=a),
    "alg_curve_mismatch": curve_mismatch,
    "alg_ec_kid_rsa": ec_alg_rsa_kid,
    "alg_rsa_kid_ec": rsa_alg_ec_kid,
    "alg_other_rsa_alg_same_key": rsa_other_alg,
    "kid_missing": lambda c: c.with_header("no kid", kid=DROP),
    "kid_empty": lambda c: c.with_header("kid=''", kid=""),
    "kid_unknown": lambda c: c.with_header("unknown kid", kid=c.pick("no-such-key", "DIFF-ES256", "diff-es256 ")),
    "kid_not_string": lambda c: c.with_header(f"kid={json.dumps(k := c.pick(1, None, ['diff-es256']))}", kid=k),
    # typ
    "typ_lower_case": lambda c: c.with_header("typ=jwt", typ="jwt"),
    "typ_other": lambda c: c.with_header(f"typ={(t := c.pick('at+jwt', 'JWS', 'application/jwt', 'JWT '))}", typ=t),
    "typ_empty_string": lambda c: c.with_header("typ=''", typ=""),
    "typ_null": lambda c: c.with_header("typ=null", typ=None),
    "typ_falsy_non_string": lambda c: c.with_header(f"typ={json.dumps(t := c.pick(0, False, []))}", typ=t),
    "typ_truthy_non_string": lambda c: c.with_header(f"typ={json.dumps(t := c.pick(1, True, ['JWT']))}", typ=t),
    # header parameters the standard does not describe
    "header_jku": lambda c: c.with_header("jku=https://evil.example/keys", jku="https://evil.example/keys"),
    "header_x5u": lambda c: c.with_header("x5u=https://evil.example/cert", x5u="https://evil.example/cert"),
    "header_x5c": lambda c: c.with_header("x5c=[…]", x5c=["MIIBAAAA"]),
    "header_jwk": lambda c: c.with_header("embedded jwk", jwk={"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
    "header_cty": lambda c: c.with_header(f"cty={(t := c.pick('JWT', 'json'))}", cty=t),
    "header_crit_unknown": lambda c: c.with_header("crit=[exp], exp=now", crit=["exp"], exp=c.now),
    "header_crit_b64": lambda c: c.with_header("crit=[b64], b64=true", crit=["b64"], b64=True),
    "header_b64_true": lambda c: c.with_header("b64=true", b64=True),
    "header_private": lambda c: c.with_header("private header parameter", foo="bar"),
    # sub
    "sub_upper_case_trust_domain": lambda c: c.with_sub(c.pick("spiffe://EXAMPLE.org", "spiffe://Example.Org",
                                                               "spiffe://example.ORG") + "/ns/a/sa/b"),
    "sub_upper_case_scheme": lambda c: c.with_sub(c.pick("SPIFFE", "Spiffe", "spiFFe") + "://example.org/ns/a/sa/b"),
    "sub_trust_domain_only": lambda c: c.with_sub(TD),
    "sub_trailing_slash": lambda c: c.with_sub(c.pick(TD + "/", c.workload() + "/")),
    "sub_empty_segment": lambda c: c.with_sub(c.pick(f"{TD}//ns/a", f"{TD}/ns//a", f"{TD}/ns/a//")),
    "sub_dot_segment": lambda c: c.with_sub(TD + c.pick("/./a", "/../a", "/a/.", "/a/..", "/a/./b", "/a/../b")),
    "sub_percent_encoding": lambda c: c.with_sub(TD + c.pick("/ns/%41", "/a%2Fb", "/%2e%2e/x")),
    "sub_percent_encoded_trust_domain": lambda c: c.with_sub("spiffe://ex%61mple.org/a"),
    "sub_port": lambda c: c.with_sub(f"spiffe://example.org:{c.pick('443', '8080', '')}/a"),
    "sub_userinfo": lambda c: c.with_sub(c.pick("spiffe://user@example.org/a", "spiffe://u:p@example.org/a")),
    "sub_query": lambda c: c.with_sub(c.workload() + c.pick("?x=1", "?")),
    "sub_fragment": lambda c: c.with_sub(c.workload() + c.pick("#f", "#")),
    "sub_other_scheme": lambda c: c.with_sub(c.pick("https://example.org/a", "spiffe:/example.org/a", "spiffe:example.org/a",
                                                    "example.org/a", "//example.org/a", "urn:spiffe:example.org:a")),
    "sub_bad_path_char": lambda c: c.with_sub(f"{TD}/a{c.pick(*BAD_PATH_CHARS)}b"),
    "sub_bad_trust_domain_char": lambda c: c.with_sub(c.pick("spiffe://exa mple.org/a", "spiffe://exam+ple.org/a",
                                                             "spiffe://[::1]/a", "spiffe://example.org\u0000/a",
                                                             "spiffe://ex\u00e4mple.org/a")),
    "sub_id_over_2048_bytes": lambda c: c.with_sub(path_of_length(c, c.pick(2049, 2050, 4096))),
    "sub_trust_domain_over_255_bytes": lambda c: c.with_sub("spiffe://" + "a" * 244 + ".example.org/a"),
    "sub_other_trust_domain": lambda c: c.with_sub(c.pick("spiffe://other.org/a", "spiffe://example.org.evil/a",
                                                          "spiffe://evil.example.org/a", "spiffe://example.or/a",
                                                          "spiffe://example_org/a")),
    "sub_whitespace": lambda c: c.with_sub(c.pick(" ", "\t", "\n") + c.workload() if c.rng.random() < 0.5
                                           else c.workload() + c.pick(" ", "\t")),
    "sub_trailing_newline": lambda c: c.with_sub(c.workload() + "\n"),
    "sub_empty": lambda c: c.with_sub(""),
    "sub_not_string": lambda c: c.with_claims(f"sub={short(s := c.pick(123, None, True, [f'{TD}/a'], {'id': f'{TD}/a'}))}", sub=s),
    "sub_missing": lambda c: c.with_claims("no sub", sub=DROP),
    # aud
    "aud_array_without_ours": lambda c: c.with_claims("aud=[others]", aud=[f"{TD}/other", "reports"]),
    "aud_string_other": lambda c: c.with_claims(f"aud={(a := c.pick('reports', AUD + '/', AUD.upper(), TD + '/'))}", aud=a),
    "aud_empty_array": lambda c: c.with_claims("aud=[]", aud=[]),
    "aud_empty_string": lambda c: c.with_claims("aud=''", aud=""),
    "aud_missing": lambda c: c.with_claims("no aud", aud=DROP),
    "aud_not_string": lambda c: c.with_claims(f"aud={json.dumps(a := c.pick(1, True, None, {'aud': AUD}))}", aud=a),
    "aud_array_with_non_string": lambda c: c.with_claims(f"aud={json.dumps(a := c.pick([AUD, 1], [AUD, None], [[AUD]]))}", aud=a),
    # times (the shipped policy: 30 s of leeway, 24 h of lifetime at most)
    "exp_missing": lambda c: c.with_claims("no exp", exp=DROP),
    "exp_missing_no_iat": lambda c: c.with_claims("no exp, no iat", exp=DROP, iat=DROP),
    "exp_past": lambda c: c.with_claims(f"exp=now-{(d := c.pick(60, 3600, 10**6))}", exp=c.now - d, iat=c.now - d - 600),
    "exp_in_leeway": lambda c: c.with_claims(f"exp=now-{(d := c.pick(5, 10, 20))} (inside the 30 s leeway)",
                                             exp=c.now - d, iat=c.now - 600),
    "nbf_future": lambda c: c.with_claims("nbf=now+3600", nbf=c.now + 3600),
    "nbf_in_leeway": lambda c: c.with_claims(f"nbf=now+{(d := c.pick(5, 10, 20))} (inside the 30 s leeway)", nbf=c.now + d),
    "iat_future": lambda c: c.with_claims("iat=now+3600", iat=c.now + 3600, exp=c.now + 7200),
    "iat_in_leeway": lambda c: c.with_claims("iat=now+10", iat=c.now + 10),
    "exp_float_fraction": lambda c: c.with_claims(f"exp={(e := c.now + 3600 + c.pick(0.5, 0.25))}", exp=e),
    "exp_float_integral": lambda c: c.with_claims(f"exp={(e := c.now + 3600.0)}", exp=e),
    "nbf_float": lambda c: c.with_claims("nbf=now-60.5", nbf=c.now - 60.5),
    "iat_float": lambda c: c.with_claims("iat=now+0.5", iat=c.now + 0.5),
    "exp_string": lambda c: c.with_claims("exp as a string", exp=str(c.now + 3600)),
    "nbf_string": lambda c: c.with_claims("nbf as a string", nbf=str(c.now - 60)),
    "iat_string": lambda c: c.with_claims("iat as a string", iat=str(c.now)),
    "exp_not_number": lambda c: c.with_claims(f"exp={json.dumps(e := c.pick(None, True, [1], {'t': 1}))}", exp=e),
    "iat_not_number": lambda c: c.with_claims(f"iat={json.dumps(i := c.pick(None, True, [1]))}", iat=i),
    "exp_negative": lambda c: c.with_claims("exp=-1, no iat", exp=-1, iat=DROP),
    "nbf_negative": lambda c: c.with_claims("nbf=-1", nbf=-1),
    "iat_negative": lambda c: c.with_claims("iat=-1", iat=-1),
    "exp_huge": lambda c: c.with_claims(f"exp={(e := c.pick(2**53, 2**63, 2**64, 10**20, 10**30))}", exp=e),
    "exp_out_of_double_range": raw_claim("exp=1e400", lambda c: "1e400", name="exp"),
    "nbf_huge": lambda c: c.with_claims("nbf=2**64", nbf=2**64),
    "iat_huge": lambda c: c.with_claims(f"iat={(i := c.pick(2**64, 10**20))}", iat=i),
    "lifetime_over_24h": lambda c: c.with_claims("exp-iat=25h", exp=c.now + 90000),
    "lifetime_over_24h_no_iat": lambda c: c.with_claims("no iat, exp=now+25h", exp=c.now + 90000, iat=DROP),
    "lifetime_over_24h_old_iat": lambda c: c.with_claims("iat=now-24h, exp=now+1h", iat=c.now - 86400, exp=c.now + 3600),
    # other claims
    "jti_not_string": lambda c: c.with_claims(f"jti={json.dumps(j := c.pick(1, None, ['a']))}", jti=j),
    "iss_not_string": lambda c: c.with_claims("iss=1", iss=1),
    # signatures
    "sig_bit_flip": sig_case(bit_flip),
    "sig_truncated": sig_case(lambda c, a, h, s: (f"{h}.{b64(s[:-c.pick(1, 2, len(s) // 2)])}", "signature truncated")),
    "sig_extended": sig_case(lambda c, a, h, s: (f"{h}.{b64(s + bytes(c.pick(1, 2)))}", "signature with zero bytes appended")),
    "sig_empty": sig_case(lambda c, a, h, s: (f"{h}.", "empty signature")),
    "sig_zeros": sig_case(lambda c, a, h, s: (f"{h}.{b64(bytes(len(s)))}", "all-zero signature")),
    "sig_der_ecdsa": der_sig,
    "sig_padded_base64": padded_sig,
    "sig_standard_base64": std_alphabet_sig,
    "sig_of_other_token": moved_sig,
    "sig_untrusted_key": untrusted_key,
    "sig_other_trusted_key": other_trusted_key,
    # structure and encoding
    "header_padded_base64": padded_segment("header"),
    "claims_padded_base64": padded_segment("claims"),
    "claims_standard_base64": std_alphabet_claims,
    "four_parts": segments("four parts", lambda c, h, cl, s: c.pick(f"{h}.{cl}.{s}.{s}", f"{h}.{cl}.{cl}.{s}", f"{h}.{cl}.{s}.")),
    "two_parts": segments("two parts", lambda c, h, cl, s: c.pick(f"{h}.{cl}", f"{h}.{s}", f"{h}{cl}.{s}")),
    "one_part": segments("one part", lambda c, h, cl, s: c.pick(h, f"{h}{cl}{s}")),
    "empty_header_segment": segments("empty header segment", lambda c, h, cl, s: f".{cl}.{s}"),
    "whitespace_in_token": segments("a space inside the token", whitespace),
    "json_serialization": json_serialization,
    "header_not_json": raw("header is not a JSON object", lambda c, alg: c.pick(b"not json", b'{"alg":"ES256"', b"", b"null", b"[]"),
                           part="header"),
    "header_not_utf8": raw("header holds a non-UTF-8 byte", lambda c, alg: dumps(c.header(alg)).replace(b'"JWT"', b'"JW\xff"'),
                           part="header"),
    "header_utf16": raw("header JSON in UTF-16", lambda c, alg: utf(*UTF16_CODECS)(c, c.header(alg)), part="header"),
    "header_bom": raw("header JSON after a UTF-8 byte-order mark", lambda c, alg: BOM8 + dumps(c.header(alg)), part="header"),
    "header_duplicate_alg": raw("alg twice (first none or HS256, last the real one)", part="header", build=lambda c, alg: members(
        [("alg", c.pick("none", "HS256")), ("typ", "JWT"), ("kid", c.keys[alg]["kid"]), ("alg", alg)])),
    "header_duplicate_kid": raw("kid twice (first unknown, last the real one)", part="header", build=lambda c, alg: members(
        [("alg", alg), ("kid", "no-such-key"), ("typ", "JWT"), ("kid", c.keys[alg]["kid"])])),
    "header_trailing_data": raw("header JSON followed by more", lambda c, alg: dumps(c.header(alg)) + c.pick(b" x", b"{}", b"\x00"),
                                part="header"),
    "claims_not_json": raw("claims are not a JSON object",
                           lambda c, alg: c.pick(b"not json", b'{"sub":', b"", b"null", b"[1]", b'"spiffe://example.org/a"')),
    "claims_not_utf8": raw("claims hold a non-UTF-8 byte", lambda c, alg: dumps(c.claims())[:-1] + b', "x": "a\xffb"}'),
    "claims_utf16": raw("claims JSON in UTF-16 or UTF-32", lambda c, alg: utf(*UTF16_CODECS, "utf-32")(c, c.claims())),
    "claims_bom": raw("claims JSON after a UTF-8 byte-order mark", lambda c, alg: BOM8 + dumps(c.claims())),
    "claims_duplicate_sub": raw("sub twice (first another workload, last this one)", dup_claim("sub", lambda c: c.workload())),
    "claims_duplicate_sub_escaped": raw("sub twice, once spelt \\u0073ub", escaped_dup_sub),
    "claims_duplicate_aud": raw("aud twice (first another, last ours)", dup_claim("aud", lambda c: "reports")),
    "claims_duplicate_exp": raw("exp twice (first expired, last valid)", dup_claim("exp", lambda c: c.now - 3600)),
    "claims_nan": raw_claim("an extra claim NaN or Infinity", lambda c: c.pick("NaN", "Infinity", "-Infinity")),
    "claims_iat_nan": raw_claim("iat=NaN or Infinity", lambda c: c.pick("NaN", "Infinity"), name="iat"),
    "claims_number_out_of_range": raw_claim("an extra claim 1e400", lambda c: "1e400"),
    "claims_lone_surrogate": raw_claim("an extra claim with a lone surrogate escape", lambda c: '"a\\ud800b"'),
    "claims_deep_nesting": raw_claim("an extra claim nested more than 128 deep", deep_nesting),
    "claims_trailing_data": raw("claims JSON followed by more", lambda c, alg: dumps(c.claims()) + c.pick(b" x", b"{}", b"]")),
    "token_over_16k": big_token,
})
VALID = [name for name in CASES if name.startswith("valid_")]


# --- the two verdicts ------------------------------------------------------------


@dataclass
class Verdict:
    accepted: bool
    spiffe_id: str | None = None
    why: str = ""  # the refusal: modelgate's status, reason and detail; py-spiffe's exception

    def __str__(self):
        return f"accept {short(self.spiffe_id or 'None', 70)}" if self.accepted else f"refuse {self.why}"


def py_spiffe(token: str, jwt_bundle: JwtBundle) -> Verdict:
    try:
        parsed = JwtSvid.parse_and_validate(token, jwt_bundle, {AUD})
    except Exception as e:  # noqa: BLE001 — any exception is a refusal; its class is recorded
        cause = f"({type(e.__cause__).__name__})" if e.__cause__ else ""
        return Verdict(False, why=f"{type(e).__name__}{cause}: {str(e)[:70]}")
    return Verdict(True, str(parsed.spiffe_id))


def disagreement(mg: Verdict, py: Verdict) -> str | None:
    if mg.accepted and py.accepted:
        return None if mg.spiffe_id == py.spiffe_id else "different_id"
    if mg.accepted != py.accepted:
        return "modelgate_laxer" if mg.accepted else "modelgate_stricter"
    return None


def test_modelgate_and_py_spiffe_agree_on_every_jwt_svid():
    started = time.monotonic()
    keys = {alg: new_key(alg, f"diff-{alg.lower()}") for alg in ALGS}
    strangers = {alg: new_key(alg, f"diff-{alg.lower()}") for alg in ("ES256", "RS256")}
    jwt_bundle = JwtBundle(TrustDomain("example.org"), {k["kid"]: k.get_op_key("verify") for k in keys.values()})
    policy = {
        "trust_domains": [{"name": "example.org", "jwt_bundle": bundle(keys)}],
        "rules": [{"id": "every-workload", "effect": "allow", "workloads": [f"{TD}/**"], "providers": ["openai"],
                   "models": ["*"]}],
    }
    rng = random.Random(SEED)
    names = list(CASES) + [rng.choice(list(CASES)) for _ in range(max(0, TOKENS - len(CASES)))]

    results = []  # (case, note, request id, status, reason, py-spiffe's verdict)
    with running_gateway(policy) as gw, requests.Session() as http:
        for i, name in enumerate(names):
            # Each token its own RNG: the population does not depend on how
            # many draws an earlier case made.
            token, note = CASES[name](Ctx(keys, strangers, random.Random(f"{SEED}:{i}"), int(time.time())))
            # Both verdicts within milliseconds of `now`, and no case within
            # 5 s of a time boundary: both sides see the same time.
            r = http.post(f"{gw.openai_base}/chat/completions", json=BODY, timeout=10,
                          headers={"authorization": f"Bearer {token}"})
            results.append((name, note, r.headers.get("x-request-id"), r.status_code, r.headers.get("x-modelgate-reason"),
                            py_spiffe(token, jwt_bundle)))
        sent = time.monotonic()
        records = audit_records(gw, {rid for _, _, rid, *_ in results})

    agree = collections.Counter()
    found = collections.defaultdict(list)  # "<kind>:<case>" -> [(note, modelgate's verdict, py-spiffe's)]
    by_case = collections.defaultdict(list)
    for name, note, rid, status, reason, py in results:
        record = records.get(rid, {})
        if status == 200:
            mg = Verdict(True, (record.get("workload") or {}).get("spiffe_id"))
        else:
            mg = Verdict(False, why=f"{status} {reason or record.get('reason')}/{record.get('detail')}")
        by_case[name].append((mg, py))
        kind = disagreement(mg, py)
        if kind is None:
            agree["agree-accept" if mg.accepted else "agree-refuse"] += 1
        else:
            found[f"{kind}:{name}"].append((note, mg, py))

    print_summary(len(results), agree, found, sent - started, time.monotonic() - started)

    broken = [(name, str(mg), str(py)) for name in VALID for mg, py in by_case[name] if not (mg.accepted and py.accepted)]
    assert broken == [], f"valid tokens refused (the setup is wrong): {broken[:5]}"
    unexplained = sorted(set(found) - set(ALLOWED))
    assert unexplained == [], "disagreements outside ALLOWED:\n" + "\n".join(
        f"  {cat} ×{len(found[cat])}: {found[cat][0][0]} — modelgate {found[cat][0][1]}; py-spiffe {found[cat][0][2]}"
        for cat in unexplained)


def audit_records(gw, ids: set, timeout=10.0) -> dict:
    """The audit records of `ids`, by request id, once Envoy has flushed them."""
    deadline = time.monotonic() + timeout
    while True:
        by_id = {r.get("request_id"): r for r in gw.audit_records()}
        if ids <= by_id.keys() or time.monotonic() > deadline:
            return by_id
        time.sleep(0.1)


def print_summary(total, agree, found, send_secs, all_secs):
    print(f"\n\nmodelgate vs py-spiffe: {total} tokens of {len(CASES)} cases, seed {SEED}, "
          f"sent in {send_secs:.1f} s ({all_secs:.1f} s in all)")
    print(f"  {'agree-accept':<52} {agree['agree-accept']:>5}")
    print(f"  {'agree-refuse':<52} {agree['agree-refuse']:>5}")
    for cat in sorted(found):
        note, mg, py = found[cat][0]
        print(f"  {cat:<52} {len(found[cat]):>5}  {'allowed' if cat in ALLOWED else 'NOT ALLOWED'}")
        print(f"      e.g. {note}\n      modelgate: {mg}\n      py-spiffe: {py}")
    stale = sorted(set(ALLOWED) - set(found))
    if stale:
        print(f"  allowed but not seen in this run: {', '.join(stale)}")
