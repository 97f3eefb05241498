//! The providers a rule or a budget names: `["*"]`, or names.

/// `["*"]` (every provider), or the providers named.
#[derive(Debug, PartialEq, Eq)]
pub enum ProviderSet {
    All,
    Named(Vec<String>),
}

impl ProviderSet {
    pub fn contains(&self, provider: &str) -> bool {
        match self {
            ProviderSet::All => true,
            ProviderSet::Named(names) => names.iter().any(|n| n == provider),
        }
    }
}
