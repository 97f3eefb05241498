// TEMPORARY STUB — being replaced by the full implementation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);
impl TrustDomain {
    pub fn parse(s: &str) -> Result<Self, SpiffeIdError> {
        Ok(TrustDomain(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl std::fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    id: String,
    td_end: usize,
}
impl SpiffeId {
    pub fn parse(s: &str) -> Result<Self, SpiffeIdError> {
        let rest = s.strip_prefix("spiffe://").ok_or(SpiffeIdError::WrongScheme)?;
        if rest
            .chars()
            .any(|c| c.is_ascii_uppercase() && rest.find('/').map_or(true, |i| rest.find(c).unwrap_or(0) < i))
        {
            return Err(SpiffeIdError::BadTrustDomainChar);
        }
        if s.ends_with('/') {
            return Err(SpiffeIdError::TrailingSlash);
        }
        let td_end = 9 + rest.find('/').unwrap_or(rest.len());
        Ok(SpiffeId { id: s.to_string(), td_end })
    }
    pub fn as_str(&self) -> &str {
        &self.id
    }
    pub fn trust_domain(&self) -> &str {
        &self.id[9..self.td_end]
    }
    pub fn path(&self) -> &str {
        &self.id[self.td_end..]
    }
}
impl std::fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id)
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpiffeIdError {
    WrongScheme,
    BadTrustDomainChar,
    TrailingSlash,
}
impl std::fmt::Display for SpiffeIdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadPattern(String);
impl WorkloadPattern {
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        Ok(WorkloadPattern(s.to_string()))
    }
    pub fn matches(&self, id: &SpiffeId) -> bool {
        if let Some(p) = self.0.strip_suffix("/**") {
            return id.as_str().starts_with(&format!("{p}/"));
        }
        if let Some(p) = self.0.strip_suffix("/*") {
            return id.as_str().strip_prefix(&format!("{p}/")).is_some_and(|r| !r.contains('/'));
        }
        self.0 == id.as_str()
    }
    pub fn trust_domain(&self) -> &str {
        let r = &self.0[9..];
        &r[..r.find('/').unwrap_or(r.len())]
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelPattern(String);
impl ModelPattern {
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        Ok(ModelPattern(s.to_string()))
    }
    pub fn matches(&self, m: &str) -> bool {
        if let Some(p) = self.0.strip_suffix('*') {
            m.starts_with(p)
        } else {
            self.0 == m
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternError {
    Bad,
}
impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
