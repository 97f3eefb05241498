//! The prompt-leak guard (SPEC reason `prompt_blocked`): detectors over the
//! text a request sends — every string of its JSON body, decoded, member
//! names included (message contents, system prompts, tool arguments and
//! schemas), and every text part of a form —
//! that find secrets and personal data before they leave. A built-in
//! detector is a pattern written as code ([`detectors`], linear in the
//! text), with a check where a pattern alone would flag too much: a Luhn
//! check for card numbers, the SSA's rules for SSNs, the key's kind for
//! `sk-` keys. A configured one is a regular expression of the `regex`
//! crate (a lazy DFA, linear in the text too). The audit record counts
//! findings per detector, never the text.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::body::detectors::{self, next_digit, Pattern};
use crate::body::json;
use crate::body::multipart;

/// A detector: a built-in or a configured pattern.
#[derive(Debug)]
pub struct Detector {
    pub name: String,
    matcher: Matcher,
    check: Check,
}

#[derive(Debug)]
enum Matcher {
    BuiltIn(Pattern),
    Custom(regex::Regex),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    None,
    Luhn,
    Ssn,
    OpenAiKey,
    AnthropicKey,
}

/// The built-in detectors: name, pattern ([`detectors`] gives each as a
/// regular expression), check. Every pattern starts and ends on a word
/// boundary (or a fixed delimiter), so a token inside an unrelated word is
/// never one.
const BUILT_IN: &[(&str, Pattern, Check)] = &[
    ("private_key", Pattern::PrivateKey, Check::None),
    ("aws_access_key", Pattern::AwsAccessKey, Check::None),
    ("github_token", Pattern::GithubToken, Check::None),
    ("slack_token", Pattern::SlackToken, Check::None),
    ("openai_key", Pattern::OpenAiKey, Check::OpenAiKey),
    ("anthropic_key", Pattern::AnthropicKey, Check::AnthropicKey),
    ("jwt", Pattern::Jwt, Check::None),
    ("card_number", Pattern::CardNumber, Check::Luhn),
    ("us_ssn", Pattern::UsSsn, Check::Ssn),
    ("email", Pattern::Email, Check::None),
];

pub fn built_in_names() -> impl Iterator<Item = &'static str> {
    BUILT_IN.iter().map(|(n, _, _)| *n)
}

impl Detector {
    pub fn built_in(name: &str) -> Option<Detector> {
        let (name, pattern, check) = BUILT_IN.iter().find(|(n, _, _)| *n == name)?;
        Some(Detector { name: name.to_string(), matcher: Matcher::BuiltIn(*pattern), check: *check })
    }

    /// A configured pattern, compiled with a size limit: the `regex` crate
    /// runs every pattern in time linear in the text, through a lazy DFA
    /// (a pattern's size barely changes its cost per byte). `\d`, `\w`,
    /// `\s` and `\b` are ASCII classes.
    pub fn custom(name: &str, pattern: &str) -> Result<Detector, String> {
        let regex = regex::RegexBuilder::new(&format!("(?-u){pattern}"))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("not a regular expression: {e}"))?;
        if regex.is_match("") {
            return Err("matches the empty text".into());
        }
        Ok(Detector { name: name.to_string(), matcher: Matcher::Custom(regex), check: Check::None })
    }

    /// How many times this detector finds something in `text`.
    pub fn count(&self, text: &str) -> usize {
        match &self.matcher {
            Matcher::BuiltIn(pattern) => {
                detectors::matches(*pattern, text.as_bytes()).filter(|(s, e)| self.accepts(&text[*s..*e])).count()
            }
            Matcher::Custom(regex) => regex.find_iter(text).count(),
        }
    }

    /// Whether the pattern matches anywhere in `text`, before any check.
    fn matches_anything(&self, text: &str) -> bool {
        match &self.matcher {
            Matcher::BuiltIn(pattern) => detectors::matches(*pattern, text.as_bytes()).next().is_some(),
            Matcher::Custom(regex) => regex.is_match(text),
        }
    }

    fn accepts(&self, found: &str) -> bool {
        match self.check {
            Check::None => true,
            Check::Luhn => luhn(found),
            Check::Ssn => ssn(found),
            Check::OpenAiKey => !found.starts_with("sk-ant-"),
            Check::AnthropicKey => true,
        }
    }
}

