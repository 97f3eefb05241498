//! The built-in detectors, written as code. Each finds, from a position on,
//! the leftmost match of the pattern its doc gives (`regex` crate syntax,
//! ASCII classes: `\b` sits between a `[0-9A-Za-z_]` byte and any other),
//! the same match the `regex` crate's leftmost-first search returns — the
//! tests hold every detector to that crate over random texts; the filter
//! itself does not carry it (0.5 MB of code and its lazy-DFA caches).
//!
//! Each search is linear in the text: a literal every match starts with is
//! found by `memchr` (SIMD128 in the VM), and each candidate is read once,
//! a bounded number of bytes, or a run no other candidate reads again.

use memchr::{memchr, memmem};

/// A built-in detector's pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----`
    PrivateKey,
    /// `\b(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[A-Z0-9]{16}\b`
    AwsAccessKey,
    /// `\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b`
    GithubToken,
    /// `\bxox[abposr]-[A-Za-z0-9-]{10,250}\b|https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}`
    SlackToken,
    /// `\bsk-[A-Za-z0-9_-]{20,}`
    OpenAiKey,
    /// `\bsk-ant-[A-Za-z0-9_-]{20,}`
    AnthropicKey,
    /// `\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`
    Jwt,
    /// `\b\d(?:[ -]?\d){12,18}\b`
    CardNumber,
    /// `\b\d{3}-\d{2}-\d{4}\b`
    UsSsn,
    /// `\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b`
    Email,
}

/// The matches of `pattern` in `text`, left to right, none overlapping
/// (each search starts where the last match ended), as byte ranges.
pub fn matches(pattern: Pattern, text: &[u8]) -> Matches<'_> {
    Matches { pattern, text, at: 0, xox: Next::default(), hook: Next::default(), jwt: None }
}

pub struct Matches<'t> {
    pattern: Pattern,
    text: &'t [u8],
    at: usize,
    /// The Slack pattern's two literals, searched side by side: each
    /// remembers where it is next, so neither is searched twice.
    xox: Next,
    hook: Next,
    /// A JWT candidate's first run: where it ends, and where the match
    /// from there ends (if any). Every `eyJ` inside one run shares them.
    jwt: Option<(usize, Option<usize>)>,
}

impl Iterator for Matches<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        let t = self.text;
        let at = self.at;
        let found = match self.pattern {
            Pattern::PrivateKey => literal_candidates(t, at, b"-----BEGIN ", |p| private_key(t, p)),
            Pattern::AwsAccessKey => literal_candidates(t, at, b"A", |p| aws_access_key(t, p)),
            Pattern::GithubToken => literal_candidates(t, at, b"g", |p| github_token(t, p)),
            Pattern::SlackToken => self.slack(at),
            Pattern::OpenAiKey => literal_candidates(t, at, b"sk-", |p| key_after(t, p, b"sk-")),
            Pattern::AnthropicKey => literal_candidates(t, at, b"sk-ant-", |p| key_after(t, p, b"sk-ant-")),
            Pattern::Jwt => {
                let memo = &mut self.jwt;
                literal_candidates(t, at, b"eyJ", |p| jwt(t, p, memo))
            }
            Pattern::CardNumber => digit_candidates(t, at, |p| card_number(t, p)),
            Pattern::UsSsn => digit_candidates(t, at, |p| us_ssn(t, p)),
            Pattern::Email => email(t, at),
        };
        let (start, end) = found?;
        self.at = end;
        Some((start, end))
    }
}

impl Matches<'_> {
    /// The two alternatives' candidates in the order they stand; the first
    /// that matches is the leftmost match.
    fn slack(&mut self, from: usize) -> Option<(usize, usize)> {
        const HOOK: &[u8] = b"https://hooks.slack.com/services/T";
        let t = self.text;
        let (mut x_at, mut h_at) = (from, from);
        loop {
            let x = self.xox.at(t, x_at, b"xox");
            let h = self.hook.at(t, h_at, HOOK);
            // The nearer of the two; `None` when neither is left.
            let (p, hook) = match (x, h) {
                (Some(x), Some(h)) if h < x => (h, true),
                (Some(x), _) => (x, false),
                (None, Some(h)) => (h, true),
                (None, None) => return None,
            };
            if hook {
                if let Some(end) = slack_webhook(t, p + HOOK.len()) {
                    return Some((p, end));
                }
                h_at = p + 1;
            } else {
                if let Some(end) = slack_token(t, p) {
                    return Some((p, end));
                }
                x_at = p + 1;
            }
        }
    }
}

