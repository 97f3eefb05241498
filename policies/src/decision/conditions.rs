//! Rule conditions (SPEC §2 `when`): a rule matches only when every
//! condition in it holds. Compiled once from the configuration — day sets,
//! minute ranges, CIDR bit masks, claim value lists — so a request is judged
//! in time bounded by the configuration, with no parsing. The engine is
//! given the time, the peer address, the SVIDs and the metadata values it
//! asked for: every condition is testable natively, and `explain` can
//! evaluate the same.

use std::net::{IpAddr, Ipv6Addr};

use serde::Serialize;
use serde_json::Value;

use crate::config::error::ConfigError;
use crate::identity::svid::jwt::JwtSvid;
use crate::identity::svid::x509::X509Svid;

type Result<T> = std::result::Result<T, ConfigError>;

/// A rule's compiled `when`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conditions {
    pub time: Option<TimeWindow>,
    pub source: Option<Vec<Cidr>>,
    pub svid: Option<SvidCondition>,
    pub claims: Vec<(String, Vec<String>)>,
    pub metadata: Vec<MetadataCondition>,
}

/// Days of the week and a UTC minute range `[start, end)`; a range whose
/// end is not after its start crosses midnight, and belongs to the day it
/// starts on (`fri 22:00-06:00` holds until Saturday 06:00).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    /// Monday first.
    pub days: [bool; 7],
    pub start: u16,
    pub end: u16,
}

/// An IP prefix, IPv4 kept as IPv4-mapped IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    bits: u128,
    mask: u128,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SvidCondition {
    pub jwt: bool,
    pub x509: bool,
    pub max_age_seconds: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetadataCondition {
    pub namespace: String,
    pub key: String,
    pub equals: Value,
}

/// A dynamic metadata value read for the conditions: (namespace, key) and
/// the bytes the host serialized, if any.
pub type MetadataValue = ((String, String), Option<Vec<u8>>);

/// What a request brings to the conditions.
pub struct Facts<'a> {
    pub now_secs: u64,
    /// The downstream peer's address as Envoy reports it (`ip:port`).
    pub peer: Option<&'a str>,
    pub jwt: Option<&'a JwtSvid>,
    pub x509: Option<&'a X509Svid>,
    /// The dynamic metadata values modelgate read, as the host serialized
    /// them, by namespace and key.
    pub metadata: &'a [MetadataValue],
}

/// One evaluated condition, for the audit record. `ok` is what the rule
/// took it as: for a fact that could not be read with certainty
/// (`unknown`), false on an allow rule and true on a deny rule — each
/// fails closed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evaluated {
    pub rule: String,
    pub condition: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unknown: bool,
}

/// What a condition says of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    Holds,
    Fails,
    /// The fact it reads could not be read with certainty: a peer address
    /// Envoy took from a header, a claim the SVID cache did not keep.
    Unknown,
}

