"""Regenerates the X.509 fixtures of the SPIFFE conformance table
(policies/src/identity/svid/conformance.rs), from the repository root:

    .venv/bin/python policies/testdata/conformance/gen.py

Every leaf is issued by the example.org CA of policies/testdata/x509 (or by an
intermediate it signs), built by tests/fixtures/x509/gen.py's functions, with
the same profile as the fixtures there (critical
KeyUsage digitalSignature, cA=false, 2026-01-01 to 2126-01-01). Only the
certificates are written: no test presents them in a handshake.
"""

import importlib.util
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
# The CA these leaves chain to: the unit tests' own (policies/testdata/x509).
X509 = HERE.parent / "x509"

spec = importlib.util.spec_from_file_location("x509_fixtures", ROOT / "tests" / "fixtures" / "x509" / "gen.py")
base = importlib.util.module_from_spec(spec)
spec.loader.exec_module(base)
U, DNS = base.U, base.DNS
BOT = "spiffe://example.org/ns/support/sa/bot"


def write(name, cert):
    (HERE / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def main():
    ca = x509.load_pem_x509_certificate((X509 / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((X509 / "ca.key").read_bytes(), password=None)

    # XV-2: a leaf issued by an intermediate CA of example.org.
    k = base.key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.org intermediate CA")])
    intermediate = (x509.CertificateBuilder().subject_name(name).issuer_name(ca.subject).public_key(k.public_key())
                    .serial_number(x509.random_serial_number()).not_valid_before(base.FROM).not_valid_after(base.UNTIL)
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .add_extension(base.key_usage(cert_sign=True, crl_sign=True), critical=True)
                    .add_extension(x509.SubjectAlternativeName([U("spiffe://example.org")]), critical=False)
                    .add_extension(x509.SubjectKeyIdentifier.from_public_key(k.public_key()), critical=False)
                    .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                    .sign(ca_key, hashes.SHA256()))
    write("intermediate", intermediate)
    write("via_intermediate", base.leaf(intermediate, k, [U(BOT)])[0])

    # XV-4: no Subject at all, so the URI SAN is critical (RFC 5280 §4.1.2.6).
    leaf_key = base.key()
    empty = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.subject)
             .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(base.FROM).not_valid_after(base.UNTIL)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(base.key_usage(sign=True), critical=True)
             .add_extension(x509.SubjectAlternativeName([U(BOT)]), critical=True)
             .sign(ca_key, hashes.SHA256()))
    write("empty_subject", empty)

    prefix = "spiffe://example.org/"
    leaves = {
        # XV-11 / XV-13: the non-SPIFFE URI first (Envoy refuses it: no bundle for its first URI).
        "https_then_spiffe": [U("https://example.org/x"), U(BOT)],
        # ID-1, sampled as URI SANs.
        "id_query": [U("spiffe://example.org/ns/a?x=1")],
        "id_fragment": [U("spiffe://example.org/ns/a#f")],
        "id_port": [U("spiffe://example.org:8080/ns/a")],
        "id_userinfo": [U("spiffe://u@example.org/ns/a")],
        "id_percent": [U("spiffe://example.org/ns/%41")],
        "id_empty_segment": [U("spiffe://example.org/ns//a")],
        "id_upper_trust_domain": [U("spiffe://EXAMPLE.org/ns/a")],
        # ID-2, sampled as URI SANs.
        "id_edge": [U("spiffe://td_1.example-2/Aa-Zz_0.9/.-_")],
        "id_2048": [U(prefix + "a" * (2048 - len(prefix)))],
    }
    for name, sans in leaves.items():
        write(name, base.leaf(ca, ca_key, sans)[0])


if __name__ == "__main__":
    main()
