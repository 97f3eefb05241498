//! Every detector against the `regex` crate running the pattern its doc
//! gives: the same matches, at the same places, over random texts built
//! from the pieces the patterns are made of (prefixes, separators, runs
//! just under, at and over each length bound, word bytes on either side).

use super::*;
use crate::testing::Rng;

const ALL: [Pattern; 10] = [
    Pattern::PrivateKey,
    Pattern::AwsAccessKey,
    Pattern::GithubToken,
    Pattern::SlackToken,
    Pattern::OpenAiKey,
    Pattern::AnthropicKey,
    Pattern::Jwt,
    Pattern::CardNumber,
    Pattern::UsSsn,
    Pattern::Email,
];

/// The pattern as the doc of its variant writes it.
fn pattern_of(p: Pattern) -> &'static str {
    match p {
        Pattern::PrivateKey => r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----",
        Pattern::AwsAccessKey => r"\b(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[A-Z0-9]{16}\b",
        Pattern::GithubToken => r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
        Pattern::SlackToken => {
            r"\bxox[abposr]-[A-Za-z0-9-]{10,250}\b|https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}"
        }
        Pattern::OpenAiKey => r"\bsk-[A-Za-z0-9_-]{20,}",
        Pattern::AnthropicKey => r"\bsk-ant-[A-Za-z0-9_-]{20,}",
        Pattern::Jwt => r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        Pattern::CardNumber => r"\b\d(?:[ -]?\d){12,18}\b",
        Pattern::UsSsn => r"\b\d{3}-\d{2}-\d{4}\b",
        Pattern::Email => r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b",
    }
}

#[test]
fn the_docs_name_the_patterns_the_tests_check() {
    let source = include_str!("detectors.rs");
    for p in ALL {
        assert!(source.contains(&format!("/// `{}`", pattern_of(p))), "{p:?}'s doc");
    }
}

fn oracle(p: Pattern) -> regex::Regex {
    regex::Regex::new(&format!("(?-u){}", pattern_of(p))).unwrap()
}

fn assert_same(p: Pattern, re: &regex::Regex, text: &str) {
    let want: Vec<(usize, usize)> = re.find_iter(text).map(|m| (m.start(), m.end())).collect();
    let got: Vec<(usize, usize)> = matches(p, text.as_bytes()).collect();
    assert_eq!(got, want, "{p:?} in {text:?}");
}

/// Pieces every pattern is built from, and what sits around them.
const PIECES: &[&str] = &[
    "-----BEGIN ",
    "-----BEGIN RSA ",
    "-----BEGIN PRIVATE KEY-----",
    "PRIVATE KEY-----",
    "PRIVATE ",
    "KEY",
    "RSA ",
    "A ",
    "-----",
    "AKIA",
    "ASIA",
    "ABIA",
    "ACCA",
    "AROA",
    "AIDA",
    "AKIB",
    "gh",
    "ghp_",
    "gho_",
    "ghx_",
    "github_pat_",
    "xox",
    "xoxb-",
    "xoxz-",
    "https://hooks.slack.com/services/T",
    "/B",
    "/",
    "sk-",
    "sk-ant-",
    "ant-",
    "eyJ",
    ".eyJ",
    ".",
    "@",
    "..",
    "%",
    "+",
    "-",
    "_",
    " ",
    "  ",
    "\n",
    "é",
    "€",
    "\"",
    "'",
    ":",
    ",",
    "com",
    "io",
    "x",
    "Z",
    "q",
    "0",
    "1",
    "4",
    "9",
    "12",
    "123",
    "4111",
    "000",
    "666",
    "-00-",
    "0000",
    // Whole shapes, for the runs around them to extend or spoil.
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "github_pat_aaaaaaaaaaaaaaaaaaaaaa",
    "xoxb-0123456789",
    "sk-aaaaaaaaaaaaaaaaaaaa",
    "sk-ant-aaaaaaaaaaaaaaaaaaaa",
    "eyJabcdefgh.eyJabcdefgh.abcdefgh",
    "eyJabcdefg",
    ".eyJabcdefg",
    ".abcdefg",
    ".abcdefgh",
    "4111111111111111",
    "4111 1111 1111 1111",
    "123-45-6789",
    "a@b.com",
    "x.y@mail.example.org",
    "https://hooks.slack.com/services/TABC/BDEF/aaaaaaaaaaaaaaaa",
];

/// A run of `n` bytes drawn from `alphabet`.
fn run_of(rng: &mut Rng, alphabet: &[u8], n: usize) -> String {
    rng.pick(alphabet, n)
}

