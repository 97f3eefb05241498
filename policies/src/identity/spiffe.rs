//! SPIFFE IDs, trust domains, and the patterns rules match them with.
//!
//! Parsing follows the SPIFFE-ID standard to the letter (and go-spiffe's
//! `spiffeid` package): `spiffe://` then a trust domain of `a-z 0-9 . - _`,
//! then path segments of `a-z A-Z 0-9 . - _`, no empty, `.` or `..`
//! segments, no trailing slash, no port, userinfo, query, fragment or
//! percent-encoding. Nothing is normalized: an ID that is not already
//! canonical is refused, so two spellings can never name one workload.

use std::fmt;

const SCHEME: &str = "spiffe://";
const MAX_TRUST_DOMAIN_BYTES: usize = 255;
const MAX_ID_BYTES: usize = 2048;

/// Why a string is not a SPIFFE ID or trust domain name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpiffeIdError {
    Empty,
    WrongScheme,
    MissingTrustDomain,
    BadTrustDomainChar,
    BadPathChar,
    EmptySegment,
    DotSegment,
    TrailingSlash,
    TooLong,
}

impl SpiffeIdError {
    pub fn code(self) -> &'static str {
        match self {
            SpiffeIdError::Empty => "empty",
            SpiffeIdError::WrongScheme => "wrong_scheme",
            SpiffeIdError::MissingTrustDomain => "missing_trust_domain",
            SpiffeIdError::BadTrustDomainChar => "bad_trust_domain_char",
            SpiffeIdError::BadPathChar => "bad_path_char",
            SpiffeIdError::EmptySegment => "empty_segment",
            SpiffeIdError::DotSegment => "dot_segment",
            SpiffeIdError::TrailingSlash => "trailing_slash",
            SpiffeIdError::TooLong => "too_long",
        }
    }
}

impl fmt::Display for SpiffeIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpiffeIdError::Empty => "it is empty",
            SpiffeIdError::WrongScheme => "the scheme must be spiffe://",
            SpiffeIdError::MissingTrustDomain => "the trust domain is missing",
            SpiffeIdError::BadTrustDomainChar => {
                "the trust domain may hold only lower-case letters, digits, '.', '-' and '_' (no port, userinfo or upper case)"
            }
            SpiffeIdError::BadPathChar => {
                "path segments may hold only letters, digits, '.', '-' and '_' (no query, fragment or percent-encoding)"
            }
            SpiffeIdError::EmptySegment => "the path has an empty segment",
            SpiffeIdError::DotSegment => "the path has a '.' or '..' segment",
            SpiffeIdError::TrailingSlash => "the path ends with '/'",
            SpiffeIdError::TooLong => "it is too long (trust domain 255 bytes, SPIFFE ID 2048 bytes at most)",
        })
    }
}

impl std::error::Error for SpiffeIdError {}

fn trust_domain_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'_'
}

fn path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'
}

fn check_trust_domain(td: &str) -> Result<(), SpiffeIdError> {
    if td.is_empty() {
        return Err(SpiffeIdError::MissingTrustDomain);
    }
    if td.len() > MAX_TRUST_DOMAIN_BYTES {
        return Err(SpiffeIdError::TooLong);
    }
    if !td.bytes().all(trust_domain_char) {
        return Err(SpiffeIdError::BadTrustDomainChar);
    }
    Ok(())
}

/// Checks a path: empty, or `/segment` repeated.
fn check_path(path: &str) -> Result<(), SpiffeIdError> {
    if path.is_empty() {
        return Ok(());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(SpiffeIdError::BadPathChar);
    };
    let segments: Vec<&str> = rest.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            return Err(if i + 1 == segments.len() {
                SpiffeIdError::TrailingSlash
            } else {
                SpiffeIdError::EmptySegment
            });
        }
        if *segment == "." || *segment == ".." {
            return Err(SpiffeIdError::DotSegment);
        }
        if !segment.bytes().all(path_char) {
            return Err(SpiffeIdError::BadPathChar);
        }
    }
    Ok(())
}