impl Truth {
    fn of(ok: bool) -> Truth {
        if ok {
            Truth::Holds
        } else {
            Truth::Fails
        }
    }
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        self.time.is_none()
            && self.source.is_none()
            && self.svid.is_none()
            && self.claims.is_empty()
            && self.metadata.is_empty()
    }

    /// Each condition with its result, in a fixed order; the first that
    /// failed is the `detail` of a refusal.
    pub fn evaluate(&self, facts: &Facts<'_>) -> Vec<(String, Truth)> {
        let mut out = Vec::new();
        if let Some(t) = &self.time {
            out.push(("time".to_string(), Truth::of(t.holds(facts.now_secs))));
        }
        if let Some(cidrs) = &self.source {
            let truth = match facts.peer.and_then(direct_peer_ip) {
                Some(ip) => Truth::of(cidrs.iter().any(|c| c.contains(ip))),
                None => Truth::Unknown,
            };
            out.push(("source_cidrs".to_string(), truth));
        }
        if let Some(s) = &self.svid {
            let kinds = (s.jwt && facts.jwt.is_some()) || (s.x509 && facts.x509.is_some());
            out.push(("svid.types".to_string(), Truth::of(kinds)));
            if let Some(max) = s.max_age_seconds {
                // Every SVID the request presented must be this fresh.
                let issued = [facts.jwt.map(|j| j.iat), facts.x509.map(|x| Some(x.not_before))];
                let fresh =
                    issued.iter().flatten().all(|iat| iat.is_some_and(|t| facts.now_secs.saturating_sub(t) <= max));
                out.push(("svid.max_age_seconds".to_string(), Truth::of(fresh && issued.iter().any(Option::is_some))));
            }
        }
        for (claim, allowed) in &self.claims {
            let truth = match facts.jwt {
                None => Truth::Fails,
                Some(j) => match j.claims.iter().find(|(name, _)| name == claim) {
                    Some((_, values)) => Truth::of(values.iter().any(|v| allowed.contains(v))),
                    // Not kept (a value that is no string, or past the
                    // claims kept): it may be there.
                    None if j.unread_claims => Truth::Unknown,
                    None => Truth::Fails,
                },
            };
            out.push((format!("claims.{claim}"), truth));
        }
        for m in &self.metadata {
            let found = facts
                .metadata
                .iter()
                .find(|((ns, key), _)| *ns == m.namespace && *key == m.key)
                .and_then(|(_, v)| v.as_deref());
            out.push((format!("metadata.{}.{}", m.namespace, m.key), Truth::of(found.is_some_and(|v| m.matches(v)))));
        }
        out
    }
}

impl TimeWindow {
    pub fn holds(&self, now_secs: u64) -> bool {
        let days = now_secs / 86_400;
        // 1970-01-01 was a Thursday: Monday-first index 3.
        let weekday = ((days + 3) % 7) as usize;
        let minute = ((now_secs % 86_400) / 60) as u16;
        if self.start < self.end {
            self.days[weekday] && (self.start..self.end).contains(&minute)
        } else if minute >= self.start {
            self.days[weekday]
        } else if minute < self.end {
            // After midnight: the window began the day before.
            self.days[(weekday + 6) % 7]
        } else {
            false
        }
    }
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, len) = s.split_once('/')?;
        let ip: IpAddr = addr.parse().ok()?;
        if len.is_empty()
            || len.len() > 3
            || !len.bytes().all(|b| b.is_ascii_digit())
            || len.starts_with('0') && len.len() > 1
        {
            return None;
        }
        let len: u32 = len.parse().ok()?;
        let (bits, len) = match ip {
            IpAddr::V4(v4) if len <= 32 => (u128::from(v4.to_ipv6_mapped()), 96 + len),
            IpAddr::V6(v6) if len <= 128 => (u128::from(v6), len),
            _ => return None,
        };
        let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
        // Host bits set (`10.0.0.1/8`) are a typo for another network.
        (bits & !mask == 0).then_some(Cidr { bits, mask })
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask == self.bits
    }
}

/// `10.0.0.7:51234`, `[fd00::1]:443`, or a bare address → IPv6 (IPv4 as
/// IPv4-mapped, so `::ffff:10.0.0.7` and `10.0.0.7` are one peer).
/// The address of the connection's own peer, from Envoy's `ip:port`.
/// Envoy reports a port of 0 for an address it took from a header
/// (`x-forwarded-for` with `use_remote_address: false` — its default, and
/// Istio's sidecar — or trusted hops, or an original-IP extension): the
/// caller may have written it, so it is no peer address (`None`).
fn direct_peer_ip(peer: &str) -> Option<Ipv6Addr> {
    let port = if let Some(rest) = peer.strip_prefix('[') {
        rest.split_once("]:").map(|(_, port)| port)
    } else {
        peer.rsplit_once(':').filter(|(host, _)| !host.contains(':')).map(|(_, port)| port)
    };
    match port.map(str::parse::<u16>) {
        Some(Ok(port)) if port != 0 => peer_ip(peer),
        _ => None,
    }
}

/// Whether Envoy took this client address from a header (its port is 0),
/// for the record and the log.
pub fn is_forwarded_address(peer: &str) -> bool {
    direct_peer_ip(peer).is_none() && peer_ip(peer).is_some()
}

