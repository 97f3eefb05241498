//! Stage two: from [`RawConfig`] to [`Policy`]. Checks values, uniqueness and
//! cross-references, reads `api_key` secrets from the environment, and
//! refuses, by name, the fields later work implements. [`Policy::from_json`],
//! the entry, is here: `config` itself holds only the compiled types.

use serde_json::Value;

use super::header::header_name;
use super::patterns::{authority, is_name, model_patterns, provider_set, workload_patterns};
use super::raw::*;
use super::*;
use crate::api;
use crate::api::mcp::session;
use crate::api::spec::{is_segment, Spec};
use crate::body::guard::{self, Action, Detector, Guard};
use crate::decision::grants::{ArgumentConstraint, McpGrants, MethodPattern, PathGlob};
use crate::identity::spiffe::{ModelPattern, SpiffeId, TrustDomain};
use crate::identity::svid::bundle::parse_jwt_bundle;

const DEFAULT_LEEWAY_SECONDS: u64 = 30;
const DEFAULT_MAX_LIFETIME_SECONDS: u64 = 86_400;
const DEFAULT_MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;
const DEFAULT_SVID_CACHE: usize = 4096;
const MAX_SVID_CACHE: usize = 1 << 20;

type Result<T> = std::result::Result<T, ConfigError>;

impl Policy {
    /// Parses and compiles a configuration. `env` looks up the VM's
    /// environment variables (where `api_key` credentials come from).
    pub fn from_json(json: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Policy> {
        // A repeated member anywhere (serde_json would keep one silently
        // inside free-form values such as a bundle) is an error.
        if let Err(crate::body::json::JsonError::Duplicate(name)) = crate::body::json::scan(json, &[]) {
            return Err(ConfigError::new("", format!("the member {name:?} appears twice in one object")));
        }
        let mut de = serde_json::Deserializer::from_slice(json);
        let raw: RawConfig = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| ConfigError::new(e.path().to_string(), e.inner().to_string()))?;
        de.end().map_err(|e| ConfigError::new("", e.to_string()))?;
        compile(raw, env, &crate::util::digest::sha256_hex(json))
    }
}

/// `revision`: printable ASCII, at most 64 characters, so that a record
/// quotes it as written.
fn revision(raw: Option<String>) -> Result<Option<String>> {
    let Some(text) = raw else { return Ok(None) };
    if text.is_empty() || text.len() > 64 || !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(ConfigError::new("revision", "must be 1 to 64 printable ASCII characters"));
    }
    Ok(Some(text))
}

pub(super) fn compile(raw: RawConfig, env: &dyn Fn(&str) -> Option<String>, generation: &str) -> Result<Policy> {
    if raw.version != 1 {
        return Err(ConfigError::new(
            "version",
            format!("unsupported version {}: this modelgate reads version 1", raw.version),
        ));
    }
    let revision = revision(raw.revision)?;
    let (jwt_svid, identity) = identity(raw.identity)?;
    let trust_domains = trust_domains(raw.trust_domains, jwt_svid.enabled)?;
    let mut providers = providers(raw.providers, env)?;
    for p in &mut providers {
        let digest = super::credentials::digest(generation, p);
        if let Credential::TokenExchange(te) = &mut p.credential {
            te.digest = digest;
        }
    }
    let rules = rules(raw.rules, &trust_domains, &providers)?;
    let prompt_guard = prompt_guard(raw.prompt_guard)?;
    let budgets = super::budgets::compile(raw.budgets, raw.prices, raw.ledger, &trust_domains, &providers, env)?;
    let prompt_audit = match raw.audit.and_then(|a| a.prompt) {
        None | Some(RawPromptAudit::Sha256) => PromptAudit::Sha256,
        Some(RawPromptAudit::None) => PromptAudit::None,
    };
    let max_body_bytes = raw.limits.as_ref().and_then(|l| l.max_body_bytes).unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes == 0 {
        return Err(ConfigError::new("limits.max_body_bytes", "must be at least 1"));
    }
    let token_cache_size = match raw.limits.and_then(|l| l.token_cache_size) {
        None => crate::credential::token_exchange::DEFAULT_CACHE_SIZE,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| (1..=crate::credential::token_exchange::MAX_CACHE_SIZE).contains(n))
            .ok_or_else(|| {
                ConfigError::new(
                    "limits.token_cache_size",
                    format!("{n} is out of range: 1 to {}", crate::credential::token_exchange::MAX_CACHE_SIZE),
                )
            })?,
    };
    Ok(Policy {
        mode: match raw.mode {
            None | Some(RawMode::Enforce) => Mode::Enforce,
            Some(RawMode::Audit) => Mode::Audit,
        },
        trust_domains,
        jwt_svid,
        identity,
        providers,
        rules,
        prompt_audit,
        max_body_bytes,
        prompt_guard,
        generation: generation.to_string(),
        revision,
        token_cache_size,
        budgets,
    })
}

