use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/x509/", $name, ".pem"))
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

/// A forwarded leaf is checked against the trust domain's X.509
/// authorities when they are configured: P-256 and RSA, the right CA only.
#[test]
fn a_forwarded_leaf_must_carry_a_configured_authoritys_signature() {
    let ca = Authority::from_pem(fixture!("ca")).unwrap();
    let impostor = Authority::from_pem(fixture!("ca_impostor")).unwrap();
    let rsa_ca = Authority::from_pem(fixture!("rsa_ca")).unwrap();
    let bot = leaf_der(fixture!("bot")).unwrap();
    let impostor_bot = leaf_der(fixture!("impostor_bot")).unwrap();
    let rsa_bot = leaf_der(fixture!("rsa_bot")).unwrap();
    assert!(ca.issued(&bot));
    assert!(!ca.issued(&impostor_bot), "the same subject, another key");
    assert!(impostor.issued(&impostor_bot) && !impostor.issued(&bot));
    assert!(rsa_ca.issued(&rsa_bot) && !rsa_ca.issued(&bot) && !ca.issued(&rsa_bot));
    // A flipped bit in the signed part breaks the signature.
    let mut tampered = bot.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 1;
    assert!(!ca.issued(&tampered));

    let known = |td: &str| td == "example.org";
    let authorities = [ca.clone()];
    let only_ca = |_: &str| &authorities[..];
    assert!(validate_forwarded(&bot, &known, only_ca, NOW).is_ok());
    assert_eq!(validate_forwarded(&impostor_bot, &known, only_ca, NOW), Err(X509SvidError::UntrustedIssuer));
    assert_eq!(X509SvidError::UntrustedIssuer.denial().detail.as_deref(), Some("x509_untrusted_issuer"));
    // None configured: the hop's word is taken, as before.
    assert!(validate_forwarded(&impostor_bot, &known, |_: &str| &[][..], NOW).is_ok());
    // Not a CA, not a certificate: refused as configuration.
    assert!(Authority::from_pem(fixture!("bot")).unwrap_err().contains("not a CA"));
    assert!(Authority::from_pem(b"hello").is_err());
}