/// A validated SPIFFE trust domain name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Parses a bare trust domain name such as `example.org`.
    pub fn parse(s: &str) -> Result<Self, SpiffeIdError> {
        if s.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        check_trust_domain(s)?;
        Ok(TrustDomain(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated SPIFFE ID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    id: String,
    /// Where the path starts in `id`.
    path_start: usize,
}

impl SpiffeId {
    pub fn parse(s: &str) -> Result<Self, SpiffeIdError> {
        if s.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if s.len() > MAX_ID_BYTES {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = s.strip_prefix(SCHEME).ok_or(SpiffeIdError::WrongScheme)?;
        let td_len = rest.find('/').unwrap_or(rest.len());
        check_trust_domain(&rest[..td_len])?;
        check_path(&rest[td_len..])?;
        Ok(SpiffeId { id: s.to_string(), path_start: SCHEME.len() + td_len })
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    pub fn trust_domain(&self) -> &str {
        &self.id[SCHEME.len()..self.path_start]
    }

    /// `/ns/prod/sa/x`, or `""` for a trust domain's own ID.
    pub fn path(&self) -> &str {
        &self.id[self.path_start..]
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// Why a workload or model pattern is invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternError {
    /// The part before any wildcard is not a SPIFFE ID.
    SpiffeId(SpiffeIdError),
    /// `*` or `**` anywhere but as the whole last segment.
    Wildcard,
    Empty,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::SpiffeId(e) => write!(f, "not a SPIFFE ID: {e}"),
            PatternError::Wildcard => f.write_str("'*' and '**' may only stand as the whole last path segment"),
            PatternError::Empty => f.write_str("a pattern cannot be empty"),
        }
    }
}

impl std::error::Error for PatternError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tail {
    /// The ID itself.
    Exact,
    /// Exactly one more segment.
    One,
    /// One or more segments.
    Many,
}

/// A workload pattern: a full SPIFFE ID, or one whose last segment is `*`
/// (exactly one more segment) or `**` (one or more).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadPattern {
    text: String,
    base: SpiffeId,
    tail: Tail,
}

impl WorkloadPattern {
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        let (base, tail) = if let Some(base) = s.strip_suffix("/**") {
            (base, Tail::Many)
        } else if let Some(base) = s.strip_suffix("/*") {
            (base, Tail::One)
        } else {
            (s, Tail::Exact)
        };
        if base.contains('*') {
            return Err(PatternError::Wildcard);
        }
        let base = SpiffeId::parse(base).map_err(PatternError::SpiffeId)?;
        Ok(WorkloadPattern { text: s.to_string(), base, tail })
    }

    pub fn matches(&self, id: &SpiffeId) -> bool {
        match self.tail {
            Tail::Exact => *id == self.base,
            Tail::One | Tail::Many => {
                let Some(rest) = id.as_str().strip_prefix(self.base.as_str()) else { return false };
                let Some(rest) = rest.strip_prefix('/') else { return false };
                // `id` is valid, so `rest` has no empty segment.
                !rest.is_empty() && (self.tail == Tail::Many || !rest.contains('/'))
            }
        }
    }

    pub fn trust_domain(&self) -> &str {
        self.base.trust_domain()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A model pattern: a literal, or a glob where `*` matches any run of
/// characters. Exact and case-sensitive; no other metacharacters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelPattern {
    text: String,
}

impl ModelPattern {
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        Ok(ModelPattern { text: s.to_string() })
    }

    /// Matching as a lenient provider might: ignoring ASCII case and
    /// surrounding white space. Deny rules use it too, so `GPT-3.5-Turbo `
    /// cannot slip past a deny of `gpt-3.5-*` to a provider that folds case.
    pub fn matches_loosely(&self, model: &str) -> bool {
        let pattern = ModelPattern { text: self.text.to_ascii_lowercase() };
        pattern.matches(&model.trim().to_ascii_lowercase())
    }

    /// Greedy glob matching, linear in practice: each `*` is matched by the
    /// earliest occurrence of the literal after it, which is always enough
    /// for `*`-only globs.
    pub fn matches(&self, model: &str) -> bool {
        let mut parts = self.text.split('*');
        let first = parts.next().unwrap_or("");
        let Some(mut rest) = model.strip_prefix(first) else { return false };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            return rest.is_empty();
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
#[path = "spiffe_tests.rs"]
mod tests;
