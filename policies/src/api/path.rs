//! The request path before any endpoint is matched: anything two servers
//! could read as different paths is refused (400 `invalid_path`), whatever
//! Envoy's own normalization did or did not do.
//!
//! Refused: percent-encoding (an encoded `/`, `:`, `.` or anything else —
//! no endpoint of any api needs one, but for the one segment an api's spec
//! names: Bedrock's model id, decoded once by its `decode_model`), backslashes, matrix
//! parameters (`;`), empty segments (`//`), dot segments (`.`, `..`), a
//! segment with two `:` (a second method separator), control and non-ASCII
//! bytes, and a fragment.

use crate::api::Api;
use crate::reason::{Denial, Reason};

fn invalid(detail: &'static str, message: &str) -> Denial {
    Denial::new(Reason::InvalidPath, message).with_detail(detail)
}

/// Checks `path` (query removed). `encoded_segment` is the one segment
/// (counting from 1) that may hold percent-encoding, for apis whose SDKs
/// encode a model id there.
pub fn check(path: &str, encoded_segment: Option<usize>) -> Result<(), Denial> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(invalid("not_absolute", "the path must start with /"));
    };
    if let Some(b) = path.bytes().find(|b| !b.is_ascii_graphic()) {
        return Err(invalid("path_byte", &format!("the path holds the byte 0x{b:02x}")));
    }
    if path.contains('#') {
        return Err(invalid("path_fragment", "the path holds a fragment"));
    }
    if path.contains('\\') {
        return Err(invalid("path_backslash", "the path holds a backslash"));
    }
    if path.contains(';') {
        return Err(invalid("path_parameters", "the path holds matrix parameters (;)"));
    }
    for (i, segment) in rest.split('/').enumerate() {
        let n = i + 1;
        if segment.is_empty() && n != rest.split('/').count() {
            return Err(invalid("empty_segment", "the path holds an empty segment (//)"));
        }
        if segment == "." || segment == ".." {
            return Err(invalid("dot_segment", "the path holds a dot segment"));
        }
        if segment.contains('%') && encoded_segment != Some(n) {
            return Err(invalid("percent_encoded", "the path holds percent-encoding; send it unencoded"));
        }
        if segment.matches(':').count() > 1 && encoded_segment != Some(n) {
            return Err(invalid("second_method", "a path segment holds more than one ':'"));
        }
    }
    Ok(())
}

/// The model id a request's encoded path segment holds, decoded once by
/// its api (refused as `invalid_path` when it is none).
pub fn model_id(api: Option<Api>, raw: &str) -> Result<String, Denial> {
    let Some(api) = api else { return Ok(raw.to_string()) };
    (api.spec().decode_model)(raw).map_err(|e| invalid(e.detail, e.message))
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
