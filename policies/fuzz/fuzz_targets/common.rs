//! What the targets share: a policy like the demo's, with a fixed key as
//! example.org's JWT authority, and a valid JWT-SVID from that key.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use jwt_simple::prelude::*;
use modelgate_policies::Policy;

pub struct Fixture {
    pub policy: Policy,
    pub token: String,
    pub now_ms: u64,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = ES256KeyPair::from_bytes(&[7u8; 32]).expect("a fixed P-256 key").with_key_id("k1");
        let point = key.public_key().public_key().to_bytes_uncompressed();
        let b64 = |b: &[u8]| Base64UrlSafeNoPadding::encode_to_string(b).expect("base64");
        let config = serde_json::json!({
            "version": 1,
            "trust_domains": [{"name": "example.org", "jwt_bundle": {"keys": [
                {"kty": "EC", "crv": "P-256", "kid": "k1", "use": "jwt-svid", "x": b64(&point[1..33]), "y": b64(&point[33..65])}
            ]}}],
            "identity": {"jwt_svid": {"audiences": ["spiffe://example.org/modelgate"]}},
            "providers": [
                {"name": "openai", "api": "openai", "match": {"path_prefix": "/openai/"},
                 "credential": {"type": "api_key", "env": "OPENAI_API_KEY"}, "headers": {"openai-organization": "org-gw"},
                 "include_usage": true, "identity_to_provider": "hash"},
                {"name": "anthropic", "api": "anthropic", "match": {"authorities": ["api.anthropic.com"]},
                 "credential": {"type": "api_key", "env": "ANTHROPIC_API_KEY"}},
                {"name": "gemini", "api": "gemini", "match": {"path_prefix": "/gemini/"},
                 "credential": {"type": "api_key", "env": "GEMINI_API_KEY"}},
                {"name": "azure", "api": "azure_openai", "match": {"path_prefix": "/azure/"},
                 "credential": {"type": "api_key", "env": "AZURE_OPENAI_API_KEY"},
                 "deployments": {"d": "gpt-4o-mini", "old": "gpt-3.5-turbo"}},
                {"name": "bedrock", "api": "bedrock", "match": {"path_prefix": "/bedrock/"}, "credential": {"type": "none"}},
                {"name": "vertex", "api": "vertex", "match": {"path_prefix": "/vertex/"}, "project": "p",
                 "credential": {"type": "api_key", "env": "VERTEX_ACCESS_TOKEN"}},
                {"name": "tools", "api": "mcp", "match": {"path_prefix": "/tools/"},
                 "credential": {"type": "api_key", "env": "TOOLS_TOKEN"}, "session_key": {"env": "MCP_SESSION_KEY"}}
            ],
            "rules": [
                {"id": "bot", "effect": "allow", "workloads": ["spiffe://example.org/ns/support/sa/bot"],
                 "providers": ["*"], "models": ["gpt-4o-mini", "claude-*", "whisper-1"], "limits": {"max_tokens": 256, "stream": false},
                 "tools": ["search_*", "echo"], "arguments": {"search_*": {"repo": ["acme/*"]}}, "resources": ["repo://acme/*"],
                 "prompts": ["triage"], "mcp": ["completion/complete", "subscriptions/listen"]},
                {"id": "no-delete", "effect": "deny", "workloads": ["spiffe://example.org/**"], "providers": ["*"], "tools": ["delete_*"]},
                {"id": "research", "effect": "allow", "workloads": ["spiffe://example.org/ns/research/**"], "providers": ["*"], "models": ["*"],
                 "endpoints": ["GET /v1/files/*", "/v1/batches/**"]},
                {"id": "no-legacy", "effect": "deny", "workloads": ["spiffe://example.org/**"], "providers": ["*"], "models": ["gpt-3.5-*"]}
            ],
            "limits": {"max_body_bytes": 65536},
            // Budgets: every allowed model call is planned, its body scanned,
            // reserved in the target's shared data and settled.
            "budgets": [{"id": "bot-day", "workloads": ["spiffe://example.org/ns/support/sa/bot"], "window": "day",
                         "tokens": 100000000, "usd": 5.0}],
            "prices": [{"provider": "*", "models": ["gpt-4o-mini", "claude-*", "whisper-1"], "input": 0.15, "output": 0.6,
                        "cached_input": 0.075, "cache_write": 0.3}],
            "prompt_guard": {"action": "block", "custom": [{"name": "secret_word", "pattern": "(?i)swordfish"}]}
        });
        let policy = Policy::from_json(config.to_string().as_bytes(), &|name| Some(if name == "MCP_SESSION_KEY" { "fuzz-session-key-0123456789abcdef" } else { "sk-fuzz" }.into())).expect("the fixture policy");
        let claims = Claims::create(Duration::from_hours(24))
            .with_subject("spiffe://example.org/ns/support/sa/bot")
            .with_audience("spiffe://example.org/modelgate");
        let token = key.sign(claims).expect("a token");
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Fixture { policy, token, now_ms }
    })
}

#[allow(dead_code)]
pub fn now_secs() -> u64 {
    fixture().now_ms / 1000
}