/// The trust domains; each needs JWT authorities (inline or from an
/// endpoint) when JWT-SVIDs are accepted at all.
fn trust_domains(raw: Vec<RawTrustDomain>, jwt_svids: bool) -> Result<Vec<TrustDomainConfig>> {
    if raw.is_empty() {
        return Err(ConfigError::new("trust_domains", "at least one trust domain is required"));
    }
    let mut out: Vec<TrustDomainConfig> = Vec::with_capacity(raw.len());
    for (i, td) in raw.into_iter().enumerate() {
        let at = format!("trust_domains[{i}]");
        let name = TrustDomain::parse(&td.name).map_err(|e| {
            ConfigError::new(format!("{at}.name"), format!("{:?} is not a trust domain name: {e}", td.name))
        })?;
        if out.iter().any(|d| d.name == name) {
            return Err(ConfigError::new(format!("{at}.name"), format!("duplicate trust domain {name}")));
        }
        let endpoint = td.bundle_endpoint.map(|e| bundle_endpoint(e, &format!("{at}.bundle_endpoint"))).transpose()?;
        let keys = match td.jwt_bundle {
            Some(bundle) => parse_jwt_bundle(&bundle).map_err(|e| {
                let path = if e.path.is_empty() || e.path == "." {
                    format!("{at}.jwt_bundle")
                } else {
                    format!("{at}.jwt_bundle.{}", e.path)
                };
                ConfigError::new(path, e.message)
            })?,
            None if endpoint.is_some() || !jwt_svids => Vec::new(),
            None => {
                return Err(ConfigError::new(
                    format!("{at}.jwt_bundle"),
                    "required: the trust domain's JWT authorities (inline, or from a bundle_endpoint)",
                ))
            }
        };
        let x509_authorities = td
            .x509_authorities
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(j, pem)| {
                crate::identity::svid::x509::Authority::from_pem(pem.as_bytes())
                    .map_err(|e| ConfigError::new(format!("{at}.x509_authorities[{j}]"), e))
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(TrustDomainConfig { name, keys, endpoint, x509_authorities });
    }
    Ok(out)
}

/// Bounds on a bundle endpoint's timings.
const REFRESH_SECONDS: (u64, u64) = (1, 86_400);
const TIMEOUT_MS: (u64, u64) = (100, 60_000);

fn bundle_endpoint(raw: RawBundleEndpoint, at: &str) -> Result<BundleEndpoint> {
    let token = |value: &str| !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic());
    if !token(&raw.cluster) {
        return Err(ConfigError::new(format!("{at}.cluster"), "the name of an Envoy cluster"));
    }
    let authority = raw.authority.unwrap_or_else(|| raw.cluster.clone());
    if !token(&authority) || authority.contains(['/', '?', '#', '@']) {
        return Err(ConfigError::new(format!("{at}.authority"), format!("{authority:?} is not a host[:port]")));
    }
    let path = raw.path.unwrap_or_else(|| "/".to_string());
    if !path.starts_with('/') || !token(&path) || path.contains('#') {
        return Err(ConfigError::new(format!("{at}.path"), format!("{path:?} is not an absolute path")));
    }
    let within = |value: Option<u64>, default: u64, (low, high): (u64, u64), name: &str| match value {
        None => Ok(default),
        Some(v) if (low..=high).contains(&v) => Ok(v),
        Some(v) => Err(ConfigError::new(format!("{at}.{name}"), format!("{v} is out of range: {low} to {high}"))),
    };
    Ok(BundleEndpoint {
        cluster: raw.cluster,
        authority,
        path,
        refresh_seconds: within(raw.refresh_seconds, 300, REFRESH_SECONDS, "refresh_seconds")?,
        timeout_ms: within(raw.timeout_ms, 5_000, TIMEOUT_MS, "timeout_ms")?,
        format: match raw.format {
            None | Some(RawBundleFormat::Spiffe) => Format::Spiffe,
            Some(RawBundleFormat::Jwks) => Format::Jwks,
        },
    })
}

