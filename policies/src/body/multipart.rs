//! `multipart/form-data` (RFC 7578 over RFC 2046), read as strictly as the
//! strictest server, and header parameters (RFC 9110 §5.6.6) — the two
//! places where a lenient reader let a workload show modelgate one model and
//! the provider another.
//!
//! Refused rather than resolved, because real servers read them differently:
//! a repeated or extended (`name*`) parameter, a quoted-string with a
//! backslash escape, a boundary that is repeated or not made of RFC 2046's
//! characters, a preamble, transport padding after a delimiter, any part
//! header but `Content-Disposition` and `Content-Type` (so no
//! `Content-Transfer-Encoding`), a repeated part header, folded or bare-LF
//! header lines, the boundary inside a part's content, anything but a CRLF
//! after the close delimiter, and a repeated field name (but for the `x[]`
//! array convention the SDKs use).
//!
//! One pass over the body: linear in its size (the boundary is at most 70
//! bytes).

/// Why a multipart body or header value was refused (the audit `detail`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartError(pub &'static str);

type Result<T> = std::result::Result<T, MultipartError>;

/// A header value's media type (lower case) and parameters (names in lower
/// case, values unquoted), each parameter once.
#[derive(Debug, PartialEq, Eq)]
pub struct MediaType {
    pub essence: String,
    pub params: Vec<(String, String)>,
}

impl MediaType {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `type/subtype *( OWS ";" OWS token "=" ( token / quoted-string ) )`.
pub fn media_type(value: &str) -> Result<MediaType> {
    let (essence, rest) = value.split_once(';').unwrap_or((value, ""));
    let essence = essence.trim_matches([' ', '\t']);
    let (kind, sub) = essence.split_once('/').ok_or(MultipartError("media_type"))?;
    if kind.is_empty() || sub.is_empty() || !kind.bytes().chain(sub.bytes()).all(is_tchar) {
        return Err(MultipartError("media_type"));
    }
    let params = if value.contains(';') { params(rest)? } else { Vec::new() };
    Ok(MediaType { essence: essence.to_ascii_lowercase(), params })
}

/// The parameters after a header value's first `;`: a `;`-separated list,
/// none empty, each name once, no RFC 2231 `name*` forms.
pub fn params(mut rest: &str) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        let eq = rest.find('=').ok_or(MultipartError("parameter"))?;
        let name = rest[..eq].trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_tchar) || name.contains('*') {
            return Err(MultipartError("parameter"));
        }
        rest = rest[eq + 1..].trim_start_matches([' ', '\t']);
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').ok_or(MultipartError("quoted_string"))?;
            value = &quoted[..end];
            // A backslash escape is read differently by different servers.
            if value.bytes().any(|b| b == b'\\' || (b.is_ascii_control() && b != b'\t')) {
                return Err(MultipartError("quoted_string"));
            }
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find([';', ' ', '\t']).unwrap_or(rest.len());
            value = &rest[..end];
            if value.is_empty() || !value.bytes().all(is_tchar) {
                return Err(MultipartError("parameter"));
            }
            rest = &rest[end..];
        }
        let name = name.to_ascii_lowercase();
        if out.iter().any(|(k, _)| *k == name) {
            return Err(MultipartError("repeated_parameter"));
        }
        out.push((name, value.to_string()));
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            return Ok(out);
        }
        rest = rest.strip_prefix(';').ok_or(MultipartError("parameter"))?;
    }
}

/// The boundary of a `multipart/form-data` content type, which must carry
/// that one parameter and nothing else.
pub fn boundary(content_type: &str) -> Result<String> {
    let media = media_type(content_type)?;
    if media.essence != "multipart/form-data" {
        return Err(MultipartError("content_type"));
    }
    if media.params.len() != 1 {
        return Err(MultipartError("content_type_parameters"));
    }
    let boundary = media.param("boundary").ok_or(MultipartError("boundary"))?;
    // RFC 2046: 1 to 70 of these, not ending in a space.
    let bchar = |b: u8| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b);
    if boundary.is_empty() || boundary.len() > 70 || boundary.ends_with(' ') || !boundary.bytes().all(bchar) {
        return Err(MultipartError("boundary"));
    }
    Ok(boundary.to_string())
}

