//! Test helpers: deterministic keys, hand-made JWT-SVIDs, and a policy
//! built from the same JSON a user would write.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use serde_json::{json, Value};

use crate::config::Policy;

pub const NOW: u64 = 1_795_000_000;
pub const AUD: &str = "spiffe://example.org/modelgate";
pub const BOT: &str = "spiffe://example.org/ns/support/sa/bot";
pub const RSA_PEM: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/rsa-2048.pem"));

/// The P-256 key of trust domain example.org (kid `k1`), from a fixed seed.
pub fn ec_key(seed: u8) -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap()
}

pub fn ec_jwk(key: &p256::ecdsa::SigningKey, kid: &str) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    let bytes = point.as_bytes();
    json!({"kty":"EC","crv":"P-256","kid":kid,"use":"jwt-svid",
           "x": URL_SAFE_NO_PAD.encode(&bytes[1..33]), "y": URL_SAFE_NO_PAD.encode(&bytes[33..65])})
}

pub fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

/// Signs any header and claims with ES256, exactly as given.
pub fn sign_es256(key: &p256::ecdsa::SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&sig.to_bytes()))
}

pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "aud": [AUD], "iat": NOW - 10, "exp": NOW + 3600, "jti": "j-1"})
}

/// The header of a JWT-SVID from the example.org key `k1`.
pub fn header() -> Value {
    json!({"alg":"ES256","kid":"k1","typ":"JWT"})
}

/// A header or claims set with one member set…
pub fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

/// …or removed.
pub fn without(mut v: Value, key: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove(key);
    }
    v
}

/// Any header and claims, signed by example.org's key `k1`.
pub fn es256(header: Value, claims: Value) -> String {
    sign_es256(&ec_key(1), &header, &claims)
}

/// A valid JWT-SVID for `sub` from the example.org key.
pub fn svid(sub: &str) -> String {
    es256(header(), claims(sub))
}

/// The demo-like configuration, with `patch` merged in at the top level.
pub fn config(patch: Value) -> Value {
    let mut c = json!({
        "version": 1,
        "trust_domains": [{"name": "example.org", "jwt_bundle": {"keys": [ec_jwk(&ec_key(1), "k1")]}}],
        "identity": {"jwt_svid": {"audiences": [AUD]}},
        "providers": [
            {"name": "anthropic", "api": "anthropic", "match": {"path_prefix": "/anthropic/"},
             "credential": {"type": "api_key", "env": "ANTHROPIC_API_KEY"}},
            {"name": "openai", "api": "openai", "match": {"authorities": ["api.openai.com"]},
             "credential": {"type": "api_key", "env": "OPENAI_API_KEY"}}
        ],
        "rules": [
            {"id": "support-bot", "effect": "allow", "workloads": [BOT], "providers": ["openai", "anthropic"],
             "models": ["gpt-4o-mini", "claude-*"], "limits": {"max_tokens": 1024, "stream": true}},
            {"id": "batch", "effect": "allow", "workloads": ["spiffe://example.org/ns/batch/*"], "providers": ["openai"],
             "models": ["gpt-4o-mini"], "limits": {"stream": false}},
            {"id": "research", "effect": "allow", "workloads": ["spiffe://example.org/ns/research/**"],
             "providers": ["*"], "models": ["*"]},
            {"id": "no-legacy", "effect": "deny", "workloads": ["spiffe://example.org/**"], "providers": ["*"], "models": ["gpt-3.5-*"]}
        ],
        "limits": {"max_body_bytes": 4096}
    });
    if let (Some(c), Some(p)) = (c.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

/// docs/mcp.md's MCP server: `github` at `/github/`, with its key and
/// session key from [`env`].
pub fn mcp_provider() -> Value {
    json!({"name": "github", "api": "mcp", "match": {"path_prefix": "/github/"},
           "credential": {"type": "api_key", "env": "GITHUB_MCP_TOKEN"}, "session_key": {"env": "MCP_SESSION_KEY"}})
}

/// The test config in `mode`, with the MCP server and `rules` appended.
pub fn mcp_config(mode: &str, rules: &[Value]) -> Value {
    let mut c = config(json!({"mode": mode}));
    c["providers"].as_array_mut().unwrap().push(mcp_provider());
    c["rules"].as_array_mut().unwrap().extend(rules.iter().cloned());
    c
}

pub fn env(name: &str) -> Option<String> {
    match name {
        "OPENAI_API_KEY" => Some("sk-openai-upstream".into()),
        "ANTHROPIC_API_KEY" => Some("sk-ant-upstream".into()),
        "GITHUB_MCP_TOKEN" => Some("ghp-mcp-upstream".into()),
        "MCP_SESSION_KEY" => Some("session-key-0123456789abcdef-0123456789".into()),
        _ => None,
    }
}

pub fn policy(patch: Value) -> Policy {
    Policy::from_json(config(patch).to_string().as_bytes(), &env).unwrap()
}

/// A small deterministic generator (xorshift): the same cases every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `n` characters drawn from `alphabet`.
    pub fn pick(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| char::from(alphabet[(self.next() % alphabet.len() as u64) as usize])).collect()
    }
}
