//! SVIDs: the trust bundles that hold their authorities, the one seam where
//! signatures are verified, and JWT-SVID validation.

pub mod bundle;
pub mod cache;
#[cfg(test)]
mod conformance;
pub mod jwt;
pub mod refresh;
pub mod trust;
pub mod verify;
pub mod x509;

pub use bundle::{Alg, JwtKey};
pub use cache::SvidCache;
pub use jwt::JwtSvid;
pub use trust::{Installed, TrustStore};
pub use verify::{PureRustVerifier, SignatureVerifier};
