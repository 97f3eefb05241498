//! `x-forwarded-client-cert`: how a trusted proxy in front of the gateway
//! passes on the client certificate it verified.
//!
//! The header is a comma-separated list of elements, one per hop, each a
//! semicolon-separated list of `Key=value` pairs; a value holding `,`, `;`
//! or `=` is double-quoted, with `\"` for a quote inside. With Envoy's
//! `APPEND_FORWARD` the last element is the one the hop in front of us
//! appended; elements to its left came from earlier hops or from the client.
//!
//! Identity is taken only from the last element, only when its `By` names
//! the configured trusted hop, and only from its `Cert` (the leaf PEM,
//! URL-encoded), checked against its `Hash` when present — never from a
//! `URI=` value, which Envoy does not quote and a crafted SAN can spoof;
//! a header with any `URI=` or `DNS=` value is refused outright, since such
//! a SAN can also forge the element boundaries themselves.
//! Anything two readers could split differently is refused: unbalanced
//! quotes, a quote inside an unquoted value, empty elements or pairs, an
//! unknown key, a repeated single-valued key, two header lines. One pass:
//! linear in the header.

use crate::identity::spiffe::SpiffeId;
use crate::identity::svid::x509;
use crate::reason::{Denial, Reason};

/// One element: the pairs one hop appended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub by: Vec<String>,
    pub hash: Option<String>,
    pub cert: Option<String>,
    pub chain: Option<String>,
    pub subject: Option<String>,
    pub uri: Vec<String>,
    pub dns: Vec<String>,
}

/// Why a header could not be read (the audit `detail`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XfccError(pub &'static str);

/// Parses a whole header value into its elements.
pub fn parse(value: &str) -> Result<Vec<Element>, XfccError> {
    let bytes = value.as_bytes();
    let mut elements = vec![Element::default()];
    let mut i = 0;
    let mut pair_start = true;
    loop {
        // A pair: key '=' value.
        let key_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let key = value[key_start..i].to_ascii_lowercase();
        if key.is_empty() || bytes.get(i) != Some(&b'=') {
            return Err(XfccError(if pair_start && key.is_empty() { "xfcc_empty_pair" } else { "xfcc_malformed" }));
        }
        i += 1;
        let mut text = String::new();
        if bytes.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(XfccError("xfcc_unbalanced_quote")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if bytes.get(i + 1) == Some(&b'"') => {
                        text.push('"');
                        i += 2;
                    }
                    Some(_) => {
                        let run = bytes[i..]
                            .iter()
                            .position(|b| *b == b'"' || *b == b'\\')
                            .map_or(bytes.len(), |n| i + n.max(1));
                        text.push_str(&value[i..run]);
                        i = run;
                    }
                }
            }
        } else {
            let end = bytes[i..].iter().position(|b| *b == b';' || *b == b',').map_or(bytes.len(), |n| i + n);
            let raw = &value[i..end];
            if raw.contains('"') {
                return Err(XfccError("xfcc_stray_quote"));
            }
            text.push_str(raw);
            i = end;
        }
        let element = elements.last_mut().ok_or(XfccError("xfcc_malformed"))?;
        let once = |slot: &mut Option<String>, v: String| {
            if slot.replace(v).is_some() {
                Err(XfccError("xfcc_repeated_key"))
            } else {
                Ok(())
            }
        };
        match key.as_str() {
            "by" => element.by.push(text),
            "uri" => element.uri.push(text),
            "dns" => element.dns.push(text),
            "hash" => once(&mut element.hash, text)?,
            "cert" => once(&mut element.cert, text)?,
            "chain" => once(&mut element.chain, text)?,
            "subject" => once(&mut element.subject, text)?,
            _ => return Err(XfccError("xfcc_unknown_key")),
        }
        match bytes.get(i) {
            None => return Ok(elements),
            Some(b';') => pair_start = false,
            Some(b',') => {
                elements.push(Element::default());
                pair_start = true;
            }
            Some(_) => return Err(XfccError("xfcc_malformed")),
        }
        i += 1;
    }
}

/// The leaf certificate (DER) the trusted hop forwarded, if the request
/// carries one. `headers` are the request's (lower-case names);
/// `connection_peer` is the SPIFFE ID of the mTLS peer of this connection
/// as Envoy verified it. A header is only as trustworthy as the connection
/// it came over: the header is read only when that peer is the trusted hop
/// itself. Over plaintext, or from any other peer, a request that carries
/// it is refused — never read, never silently ignored.
pub fn forwarded_leaf(
    headers: &[(String, String)],
    trusted_hop: &SpiffeId,
    connection_peer: Option<&str>,
) -> Result<Option<Vec<u8>>, Denial> {
    let refuse =
        |detail: &'static str, message: &str| Err(Denial::new(Reason::InvalidSvid, message).with_detail(detail));
    let mut values = headers.iter().filter(|(k, _)| k == "x-forwarded-client-cert").map(|(_, v)| v.as_str());
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return refuse("xfcc_repeated_header", "x-forwarded-client-cert appears more than once");
    }
    match connection_peer {
        Some(peer) if peer == trusted_hop.as_str() => {}
        Some(_) => {
            return refuse(
                "xfcc_untrusted_peer",
                "x-forwarded-client-cert came over a connection from another peer than the trusted hop",
            )
        }
        None => {
            return refuse(
                "xfcc_no_verified_peer",
                "x-forwarded-client-cert came over a connection with no verified client certificate; only the trusted hop may send it, over mTLS",
            )
        }
    }
    let elements = match parse(value) {
        Ok(e) => e,
        Err(XfccError(detail)) => return refuse(detail, "x-forwarded-client-cert could not be read with certainty"),
    };
    // Envoy writes `URI=` and `DNS=` values unquoted: a SAN holding `,` or
    // `;` (a CA need not refuse one, Envoy's SPIFFE validator does not)
    // splits the hop's element and appends one of the caller's making. No
    // element may carry them: the hop forwards the certificate only
    // (`set_current_client_cert_details: {cert: true}`).
    if elements.iter().any(|e| !e.uri.is_empty() || !e.dns.is_empty()) {
        return refuse(
            "xfcc_unquoted_san",
            "x-forwarded-client-cert carries URI or DNS values, which Envoy does not quote and a certificate can forge elements with; configure the trusted hop to forward the certificate only (set_current_client_cert_details: {cert: true})",
        );
    }
    let Some(last) = elements.last() else { return Ok(None) };
    if !last.by.iter().any(|by| by == trusted_hop.as_str()) {
        return refuse(
            "xfcc_untrusted_hop",
            "the last x-forwarded-client-cert element was not added by the trusted hop",
        );
    }
    let Some(cert) = &last.cert else {
        return refuse(
            "xfcc_no_cert",
            "the trusted hop forwarded no client certificate (set_current_client_cert_details cert)",
        );
    };
    let der = x509::leaf_der(cert.as_bytes()).map_err(|e| e.denial())?;
    if let Some(hash) = &last.hash {
        let digest = crate::util::digest::sha256_hex(&der);
        if !hash.eq_ignore_ascii_case(&digest) {
            return refuse("xfcc_hash_mismatch", "the forwarded certificate does not match its hash");
        }
    }
    Ok(Some(der))
}

#[cfg(test)]
#[path = "xfcc_tests.rs"]
mod tests;
