//! `minted_jwt` and `token_exchange` credentials (SPEC §4): their raw
//! shapes and their checks. A `profile` is an api's workload identity
//! federation, as its spec gives it ([`crate::api::spec::Federation`]).

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::ConfigError;
use super::header::header_name;
use super::provider::{Account, Credential, Encoding, Grant, Provider, Subject, TokenExchange};
use crate::credential::mint::{Minter, MAX_TTL_SECONDS};
use crate::identity::spiffe::WorkloadPattern;

type Result<T> = std::result::Result<T, ConfigError>;

/// The SHA-256 (hex) of everything that shapes a provider's tokens: the
/// policy generation, the whole provider as configured (its `Debug`, so a
/// field added later is covered without anyone remembering it here; no
/// secret is in it) and, for a minted subject, the public key the
/// assertion is signed with (the signing key comes from the environment,
/// not the configuration text).
pub(super) fn digest(generation: &str, provider: &Provider) -> String {
    let mut text = format!("{}:{generation}\n", generation.len());
    let described = format!("{provider:?}");
    text.push_str(&format!("{}:{described}\n", described.len()));
    if let Credential::TokenExchange(te) = &provider.credential {
        if let Subject::Minted(minter) = &te.subject {
            text.push_str(&minter.jwks().to_string());
        }
    }
    crate::util::digest::sha256_hex(text.as_bytes())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMint {
    pub env: String,
    pub issuer: String,
    pub audience: String,
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExchange {
    #[serde(default)]
    profile: Option<String>,
    cluster: String,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    grant: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
    subject: String,
    #[serde(default)]
    mint: Option<RawMint>,
    #[serde(default)]
    audience: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    params: Option<Map<String, Value>>,
    #[serde(default)]
    accounts: Option<Vec<RawAccount>>,
    #[serde(default)]
    exchange_headers: Option<Map<String, Value>>,
    #[serde(default)]
    refresh_margin_seconds: Option<u64>,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    workloads: Vec<String>,
    params: Map<String, Value>,
}

/// Names the gateway sets itself: no `params` may override them.
const RESERVED_PARAMS: &[&str] =
    &["grant_type", "subject_token", "subject_token_type", "assertion", "actor_token", "actor_token_type"];

const DEFAULT_TTL_SECONDS: u64 = 60;
const DEFAULT_TIMEOUT_MS: u64 = 2_000;
const DEFAULT_REFRESH_MARGIN_SECONDS: u64 = 30;

fn raw<T: serde::de::DeserializeOwned>(map: Map<String, Value>, at: &str) -> Result<T> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        let path = if path.is_empty() || path == "." { at.to_string() } else { format!("{at}.{path}") };
        ConfigError::new(path, e.inner().to_string())
    })
}

fn text(value: &str) -> bool {
    !value.is_empty() && !value.bytes().any(|b| b.is_ascii_control())
}

