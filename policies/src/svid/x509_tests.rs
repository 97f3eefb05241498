use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/x509/", $name, ".pem"))
    };
}

/// 2026-11-24, inside the fixtures' validity.
const NOW: u64 = 1_795_500_000;

fn check(pem: &[u8]) -> Result<X509Svid> {
    validate(&leaf_der(pem)?, &|td| td == "example.org", NOW)
}

#[test]
fn accepts_a_valid_svid_and_reads_its_serial_and_validity() {
    let svid = check(fixture!("bot")).unwrap();
    assert_eq!(svid.spiffe_id.as_str(), "spiffe://example.org/ns/support/sa/bot");
    assert_eq!(svid.serial, "1234ABCD");
    assert_eq!((svid.not_before, svid.not_after), (1_767_225_600, 4_922_899_200));
}

#[test]
fn accepts_pem_url_encoded_as_in_xfcc() {
    let pem = std::str::from_utf8(fixture!("bot")).unwrap();
    let encoded =
        pem.replace('\n', "%0A").replace(' ', "%20").replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
    assert_eq!(check(encoded.as_bytes()).unwrap().serial, "1234ABCD");
}

/// One case per X.509-SVID rule modelgate enforces (standard §5.2).
#[test]
fn refuses_what_the_standard_refuses() {
    let cases: &[(&[u8], X509SvidError)] = &[
        (fixture!("two_uri_sans"), X509SvidError::ManyUriSans),
        (fixture!("spiffe_then_https"), X509SvidError::ManyUriSans),
        (fixture!("trailing_slash"), X509SvidError::NotSpiffeId),
        (fixture!("dot_segment"), X509SvidError::NotSpiffeId),
        (fixture!("https_only"), X509SvidError::NotSpiffeId),
        (fixture!("no_uri_san"), X509SvidError::NoUriSan),
        (fixture!("ca_leaf"), X509SvidError::IsCa),
        (fixture!("cert_sign"), X509SvidError::SigningKeyUsage),
        (fixture!("crl_sign"), X509SvidError::SigningKeyUsage),
        (fixture!("trust_domain_only"), X509SvidError::NoPath),
        (fixture!("unknown_domain"), X509SvidError::UntrustedDomain),
        (fixture!("expired"), X509SvidError::Expired),
        (fixture!("not_yet_valid"), X509SvidError::NotYetValid),
        (fixture!("ca"), X509SvidError::IsCa),
    ];
    for (pem, want) in cases {
        assert_eq!(check(pem).unwrap_err(), *want, "{want:?}");
    }
}

#[test]
fn garbage_is_unreadable_not_a_panic() {
    for input in
        [&b""[..], b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", b"%%%", b"\x30\x03\x02\x01\x00"]
    {
        let r = leaf_der(input).and_then(|der| validate(&der, &|_| true, NOW));
        assert_eq!(r.unwrap_err(), X509SvidError::Unreadable);
    }
}