fn identity(raw: RawIdentity) -> Result<(JwtSvidConfig, IdentityConfig)> {
    let x509 = match raw.x509_svid {
        None => X509Source::Off,
        Some(RawX509Svid { source: RawX509Source::Off, trusted_hop: None }) => X509Source::Off,
        Some(RawX509Svid { source: RawX509Source::Connection, trusted_hop: None }) => X509Source::Connection,
        Some(RawX509Svid { source: RawX509Source::Xfcc, trusted_hop: Some(hop) }) => {
            let id = SpiffeId::parse(&hop).map_err(|e| {
                ConfigError::new("identity.x509_svid.trusted_hop", format!("{hop:?} is not a SPIFFE ID: {e}"))
            })?;
            X509Source::Xfcc { trusted_hop: id }
        }
        Some(RawX509Svid { source: RawX509Source::Xfcc, trusted_hop: None }) => return Err(ConfigError::new(
            "identity.x509_svid.trusted_hop",
            "required with source xfcc: the SPIFFE ID of the proxy whose x-forwarded-client-cert element is trusted",
        )),
        Some(RawX509Svid { trusted_hop: Some(_), .. }) => {
            return Err(ConfigError::new("identity.x509_svid.trusted_hop", "only meaningful with source xfcc"))
        }
    };
    let require = match raw.require {
        None | Some(RawRequire::Any) => Require::Any,
        Some(RawRequire::Jwt) => Require::Jwt,
        Some(RawRequire::X509) => Require::X509,
        Some(RawRequire::Both) => Require::Both,
    };
    let jwt_on = raw.jwt_svid.is_some();
    let x509_on = x509 != X509Source::Off;
    let missing = match require {
        Require::Any if !jwt_on && !x509_on => Some("configure identity.jwt_svid, identity.x509_svid, or both"),
        Require::Jwt | Require::Both if !jwt_on => Some("requires identity.jwt_svid"),
        Require::X509 | Require::Both if !x509_on => Some("requires identity.x509_svid with a source"),
        _ => None,
    };
    if let Some(why) = missing {
        return Err(ConfigError::new("identity.require", why));
    }
    let identity = IdentityConfig { x509, require };
    let Some(jwt) = raw.jwt_svid else {
        // No JWT-SVIDs: none is read, but every carrier is still stripped.
        let config = JwtSvidConfig {
            enabled: false,
            audiences: Vec::new(),
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            max_lifetime_seconds: DEFAULT_MAX_LIFETIME_SECONDS,
            carrier: Carrier::SdkKeyHeaders,
            cache_size: DEFAULT_SVID_CACHE,
            verifier: VerifierChoice::Auto,
        };
        return Ok((config, identity));
    };
    if jwt.audiences.is_empty() {
        return Err(ConfigError::new("identity.jwt_svid.audiences", "at least one audience is required"));
    }
    if let Some(i) = jwt.audiences.iter().position(|a| a.is_empty()) {
        return Err(ConfigError::new(format!("identity.jwt_svid.audiences[{i}]"), "must not be empty"));
    }
    let max_lifetime_seconds = jwt.max_lifetime_seconds.unwrap_or(DEFAULT_MAX_LIFETIME_SECONDS);
    if max_lifetime_seconds == 0 {
        return Err(ConfigError::new("identity.jwt_svid.max_lifetime_seconds", "must be at least 1"));
    }
    let leeway_seconds = jwt.leeway_seconds.unwrap_or(DEFAULT_LEEWAY_SECONDS);
    if leeway_seconds > 300 {
        return Err(ConfigError::new(
            "identity.jwt_svid.leeway_seconds",
            "at most 300 seconds of clock skew is accepted",
        ));
    }
    let carrier = match (jwt.header, jwt.scheme) {
        (None, None) => Carrier::SdkKeyHeaders,
        (None, Some(_)) => return Err(ConfigError::new("identity.jwt_svid.scheme", "only meaningful with header")),
        (Some(name), scheme) => {
            let name = header_name(&name, "identity.jwt_svid.header")?;
            if let Some(s) = &scheme {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return Err(ConfigError::new(
                        "identity.jwt_svid.scheme",
                        format!("{s:?} is not an auth scheme such as Bearer"),
                    ));
                }
            }
            Carrier::Header { name, scheme }
        }
    };
    let cache_size = jwt.cache_size.unwrap_or(DEFAULT_SVID_CACHE);
    if cache_size > MAX_SVID_CACHE {
        return Err(ConfigError::new("identity.jwt_svid.cache_size", format!("at most {MAX_SVID_CACHE}")));
    }
    let verifier = match jwt.signature_verifier {
        None | Some(RawVerifier::Auto) => VerifierChoice::Auto,
        Some(RawVerifier::PureRust) => VerifierChoice::PureRust,
    };
    let config = JwtSvidConfig {
        enabled: true,
        audiences: jwt.audiences,
        leeway_seconds,
        max_lifetime_seconds,
        carrier,
        cache_size,
        verifier,
    };
    Ok((config, identity))
}

