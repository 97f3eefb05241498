//! X.509-SVIDs: the leaf certificate of the caller's mTLS connection, as
//! Envoy presents it (`connection.peer_certificate`) or as a trusted hop
//! forwards it (the `Cert` of an `x-forwarded-client-cert` element).
//!
//! Envoy verified the chain and the validity period against the trust
//! domain's CA bundle (its SPIFFE certificate validator). What that
//! validator leaves open, modelgate enforces here, per the X.509-SVID
//! standard §5.2: exactly one URI SAN, and it a valid SPIFFE ID with a path
//! (the validator reads only the first URI SAN and checks no path syntax);
//! the leaf not a CA and without `keyCertSign`/`cRLSign` (checked by both);
//! a trust domain modelgate is configured for; and the validity period,
//! again, against modelgate's own clock.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectAltName};
use x509_cert::Certificate;

use crate::identity::spiffe::SpiffeId;
use crate::reason::{Denial, Reason};

/// A validated X.509-SVID: what policy and the audit record need of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct X509Svid {
    pub spiffe_id: SpiffeId,
    /// The serial number, hex, as `openssl x509 -serial` prints it.
    pub serial: String,
    pub not_before: u64,
    pub not_after: u64,
}

/// Why an X.509-SVID was refused (its `detail()` goes in the audit record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum X509SvidError {
    /// Not a PEM or DER certificate modelgate can read.
    Unreadable,
    NoUriSan,
    ManyUriSans,
    /// Two extensions of one kind (RFC 5280 §4.2 forbids it).
    RepeatedExtension,
    NotSpiffeId,
    /// A SPIFFE ID without a path: a trust domain's own, not a workload's.
    NoPath,
    UntrustedDomain,
    IsCa,
    SigningKeyUsage,
    NotYetValid,
    Expired,
    /// Forwarded by a trusted hop, but issued by none of the trust
    /// domain's configured X.509 authorities.
    UntrustedIssuer,
}

impl X509SvidError {
    pub fn detail(self) -> &'static str {
        match self {
            X509SvidError::Unreadable => "x509_unreadable",
            X509SvidError::NoUriSan => "x509_no_uri_san",
            X509SvidError::ManyUriSans => "x509_many_uri_sans",
            X509SvidError::RepeatedExtension => "x509_repeated_extension",
            X509SvidError::NotSpiffeId => "x509_not_spiffe_id",
            X509SvidError::NoPath => "x509_no_path",
            X509SvidError::UntrustedDomain => "unknown_trust_domain",
            X509SvidError::IsCa => "x509_ca",
            X509SvidError::SigningKeyUsage => "x509_signing_key_usage",
            X509SvidError::NotYetValid => "x509_not_yet_valid",
            X509SvidError::Expired => "x509_expired",
            X509SvidError::UntrustedIssuer => "x509_untrusted_issuer",
        }
    }

    fn message(self) -> &'static str {
        match self {
            X509SvidError::Unreadable => "the client certificate could not be read",
            X509SvidError::NoUriSan => "the client certificate has no URI SAN: it is no X.509-SVID",
            X509SvidError::ManyUriSans => {
                "the client certificate has more than one URI SAN; an X.509-SVID has exactly one"
            }
            X509SvidError::RepeatedExtension => "the client certificate repeats an extension",
            X509SvidError::NotSpiffeId => "the client certificate's URI SAN is not a valid SPIFFE ID",
            X509SvidError::NoPath => {
                "the client certificate's SPIFFE ID has no path: it names a trust domain, not a workload"
            }
            X509SvidError::UntrustedDomain => "the client certificate's trust domain is not trusted by this gateway",
            X509SvidError::IsCa => "the client certificate is a CA certificate, not a workload's",
            X509SvidError::SigningKeyUsage => {
                "the client certificate may sign certificates or CRLs: it is no leaf SVID"
            }
            X509SvidError::NotYetValid => "the client certificate is not valid yet",
            X509SvidError::Expired => "the client certificate has expired",
            X509SvidError::UntrustedIssuer => {
                "the forwarded client certificate was not issued by the trust domain's X.509 authorities"
            }
        }
    }

    pub fn denial(self) -> Denial {
        let reason = match self {
            X509SvidError::UntrustedDomain => Reason::UntrustedDomain,
            _ => Reason::InvalidSvid,
        };
        Denial::new(reason, self.message()).with_detail(self.detail())
    }
}