fn peer_ip(peer: &str) -> Option<Ipv6Addr> {
    let host = if let Some(rest) = peer.strip_prefix('[') {
        rest.split(']').next()?
    } else if peer.matches(':').count() == 1 {
        peer.split(':').next()?
    } else {
        peer
    };
    match host.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => Some(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => Some(v6),
    }
}

impl MetadataCondition {
    /// The host serializes a metadata value by its type: a string as its
    /// bytes, a boolean as one byte, a number as an 8-byte little-endian
    /// double.
    fn matches(&self, bytes: &[u8]) -> bool {
        match &self.equals {
            Value::String(s) => bytes == s.as_bytes(),
            Value::Bool(b) => bytes == [u8::from(*b)],
            Value::Number(n) => {
                n.as_f64().is_some_and(|want| bytes.try_into().map(f64::from_le_bytes).is_ok_and(|got| got == want))
            }
            _ => false,
        }
    }
}

/// Compiles a rule's `when` (JSON as written) at `at`.
pub fn compile(raw: &Value, at: &str) -> Result<Conditions> {
    let err = |path: &str, msg: &str| ConfigError::new(format!("{at}{path}"), msg.to_string());
    let Value::Object(o) = raw else { return Err(err("", "must be an object of conditions")) };
    if o.is_empty() {
        return Err(err("", "an empty condition list holds always: omit when"));
    }
    let mut c = Conditions::default();
    for (name, v) in o {
        match name.as_str() {
            "time" => c.time = Some(time(v, &format!("{at}.time"))?),
            "source_cidrs" => {
                let list = non_empty_strings(v, &format!("{at}.source_cidrs"))?;
                let mut cidrs = Vec::new();
                for (j, s) in list.iter().enumerate() {
                    cidrs.push(Cidr::parse(s).ok_or_else(|| {
                        err(
                            &format!(".source_cidrs[{j}]"),
                            &format!("{s:?} is not an address/prefix without host bits"),
                        )
                    })?);
                }
                c.source = Some(cidrs);
            }
            "svid" => c.svid = Some(svid(v, &format!("{at}.svid"))?),
            "claims" => {
                let Value::Object(claims) = v else {
                    return Err(err(".claims", "must be an object: claim → values"));
                };
                if claims.is_empty() {
                    return Err(err(".claims", "names no claim"));
                }
                for (claim, values) in claims {
                    let values = non_empty_strings(values, &format!("{at}.claims.{claim}"))?;
                    c.claims.push((claim.clone(), values));
                }
            }
            "metadata" => {
                let Value::Array(items) = v else { return Err(err(".metadata", "must be a list")) };
                if items.is_empty() {
                    return Err(err(".metadata", "an empty list holds always: omit it"));
                }
                for (j, item) in items.iter().enumerate() {
                    c.metadata.push(metadata(item, &format!("{at}.metadata[{j}]"))?);
                }
            }
            other => {
                return Err(err(&format!(".{other}"), "unknown condition (time, source_cidrs, svid, claims, metadata)"))
            }
        }
    }
    Ok(c)
}

