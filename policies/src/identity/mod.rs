//! Who is calling: the JWT-SVID in the header the api's SDK puts its key in,
//! the X.509-SVID of the mTLS connection (or one a trusted hop forwarded),
//! or both — combined as `identity.require` says. When both are present
//! they must name the same SPIFFE ID.

pub mod spiffe;
pub mod svid;
pub mod xfcc;

use std::rc::Rc;

use crate::api::Api;
use crate::config::{Policy, Require, X509Source};
use crate::credential;
use crate::identity::spiffe::SpiffeId;
use crate::identity::svid::x509::{self, X509Svid, X509SvidError};
use crate::identity::svid::{JwtSvid, SignatureVerifier, SvidCache, TrustStore};
use crate::reason::{Denial, Reason};

/// The caller's mTLS peer certificate, read from the host only when needed.
pub trait Peer {
    /// The hex SHA-256 of the certificate's DER (Envoy's
    /// `connection.sha256_peer_certificate_digest`), if the connection has
    /// a verified peer certificate.
    fn digest(&self) -> Option<String>;
    /// The certificate, PEM (plain or URL-encoded).
    fn certificate(&self) -> Option<Vec<u8>>;
    /// The first URI SAN, as Envoy reads it.
    fn uri_san(&self) -> Option<String>;
}

/// A caller, identified.
#[derive(Clone, Debug)]
pub struct Identity {
    pub spiffe_id: SpiffeId,
    pub jwt: Option<Rc<JwtSvid>>,
    pub x509: Option<Rc<X509Svid>>,
}

/// What identifying a request needs.
pub struct Sources<'a> {
    pub api: Option<Api>,
    pub headers: &'a [(String, String)],
    pub peer: Option<&'a dyn Peer>,
    pub verifier: &'a dyn SignatureVerifier,
    pub svids: &'a SvidCache,
    pub trust: &'a TrustStore,
    pub now_secs: u64,
}

/// Identifies the caller, or says why it cannot be.
pub fn identify(policy: &Policy, s: &Sources<'_>) -> Result<Identity, Denial> {
    let jwt = if policy.jwt_svid.enabled {
        match credential::find_svid(&policy.jwt_svid.carrier, s.api, s.headers) {
            Ok(token) => Some(
                s.svids.validate(token, &policy.jwt_svid, s.trust, s.verifier, s.now_secs).map_err(|e| e.denial())?,
            ),
            Err(d) if d.reason == Reason::MissingIdentity => None,
            Err(d) => return Err(d),
        }
    } else {
        None
    };
    let x509 = match &policy.identity.x509 {
        X509Source::Off => None,
        X509Source::Connection => match s.peer.and_then(|p| p.digest().map(|d| (p, d))) {
            None => None,
            Some((peer, digest)) => {
                let key = hex_key(&digest).ok_or_else(|| X509SvidError::Unreadable.denial())?;
                let der = || peer.certificate().ok_or(X509SvidError::Unreadable).and_then(|pem| x509::leaf_der(&pem));
                Some(s.svids.validate_x509(key, der, false, s.trust, s.now_secs).map_err(|e| e.denial())?)
            }
        },
        X509Source::Xfcc { trusted_hop } => {
            let peer = s.peer.and_then(|p| p.uri_san());
            match xfcc::forwarded_leaf(s.headers, trusted_hop, peer.as_deref())? {
                None => None,
                Some(der) => {
                    let key = crate::identity::svid::cache::digest(&der);
                    Some(
                        s.svids
                            .validate_x509(key, || Ok(der.clone()), true, s.trust, s.now_secs)
                            .map_err(|e| e.denial())?,
                    )
                }
            }
        }
    };
    let require = policy.identity.require;
    let spiffe_id = match (&jwt, &x509) {
        (Some(j), Some(x)) if j.spiffe_id != x.spiffe_id => {
            return Err(Denial::new(
                Reason::IdentityMismatch,
                format!("the JWT-SVID names {} but the client certificate names {}", j.spiffe_id, x.spiffe_id),
            )
            .with_detail("jwt_x509_mismatch"))
        }
        (Some(j), _) if require != Require::X509 || x509.is_some() => j.spiffe_id.clone(),
        (_, Some(x)) if require != Require::Jwt || jwt.is_some() => x.spiffe_id.clone(),
        _ => return Err(missing(require, jwt.is_some(), x509.is_some())),
    };
    if require == Require::Both && (jwt.is_none() || x509.is_none()) {
        return Err(missing(require, jwt.is_some(), x509.is_some()));
    }
    Ok(Identity { spiffe_id, jwt, x509 })
}

fn missing(require: Require, has_jwt: bool, has_x509: bool) -> Denial {
    let (message, detail) = match (require, has_jwt, has_x509) {
        (Require::Jwt, _, _) => {
            ("no JWT-SVID: send it as the API key (Authorization: Bearer <JWT-SVID>)", "no_credential")
        }
        (Require::X509, _, _) => {
            ("no X.509-SVID: call over mTLS with the workload's SPIFFE certificate", "no_client_certificate")
        }
        (Require::Both, true, false) => {
            ("this gateway requires an X.509-SVID too: call over mTLS", "no_client_certificate")
        }
        (Require::Both, _, _) => ("this gateway requires a JWT-SVID too: send it as the API key", "no_credential"),
        (Require::Any, _, _) => ("no SVID: send a JWT-SVID as the API key, or call over mTLS", "no_credential"),
    };
    Denial::new(Reason::MissingIdentity, message).with_detail(detail)
}

fn hex_key(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |b: u8| char::from(b).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
