use serde_json::json;

use super::*;
use crate::identity::svid::PureRustVerifier;
use crate::testing::*;

const BOT_PEM: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/x509/bot.pem"));
const RESEARCH_PEM: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/x509/research.pem"));
const TWO_SANS_PEM: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/x509/two_uri_sans.pem"));
/// Inside the fixtures' validity, and the test tokens'.
const NOW_SECS: u64 = NOW;

struct Cert(&'static [u8]);

impl Peer for Cert {
    fn digest(&self) -> Option<String> {
        let der = x509::leaf_der(self.0).ok()?;
        Some(crate::identity::svid::cache::digest(&der).iter().map(|b| format!("{b:02x}")).collect())
    }
    fn certificate(&self) -> Option<Vec<u8>> {
        Some(self.0.to_vec())
    }
    fn uri_san(&self) -> Option<String> {
        None
    }
}

fn run(policy: &Policy, token: Option<&str>, peer: Option<&dyn Peer>) -> Result<Identity, Denial> {
    let headers: Vec<(String, String)> =
        token.map(|t| ("authorization".to_string(), format!("Bearer {t}"))).into_iter().collect();
    let svids = SvidCache::new(8);
    let trust = TrustStore::new(&policy.trust_domains);
    let s = Sources {
        api: None,
        headers: &headers,
        peer,
        verifier: &PureRustVerifier,
        svids: &svids,
        trust: &trust,
        now_secs: NOW_SECS,
    };
    identify(policy, &s)
}

fn with(require: &str) -> Policy {
    let mut identity = json!({"jwt_svid": {"audiences": [AUD]}, "x509_svid": {"source": "connection"}});
    identity["require"] = json!(require);
    policy(json!({ "identity": identity }))
}

/// The record's `workload` for an identity.
fn workload(id: &Identity) -> crate::audit::record::Workload {
    let mut recorder = crate::audit::recorder::Recorder::new(None, 0);
    recorder.identified(id);
    recorder.record().workload.clone().unwrap()
}

fn detail(r: Result<Identity, Denial>) -> (Reason, String) {
    let d = r.unwrap_err();
    (d.reason, d.detail.unwrap())
}

#[test]
fn an_x509_svid_alone_identifies_the_caller() {
    let id = run(&with("any"), None, Some(&Cert(BOT_PEM))).unwrap();
    assert_eq!(id.spiffe_id.as_str(), BOT);
    let w = workload(&id);
    assert_eq!((w.svid, w.x509.unwrap().serial.as_str()), ("x509", "1234ABCD"));
}

#[test]
fn both_svids_must_name_the_same_workload() {
    let token = svid(BOT);
    let id = run(&with("both"), Some(&token), Some(&Cert(BOT_PEM))).unwrap();
    assert_eq!(workload(&id).svid, "jwt+x509");
    assert_eq!(
        detail(run(&with("any"), Some(&token), Some(&Cert(RESEARCH_PEM)))),
        (Reason::IdentityMismatch, "jwt_x509_mismatch".into())
    );
}

#[test]
fn require_says_which_svids_must_be_there() {
    let token = svid(BOT);
    let bot: &dyn Peer = &Cert(BOT_PEM);
    assert_eq!(
        detail(run(&with("x509"), Some(&token), None)),
        (Reason::MissingIdentity, "no_client_certificate".into())
    );
    assert_eq!(detail(run(&with("jwt"), None, Some(bot))), (Reason::MissingIdentity, "no_credential".into()));
    assert_eq!(
        detail(run(&with("both"), Some(&token), None)),
        (Reason::MissingIdentity, "no_client_certificate".into())
    );
    assert_eq!(detail(run(&with("both"), None, Some(bot))), (Reason::MissingIdentity, "no_credential".into()));
    assert_eq!(detail(run(&with("any"), None, None)), (Reason::MissingIdentity, "no_credential".into()));
    assert!(run(&with("x509"), None, Some(bot)).is_ok());
    assert!(run(&with("jwt"), Some(&token), None).is_ok());
}

#[test]
fn a_bad_svid_is_refused_even_when_the_other_is_good() {
    let token = svid(BOT);
    assert_eq!(
        detail(run(&with("any"), Some(&token), Some(&Cert(TWO_SANS_PEM)))),
        (Reason::InvalidSvid, "x509_many_uri_sans".into())
    );
    assert_eq!(
        detail(run(&with("any"), Some("garbage"), Some(&Cert(BOT_PEM)))),
        (Reason::InvalidSvid, "malformed".into())
    );
}

/// A peer whose digest does not match the certificate it hands over.
struct Liar;

impl Peer for Liar {
    fn digest(&self) -> Option<String> {
        Some("00".repeat(32))
    }
    fn certificate(&self) -> Option<Vec<u8>> {
        Some(BOT_PEM.to_vec())
    }
    fn uri_san(&self) -> Option<String> {
        None
    }
}

#[test]
fn the_certificate_must_be_the_one_its_digest_names() {
    assert_eq!(detail(run(&with("x509"), None, Some(&Liar))), (Reason::InvalidSvid, "x509_unreadable".into()));
}
