//! A provider as compiled: where its requests go and the credential the
//! gateway puts on them. The credential steps (`credential::token_exchange`)
//! read these types; the rest of `config` compiles into them.

use std::fmt;

use crate::api::Api;
use crate::credential::mint::Minter;
use crate::identity::spiffe::WorkloadPattern;

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub api: Api,
    /// Lower-case `host[:port]`s, compared exactly with the request's
    /// `:authority` (lower-cased); empty: any.
    pub authorities: Vec<String>,
    /// Matched against the path; removed (but its last `/`) before the
    /// endpoint is classified.
    pub path_prefix: Option<String>,
    pub credential: Credential,
    /// Fixed headers set on every forwarded request (an organization or
    /// project selector the workload may not choose).
    pub headers: Vec<(String, String)>,
    /// azure_openai: each deployment name and the model it serves. A
    /// deployment path names its model only through this map.
    pub deployments: Vec<(String, String)>,
    /// vertex: the one project requests may name.
    pub project: Option<String>,
    /// vertex: the locations requests may name; empty: any.
    pub locations: Vec<String>,
    /// OpenAI apis: streaming chat and completions requests that say
    /// nothing of usage get `stream_options.include_usage: true`.
    pub include_usage: bool,
    /// How the workload is named where the provider records end users
    /// (OpenAI `safety_identifier`, Anthropic `metadata.user_id`); `None`:
    /// not at all.
    pub identity_to_provider: Option<EndUserName>,
    /// mcp: the key a server's sessions are bound to their workload with.
    pub session_key: Option<SessionKey>,
}

/// A key that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(pub Vec<u8>);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

/// How a workload is named to its provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndUserName {
    /// The SPIFFE ID itself.
    SpiffeId,
    /// `sha256:` and the first 32 hex digits of the SHA-256 of the SPIFFE
    /// ID: stable, and names nothing to the provider.
    Hash,
}

impl EndUserName {
    pub fn of(self, spiffe_id: &str) -> String {
        match self {
            EndUserName::SpiffeId => spiffe_id.to_string(),
            EndUserName::Hash => format!("sha256:{}", &crate::util::digest::sha256_hex(spiffe_id.as_bytes())[..32]),
        }
    }
}

#[derive(Debug)]
pub enum Credential {
    ApiKey {
        key: Secret,
        header: String,
        prefix: String,
    },
    None,
    /// A JWT the gateway signs per request.
    MintedJwt {
        minter: Minter,
        header: String,
        prefix: String,
    },
    /// An access token from a token endpoint, cached per workload.
    TokenExchange(Box<TokenExchange>),
    /// A stand-in for credentials fetched by a call-out (the token exchange
    /// of a later version): the flow's call-out path, tested natively.
    #[cfg(test)]
    TestCallout {
        cluster: String,
    },
}

impl Credential {
    pub fn type_name(&self) -> &'static str {
        match self {
            Credential::ApiKey { .. } => "api_key",
            Credential::None => "none",
            Credential::MintedJwt { .. } => "minted_jwt",
            Credential::TokenExchange(_) => "token_exchange",
            #[cfg(test)]
            Credential::TestCallout { .. } => "test_callout",
        }
    }
}

/// A secret value whose `Debug` never shows it.
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

pub use crate::api::spec::{Encoding, Grant};

/// What the exchange presents as the workload's identity.
#[derive(Debug)]
pub enum Subject {
    /// The caller's own JWT-SVID.
    Svid,
    /// An assertion the gateway mints per exchange.
    Minted(Box<Minter>),
}

/// A provider-side account for the workloads its patterns match.
#[derive(Debug)]
pub struct Account {
    pub workloads: Vec<WorkloadPattern>,
    pub params: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct TokenExchange {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout_ms: u64,
    pub grant: Grant,
    pub encoding: Encoding,
    pub subject: Subject,
    /// Fixed parameters of every exchange (`audience`, `scope`, `client_id`
    /// and the profile's and config's `params`).
    pub params: Vec<(String, String)>,
    pub accounts: Option<Vec<Account>>,
    pub exchange_headers: Vec<(String, String)>,
    pub refresh_margin_seconds: u64,
    /// Where the token goes on the forwarded request.
    pub header: String,
    pub prefix: String,
    /// Comma-list headers the token needs on API calls, merged into the
    /// request's own (Anthropic's `anthropic-beta: oauth-2025-04-20`).
    pub with_token: Vec<(String, String)>,
    /// What its tokens are cached under (`config::credentials::digest`):
    /// set when the whole configuration is compiled.
    pub digest: String,
}
