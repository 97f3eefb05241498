//! The configuration's error, for every step that checks a part of it.

use std::fmt;

/// A configuration error: the JSON path of the bad field and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "modelgate config: {}", self.message)
        } else {
            write!(f, "modelgate config: {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}
