//! HTTP header names in the configuration, checked the same way wherever
//! one is written.

use super::error::ConfigError;

/// Header names are HTTP tokens; Envoy presents them in lower case.
pub(super) fn header_name(name: &str, path: &str) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && !name.starts_with(':')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !ok {
        return Err(ConfigError::new(path, format!("{name:?} is not an HTTP header name")));
    }
    Ok(name.to_ascii_lowercase())
}
