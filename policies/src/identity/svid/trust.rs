//! The trust bundles a worker VM verifies JWT-SVIDs against: the inline
//! bundles of the configuration, replaced by fetched ones as they arrive.
//!
//! - A domain configured with a bundle endpoint and no inline keys is
//!   *unavailable* until its first bundle is installed: its tokens get 503
//!   `bundle_unavailable`, never a guess.
//! - A bundle with an older `spiffe_sequence` than the installed one never
//!   replaces it; an equal one changes nothing.
//! - Every change gives the domain a new generation, so verifications cached
//!   under the old keys are not reused.

use std::rc::Rc;

use super::bundle::{Bundle, JwtKey};
use super::x509::Authority;
use crate::config::svid::TrustDomainConfig;
use crate::identity::spiffe::TrustDomain;

#[derive(Clone, Debug)]
pub struct Domain {
    pub name: TrustDomain,
    pub keys: Rc<[JwtKey]>,
    /// False until a domain that has only a bundle endpoint has loaded it.
    pub available: bool,
    pub sequence: Option<u64>,
    pub generation: u64,
    pub x509_authorities: Rc<[Authority]>,
}

#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    domains: Vec<Domain>,
    generations: u64,
}

/// What [`TrustStore::install`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Installed {
    /// The domain's keys are now the bundle's.
    Replaced,
    /// The bundle has the installed sequence: nothing changed.
    Same,
    /// The bundle's sequence is older than the installed one: refused.
    Older { installed: u64 },
    /// No such trust domain is configured.
    Unknown,
}

impl TrustStore {
    pub fn new(configured: &[TrustDomainConfig]) -> Self {
        let domains: Vec<Domain> = configured
            .iter()
            .zip(1..)
            .map(|(d, generation)| Domain {
                name: d.name.clone(),
                keys: d.keys.clone().into(),
                available: d.endpoint.is_none() || !d.keys.is_empty(),
                sequence: None,
                generation,
                x509_authorities: d.x509_authorities.clone().into(),
            })
            .collect();
        TrustStore { generations: domains.len() as u64, domains }
    }

    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.name.as_str() == name)
    }

    pub fn knows(&self, name: &str) -> bool {
        self.domain(name).is_some()
    }

    /// The X.509 authorities configured for `name` (none: not checked).
    pub fn x509_authorities(&self, name: &str) -> &[Authority] {
        self.domain(name).map_or(&[], |d| &d.x509_authorities)
    }

    /// Whether `bundle` would replace the installed bundle of `name`.
    pub fn check(&self, name: &str, sequence: Option<u64>) -> Installed {
        let Some(domain) = self.domain(name) else { return Installed::Unknown };
        match (domain.available, domain.sequence, sequence) {
            (true, Some(installed), Some(new)) if new < installed => Installed::Older { installed },
            (true, Some(installed), Some(new)) if new == installed => Installed::Same,
            _ => Installed::Replaced,
        }
    }

    /// Installs a fetched bundle, unless it is older than (or the same as)
    /// the one in force.
    pub fn install(&mut self, name: &str, bundle: Bundle) -> Installed {
        let verdict = self.check(name, bundle.sequence);
        if verdict != Installed::Replaced {
            return verdict;
        }
        self.generations += 1;
        let generation = self.generations;
        if let Some(domain) = self.domains.iter_mut().find(|d| d.name.as_str() == name) {
            domain.keys = bundle.keys.into();
            domain.sequence = bundle.sequence;
            domain.available = true;
            domain.generation = generation;
        }
        Installed::Replaced
    }
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