fn providers(raw: Vec<RawProvider>, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Provider>> {
    if raw.is_empty() {
        return Err(ConfigError::new("providers", "at least one provider is required"));
    }
    let mut out: Vec<Provider> = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        let at = format!("providers[{i}]");
        if !is_name(&p.name) {
            return Err(ConfigError::new(
                format!("{at}.name"),
                format!("{:?} is not a name (letters, digits, - and _)", p.name),
            ));
        }
        if out.iter().any(|o| o.name == p.name) {
            return Err(ConfigError::new(format!("{at}.name"), format!("duplicate provider {:?}", p.name)));
        }
        let api = p.api;
        let authorities = match p.match_.authorities {
            None => Vec::new(),
            Some(list) if list.is_empty() => {
                return Err(ConfigError::new(
                    format!("{at}.match.authorities"),
                    "an empty list matches nothing; omit it to match any",
                ))
            }
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(j, a)| {
                    authority(a).ok_or_else(|| {
                        ConfigError::new(
                            format!("{at}.match.authorities[{j}]"),
                            format!("{a:?} is not a host name with an optional :port"),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        };
        let path_prefix = match p.match_.path_prefix {
            None => None,
            Some(prefix) if prefix.starts_with('/') && !prefix.contains(['?', '#', '%']) && !prefix.contains("//") => {
                Some(prefix)
            }
            Some(prefix) => {
                return Err(ConfigError::new(
                    format!("{at}.match.path_prefix"),
                    format!("{prefix:?} must start with / and hold no ?, #, % or //"),
                ))
            }
        };
        if authorities.is_empty() && path_prefix.is_none() {
            return Err(ConfigError::new(format!("{at}.match"), "give authorities, path_prefix, or both"));
        }
        let credential = credential(p.credential, api, &format!("{at}.credential"), env)?;
        let headers = fixed_headers(p.headers.unwrap_or_default(), &format!("{at}.headers"))?;
        let deployments = deployments(p.deployments, api, &format!("{at}.deployments"))?;
        let (project, locations) = scope(p.project, p.locations, api, &at)?;
        let include_usage = match p.include_usage {
            Some(true) if api.spec().asks_stream_usage() => true,
            Some(true) => {
                return Err(ConfigError::new(
                    format!("{at}.include_usage"),
                    format!(
                        "only {} take include_usage; {} streams report usage themselves",
                        api::names_where(Spec::asks_stream_usage),
                        api.name()
                    ),
                ))
            }
            _ => false,
        };
        let identity_to_provider = match p.identity_to_provider {
            None => None,
            Some(_) if !api.spec().names_end_user() => {
                return Err(ConfigError::new(
                    format!("{at}.identity_to_provider"),
                    format!("{} has no end-user field ({} do)", api.name(), api::names_where(Spec::names_end_user)),
                ))
            }
            Some(RawEndUser::SpiffeId) => Some(EndUserName::SpiffeId),
            Some(RawEndUser::Hash) => Some(EndUserName::Hash),
        };
        let session_key = session_key(p.session_key, api, &at, env)?;
        out.push(Provider {
            name: p.name,
            api,
            authorities,
            path_prefix,
            credential,
            headers,
            deployments,
            project,
            locations,
            include_usage,
            identity_to_provider,
            session_key,
        });
    }
    Ok(out)
}

/// An MCP provider's session key (required): at least
/// [`session::MIN_KEY_BYTES`] bytes from the VM's environment.
fn session_key(
    raw: Option<RawSessionKey>,
    api: Api,
    at: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SessionKey>> {
    let raw = match (raw, api.spec().speaks_jsonrpc()) {
        (None, false) => return Ok(None),
        (Some(_), false) => {
            return Err(ConfigError::new(
                format!("{at}.session_key"),
                format!("only {} providers have sessions", api::names_where(Spec::speaks_jsonrpc)),
            ))
        }
        (None, true) => {
            return Err(ConfigError::new(
                format!("{at}.session_key"),
                format!(
                    "{} needs a session_key ({{\"env\": NAME}}): the key its sessions are bound to their workload with",
                    api.name()
                ),
            ))
        }
        (Some(raw), true) => raw,
    };
    let key = env(&raw.env).unwrap_or_default();
    if key.len() < session::MIN_KEY_BYTES {
        return Err(ConfigError::new(
            format!("{at}.session_key.env"),
            format!(
                "environment variable {:?} must hold at least {} bytes (the same on every replica)",
                raw.env,
                session::MIN_KEY_BYTES
            ),
        ));
    }
    Ok(Some(SessionKey(key.into_bytes())))
}

/// The names a request may select a model by → the model each runs, for
/// apis that take `deployments` (required where every request names a
/// deployment; elsewhere optional, unmapped names being refused).
fn deployments(raw: Option<serde_json::Map<String, Value>>, api: Api, at: &str) -> Result<Vec<(String, String)>> {
    let raw = match (raw, api.spec().deployments) {
        (None, Some(d)) if d.required => {
            return Err(ConfigError::new(
                at,
                format!("{} needs the model each deployment serves (deployment name → model)", api.name()),
            ))
        }
        (None, _) => return Ok(Vec::new()),
        (Some(_), None) => {
            return Err(ConfigError::new(
                at,
                format!(
                    "only {} providers have deployments, not {}",
                    api::names_where(|s| s.deployments.is_some()),
                    api.name()
                ),
            ))
        }
        (Some(map), Some(d)) => (map, d),
    };
    let (raw, names) = raw;
    let mut out = Vec::with_capacity(raw.len());
    for (name, model) in raw {
        let path = format!("{at}.{name}");
        if !(names.valid)(&name) {
            return Err(ConfigError::new(path, format!("{name:?} is not {}", names.what)));
        }
        match model {
            Value::String(m) if !m.is_empty() && !m.bytes().any(|b| b.is_ascii_control()) => out.push((name, m)),
            _ => return Err(ConfigError::new(path, "must be the model the deployment serves, a string")),
        }
    }
    Ok(out)
}

/// The project (required: the gateway's credential acts for it) and
/// optional locations, for apis whose paths name them.
fn scope(
    project: Option<String>,
    locations: Option<Vec<String>>,
    api: Api,
    at: &str,
) -> Result<(Option<String>, Vec<String>)> {
    if api.spec().scope.is_none() {
        let scoped = api::names_where(|s| s.scope.is_some());
        if project.is_some() {
            return Err(ConfigError::new(format!("{at}.project"), format!("only {scoped} providers have a project")));
        }
        if locations.is_some() {
            return Err(ConfigError::new(format!("{at}.locations"), format!("only {scoped} providers have locations")));
        }
        return Ok((None, Vec::new()));
    }
    let project = match project {
        Some(p) if is_segment(&p) => p,
        Some(p) => return Err(ConfigError::new(format!("{at}.project"), format!("{p:?} is not a project id"))),
        None => {
            return Err(ConfigError::new(
                format!("{at}.project"),
                format!("{} needs the project requests may name (the gateway's credential acts for it)", api.name()),
            ))
        }
    };
    let locations = locations.unwrap_or_default();
    if let Some((j, l)) = locations.iter().enumerate().find(|(_, l)| !is_segment(l)) {
        return Err(ConfigError::new(format!("{at}.locations[{j}]"), format!("{l:?} is not a location")));
    }
    Ok((Some(project), locations))
}

/// An allow rule's extra endpoint: `"/v1/files"`, `"GET /v1/files/*"`,
/// `"/v1/batches/**"`.
fn endpoint_pattern(raw: &str, at: &str) -> Result<EndpointPattern> {
    const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
    let (method, path) = match raw.split_once(' ') {
        Some((m, p)) if METHODS.contains(&m) => (Some(m.to_string()), p),
        Some(_) => return Err(ConfigError::new(at, format!("{raw:?}: the method is one of {}", METHODS.join(", ")))),
        None => (None, raw),
    };
    let bad = |why: &str| Err(ConfigError::new(at, format!("{raw:?}: {why}")));
    let Some(rest) = path.strip_prefix('/') else { return bad("the path starts with /") };
    let segments: Vec<String> = rest.split('/').map(str::to_string).collect();
    for (i, s) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if s == "**" && !last {
            return bad("** is only the last segment");
        }
        if s == "*" || s == "**" {
            continue;
        }
        if s.is_empty() || s == "." || s == ".." || s.contains('*') {
            return bad("every segment is a name, * or a last **");
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')) {
            return bad("a segment holds letters, digits, - _ . and :");
        }
    }
    Ok(EndpointPattern { method, segments })
}

/// The prompt guard: its action, the built-in detectors it runs (all when
/// none are named) and the configured patterns.
pub(super) fn prompt_guard(raw: Option<RawPromptGuard>) -> Result<Option<Guard>> {
    let Some(raw) = raw else { return Ok(None) };
    let action = match raw.action {
        None | Some(RawGuardAction::Block) => Action::Block,
        Some(RawGuardAction::Log) => Action::Log,
        Some(RawGuardAction::Off) => return Ok(None),
    };
    let mut detectors = Vec::new();
    match raw.detectors {
        None => detectors.extend(guard::built_in_names().filter_map(Detector::built_in)),
        Some(names) => {
            for (j, name) in names.iter().enumerate() {
                let d = Detector::built_in(name).ok_or_else(|| {
                    ConfigError::new(
                        format!("prompt_guard.detectors[{j}]"),
                        format!(
                            "no detector {name:?} (one of {})",
                            guard::built_in_names().collect::<Vec<_>>().join(", ")
                        ),
                    )
                })?;
                if detectors.iter().any(|o: &Detector| o.name == d.name) {
                    return Err(ConfigError::new(format!("prompt_guard.detectors[{j}]"), "named twice"));
                }
                detectors.push(d);
            }
        }
    }
    for (j, c) in raw.custom.unwrap_or_default().into_iter().enumerate() {
        let at = format!("prompt_guard.custom[{j}]");
        if !is_name(&c.name) || detectors.iter().any(|d| d.name == c.name) {
            return Err(ConfigError::new(format!("{at}.name"), format!("{:?} is not a new detector name", c.name)));
        }
        detectors
            .push(Detector::custom(&c.name, &c.pattern).map_err(|e| ConfigError::new(format!("{at}.pattern"), e))?);
    }
    if detectors.is_empty() {
        return Err(ConfigError::new("prompt_guard.detectors", "a guard needs at least one detector"));
    }
    Ok(Some(Guard::new(action, detectors)))
}

/// Headers a provider sets on every request: not credentials (the
/// `credential` sets those), not framing or hop-by-hop headers.
fn fixed_headers(raw: serde_json::Map<String, Value>, at: &str) -> Result<Vec<(String, String)>> {
    const FORBIDDEN: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    ];
    let mut out = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        let path = format!("{at}.{name}");
        let name = header_name(&name, &path)?;
        if FORBIDDEN.contains(&name.as_str()) {
            return Err(ConfigError::new(path, format!("{name:?} cannot be set here (credentials go in credential)")));
        }
        match value {
            Value::String(v) if !v.bytes().any(|b| b.is_ascii_control()) => out.push((name, v)),
            _ => return Err(ConfigError::new(path, "must be a string without control characters")),
        }
    }
    Ok(out)
}

fn credential(raw: RawCredential, api: Api, at: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Credential> {
    match raw {
        RawCredential::None {} => Ok(Credential::None),
        RawCredential::MintedJwt(map) => {
            let (minter, header, prefix) = super::credentials::minted(map, at, env)?;
            Ok(Credential::MintedJwt { minter, header, prefix })
        }
        RawCredential::TokenExchange(map) => {
            Ok(Credential::TokenExchange(Box::new(super::credentials::exchange(map, at, env)?)))
        }
        RawCredential::ApiKey { env: var, header, prefix } => {
            let key = match env(&var) {
                Some(value) if !value.trim().is_empty() => value.trim().to_string(),
                _ => {
                    return Err(ConfigError::new(
                        format!("{at}.env"),
                        format!("environment variable {var:?} is not set in the VM (Envoy vm_config.environment_variables.host_env_keys, Istio vmConfig.env)"),
                    ))
                }
            };
            if key.bytes().any(|b| b.is_ascii_control()) {
                return Err(ConfigError::new(
                    format!("{at}.env"),
                    format!("the value of {var:?} holds control characters"),
                ));
            }
            let (default_header, default_prefix) = api.spec().key_header;
            let header = match header {
                Some(h) => header_name(&h, &format!("{at}.header"))?,
                None => default_header.to_string(),
            };
            let prefix = prefix.unwrap_or_else(|| default_prefix.to_string());
            if prefix.bytes().any(|b| b.is_ascii_control()) {
                return Err(ConfigError::new(format!("{at}.prefix"), "holds control characters"));
            }
            Ok(Credential::ApiKey { key: Secret::new(key), header, prefix })
        }
    }
}

fn rules(raw: Vec<RawRule>, domains: &[TrustDomainConfig], providers: &[Provider]) -> Result<Vec<Rule>> {
    let mut out: Vec<Rule> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let at = format!("rules[{i}]");
        if !is_name(&r.id) {
            return Err(ConfigError::new(
                format!("{at}.id"),
                format!("{:?} is not an id (letters, digits, - and _)", r.id),
            ));
        }
        if out.iter().any(|o| o.id == r.id) {
            return Err(ConfigError::new(format!("{at}.id"), format!("duplicate rule id {:?}", r.id)));
        }
        let mcp = grants(&r, &at, providers)?;
        let endpoints = match r.endpoints {
            None => Vec::new(),
            Some(_) if r.effect == RawEffect::Deny => {
                return Err(ConfigError::new(
                    format!("{at}.endpoints"),
                    "a deny rule lists no endpoints (every endpoint outside the api's table is denied already)",
                ))
            }
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(j, e)| endpoint_pattern(e, &format!("{at}.endpoints[{j}]")))
                .collect::<Result<Vec<_>>>()?,
        };
        let conditions = match &r.when {
            None => crate::decision::conditions::Conditions::default(),
            Some(when) => crate::decision::conditions::compile(when, &format!("{at}.when"))?,
        };
        let workloads = workload_patterns(&r.workloads, &at, domains)?;
        let provider_set = provider_set(r.providers, &at, providers)?;
        let models = model_patterns(&r.models.unwrap_or_default(), &at)?;
        let effect = match r.effect {
            RawEffect::Allow => Effect::Allow,
            RawEffect::Deny => Effect::Deny,
        };
        let limits = match r.limits {
            None => RuleLimits::default(),
            Some(_) if effect == Effect::Deny => {
                return Err(ConfigError::new(format!("{at}.limits"), "a deny rule has no limits"));
            }
            Some(l) => {
                if l.max_tokens == Some(0) {
                    return Err(ConfigError::new(format!("{at}.limits.max_tokens"), "must be at least 1"));
                }
                RuleLimits { max_tokens: l.max_tokens, stream: l.stream.unwrap_or(true) }
            }
        };
        let prompt_guard = match r.prompt_guard {
            None => None,
            Some(_) if effect == Effect::Deny => {
                return Err(ConfigError::new(format!("{at}.prompt_guard"), "a deny rule has no prompt guard"))
            }
            Some(RawGuardAction::Off) => Some(None),
            Some(RawGuardAction::Block) => Some(Some(Action::Block)),
            Some(RawGuardAction::Log) => Some(Some(Action::Log)),
        };
        out.push(Rule {
            id: r.id,
            effect,
            workloads,
            providers: provider_set,
            models,
            mcp,
            endpoints,
            limits,
            conditions,
            prompt_guard,
        });
    }
    Ok(out)
}

/// A rule's MCP members (docs/mcp.md), each pattern checked with its path.
fn grants(r: &RawRule, at: &str, providers: &[Provider]) -> Result<McpGrants> {
    let any = [&r.tools, &r.resources, &r.prompts, &r.mcp].iter().any(|m| m.is_some()) || r.arguments.is_some();
    if !any {
        return Ok(McpGrants::default());
    }
    let names_server = r
        .providers
        .iter()
        .any(|name| name == "*" || providers.iter().any(|p| &p.name == name && p.api.spec().speaks_jsonrpc()));
    if !names_server {
        return Err(ConfigError::new(
            format!("{at}.providers"),
            format!(
                "a rule with tools, arguments, resources, prompts or mcp names an {} provider",
                api::names_where(Spec::speaks_jsonrpc)
            ),
        ));
    }
    fn each<T>(
        list: &Option<Vec<String>>,
        at: &str,
        parse: impl Fn(&str) -> std::result::Result<T, String>,
    ) -> Result<Vec<T>> {
        list.iter()
            .flatten()
            .enumerate()
            .map(|(j, s)| parse(s).map_err(|e| ConfigError::new(format!("{at}[{j}]"), format!("{s:?}: {e}"))))
            .collect()
    }
    let name_pattern = |s: &str| ModelPattern::parse(s).map_err(|e| e.to_string());
    let tools = each(&r.tools, &format!("{at}.tools"), name_pattern)?;
    let prompts = each(&r.prompts, &format!("{at}.prompts"), name_pattern)?;
    let resources = each(&r.resources, &format!("{at}.resources"), PathGlob::parse)?;
    let methods = each(&r.mcp, &format!("{at}.mcp"), |s| {
        if crate::api::mcp::message::NAMED_METHODS.contains(&s) {
            return Err(format!(
                "{s} is decided by the rule's {}",
                if s.starts_with("tools/") {
                    "tools"
                } else if s.starts_with("prompts/") {
                    "prompts"
                } else {
                    "resources"
                }
            ));
        }
        MethodPattern::parse(s)
    })?;
    let mut arguments = Vec::new();
    for (tool, constraints) in r.arguments.iter().flatten() {
        let path = format!("{at}.arguments.{tool}");
        if r.effect == RawEffect::Deny {
            return Err(ConfigError::new(path, "a deny rule has no argument constraints (it denies the tool)"));
        }
        let tool_pattern = ModelPattern::parse(tool).map_err(|e| ConfigError::new(&path, format!("{tool:?}: {e}")))?;
        if !tools.iter().any(|t| t.matches(tool) || t.as_str() == tool) {
            return Err(ConfigError::new(&path, format!("the rule's tools name no tool {tool:?}")));
        }
        let Value::Object(constraints) = constraints else {
            return Err(ConfigError::new(path, "must map each argument to the patterns its value may match"));
        };
        if constraints.is_empty() {
            return Err(ConfigError::new(path, "names no argument"));
        }
        for (argument, patterns) in constraints {
            let path = format!("{path}.{argument}");
            let list: Vec<String> = match patterns {
                Value::Array(items) if !items.is_empty() => items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| ConfigError::new(&path, "must be a list of patterns (strings)"))?,
                _ => return Err(ConfigError::new(path, "must be a non-empty list of patterns")),
            };
            let allowed = each(&Some(list), &path, PathGlob::parse)?;
            arguments.push(ArgumentConstraint { tool: tool_pattern.clone(), argument: argument.clone(), allowed });
        }
    }
    Ok(McpGrants { tools, arguments, resources, prompts, methods })
}
