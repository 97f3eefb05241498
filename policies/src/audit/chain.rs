//! Tamper evidence for the audit trail (SPEC §6): each worker VM chains
//! the records it writes. Every record carries `chain` (an id for that VM's
//! chain), `seq` (1, 2, …) and `prev`: the SHA-256 (hex) of the chain's
//! previous record exactly as written, `null` for the first.
//!
//! [`verify`] checks a log file: every chain continuous, every link right,
//! and each record where the file puts it. What a chain proves — and what
//! it cannot (a chain's last records cut off) — is in docs/audit.md.

use std::collections::BTreeMap;
use std::fmt;

use crate::util::digest::sha256_hex;
use serde_json::Value;

/// One VM's chain: the next sequence number and the previous record's hash.
#[derive(Debug)]
pub struct Chain {
    id: String,
    seq: u64,
    prev: Option<String>,
}

impl Chain {
    pub fn new(id: String) -> Chain {
        Chain { id, seq: 0, prev: None }
    }

    /// `record` (one JSON object, as [`crate::audit::Record::to_json`]
    /// writes it) with its chain members appended: the line to write. Its
    /// hash links the next record.
    pub fn seal(&mut self, record: &str) -> String {
        self.seq += 1;
        let prev = self.prev.as_deref().map_or_else(|| "null".to_string(), |p| format!("\"{p}\""));
        let body = record.trim_end().strip_suffix('}').unwrap_or("{");
        let sep = if body.trim_end().ends_with('{') { "" } else { "," };
        let line = format!("{body}{sep}\"chain\":\"{}\",\"seq\":{},\"prev\":{prev}}}", self.id, self.seq);
        self.prev = Some(sha256_hex(line.as_bytes()));
        line
    }

    /// The chain's id, how many records it sealed, and the last one's hash:
    /// what an operator anchors elsewhere.
    pub fn head(&self) -> (&str, u64, Option<&str>) {
        (&self.id, self.seq, self.prev.as_deref())
    }
}

/// Something wrong in a log file. Lines count from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not a JSON object, or chain members of the wrong type.
    Malformed { line: usize },
    /// Records `from..=to` of the chain are missing.
    Gap { chain: String, from: u64, to: u64 },
    /// The record after `seq` does not link to it: `seq` (at `line`) was
    /// altered or replaced.
    Altered { chain: String, seq: u64, line: usize },
    /// `seq` appears again.
    Duplicate { chain: String, seq: u64, line: usize },
    /// `seq` is written after a later record of its chain.
    Reordered { chain: String, seq: u64, line: usize },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Malformed { line } => write!(f, "line {line}: not an audit record with valid chain members"),
            Problem::Gap { chain, from, to } if from == to => write!(f, "chain {chain}: record {from} is missing"),
            Problem::Gap { chain, from, to } => write!(f, "chain {chain}: records {from} to {to} are missing"),
            Problem::Altered { chain, seq, line } => write!(
                f,
                "chain {chain}: record {seq} (line {line}) was altered or replaced: the next record does not link to it"
            ),
            Problem::Duplicate { chain, seq, line } => {
                write!(f, "chain {chain}: record {seq} appears again at line {line}")
            }
            Problem::Reordered { chain, seq, line } => {
                write!(f, "chain {chain}: record {seq} (line {line}) is written after a later record")
            }
        }
    }
}

/// One chain as found in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    pub id: String,
    /// The first sequence number in the file (above 1 when the file starts
    /// mid-chain, e.g. after log rotation: its link is not checked).
    pub first: u64,
    pub last: u64,
    pub records: usize,
    /// The hash of the last record: compare it with an anchored head.
    pub head: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub chains: Vec<ChainSummary>,
    /// Records without chain members (written by Envoy's fallback access
    /// log for requests no VM recorded).
    pub unchained: usize,
    pub problems: Vec<Problem>,
}

struct Link {
    seq: u64,
    line: usize,
    hash: String,
    prev: Option<String>,
}

/// Checks every chain in a log file (one record per line; blank lines are
/// skipped).
pub fn verify(log: &str) -> Report {
    let mut report = Report::default();
    let mut chains: BTreeMap<String, Vec<Link>> = BTreeMap::new();
    for (i, raw) in log.split('\n').enumerate() {
        let line = i + 1;
        let text = raw.strip_suffix('\r').unwrap_or(raw);
        if text.trim().is_empty() {
            continue;
        }
        let Ok(Value::Object(record)) = serde_json::from_str::<Value>(text) else {
            report.problems.push(Problem::Malformed { line });
            continue;
        };
        let (chain, seq, prev) = match (record.get("chain"), record.get("seq"), record.get("prev")) {
            (None, None, None) => {
                report.unchained += 1;
                continue;
            }
            (Some(Value::String(c)), Some(seq), Some(prev)) => {
                let prev = match prev {
                    Value::Null => None,
                    Value::String(p) if p.len() == 64 => Some(p.clone()),
                    _ => {
                        report.problems.push(Problem::Malformed { line });
                        continue;
                    }
                };
                match seq.as_u64().filter(|s| *s >= 1) {
                    Some(seq) => (c.clone(), seq, prev),
                    None => {
                        report.problems.push(Problem::Malformed { line });
                        continue;
                    }
                }
            }
            _ => {
                report.problems.push(Problem::Malformed { line });
                continue;
            }
        };
        let links = chains.entry(chain.clone()).or_default();
        if links.last().is_some_and(|l| l.seq > seq) {
            report.problems.push(Problem::Reordered { chain, seq, line });
        }
        links.push(Link { seq, line, hash: sha256_hex(text.as_bytes()), prev });
    }
    for (id, mut links) in chains {
        links.sort_by_key(|l| (l.seq, l.line));
        for pair in links.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if b.seq == a.seq {
                report.problems.push(Problem::Duplicate { chain: id.clone(), seq: b.seq, line: b.line });
            } else if b.seq > a.seq + 1 {
                report.problems.push(Problem::Gap { chain: id.clone(), from: a.seq + 1, to: b.seq - 1 });
            } else if b.prev.as_deref() != Some(a.hash.as_str()) {
                report.problems.push(Problem::Altered { chain: id.clone(), seq: a.seq, line: a.line });
            }
        }
        if let (Some(first), Some(last)) = (links.first(), links.last()) {
            if first.seq == 1 && first.prev.is_some() {
                report.problems.push(Problem::Malformed { line: first.line });
            }
            report.chains.push(ChainSummary {
                id,
                first: first.seq,
                last: last.seq,
                records: links.len(),
                head: last.hash.clone(),
            });
        }
    }
    report
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
