//! JWTs the gateway signs itself (SPEC §4 `minted_jwt`, and the assertion
//! of a `token_exchange` with `subject: "minted"`): ES256, one per request,
//! naming the caller's SPIFFE ID and the model the rules allowed.
//!
//! The signing key comes from the VM environment as a PKCS#8 PEM
//! (`BEGIN PRIVATE KEY`), a SEC1 PEM (`BEGIN EC PRIVATE KEY`) or a private
//! JWK, is parsed once, and never leaves this module: what is printed is
//! its public JWKS, for the endpoints that verify minted JWTs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::SigningKey;
use p256::pkcs8::DecodePrivateKey as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::credential::sign::MintKey;
use crate::identity::svid::SignatureVerifier;

/// A signing key and what every JWT it signs says.
pub struct Minter {
    key: MintKey,
    pub kid: String,
    pub issuer: String,
    pub audience: String,
    pub ttl_seconds: u64,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl_seconds", &self.ttl_seconds)
            .finish_non_exhaustive()
    }
}

/// The longest a minted JWT lives (SPEC: 1–300 s).
pub const MAX_TTL_SECONDS: u64 = 300;

impl Minter {
    /// `key` is the environment variable's value; `kid` defaults to the
    /// JWK's own `kid`, else the key's RFC 7638 thumbprint.
    pub fn new(
        key: &str,
        kid: Option<String>,
        issuer: String,
        audience: String,
        ttl_seconds: u64,
    ) -> Result<Self, String> {
        let (key, jwk_kid) = signing_key(key)?;
        let kid = match kid.or(jwk_kid) {
            Some(kid) => kid,
            None => thumbprint(&key),
        };
        let key = MintKey::new(key).ok_or("the key cannot be written as PKCS#8")?;
        Ok(Minter { key, kid, issuer, audience, ttl_seconds })
    }

    /// A compact JWS: header `{alg: ES256, kid, typ: JWT}`, claims `iss`,
    /// `sub`, `aud`, `iat`, `exp`, `jti` and, when known, `model`.
    pub fn mint(
        &self,
        sub: &str,
        model: Option<&str>,
        now_secs: u64,
        jti: &[u8; 16],
        signer: &dyn SignatureVerifier,
    ) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"});
        self.sign(&header, &self.claims(sub, model, now_secs, jti), signer)
    }

    /// A development JWT-SVID: `sub`, `aud`, `iat`, `exp`, `jti` and the
    /// `extra` claims (no `iss` unless the minter has one).
    pub fn mint_svid(
        &self,
        sub: &str,
        extra: &serde_json::Map<String, Value>,
        now_secs: u64,
        jti: &[u8; 16],
        signer: &dyn SignatureVerifier,
    ) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"});
        let mut claims = self.claims(sub, None, now_secs, jti);
        if self.issuer.is_empty() {
            if let Some(o) = claims.as_object_mut() {
                o.remove("iss");
            }
        }
        for (k, v) in extra {
            claims[k] = v.clone();
        }
        self.sign(&header, &claims, signer)
    }

    fn claims(&self, sub: &str, model: Option<&str>, now_secs: u64, jti: &[u8; 16]) -> Value {
        let mut claims = json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": self.audience,
            "iat": now_secs,
            "exp": now_secs + self.ttl_seconds,
            "jti": URL_SAFE_NO_PAD.encode(jti),
        });
        if let Some(model) = model {
            claims["model"] = json!(model);
        }
        claims
    }

    fn sign(&self, header: &Value, claims: &Value, signer: &dyn SignatureVerifier) -> String {
        let mut out = String::with_capacity(512);
        URL_SAFE_NO_PAD.encode_string(header.to_string(), &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut out);
        let signature = signer.sign_es256(&self.key, out.as_bytes());
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut out);
        out
    }

    /// The public key as a JWK Set, for the endpoints that verify.
    pub fn jwks(&self) -> Value {
        let mut jwk = public_jwk(&self.key.key);
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!("ES256");
        json!({"keys": [jwk]})
    }
}

/// The members RFC 7638 hashes, in its order.
fn public_jwk(key: &SigningKey) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    let bytes = point.as_bytes();
    json!({"crv": "P-256", "kty": "EC", "x": URL_SAFE_NO_PAD.encode(&bytes[1..33]), "y": URL_SAFE_NO_PAD.encode(&bytes[33..65])})
}

/// RFC 7638: base64url(SHA-256) of the required members, sorted, no
/// whitespace (serde_json's map is sorted).
fn thumbprint(key: &SigningKey) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(public_jwk(key).to_string()))
}

/// A P-256 private key from PEM (PKCS#8 or SEC1) or a private JWK, and the
/// JWK's `kid` when it has one.
fn signing_key(text: &str) -> Result<(SigningKey, Option<String>), String> {
    let text = text.trim();
    if text.starts_with('{') {
        let jwk: Value = serde_json::from_str(text).map_err(|_| "not a JSON private JWK".to_string())?;
        let member = |name: &str| jwk.get(name).and_then(Value::as_str);
        if member("kty") != Some("EC") || member("crv") != Some("P-256") {
            return Err("the JWK is not a P-256 EC key (kty \"EC\", crv \"P-256\")".into());
        }
        let d = member("d").ok_or("the JWK has no private part (d)")?;
        let d = URL_SAFE_NO_PAD.decode(d).map_err(|_| "the JWK's d is not base64url".to_string())?;
        let key = SigningKey::from_slice(&d).map_err(|_| "the JWK's d is not a P-256 private key".to_string())?;
        let public = public_jwk(&key);
        if member("x") != public["x"].as_str() || member("y") != public["y"].as_str() {
            return Err("the JWK's x and y are not the public key of its d".into());
        }
        return Ok((key, member("kid").map(str::to_string)));
    }
    if text.contains("-----BEGIN PRIVATE KEY-----") {
        return SigningKey::from_pkcs8_pem(text)
            .map(|k| (k, None))
            .map_err(|_| "not a P-256 PKCS#8 private key (BEGIN PRIVATE KEY)".into());
    }
    if text.contains("-----BEGIN EC PRIVATE KEY-----") {
        return p256::SecretKey::from_sec1_pem(text)
            .map(|k| (SigningKey::from(k), None))
            .map_err(|_| "not a P-256 SEC1 private key (BEGIN EC PRIVATE KEY)".into());
    }
    Err("expected a P-256 private key: PKCS#8 PEM, SEC1 PEM or a private JWK".into())
}

#[cfg(test)]
#[path = "mint_tests.rs"]
mod tests;
