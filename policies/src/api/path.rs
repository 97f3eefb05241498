//! The request path before any endpoint is matched: anything two servers
//! could read as different paths is refused (400 `invalid_path`), whatever
//! Envoy's own normalization did or did not do.
//!
//! Refused: percent-encoding (an encoded `/`, `:`, `.` or anything else —
//! no endpoint of any api needs one; Bedrock's model segment is the one
//! exception, decoded once by [`bedrock_model`]), backslashes, matrix
//! parameters (`;`), empty segments (`//`), dot segments (`.`, `..`), a
//! segment with two `:` (a second method separator), control and non-ASCII
//! bytes, and a fragment.

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

/// A Bedrock model id as botocore sends it: percent-encoded once (`:` as
/// `%3A`, `/` as `%2F`), decoded here once. Only the characters of model
/// ids, inference profile ids and ARNs may result; an encoded `%` (double
/// encoding) or any other escape is refused.
pub fn bedrock_model(raw: &str) -> Result<String, Denial> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let escape = raw.get(i + 1..i + 3).map(str::to_ascii_uppercase);
            match escape.as_deref() {
                Some("3A") => out.push(':'),
                Some("2F") => out.push('/'),
                _ => return Err(invalid("percent_encoded", "the model id holds an escape other than %3A or %2F")),
            }
            i += 3;
            continue;
        }
        out.push(char::from(b));
        i += 1;
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/');
    if out.is_empty() || !out.chars().all(allowed) {
        return Err(invalid("model_id", "the model id holds characters no Bedrock model id has"));
    }
    if out.starts_with('/') || out.ends_with('/') || out.contains("//") || out.split('/').any(|s| s == "." || s == "..")
    {
        return Err(invalid("model_id", "the model id is not a model id, inference profile id or ARN"));
    }
    if out.contains('/') && !out.starts_with("arn:") {
        return Err(invalid("model_id", "only an ARN holds a /"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_two_servers_could_read_differently() {
        for (path, detail) in [
            ("v1/chat/completions", "not_absolute"),
            ("/v1/chat%2Fcompletions", "percent_encoded"),
            ("/v1beta/models/gemini%3AgenerateContent", "percent_encoded"),
            ("/v1/chat/%63ompletions", "percent_encoded"),
            ("/v1//chat/completions", "empty_segment"),
            ("/v1/./chat/completions", "dot_segment"),
            ("/v1/../v1/chat/completions", "dot_segment"),
            ("/v1/chat\\completions", "path_backslash"),
            ("/v1/chat/completions;x=1", "path_parameters"),
            ("/v1beta/models/a:b:generateContent", "second_method"),
            ("/v1/chat/completions#x", "path_fragment"),
            ("/v1/chat/compl\u{e9}tions", "path_byte"),
            ("/v1/chat/completions\t", "path_byte"),
        ] {
            assert_eq!(check(path, None).unwrap_err().detail.as_deref(), Some(detail), "{path}");
        }
        for path in ["/v1/chat/completions", "/v1beta/models/gemini-2.5-flash:generateContent", "/v1/models/"] {
            assert!(check(path, None).is_ok(), "{path}");
        }
    }

    #[test]
    fn bedrock_model_ids_are_decoded_once() {
        let arn = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0";
        assert!(check(&format!("/model/{arn}/converse"), Some(2)).is_ok());
        assert_eq!(
            bedrock_model(arn).unwrap(),
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
        );
        assert_eq!(
            bedrock_model("anthropic.claude-3-haiku-20240307-v1:0").unwrap(),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
        assert_eq!(
            bedrock_model("anthropic.claude-3-haiku-20240307-v1%3a0").unwrap(),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
        for bad in ["a%252Fb", "a%2e%2e", "a%2Fb", "arn%3Ax%2F%2Fy", "arn%3Ax%2F..%2Fy", "%2Fa", "a b", "a%"] {
            assert!(bedrock_model(bad).is_err(), "{bad}");
        }
        assert!(check("/model/a%2Fb/converse", Some(3)).is_err(), "only the model segment");
    }
}