/// One form field.
#[derive(Debug, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: String,
    pub filename: Option<String>,
    /// The part's `Content-Type`, as sent.
    pub content_type: Option<String>,
    pub value: &'a [u8],
}

/// The fields of a form whose boundary is `boundary`.
pub fn fields<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Field<'a>>> {
    let dash = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    let dash = dash.as_bytes();
    let delimiter = delimiter.as_bytes();
    // No preamble: the body starts with the first delimiter.
    let mut rest = body.strip_prefix(dash).ok_or(MultipartError("preamble"))?;
    let mut out: Vec<Field<'a>> = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix(b"--") {
            // The close delimiter: nothing but one CRLF may follow.
            if !(after.is_empty() || after == b"\r\n") {
                return Err(MultipartError("epilogue"));
            }
            if out.is_empty() {
                return Err(MultipartError("no_parts"));
            }
            return Ok(out);
        }
        rest = rest.strip_prefix(b"\r\n").ok_or(MultipartError("delimiter"))?;
        let end = find(rest, delimiter).ok_or(MultipartError("unterminated"))?;
        let part = &rest[..end];
        rest = &rest[end + delimiter.len()..];
        let field = part_field(part, dash)?;
        if !field.name.ends_with("[]") && out.iter().any(|f| f.name == field.name) {
            return Err(MultipartError("repeated_field"));
        }
        out.push(field);
    }
}

fn part_field<'a>(part: &'a [u8], dash: &[u8]) -> Result<Field<'a>> {
    let head_end = find(part, b"\r\n\r\n").ok_or(MultipartError("part_headers"))?;
    let value = &part[head_end + 4..];
    // The boundary inside a part's content: some servers would end the
    // part there.
    if find(value, dash).is_some() {
        return Err(MultipartError("boundary_in_content"));
    }
    let head = std::str::from_utf8(&part[..head_end]).map_err(|_| MultipartError("part_headers"))?;
    let (mut disposition, mut content_type) = (None, None);
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) || line.contains(['\r', '\n']) {
            return Err(MultipartError("part_headers"));
        }
        let (name, value) = line.split_once(':').ok_or(MultipartError("part_headers"))?;
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(MultipartError("part_headers"));
        }
        let slot = match name.to_ascii_lowercase().as_str() {
            "content-disposition" => &mut disposition,
            "content-type" => &mut content_type,
            _ => return Err(MultipartError("part_header_not_allowed")),
        };
        if slot.replace(value.trim_matches([' ', '\t']).to_string()).is_some() {
            return Err(MultipartError("repeated_part_header"));
        }
    }
    let disposition = disposition.ok_or(MultipartError("no_disposition"))?;
    let (kind, rest) = disposition.split_once(';').ok_or(MultipartError("disposition"))?;
    if !kind.trim_matches([' ', '\t']).eq_ignore_ascii_case("form-data") {
        return Err(MultipartError("disposition"));
    }
    let mut name = None;
    let mut filename = None;
    for (k, v) in params(rest)? {
        match k.as_str() {
            "name" => name = Some(v),
            "filename" => filename = Some(v),
            _ => return Err(MultipartError("disposition_parameter")),
        }
    }
    let name = name.filter(|n| !n.is_empty()).ok_or(MultipartError("no_name"))?;
    if let Some(ct) = &content_type {
        media_type(ct)?;
    }
    Ok(Field { name, filename, content_type, value })
}

/// The first occurrence of `needle` (at most 74 bytes here) in `haystack`:
/// a scan for its first byte, then a compare.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(i) = haystack.get(from..)?.iter().position(|b| *b == first) {
        let at = from + i;
        if haystack.get(at..at + needle.len()) == Some(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
#[path = "multipart_tests.rs"]
mod tests;