/// A minter from its fields; the key is read from the VM environment.
pub(super) fn minter(raw: RawMint, at: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Minter> {
    let key = env(&raw.env).filter(|k| !k.trim().is_empty()).ok_or_else(|| {
        ConfigError::new(
            format!("{at}.env"),
            format!(
                "environment variable {:?} is not set in the VM (the signing key: PKCS#8 PEM or a private JWK)",
                raw.env
            ),
        )
    })?;
    for (name, value) in [("issuer", &raw.issuer), ("audience", &raw.audience)] {
        if !text(value) {
            return Err(ConfigError::new(format!("{at}.{name}"), "must be a non-empty string"));
        }
    }
    let ttl = raw.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if !(1..=MAX_TTL_SECONDS).contains(&ttl) {
        return Err(ConfigError::new(format!("{at}.ttl_seconds"), format!("{ttl} is out of range: 1 to 300")));
    }
    if raw.kid.as_deref().is_some_and(|k| !text(k)) {
        return Err(ConfigError::new(format!("{at}.kid"), "must be a non-empty string"));
    }
    Minter::new(&key, raw.kid, raw.issuer, raw.audience, ttl)
        .map_err(|e| ConfigError::new(format!("{at}.env"), format!("{:?}: {e}", raw.env)))
}

/// `minted_jwt`: the minter and where its JWT goes.
pub(super) fn minted(
    map: Map<String, Value>,
    at: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Minter, String, String)> {
    let mut raw: RawMint = raw(map, at)?;
    let (header, prefix) = placement(raw.header.take(), raw.prefix.take(), at)?;
    Ok((minter(raw, at, env)?, header, prefix))
}

fn placement(header: Option<String>, prefix: Option<String>, at: &str) -> Result<(String, String)> {
    let header = match header {
        Some(h) => header_name(&h, &format!("{at}.header"))?,
        None => "authorization".to_string(),
    };
    let prefix = prefix.unwrap_or_else(|| if header == "authorization" { "Bearer ".into() } else { String::new() });
    if prefix.bytes().any(|b| b.is_ascii_control()) {
        return Err(ConfigError::new(format!("{at}.prefix"), "holds control characters"));
    }
    Ok((header, prefix))
}

fn strings(map: Map<String, Value>, at: &str) -> Result<Vec<(String, String)>> {
    map.into_iter()
        .map(|(name, value)| match value {
            Value::String(v) if text(&v) => Ok((name, v)),
            _ => Err(ConfigError::new(format!("{at}.{name}"), "must be a non-empty string without control characters")),
        })
        .collect()
}

/// `token_exchange`.
pub(super) fn exchange(
    map: Map<String, Value>,
    at: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TokenExchange> {
    let raw: RawExchange = raw(map, at)?;
    let profile = match raw.profile.as_deref() {
        None => None,
        Some(name) => Some(crate::api::named(name).and_then(|api| api.spec().federation).ok_or_else(|| {
            let specs = crate::api::Api::ALL.iter().map(|api| api.spec());
            let profiles: Vec<String> =
                specs.filter(|s| s.federation.is_some()).map(|s| format!("{:?}", s.name)).collect();
            let profiles = profiles.join(" or ");
            ConfigError::new(format!("{at}.profile"), format!("unknown profile {name:?}: {profiles}"))
        })?),
    };
    if !text(&raw.cluster) || raw.cluster.contains(' ') {
        return Err(ConfigError::new(format!("{at}.cluster"), "the name of an Envoy cluster"));
    }
    let authority = raw.authority.or_else(|| profile.as_ref().map(|p| p.authority.to_string())).ok_or_else(|| {
        ConfigError::new(format!("{at}.authority"), "required (the token endpoint's host), unless a profile sets it")
    })?;
    if !text(&authority) || authority.contains(['/', ' ', '@', '?', '#']) {
        return Err(ConfigError::new(format!("{at}.authority"), format!("{authority:?} is not a host[:port]")));
    }
    let path = raw.path.or_else(|| profile.as_ref().map(|p| p.path.to_string())).ok_or_else(|| {
        ConfigError::new(format!("{at}.path"), "required (the token endpoint's path), unless a profile sets it")
    })?;
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) || path.contains('#') {
        return Err(ConfigError::new(format!("{at}.path"), format!("{path:?} is not an absolute path")));
    }
    let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(100..=60_000).contains(&timeout_ms) {
        return Err(ConfigError::new(
            format!("{at}.timeout_ms"),
            format!("{timeout_ms} is out of range: 100 to 60000"),
        ));
    }
    let grant = match (raw.grant.as_deref(), &profile) {
        (Some("token_exchange"), _) => Grant::TokenExchange,
        (Some("jwt_bearer"), _) => Grant::JwtBearer,
        (None, Some(p)) => p.grant,
        (other, _) => {
            return Err(ConfigError::new(
                format!("{at}.grant"),
                format!("{other:?}: \"token_exchange\" (RFC 8693) or \"jwt_bearer\" (RFC 7523)"),
            ))
        }
    };
    let encoding = match (raw.encoding.as_deref(), &profile) {
        (Some("form"), _) => Encoding::Form,
        (Some("json"), _) => Encoding::Json,
        (None, Some(p)) => p.encoding,
        (None, None) => Encoding::Form,
        (Some(other), _) => {
            return Err(ConfigError::new(format!("{at}.encoding"), format!("{other:?}: \"form\" or \"json\"")))
        }
    };
    let subject = match (raw.subject.as_str(), raw.mint) {
        ("svid", None) => Subject::Svid,
        ("minted", Some(mint)) => {
            if mint.header.is_some() || mint.prefix.is_some() {
                return Err(ConfigError::new(format!("{at}.mint"), "header and prefix belong to the credential"));
            }
            Subject::Minted(Box::new(minter(mint, &format!("{at}.mint"), env)?))
        }
        ("minted", None) => {
            return Err(ConfigError::new(
                format!("{at}.mint"),
                "required with subject \"minted\": the assertion's fields",
            ))
        }
        ("svid", Some(_)) => {
            return Err(ConfigError::new(format!("{at}.mint"), "only with subject \"minted\""));
        }
        (other, _) => {
            return Err(ConfigError::new(
                format!("{at}.subject"),
                format!("{other:?}: \"svid\" (the caller's JWT-SVID) or \"minted\" (an assertion the gateway signs)"),
            ))
        }
    };
    let mut params: Vec<(String, String)> = Vec::new();
    for (name, value) in [("audience", raw.audience), ("scope", raw.scope), ("client_id", raw.client_id)] {
        match value {
            Some(v) if text(&v) => params.push((name.to_string(), v)),
            Some(_) => return Err(ConfigError::new(format!("{at}.{name}"), "must be a non-empty string")),
            None => {}
        }
    }
    let check_names = |list: &[(String, String)], where_: &str| -> Result<()> {
        for (name, _) in list {
            if RESERVED_PARAMS.contains(&name.as_str()) {
                return Err(ConfigError::new(format!("{where_}.{name}"), "is set by the gateway"));
            }
        }
        Ok(())
    };
    let extra = strings(raw.params.unwrap_or_default(), &format!("{at}.params"))?;
    check_names(&extra, &format!("{at}.params"))?;
    for (name, value) in extra {
        if params.iter().any(|(n, _)| *n == name) {
            return Err(ConfigError::new(format!("{at}.params.{name}"), "is set twice"));
        }
        params.push((name, value));
    }
    let accounts = match raw.accounts {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(ConfigError::new(format!("{at}.accounts"), "an empty list would refuse every caller"))
        }
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, a) in list.into_iter().enumerate() {
                let at = format!("{at}.accounts[{i}]");
                let workloads = a
                    .workloads
                    .iter()
                    .enumerate()
                    .map(|(j, w)| {
                        WorkloadPattern::parse(w).map_err(|e| {
                            ConfigError::new(
                                format!("{at}.workloads[{j}]"),
                                format!("{w:?} is not a workload pattern: {e}"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let account = strings(a.params, &format!("{at}.params"))?;
                check_names(&account, &format!("{at}.params"))?;
                if let Some((name, _)) = account.iter().find(|(n, _)| params.iter().any(|(p, _)| p == n)) {
                    return Err(ConfigError::new(format!("{at}.params.{name}"), "is also a fixed parameter"));
                }
                out.push(Account { workloads, params: account });
            }
            Some(out)
        }
    };
    if let Some(p) = &profile {
        for name in p.required {
            let fixed = params.iter().any(|(n, _)| n == name);
            let everywhere =
                accounts.as_ref().is_some_and(|a| a.iter().all(|a| a.params.iter().any(|(n, _)| n == name)));
            if !fixed && !everywhere {
                return Err(ConfigError::new(
                    format!("{at}.params"),
                    format!("the profile needs {name:?}, in params or in every account's params"),
                ));
            }
        }
    }
    let mut exchange_headers: Vec<(String, String)> = profile
        .as_ref()
        .map(|p| p.exchange_headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        .unwrap_or_default();
    for (name, value) in strings(raw.exchange_headers.unwrap_or_default(), &format!("{at}.exchange_headers"))? {
        let name = header_name(&name, &format!("{at}.exchange_headers.{name}"))?;
        exchange_headers.retain(|(n, _)| *n != name);
        exchange_headers.push((name, value));
    }
    let refresh_margin_seconds = raw.refresh_margin_seconds.unwrap_or(DEFAULT_REFRESH_MARGIN_SECONDS);
    if refresh_margin_seconds > 3_600 {
        return Err(ConfigError::new(format!("{at}.refresh_margin_seconds"), "at most 3600"));
    }
    let (header, prefix) = placement(raw.header, raw.prefix, at)?;
    let with_token =
        profile.map(|p| p.with_token.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap_or_default();
    Ok(TokenExchange {
        cluster: raw.cluster,
        authority,
        path,
        timeout_ms,
        grant,
        encoding,
        subject,
        params,
        accounts,
        exchange_headers,
        refresh_margin_seconds,
        header,
        prefix,
        with_token,
        digest: String::new(),
    })
}