/// A card number: 13 to 19 digits (spaces or dashes between them) whose
/// Luhn checksum holds.
fn luhn(found: &str) -> bool {
    let digits: Vec<u32> = found.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) || digits.iter().all(|d| *d == digits[0]) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// An SSN as the SSA issues them: no area 000, 666 or 900–999, no group
/// 00, no serial 0000.
fn ssn(found: &str) -> bool {
    let parts: Vec<&str> = found.split('-').collect();
    let [area, group, serial] = parts.as_slice() else { return false };
    let area: u32 = area.parse().unwrap_or(0);
    area != 0 && area != 666 && area < 900 && *group != "00" && *serial != "0000"
}

/// What a guard does with findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Block,
    Log,
}

/// The configured guard.
#[derive(Debug)]
pub struct Guard {
    pub action: Action,
    pub detectors: Vec<Detector>,
    /// Whether any detector is a configured pattern.
    custom: bool,
}

/// The audit record's `prompt_guard`: the action and the findings per
/// detector (never the text found).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Findings {
    pub action: Option<Action>,
    pub findings: BTreeMap<String, usize>,
}

impl Guard {
    pub fn new(action: Action, detectors: Vec<Detector>) -> Guard {
        let custom = detectors.iter().any(|d| matches!(d.matcher, Matcher::Custom(_)));
        Guard { action, detectors, custom }
    }

    /// The findings in a JSON body's text: every string, decoded — member
    /// names as much as values (a tool schema's property names reach the
    /// model too) — what the provider reads. The body as sent is read
    /// first, in one pass for all detectors: a body with no `\` (and no
    /// base64 run an attachment could hide in) spells
    /// each string exactly as it decodes, between quotes (no word
    /// character), so with nothing found in it the decoded strings hold
    /// nothing either. Any escape — `\n` as much as `\u` — spells a
    /// character differently from how it decodes (the `n` of `\n` is a word
    /// character, the newline is not), so then every string is decoded and
    /// read. One linear pass over the bytes, with no nesting limit: the
    /// body was already read as strict JSON ([`crate::body::json`]), so every
    /// `"` outside a string opens one.
    pub fn scan_json(&self, body: &[u8]) -> BTreeMap<String, usize> {
        let mut found = BTreeMap::new();
        if !self.custom && spelled_as_decoded(body) {
            // The strict reader took the body as UTF-8 already: this check
            // is the fast one (word at a time), not the lossy decoder's.
            let text = std::str::from_utf8(body).map_or_else(|_| String::from_utf8_lossy(body), Cow::Borrowed);
            // Nothing found as sent, nor in the integers its numbers stand for.
            if !self.any_match(&text) && !self.any_match(&integral_forms(&text)) {
                return found;
            }
        }
        // Every string, decoded; and what lies between them — numbers
        // (a card number sent as a JSON number reaches the provider too),
        // each string standing as a space.
        let mut between = Vec::with_capacity(body.len().min(4096));
        let mut i = 0;
        while let Some(open) = body[i..].iter().position(|b| *b == b'"') {
            between.extend_from_slice(&body[i..i + open]);
            between.push(b' ');
            let (text, next) = json_string(body, i + open + 1);
            self.scan_string(&text, &mut found);
            i = next.min(body.len());
        }
        between.extend_from_slice(&body[i..]);
        let between = String::from_utf8_lossy(&between);
        self.scan_text(&between, &mut found);
        // A number written with a fraction or an exponent
        // (`4.111111111111111e15`) is read by the provider as the integer it
        // stands for: that integer is read too.
        let integers = integral_forms(&between);
        if !integers.is_empty() {
            self.scan_text(&integers, &mut found);
        }
        found
    }

