use sha2::{Digest, Sha256};

use super::*;

const HOP: &str = "spiffe://example.org/ns/edge/sa/front-proxy";
const BOT_PEM: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/x509/bot.pem"));

fn url_encoded(pem: &[u8]) -> String {
    let pem = std::str::from_utf8(pem).unwrap();
    pem.replace('\n', "%0A").replace(' ', "%20").replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
}

fn hop() -> SpiffeId {
    SpiffeId::parse(HOP).unwrap()
}

fn header(value: &str) -> Vec<(String, String)> {
    vec![("x-forwarded-client-cert".to_string(), value.to_string())]
}

#[test]
fn parses_elements_pairs_and_quoted_values() {
    let e = parse(r#"By=spiffe://a/x;Hash=ab;Subject="CN=a\"b\;c=d,O=Org\, Inc";URI=spiffe://a/y;URI=spiffe://a/z,By=spiffe://b/x;Cert="x,y;z""#).unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].subject.as_deref(), Some(r#"CN=a"b\;c=d,O=Org\, Inc"#));
    assert_eq!(e[0].uri, ["spiffe://a/y", "spiffe://a/z"]);
    assert_eq!((e[1].by.as_slice(), e[1].cert.as_deref()), (&["spiffe://b/x".to_string()][..], Some("x,y;z")));
}

#[test]
fn refuses_what_readers_could_split_differently() {
    for (value, detail) in [
        (r#"By=a;Cert="x"#, "xfcc_unbalanced_quote"),
        (r#"By=a;Cert=x"y"#, "xfcc_stray_quote"),
        ("By=a;;Hash=b", "xfcc_malformed"),
        ("By=a,,By=b", "xfcc_empty_pair"),
        ("By=a;Hash=b;Hash=c", "xfcc_repeated_key"),
        ("By=a;Cert=x;Cert=y", "xfcc_repeated_key"),
        ("By=a;Evil=b", "xfcc_unknown_key"),
        ("By=a;Hash", "xfcc_malformed"),
        (r#"By=a;Cert="x"y"#, "xfcc_malformed"),
        ("", "xfcc_empty_pair"),
    ] {
        assert_eq!(parse(value).unwrap_err(), XfccError(detail), "{value}");
    }
}

#[test]
fn takes_the_leaf_from_the_last_element_of_the_trusted_hop() {
    let cert = url_encoded(BOT_PEM);
    // An earlier element (the client's own, say) is never read.
    let value = format!(r#"By={HOP};Cert="garbage",By={HOP};Cert="{cert}""#);
    let der = forwarded_leaf(&header(&value), &hop(), Some(HOP)).unwrap().unwrap();
    assert_eq!(der, x509::leaf_der(BOT_PEM).unwrap());
    // Only the trusted hop, as the verified mTLS peer, may send it.
    let d = forwarded_leaf(&header(&value), &hop(), Some("spiffe://example.org/ns/other/sa/x")).unwrap_err();
    assert_eq!(d.detail.as_deref(), Some("xfcc_untrusted_peer"));
    let d = forwarded_leaf(&header(&value), &hop(), None).unwrap_err();
    assert_eq!((d.reason, d.detail.as_deref()), (Reason::InvalidSvid, Some("xfcc_no_verified_peer")));
    assert_eq!(forwarded_leaf(&[], &hop(), None).unwrap(), None);
}

#[test]
fn refuses_elements_the_trusted_hop_did_not_add() {
    let cert = url_encoded(BOT_PEM);
    let der = x509::leaf_der(BOT_PEM).unwrap();
    let digest: String = Sha256::digest(&der).iter().map(|b| format!("{b:02x}")).collect();
    let cases = [
        (format!(r#"By=spiffe://evil/x;Cert="{cert}""#), "xfcc_untrusted_hop"),
        (format!(r#"By={HOP};Cert="{cert}",By=spiffe://evil/x;Cert="{cert}""#), "xfcc_untrusted_hop"),
        (format!("By={HOP};Hash=00"), "xfcc_no_cert"),
        (format!("By={HOP};URI=spiffe://example.org/ns/support/sa/bot"), "xfcc_unquoted_san"),
        (format!(r#"By={HOP};Hash={};Cert="{cert}""#, "0".repeat(64)), "xfcc_hash_mismatch"),
    ];
    for (value, detail) in cases {
        assert_eq!(
            forwarded_leaf(&header(&value), &hop(), Some(HOP)).unwrap_err().detail.as_deref(),
            Some(detail),
            "{value}"
        );
    }
    let good = format!(r#"By={HOP};Hash={digest};Cert="{cert}""#);
    assert!(forwarded_leaf(&header(&good), &hop(), Some(HOP)).unwrap().is_some());
    let twice = [header(&good), header(&good)].concat();
    assert_eq!(forwarded_leaf(&twice, &hop(), Some(HOP)).unwrap_err().detail.as_deref(), Some("xfcc_repeated_header"));
}

#[test]
fn parsing_is_linear() {
    let value = format!(r#"By=a;Subject="{}""#, "\\;".repeat(200_000));
    assert_eq!(parse(&value).unwrap()[0].subject.as_ref().unwrap().len(), 400_000);
}

/// A SAN that holds `,By=…;Cert=…` splits the hop's element (Envoy does not
/// quote URI values) and appends one naming another workload's public
/// certificate: any URI or DNS value refuses the header.
#[test]
fn a_uri_san_cannot_forge_an_element() {
    let cert = url_encoded(BOT_PEM);
    let injected = format!(r#"By={HOP};Hash=ab;Cert="x";URI=spiffe://example.org/ns/a/sa/x,By={HOP};Cert="{cert}""#);
    let d = forwarded_leaf(&header(&injected), &hop(), Some(HOP)).unwrap_err();
    assert_eq!(d.detail.as_deref(), Some("xfcc_unquoted_san"));
    let dns = format!(r#"By={HOP};Cert="{cert}";DNS=a.example"#);
    assert_eq!(
        forwarded_leaf(&header(&dns), &hop(), Some(HOP)).unwrap_err().detail.as_deref(),
        Some("xfcc_unquoted_san")
    );
}