fn non_empty_strings(v: &Value, at: &str) -> Result<Vec<String>> {
    let Value::Array(items) = v else { return Err(ConfigError::new(at, "must be a list of strings")) };
    if items.is_empty() {
        return Err(ConfigError::new(at, "an empty list matches nothing"));
    }
    items
        .iter()
        .map(|i| i.as_str().map(str::to_string).ok_or_else(|| ConfigError::new(at, "must be a list of strings")))
        .collect()
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn time(v: &Value, at: &str) -> Result<TimeWindow> {
    let Value::Object(o) = v else { return Err(ConfigError::new(at, "must be an object with days and/or hours_utc")) };
    if o.is_empty() {
        return Err(ConfigError::new(at, "give days, hours_utc, or both"));
    }
    let mut w = TimeWindow { days: [true; 7], start: 0, end: 24 * 60 };
    for (name, value) in o {
        match name.as_str() {
            "days" => {
                let days = non_empty_strings(value, &format!("{at}.days"))?;
                w.days = [false; 7];
                for (j, d) in days.iter().enumerate() {
                    let i = DAYS.iter().position(|x| x == d).ok_or_else(|| {
                        ConfigError::new(format!("{at}.days[{j}]"), format!("{d:?} is not one of {}", DAYS.join(", ")))
                    })?;
                    w.days[i] = true;
                }
            }
            "hours_utc" => {
                let range = value.as_str().and_then(hours).ok_or_else(|| {
                    ConfigError::new(
                        format!("{at}.hours_utc"),
                        "must be \"HH:MM-HH:MM\" (UTC, 00:00 to 24:00, not empty)",
                    )
                })?;
                (w.start, w.end) = range;
            }
            other => return Err(ConfigError::new(format!("{at}.{other}"), "unknown (days, hours_utc)")),
        }
    }
    Ok(w)
}

/// `07:00-19:00` → minutes `[420, 1140)`; `22:00-06:00` crosses midnight;
/// `24:00` ends a day.
fn hours(s: &str) -> Option<(u16, u16)> {
    let minute = |t: &str| -> Option<u16> {
        let (h, m) = t.split_once(':')?;
        if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 || h == 24 && m == 0).then_some(h * 60 + m)
    };
    let (a, b) = s.split_once('-')?;
    let (start, end) = (minute(a)?, minute(b)?);
    (start < 24 * 60 && start != end).then_some((start, end))
}

fn svid(v: &Value, at: &str) -> Result<SvidCondition> {
    let Value::Object(o) = v else {
        return Err(ConfigError::new(at, "must be an object with types and/or max_age_seconds"));
    };
    if o.is_empty() {
        return Err(ConfigError::new(at, "give types, max_age_seconds, or both"));
    }
    let mut c = SvidCondition { jwt: true, x509: true, max_age_seconds: None };
    for (name, value) in o {
        match name.as_str() {
            "types" => {
                let types = non_empty_strings(value, &format!("{at}.types"))?;
                c.jwt = false;
                c.x509 = false;
                for (j, t) in types.iter().enumerate() {
                    match t.as_str() {
                        "jwt" => c.jwt = true,
                        "x509" => c.x509 = true,
                        _ => {
                            return Err(ConfigError::new(
                                format!("{at}.types[{j}]"),
                                format!("{t:?} is not jwt or x509"),
                            ))
                        }
                    }
                }
            }
            "max_age_seconds" => {
                c.max_age_seconds = Some(value.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                    ConfigError::new(format!("{at}.max_age_seconds"), "must be a positive number of seconds")
                })?)
            }
            other => return Err(ConfigError::new(format!("{at}.{other}"), "unknown (types, max_age_seconds)")),
        }
    }
    Ok(c)
}

fn metadata(v: &Value, at: &str) -> Result<MetadataCondition> {
    let Value::Object(o) = v else { return Err(ConfigError::new(at, "must be {namespace, key, equals}")) };
    let field = |name: &str| o.get(name).ok_or_else(|| ConfigError::new(format!("{at}.{name}"), "is required"));
    if let Some(other) = o.keys().find(|k| !["namespace", "key", "equals"].contains(&k.as_str())) {
        return Err(ConfigError::new(format!("{at}.{other}"), "unknown (namespace, key, equals)"));
    }
    let text = |name: &str| -> Result<String> {
        field(name)?
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .map(str::to_string)
            .ok_or_else(|| ConfigError::new(format!("{at}.{name}"), "must be a non-empty string"))
    };
    let equals = field("equals")?.clone();
    if !(equals.is_string() || equals.is_boolean() || equals.is_number()) {
        return Err(ConfigError::new(format!("{at}.equals"), "must be a string, a boolean or a number"));
    }
    Ok(MetadataCondition { namespace: text("namespace")?, key: text("key")?, equals })
}

#[cfg(test)]
#[path = "conditions_tests.rs"]
mod tests;