/// Where a literal is next found, remembered: `found` is the first
/// occurrence at or after `from`.
struct Next {
    from: usize,
    found: Option<usize>,
}

impl Default for Next {
    fn default() -> Self {
        Next { from: usize::MAX, found: None }
    }
}

impl Next {
    fn at(&mut self, t: &[u8], at: usize, literal: &[u8]) -> Option<usize> {
        let known = at >= self.from && self.found.is_none_or(|f| f >= at);
        if !known {
            self.from = at;
            self.found = find(t, at, literal);
        }
        self.found
    }
}

/// Where `literal` is next found, from `at` on (one byte: `memchr`).
fn find(t: &[u8], at: usize, literal: &[u8]) -> Option<usize> {
    let rest = t.get(at..)?;
    match literal {
        [byte] => memchr(*byte, rest),
        _ => memmem::find(rest, literal),
    }
    .map(|i| at + i)
}

/// The first candidate (an occurrence of `literal`) at or after `at` whose
/// match `end_of` finds.
fn literal_candidates(
    t: &[u8],
    mut at: usize,
    literal: &[u8],
    mut end_of: impl FnMut(usize) -> Option<usize>,
) -> Option<(usize, usize)> {
    while let Some(p) = find(t, at, literal) {
        if let Some(end) = end_of(p) {
            return Some((p, end));
        }
        at = p + 1;
    }
    None
}