    /// The findings in a form's text (the transcription `prompt`, any other
    /// field): every part without a file name, whatever type it declares
    /// (form readers take such a part as a text field), and every file sent
    /// as text or with no type. Only files that declare a binary type (the
    /// audio) are not read.
    pub fn scan_multipart(&self, body: &[u8], content_type: &str) -> BTreeMap<String, usize> {
        let mut found = BTreeMap::new();
        let fields = multipart::boundary(content_type).and_then(|b| multipart::fields(body, &b)).unwrap_or_default();
        for field in fields {
            let textual = field.content_type.as_deref().is_none_or(|ct| {
                multipart::media_type(ct)
                    .is_ok_and(|m| m.essence.starts_with("text/") || m.essence == "application/json")
            });
            if field.filename.is_none() || textual {
                self.scan_text(&String::from_utf8_lossy(field.value), &mut found);
            }
        }
        found
    }

    /// A JSON string: its text, and the text it carries as base64 (a text
    /// document, a `data:text/plain;base64,…` file): providers decode
    /// attachments and the model reads them.
    fn scan_string(&self, text: &str, found: &mut BTreeMap<String, usize>) {
        self.scan_text(text, found);
        if let Some(carried) = base64_text(text) {
            self.scan_text(&carried, found);
        }
    }

    fn scan_text(&self, text: &str, found: &mut BTreeMap<String, usize>) {
        for d in &self.detectors {
            let n = d.count(text);
            if n > 0 {
                *found.entry(d.name.clone()).or_default() += n;
            }
        }
    }

    /// Whether any detector's pattern matches anywhere in `text`.
    fn any_match(&self, text: &str) -> bool {
        self.detectors.iter().any(|d| d.matches_anything(text))
    }
}

/// Longest integer a number is expanded to (a card number has 19 digits).
const MAX_EXPANDED_DIGITS: usize = 32;

/// The integers the JSON numbers in `text` that have a fraction or an
/// exponent stand for, each written out in digits (`41111111111111110e-1`
/// → `4111111111111111`), separated by spaces. Numbers that are not
/// integers, or longer than [`MAX_EXPANDED_DIGITS`], are left out.
fn integral_forms(text: &str) -> String {
    let mut out = String::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let Some(start) = next_digit(bytes, i) else { break };
        i = start;
        while i < bytes.len() && CLASS[usize::from(bytes[i])] & NUMBER != 0 {
            i += 1;
        }
        if let Some(digits) = integral(&text[start..i]) {
            out.push(' ');
            out.push_str(&digits);
            out.push(' ');
        }
    }
    out
}

/// `number` (a JSON number without its sign) as the integer's digits,
/// when it has a fraction or an exponent and stands for an integer.
fn integral(number: &str) -> Option<String> {
    let (mantissa, exponent) = match number.find(['e', 'E']) {
        Some(at) => (&number[..at], number[at + 1..].parse::<i64>().ok()?),
        None if number.contains('.') => (number, 0),
        None => return None,
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let shift = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    let digits = if shift >= 0 {
        // Compared without a sum: `len + zeros` wraps on wasm32 (a
        // `0e4294967295` would ask for four billion zeros).
        let zeros = usize::try_from(shift).ok().filter(|z| *z <= MAX_EXPANDED_DIGITS.saturating_sub(digits.len()))?;
        format!("{digits}{}", "0".repeat(zeros))
    } else {
        let cut = usize::try_from(shift.unsigned_abs()).ok()?;
        let (kept, dropped) = digits.split_at(digits.len().checked_sub(cut)?);
        if !dropped.bytes().all(|b| b == b'0') {
            return None;
        }
        kept.to_string()
    };
    let digits = digits.trim_start_matches('0');
    (!digits.is_empty() && digits.len() <= MAX_EXPANDED_DIGITS).then(|| digits.to_string())
}

/// Shortest base64 payload read as an attachment.
const MIN_BASE64: usize = 24;

/// Whether every string of the body reads as it decodes: no `\` (an
/// escape spells a character differently from how it decodes), and no run
/// of base64 long enough to be read as an attachment (the provider decodes
/// those). One pass; either one means the fast path cannot vouch for it.
fn spelled_as_decoded(body: &[u8]) -> bool {
    let mut run = 0;
    for &b in body {
        let class = CLASS[usize::from(b)];
        // One predictable branch per byte: the body's fast path.
        run = if class & BASE64 != 0 { run + 1 } else { 0 };
        if (class & BACKSLASH != 0) | (run >= MIN_BASE64) {
            return false;
        }
    }
    true
}

/// Byte classes for the body's scans, by table (fewer branches per byte).
const BASE64: u8 = 1;
const NUMBER: u8 = 2;
const BACKSLASH: u8 = 4;
const CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut class = 0;
        if c.is_ascii_digit() {
            class |= NUMBER;
        }
        if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_') {
            class |= BASE64;
        }
        if matches!(c, b'.' | b'e' | b'E' | b'+' | b'-') {
            class |= NUMBER;
        }
        if c == b'\\' {
            class |= BACKSLASH;
        }
        table[b] = class;
        b += 1;
    }
    table
};