fn random_text(rng: &mut Rng) -> String {
    const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const KEY: &[u8] = b"Abc09_-xyZ";
    const LETTERS: &[u8] = b"abcXYZ";
    const DIGITS: &[u8] = b"0123456789";
    const SPACED_DIGITS: &[u8] = b"0123456789 -";
    // Lengths around every bound the patterns have.
    const LENGTHS: &[usize] = &[
        1, 2, 3, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 19, 20, 21, 22, 23, 24, 25, 35, 36, 37, 249, 250, 251, 255, 256,
    ];
    let pieces = 1 + rng.next() % 12;
    let mut text = String::new();
    for _ in 0..pieces {
        let choice = rng.next() % 10;
        if choice < 6 {
            text.push_str(PIECES[(rng.next() % PIECES.len() as u64) as usize]);
        } else {
            let n = LENGTHS[(rng.next() % LENGTHS.len() as u64) as usize];
            let alphabet = [UPPER_DIGITS, ALNUM, KEY, LETTERS, DIGITS, SPACED_DIGITS][(rng.next() % 6) as usize];
            text.push_str(&run_of(rng, alphabet, n));
        }
    }
    text
}

#[test]
fn every_detector_finds_what_the_regex_crate_finds() {
    let oracles: Vec<regex::Regex> = ALL.iter().map(|p| oracle(*p)).collect();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut found = [0usize; ALL.len()];
    for _ in 0..60_000 {
        let text = random_text(&mut rng);
        for (i, p) in ALL.iter().enumerate() {
            assert_same(*p, &oracles[i], &text);
            found[i] += oracles[i].find_iter(&text).count();
        }
    }
    // The texts reach every pattern's matches, not only its misses.
    for (i, p) in ALL.iter().enumerate() {
        assert!(found[i] >= 50, "{p:?} matched only {} times", found[i]);
    }
}

#[test]
fn hand_made_edges_match_the_regex_crate() {
    let texts = [
        "-----BEGIN A B C PRIVATE KEY PRIVATE KEY-----",
        "-----BEGIN PRIVATE PRIVATE KEY----- -----BEGIN RSA PRIVATE KEY-----",
        "a@b.com.x@y.org",
        "x.%a@b.com",
        "a_b@x.com",
        "%%a@x.com",
        "a@b.c..com",
        "a@b.co-uk",
        "a@b.com_x",
        "a@b.abcdefghijklmnopqrstuvwxyz",
        "a@b.abcdefghijklmnopqrstuvwx",
        "a@@b.com",
        "4111 1111 1111 1111 1111",
        "4111-1111-1111-1111-",
        "4111 1111 1111 1111x",
        "41111111111111111111111",
        "123-45-67890 123-45-6789",
        "xoxb-0123456789-",
        "xoxb-0123456789_",
        "xoxb---------------a",
        "eyJaaaaaaaa-eyJbbbbbbbb.eyJcccccccc.dddddddd",
        "eyJaaaaaaaa.eyJbbbbbbbb.ddddddd",
        "sk-sk-sk-aaaaaaaaaaaaaaaaaaaa",
        "sk-ant-aaaaaaaaaaaaaaaaaaaa",
        "xhttps://hooks.slack.com/services/TAB/BCD/aaaaaaaaaaaaaaaa",
        "https://hooks.slack.com/services/TAB/BCD/aaaaaaaaaaaaaaa",
        "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_",
        "AKIAAAAAAAAAAAAAAAAA_",
        "éAKIAAAAAAAAAAAAAAAAA",
    ];
    for p in ALL {
        let re = oracle(p);
        for text in texts {
            assert_same(p, &re, text);
        }
    }
}

/// Long runs that many candidates share — each `eyJ`, `sk-`, `xox`, `@`
/// or digit inside one — are read once, not once per candidate: the same
/// matches as the regex crate over about a megabyte each, where reading
/// the run again for every candidate would take hours.
#[test]
fn candidates_inside_one_long_run_do_not_read_it_again() {
    let nasty = [
        "eyJaaaaaaaa-".repeat(90_000),
        "sk-".repeat(300_000),
        "xoxb-".repeat(200_000),
        "a.".repeat(400_000) + "@",
        "@a".repeat(400_000),
        "1 ".repeat(400_000),
        "-----BEGIN A ".repeat(80_000),
        "https://hooks.slack.com/services/TA".repeat(30_000) + "xoxb-0123456789 ",
        "xoxb-0123456789 ".repeat(60_000) + "https://hooks.slack.com/services/TA/BB/aaaaaaaaaaaaaaaa",
    ];
    for text in &nasty {
        for p in ALL {
            let got = matches(p, text.as_bytes()).count();
            assert_eq!(got, oracle(p).find_iter(text).count(), "{p:?}");
        }
    }
}

/// Found by the attack review: an `sk-` inside a word read the whole run
/// after it before the boundary was checked, so `ask-ask-…` read it once
/// per `sk-` (127 s for a 1 MiB body). The boundary comes first now.
#[test]
fn sk_inside_a_word_does_not_read_the_run_again() {
    let nasty = ["ask-".repeat(250_000), "ask-ant-".repeat(125_000), "_sk-".repeat(250_000), "9sk-".repeat(250_000)];
    for text in &nasty {
        for p in [Pattern::OpenAiKey, Pattern::AnthropicKey] {
            let started = std::time::Instant::now();
            let got = matches(p, text.as_bytes()).count();
            assert!(started.elapsed().as_secs() < 5, "{p:?}: {:?}", started.elapsed());
            assert_eq!(got, oracle(p).find_iter(text).count(), "{p:?}");
        }
    }
}