/// Candidates that start a word with a digit. A digit inside a word starts
/// nothing, so the rest of its word is skipped.
fn digit_candidates(t: &[u8], mut at: usize, end_of: impl Fn(usize) -> Option<usize>) -> Option<(usize, usize)> {
    while let Some(p) = next_digit(t, at) {
        if starts_word(t, p) {
            if let Some(end) = end_of(p) {
                return Some((p, end));
            }
        }
        at = p + run(t, p, is_word, usize::MAX);
    }
    None
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn word_at(t: &[u8], i: usize) -> bool {
    t.get(i).is_some_and(|b| is_word(*b))
}

/// `\b` before a word byte at `p`.
fn starts_word(t: &[u8], p: usize) -> bool {
    p == 0 || !is_word(t[p - 1])
}

/// `\b` at `i`.
fn boundary(t: &[u8], i: usize) -> bool {
    (i > 0 && is_word(t[i - 1])) != word_at(t, i)
}

/// How many bytes of `class` stand from `from` on, counting at most `cap`.
fn run(t: &[u8], from: usize, class: impl Fn(u8) -> bool, cap: usize) -> usize {
    t.get(from..).map_or(0, |rest| rest.iter().take(cap).take_while(|b| class(**b)).count())
}

fn upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// `[A-Za-z0-9_-]`
fn key_byte(b: u8) -> bool {
    is_word(b) || b == b'-'
}

fn at_is(t: &[u8], i: usize, allowed: &[u8]) -> bool {
    t.get(i).is_some_and(|b| allowed.contains(b))
}

fn private_key(t: &[u8], p: usize) -> Option<usize> {
    const TAIL: &[u8] = b"PRIVATE KEY-----";
    // Each `[A-Z0-9]+ ` takes a whole run (a space must follow it). Once
    // the tail is found the chain cannot go on (its `KEY` meets `-`), so
    // the first place it is found is the greedy match's too.
    let mut q = p + b"-----BEGIN ".len();
    loop {
        if t.get(q..)?.starts_with(TAIL) {
            return Some(q + TAIL.len());
        }
        let r = run(t, q, upper_digit, usize::MAX);
        if r == 0 || !at_is(t, q + r, b" ") {
            return None;
        }
        q += r + 1;
    }
}

fn aws_access_key(t: &[u8], p: usize) -> Option<usize> {
    const PREFIXES: [&[u8]; 6] = [b"AKIA", b"ASIA", b"ABIA", b"ACCA", b"AROA", b"AIDA"];
    let key = t.get(p..p + 20)?;
    let fits = starts_word(t, p)
        && PREFIXES.contains(&&key[..4])
        && key[4..].iter().all(|b| upper_digit(*b))
        && !word_at(t, p + 20);
    fits.then_some(p + 20)
}

fn github_token(t: &[u8], p: usize) -> Option<usize> {
    if !starts_word(t, p) {
        return None;
    }
    let rest = &t[p..];
    // A run that ends in `\b` is the whole run: a shorter one is followed
    // by a word byte.
    let (body, min, class): (usize, usize, fn(u8) -> bool) =
        if rest.starts_with(b"gh") && at_is(t, p + 2, b"pousr") && at_is(t, p + 3, b"_") {
            (p + 4, 36, |b| b.is_ascii_alphanumeric())
        } else if rest.starts_with(b"github_pat_") {
            (p + 11, 22, is_word)
        } else {
            return None;
        };
    let r = run(t, body, class, 256);
    ((min..=255).contains(&r) && !word_at(t, body + r)).then_some(body + r)
}

fn slack_token(t: &[u8], p: usize) -> Option<usize> {
    let fits = starts_word(t, p) && t[p..].starts_with(b"xox") && at_is(t, p + 3, b"abposr") && at_is(t, p + 4, b"-");
    if !fits {
        return None;
    }
    let body = p + 5;
    let r = run(t, body, |b| b.is_ascii_alphanumeric() || b == b'-', 250);
    // Greedy: the longest length whose end is a word boundary (`-` is no
    // word byte, so one can fall inside the run).
    (10..=r).rev().map(|len| body + len).find(|end| boundary(t, *end))
}

/// The webhook's path after `…/services/T`: `[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}`.
fn slack_webhook(t: &[u8], q: usize) -> Option<usize> {
    let team = run(t, q, upper_digit, usize::MAX);
    let q = q + team;
    if team == 0 || !t.get(q..)?.starts_with(b"/B") {
        return None;
    }
    let channel = run(t, q + 2, upper_digit, usize::MAX);
    let q = q + 2 + channel;
    if channel == 0 || !at_is(t, q, b"/") {
        return None;
    }
    let secret = run(t, q + 1, |b| b.is_ascii_alphanumeric(), usize::MAX);
    (secret >= 16).then_some(q + 1 + secret)
}

/// `\b{prefix}[A-Za-z0-9_-]{20,}`, greedy.
fn key_after(t: &[u8], p: usize, prefix: &[u8]) -> Option<usize> {
    // The boundary first: an `sk-` inside a word (`ask-ask-…`) must not
    // read the run, or every one of them reads it again.
    if !starts_word(t, p) {
        return None;
    }
    // A run at a word start is read once: from 20 bytes on it is a match,
    // and the search goes on past it.
    let body = p + prefix.len();
    let r = run(t, body, key_byte, usize::MAX);
    (r >= 20).then_some(body + r)
}

fn jwt(t: &[u8], p: usize, memo: &mut Option<(usize, Option<usize>)>) -> Option<usize> {
    if !starts_word(t, p) {
        return None;
    }
    let body = p + 3;
    // An `eyJ` inside the run an earlier candidate read ends where it does.
    let (header_end, rest) = match *memo {
        Some((end, rest)) if body <= end => (end, rest),
        _ => {
            let end = body + run(t, body, key_byte, usize::MAX);
            let rest = jwt_rest(t, end);
            *memo = Some((end, rest));
            (end, rest)
        }
    };
    if header_end - body < 8 {
        return None;
    }
    rest
}

/// After the header's run: `\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`.
fn jwt_rest(t: &[u8], q: usize) -> Option<usize> {
    if !t.get(q..)?.starts_with(b".eyJ") {
        return None;
    }
    let payload = run(t, q + 4, key_byte, usize::MAX);
    let q = q + 4 + payload;
    if payload < 8 || !at_is(t, q, b".") {
        return None;
    }
    let signature = run(t, q + 1, key_byte, usize::MAX);
    (signature >= 8).then_some(q + 1 + signature)
}

fn card_number(t: &[u8], p: usize) -> Option<usize> {
    // Each `[ -]?\d` is taken one way only: a separator when one stands
    // before a digit, else the digit. The greedy match is the most of them
    // (at most 18) whose end is a word boundary.
    let mut ends = [0usize; 18];
    let mut taken = 0;
    let mut q = p + 1;
    while taken < 18 {
        if t.get(q).is_some_and(u8::is_ascii_digit) {
            q += 1;
        } else if at_is(t, q, b" -") && t.get(q + 1).is_some_and(u8::is_ascii_digit) {
            q += 2;
        } else {
            break;
        }
        ends[taken] = q;
        taken += 1;
    }
    (12..=taken).rev().map(|n| ends[n - 1]).find(|end| !word_at(t, *end))
}

fn us_ssn(t: &[u8], p: usize) -> Option<usize> {
    let s = t.get(p..p + 11)?;
    let digits = |r: std::ops::Range<usize>| s[r].iter().all(u8::is_ascii_digit);
    let fits = digits(0..3) && s[3] == b'-' && digits(4..6) && s[6] == b'-' && digits(7..11) && !word_at(t, p + 11);
    fits.then_some(p + 11)
}

fn email(t: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let local = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
    while let Some(a) = t.get(at..).and_then(|rest| memchr(b'@', rest)).map(|i| at + i) {
        // The local part is the run of its bytes just before the `@` (no
        // earlier than the search's start); the match starts at the first
        // word boundary in it.
        let mut r = a;
        while r > at && local(t[r - 1]) {
            r -= 1;
        }
        if let Some(start) = (r..a).find(|p| boundary(t, *p)) {
            if let Some(end) = email_domain(t, a + 1) {
                return Some((start, end));
            }
        }
        at = a + 1;
    }
    None
}

/// `[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b` from `d`: the
/// labels are whole runs; the greedy match takes the most labels before a
/// top-level label whose letters (2 to 24) end on a word boundary.
fn email_domain(t: &[u8], d: usize) -> Option<usize> {
    let label = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    let first = run(t, d, label, usize::MAX);
    if first == 0 {
        return None;
    }
    let mut starts = Vec::new();
    let mut q = d + first;
    while at_is(t, q, b".") && t.get(q + 1).is_some_and(|b| label(*b)) {
        starts.push(q + 1);
        q += 1 + run(t, q + 1, label, usize::MAX);
    }
    starts.iter().rev().find_map(|&s| {
        let letters = run(t, s, |b| b.is_ascii_alphabetic(), 25);
        ((2..=24).contains(&letters) && !word_at(t, s + letters)).then_some(s + letters)
    })
}

/// Where the next ASCII digit is, from `from` on. Eight bytes at a time
/// (prose has few digits): for each byte of a word, the top bit of
/// `y + 0x50` says `b ≥ '0'` and that of `y + 0x46` says `b > '9'`, `y`
/// being the byte without its top bit (so no sum carries into the next
/// byte); a byte with its top bit set is no digit.
pub fn next_digit(bytes: &[u8], from: usize) -> Option<usize> {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const TOP: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(word) = bytes.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let w = u64::from_le_bytes(w);
        let y = w & LOW7;
        let digits = y.wrapping_add(0x5050_5050_5050_5050) & !y.wrapping_add(0x4646_4646_4646_4646) & !w & TOP;
        if digits != 0 {
            return Some(i + digits.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    bytes.get(i..)?.iter().position(u8::is_ascii_digit).map(|at| i + at)
}

#[cfg(test)]
#[path = "detectors_tests.rs"]
mod tests;