/// The text a string carries as base64 — the whole string, or a data URL's
/// payload — when it decodes to UTF-8 text. Short strings are not read
/// (an id or a word is no attachment); binary payloads (images, audio) fail
/// the UTF-8 check and are not read either.
fn base64_text(text: &str) -> Option<String> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use base64::Engine as _;
    let payload = match text.strip_prefix("data:") {
        Some(url) => url.split_once(";base64,")?.1,
        None => text,
    };
    let payload = payload.trim_end_matches('=');
    let alphabet = |p: &str| p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'));
    if payload.len() < MIN_BASE64 || !alphabet(payload.get(..BASE64_HEAD).unwrap_or(payload)) {
        return None;
    }
    let padded = |p: &str| format!("{p}{}", "=".repeat((4 - p.len() % 4) % 4));
    let decode = |p: &str| STANDARD.decode(padded(p)).or_else(|_| URL_SAFE.decode(padded(p))).ok();
    let textual = |t: &str| !t.chars().any(|c| c.is_control() && !c.is_whitespace());
    // An image or audio payload is binary from its first bytes: its head,
    // decoded the same way, settles it before the whole is decoded. (A
    // head that decodes at all decodes as the whole would: a `+` or `/`
    // rules out URL-safe, a `-` or `_` standard.)
    if let Some(head) = payload.get(..BASE64_HEAD).filter(|_| payload.len() > BASE64_HEAD) {
        let bytes = decode(head)?;
        let valid = match std::str::from_utf8(&bytes) {
            Ok(text) => text,
            // A character cut at the head's end is no failure; any other is.
            Err(e) if e.error_len().is_none() => std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()?,
            Err(_) => return None,
        };
        if !textual(valid) {
            return None;
        }
    }
    if !alphabet(payload) {
        return None;
    }
    String::from_utf8(decode(payload)?).ok().filter(|t| textual(t))
}

/// How much of a long base64 payload is decoded first (a whole number of
/// four-character groups).
const BASE64_HEAD: usize = 1024;

/// The JSON string whose first byte (after its opening quote) is at
/// `start`, decoded by the strict reader's own [`json::unescape`], and the
/// index just past its closing quote. (The body was read strictly before:
/// a string it could not decode is read as its raw text.)
fn json_string(body: &[u8], start: usize) -> (String, usize) {
    let mut i = start;
    while let Some(at) = body.get(i..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)) {
        i += at;
        if body[i] == b'"' {
            break;
        }
        i += 2;
    }
    if body.get(i) != Some(&b'"') {
        // Unterminated: the string runs to the end, as byte by byte.
        i = i.max(body.len());
    }
    let inner = body.get(start..i.min(body.len())).unwrap_or_default();
    let text = json::unescape(inner).map_or_else(|_| String::from_utf8_lossy(inner).into_owned(), |t| t.into_owned());
    (text, i + 1)
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