type Result<T> = std::result::Result<T, X509SvidError>;

/// The DER of a certificate given as PEM — plain, or URL-encoded as in
/// `x-forwarded-client-cert` and older Envoys' `peer_certificate` — or DER.
pub fn leaf_der(cert: &[u8]) -> Result<Vec<u8>> {
    let text = if cert.contains(&b'%') { percent_decode(cert) } else { cert.to_vec() };
    let Ok(text) = std::str::from_utf8(&text) else { return Ok(cert.to_vec()) };
    let Some(start) = text.find("-----BEGIN CERTIFICATE-----") else {
        return Err(X509SvidError::Unreadable);
    };
    let body = &text[start + "-----BEGIN CERTIFICATE-----".len()..];
    let end = body.find("-----END CERTIFICATE-----").ok_or(X509SvidError::Unreadable)?;
    let b64: String = body[..end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(b64).map_err(|_| X509SvidError::Unreadable)
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (input[i], input.get(i + 1).copied().and_then(hex), input.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Validates a leaf a trusted hop forwarded: as [`validate`], and issued
/// by one of its trust domain's X.509 authorities when the operator
/// configured them (`authorities` answers per trust domain).
pub fn validate_forwarded<'t>(
    der: &[u8],
    trust_domains: &dyn Fn(&str) -> bool,
    authorities: impl Fn(&str) -> &'t [Authority],
    now_secs: u64,
) -> Result<X509Svid> {
    let svid = validate(der, trust_domains, now_secs)?;
    let list = authorities(svid.spiffe_id.trust_domain());
    if !list.is_empty() && !list.iter().any(|a| a.issued(der)) {
        return Err(X509SvidError::UntrustedIssuer);
    }
    Ok(svid)
}

/// Validates a leaf certificate (DER) as an X.509-SVID of one of
/// `trust_domains`, at `now_secs`.
pub fn validate(der: &[u8], trust_domains: &dyn Fn(&str) -> bool, now_secs: u64) -> Result<X509Svid> {
    let cert = Certificate::from_der(der).map_err(|_| X509SvidError::Unreadable)?;
    let tbs = &cert.tbs_certificate;
    let mut uris: Vec<String> = Vec::new();
    let (mut seen_san, mut seen_bc, mut seen_ku) = (false, false, false);
    for ext in tbs.extensions.iter().flatten() {
        let value = ext.extn_value.as_bytes();
        let once = |seen: &mut bool| {
            if std::mem::replace(seen, true) {
                Err(X509SvidError::RepeatedExtension)
            } else {
                Ok(())
            }
        };
        match ext.extn_id {
            id if id == SUBJECT_ALT_NAME => {
                once(&mut seen_san)?;
                let san = SubjectAltName::from_der(value).map_err(|_| X509SvidError::Unreadable)?;
                for name in san.0 {
                    if let GeneralName::UniformResourceIdentifier(uri) = name {
                        uris.push(uri.to_string());
                    }
                }
            }
            id if id == BASIC_CONSTRAINTS => {
                once(&mut seen_bc)?;
                let bc = BasicConstraints::from_der(value).map_err(|_| X509SvidError::Unreadable)?;
                if bc.ca {
                    return Err(X509SvidError::IsCa);
                }
            }
            id if id == KEY_USAGE => {
                once(&mut seen_ku)?;
                let ku = KeyUsage::from_der(value).map_err(|_| X509SvidError::Unreadable)?;
                if ku.key_cert_sign() || ku.crl_sign() {
                    return Err(X509SvidError::SigningKeyUsage);
                }
            }
            _ => {}
        }
    }
    let uri = match uris.as_slice() {
        [] => return Err(X509SvidError::NoUriSan),
        [one] => one,
        _ => return Err(X509SvidError::ManyUriSans),
    };
    let spiffe_id = SpiffeId::parse(uri).map_err(|_| X509SvidError::NotSpiffeId)?;
    if spiffe_id.path().is_empty() {
        return Err(X509SvidError::NoPath);
    }
    if !trust_domains(spiffe_id.trust_domain()) {
        return Err(X509SvidError::UntrustedDomain);
    }
    let not_before = tbs.validity.not_before.to_unix_duration().as_secs();
    let not_after = tbs.validity.not_after.to_unix_duration().as_secs();
    if now_secs < not_before {
        return Err(X509SvidError::NotYetValid);
    }
    if now_secs > not_after {
        return Err(X509SvidError::Expired);
    }
    let serial = tbs.serial_number.as_bytes().iter().map(|b| format!("{b:02X}")).collect();
    Ok(X509Svid { spiffe_id, serial, not_before, not_after })
}

/// A trust domain's X.509 authority (a CA certificate of its bundle): a
/// leaf that a trusted hop forwards must carry its signature. Envoy checked
/// the certificate of the hop's own connection; the one the hop forwards it
/// checked only at the hop, so it is checked again here when the operator
/// gives the authorities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authority {
    /// The DER of the CA's subject name: a leaf it issued names it as issuer.
    subject: Vec<u8>,
    key: AuthorityKey,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum AuthorityKey {
    P256(p256::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

/// The largest RSA authority key read.
const MAX_RSA_BITS: usize = 8192;

impl Authority {
    /// A CA certificate, PEM. Refused: anything but one readable CA
    /// certificate with a P-256 or RSA key.
    pub fn from_pem(pem: &[u8]) -> std::result::Result<Authority, String> {
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        use x509_cert::der::Encode as _;
        let der = leaf_der(pem).map_err(|_| "not a PEM certificate".to_string())?;
        let cert = Certificate::from_der(&der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let tbs = &cert.tbs_certificate;
        let is_ca = tbs.extensions.iter().flatten().any(|ext| {
            ext.extn_id == BASIC_CONSTRAINTS
                && BasicConstraints::from_der(ext.extn_value.as_bytes()).is_ok_and(|bc| bc.ca)
        });
        if !is_ca {
            return Err("not a CA certificate (basicConstraints cA is not set)".into());
        }
        let spki = &tbs.subject_public_key_info;
        let bits = spki.subject_public_key.raw_bytes();
        let key = match spki.algorithm.oid {
            EC_PUBLIC_KEY => {
                let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
                if curve != Some(PRIME256V1) {
                    return Err("an EC key on another curve than P-256".into());
                }
                p256::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                    .map(AuthorityKey::P256)
                    .map_err(|_| "an unreadable P-256 key".to_string())?
            }
            RSA_ENCRYPTION => rsa::RsaPublicKey::from_pkcs1_der(bits)
                .ok()
                .and_then(|k| {
                    use rsa::traits::PublicKeyParts as _;
                    rsa::RsaPublicKey::new_with_max_size(k.n().clone(), k.e().clone(), MAX_RSA_BITS).ok()
                })
                .map(AuthorityKey::Rsa)
                .ok_or_else(|| "an unreadable RSA key".to_string())?,
            _ => return Err("a key of a kind modelgate does not verify (P-256 and RSA only)".into()),
        };
        let subject = tbs.subject.to_der().map_err(|e| format!("an unreadable subject: {e}"))?;
        Ok(Authority { subject, key })
    }

    /// Whether this authority issued the certificate `der`: it names this
    /// authority as issuer and carries its signature (ECDSA P-256 with
    /// SHA-256, or RSA PKCS#1 v1.5 with SHA-256).
    pub fn issued(&self, der: &[u8]) -> bool {
        use x509_cert::der::Encode as _;
        let Ok(cert) = Certificate::from_der(der) else { return false };
        let tbs = &cert.tbs_certificate;
        if tbs.issuer.to_der().ok().as_deref() != Some(self.subject.as_slice())
            || tbs.signature != cert.signature_algorithm
        {
            return false;
        }
        let Ok(message) = tbs.to_der() else { return false };
        let Some(signature) = cert.signature.as_bytes() else { return false };
        match (&self.key, cert.signature_algorithm.oid) {
            (AuthorityKey::P256(key), ECDSA_WITH_SHA256) => {
                use p256::ecdsa::signature::Verifier as _;
                p256::ecdsa::Signature::from_der(signature).is_ok_and(|s| key.verify(&message, &s).is_ok())
            }
            (AuthorityKey::Rsa(key), SHA256_WITH_RSA) => {
                super::verify::verify_rsa(key, super::bundle::Alg::RS256, &message, signature)
            }
            _ => false,
        }
    }
}

use x509_cert::der::oid::ObjectIdentifier;

const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const PRIME256V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

#[cfg(test)]
#[path = "x509_tests.rs"]
mod tests;
