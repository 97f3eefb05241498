//! The modelgate command-line tool: the same engine as the filter, for the
//! work around it. `modelgate --help` lists the commands; docs/cli.md shows
//! each. Exit codes: 0 success (allowed, valid, verified), 1 the answer is
//! no (a config error, a denial, a broken chain), 2 a usage or I/O error.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use modelgate_policies::chain;
use modelgate_policies::explain::{self, Question};
use modelgate_policies::Minter;
use modelgate_policies::Policy;
use modelgate_policies::PureRustVerifier;
use serde_json::{json, Value};

const USAGE: &str = "usage: modelgate <command> [options]   (modelgate <command> --help for each)

  check CONFIG        check a policy (the filter's JSON configuration); every
                      error with its JSON path; provider keys need not be set
  explain CONFIG ...  why a call would be allowed or denied
  mint-svid ...       a development JWT-SVID signed with a local key
  jwks ...            the public JWK Set of a minted_jwt signing key
  audit verify FILE   check the hash chains of an audit log file

exit codes: 0 yes (valid, allowed, verified), 1 no, 2 usage or I/O error";

const EXPLAIN_USAGE: &str = "usage: modelgate explain CONFIG --spiffe-id ID --provider NAME
         [--endpoint '[METHOD] /path'] [--model MODEL] [--time UNIX|RFC3339]
         [--peer IP[:PORT]] [--svid jwt|x509|jwt+x509] [--svid-age SECONDS]
         [--max-tokens N]
         [--claim NAME=VALUE]... [--metadata NAMESPACE/KEY=JSON]... [--json]
       an MCP server (api mcp), instead of --model:
         [--tool NAME [--arguments JSON]] [--resource URI] [--prompt NAME]
         [--method METHOD]   (tools/list, initialize, notifications/…)
       modelgate explain CONFIG --batch FILE|-     (JSON lines in, JSON lines out)

Decides as the filter does: deny rules first, then the first allow rule,
each rule's conditions judged against --time, --peer, the SVID kind and
age, claims and metadata. Exit 0 allowed, 1 denied.";

const MINT_USAGE: &str = "usage: modelgate mint-svid --key-file PATH --spiffe-id ID --audience AUD
         [--ttl SECONDS] [--kid KID] [--claim NAME=VALUE]...

A JWT-SVID (ES256) for development and demos: sub = the SPIFFE ID, aud,
iat, exp = now + ttl (default 3600), a random jti, header kid (default the
key's RFC 7638 thumbprint). Put the key's public JWK in the trust domain's
jwt_bundle (modelgate jwks --key-file PATH prints it).";

const JWKS_USAGE: &str = "usage: modelgate jwks (--key-file PATH | --key-env VAR) [--kid KID]

The public JWK Set of a minted_jwt signing key (PKCS#8 PEM, SEC1 PEM or a
private JWK); the kid is the key's RFC 7638 thumbprint unless --kid (or the
JWK's own kid) names it.";

const AUDIT_USAGE: &str = "usage: modelgate audit verify FILE

Checks every hash chain of an audit log: continuous, every link right, in
order. Exit 0 when all hold, 1 when anything is wrong (each problem named).";

/// Prints a line; a closed stdout (`| head`) is not an error.
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// An error and its exit code.
struct Fail(u8, String);

fn usage(text: &str) -> Fail {
    Fail(2, text.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("check") => check(&args[1..]),
        Some("explain") => explain_cmd(&args[1..]),
        Some("mint-svid") => mint_svid(&args[1..]),
        Some("jwks") => jwks(&args[1..]),
        Some("audit") => audit(&args[1..]),
        Some("-h" | "--help" | "help") => {
            say!("{USAGE}");
            Ok(())
        }
        None => Err(usage(USAGE)),
        Some(other) => Err(Fail(2, format!("unknown command {other:?}\n{USAGE}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, message)) => {
            if message.starts_with("modelgate") {
                eprintln!("{message}");
            } else if !message.is_empty() {
                eprintln!("modelgate: {message}");
            }
            ExitCode::from(code)
        }
    }
}

fn wants_help(args: &[String], text: &str) -> Result<bool, Fail> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        say!("{text}");
        return Ok(true);
    }
    Ok(false)
}

fn read(path: &str) -> Result<String, Fail> {
    if path == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| Fail(2, format!("stdin: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| Fail(2, format!("{path}: {e}")))
}

fn load(text: &str) -> Result<Policy, modelgate_policies::ConfigError> {
    Policy::for_checking(text, &|name| std::env::var(name).ok())
}

fn check(args: &[String]) -> Result<(), Fail> {
    const CHECK_USAGE: &str = "usage: modelgate check CONFIG|-

Checks a policy as the filter would load it: CONFIG is the JSON the wasm
filter's `configuration` (Envoy) or the WasmPlugin's `pluginConfig`
(Istio, as JSON) holds; `-` reads stdin. Environment variables the policy
names need not be set. Exit 0 valid, 1 invalid (the error names the JSON
path), 2 unreadable.";
    if wants_help(args, CHECK_USAGE)? {
        return Ok(());
    }
    let [path] = args else { return Err(usage(CHECK_USAGE)) };
    let text = read(path)?;
    let policy = load(&text).map_err(|e| Fail(1, e.to_string()))?;
    say!(
        "ok: mode {}, {} trust domain(s), {} provider(s), {} rule(s){}",
        policy.mode.name(),
        policy.trust_domains.len(),
        policy.providers.len(),
        policy.rules.len(),
        match policy.budgets.list.len() {
            0 => String::new(),
            n => format!(", {n} budget(s), {} price(s)", policy.budgets.prices.len()),
        }
    );
    Ok(())
}

fn explain_cmd(args: &[String]) -> Result<(), Fail> {
    if wants_help(args, EXPLAIN_USAGE)? {
        return Ok(());
    }
    let Some((path, rest)) = args.split_first() else { return Err(usage(EXPLAIN_USAGE)) };
    let policy = load(&read(path)?).map_err(|e| Fail(1, e.to_string()))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut q = json!({});
    let mut as_json = false;
    let mut batch = None;
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| Fail(2, format!("{flag} needs a value")));
        match flag.as_str() {
            "--spiffe-id" => q["spiffe_id"] = json!(value()?),
            "--provider" => q["provider"] = json!(value()?),
            "--endpoint" => q["endpoint"] = json!(value()?),
            "--model" => q["model"] = json!(value()?),
            "--tool" => q["tool"] = json!(value()?),
            "--arguments" => {
                let v = value()?;
                let arguments = serde_json::from_str::<Value>(&v)
                    .ok()
                    .filter(Value::is_object)
                    .ok_or_else(|| Fail(2, format!("--arguments {v:?}: a JSON object")))?;
                q["arguments"] = arguments;
            }
            "--resource" => q["resource"] = json!(value()?),
            "--prompt" => q["prompt"] = json!(value()?),
            "--method" => q["method"] = json!(value()?),
            "--peer" => q["peer"] = json!(value()?),
            "--svid" => q["svid"] = json!(value()?),
            "--max-tokens" => {
                let v = value()?;
                q["max_tokens"] = json!(v.parse::<u64>().map_err(|_| Fail(2, format!("--max-tokens {v:?}")))?);
            }
            "--svid-age" => {
                let v = value()?;
                q["svid_age_seconds"] = json!(v.parse::<u64>().map_err(|_| Fail(2, format!("--svid-age {v:?}")))?);
            }
            "--time" => {
                let v = value()?;
                let t = v
                    .parse::<u64>()
                    .ok()
                    .or_else(|| modelgate_policies::parse_rfc3339(&v))
                    .ok_or_else(|| Fail(2, format!("--time {v:?}: Unix seconds or RFC 3339")))?;
                q["time"] = json!(t);
            }
            "--claim" => {
                let v = value()?;
                let (k, val) = v.split_once('=').ok_or_else(|| Fail(2, format!("--claim {v:?}: NAME=VALUE")))?;
                let entry = q["claims"].as_object_mut().map(|m| m.remove(k));
                let list = match entry.flatten() {
                    Some(Value::Array(mut a)) => {
                        a.push(json!(val));
                        Value::Array(a)
                    }
                    Some(s @ Value::String(_)) => json!([s, val]),
                    _ => json!(val),
                };
                if !q["claims"].is_object() {
                    q["claims"] = json!({});
                }
                q["claims"][k] = list;
            }
            "--metadata" => {
                let v = value()?;
                let parsed = v.split_once('=').and_then(|(nk, j)| {
                    let (ns, key) = nk.rsplit_once('/')?;
                    let value: Value = serde_json::from_str(j).unwrap_or_else(|_| json!(j));
                    Some((ns.to_string(), key.to_string(), value))
                });
                let (ns, key, value) =
                    parsed.ok_or_else(|| Fail(2, format!("--metadata {v:?}: NAMESPACE/KEY=JSON")))?;
                if !q["metadata"].is_object() {
                    q["metadata"] = json!({});
                }
                if !q["metadata"][&ns].is_object() {
                    q["metadata"][&ns] = json!({});
                }
                q["metadata"][&ns][&key] = value;
            }
            "--json" => as_json = true,
            "--batch" => batch = Some(value()?),
            other => return Err(Fail(2, format!("unknown option {other:?}\n{EXPLAIN_USAGE}"))),
        }
    }
    if let Some(file) = batch {
        let text = read(&file)?;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let q: Question = serde_json::from_str(line).map_err(|e| Fail(2, format!("{file}:{}: {e}", i + 1)))?;
            let answer = explain::explain(&policy, &q, now);
            let _ = writeln!(out, "{}", serde_json::to_string(&answer).unwrap_or_default());
        }
        return Ok(());
    }
    let q: Question = serde_json::from_value(q).map_err(|e| Fail(2, format!("{e}\n{EXPLAIN_USAGE}")))?;
    let answer = explain::explain(&policy, &q, now);
    if as_json {
        say!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
    } else {
        say!(
            "{} ({}{})",
            answer.decision,
            answer.reason,
            answer.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
        );
        say!("  {}", answer.message);
        if let Some(rule) = &answer.rule {
            say!("  rule: {rule}");
        }
        for c in &answer.conditions {
            say!("  condition {} of rule {}: {}", c.condition, c.rule, if c.ok { "holds" } else { "does not hold" });
        }
    }
    if answer.decision == "allow" {
        Ok(())
    } else {
        Err(Fail(1, String::new()))
    }
}

fn key_from(path: &str) -> Result<String, Fail> {
    std::fs::read_to_string(path).map_err(|e| Fail(2, format!("{path}: {e}")))
}

fn mint_svid(args: &[String]) -> Result<(), Fail> {
    if wants_help(args, MINT_USAGE)? {
        return Ok(());
    }
    let (mut key, mut id, mut aud, mut ttl, mut kid) = (None, None, None, 3600u64, None);
    let mut claims = serde_json::Map::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| Fail(2, format!("{flag} needs a value")));
        match flag.as_str() {
            "--key-file" => key = Some(key_from(&value()?)?),
            "--spiffe-id" => id = Some(value()?),
            "--audience" => aud = Some(value()?),
            "--kid" => kid = Some(value()?),
            "--ttl" => {
                let v = value()?;
                ttl = v.parse().ok().filter(|t| *t > 0).ok_or_else(|| Fail(2, format!("--ttl {v:?}")))?;
            }
            "--claim" => {
                let v = value()?;
                let (k, val) = v.split_once('=').ok_or_else(|| Fail(2, format!("--claim {v:?}: NAME=VALUE")))?;
                claims.insert(k.to_string(), json!(val));
            }
            other => return Err(Fail(2, format!("unknown option {other:?}\n{MINT_USAGE}"))),
        }
    }
    let (Some(key), Some(id), Some(aud)) = (key, id, aud) else { return Err(usage(MINT_USAGE)) };
    let spiffe_id =
        modelgate_policies::SpiffeId::parse(&id).map_err(|e| Fail(2, format!("--spiffe-id {id:?}: {e}")))?;
    let minter = Minter::new(&key, kid, String::new(), aud, ttl).map_err(|e| Fail(2, e))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut jti = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").map_err(|e| Fail(2, e.to_string()))?, &mut jti)
        .map_err(|e| Fail(2, format!("no random bytes: {e}")))?;
    say!("{}", minter.mint_svid(spiffe_id.as_str(), &claims, now, &jti, &PureRustVerifier));
    Ok(())
}

fn jwks(args: &[String]) -> Result<(), Fail> {
    if wants_help(args, JWKS_USAGE)? {
        return Ok(());
    }
    let mut key = None;
    let mut kid = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| Fail(2, format!("{flag} needs a value")));
        match flag.as_str() {
            "--key-file" => key = Some(key_from(&value()?)?),
            "--key-env" => {
                let var = value()?;
                key = Some(std::env::var(&var).map_err(|_| Fail(2, format!("environment variable {var} is not set")))?);
            }
            "--kid" => kid = Some(value()?),
            other => return Err(Fail(2, format!("unknown option {other:?}\n{JWKS_USAGE}"))),
        }
    }
    let key = key.ok_or_else(|| Fail(2, format!("give the key with --key-file or --key-env\n{JWKS_USAGE}")))?;
    let minter = Minter::new(&key, kid, String::new(), String::new(), 60).map_err(|e| Fail(2, e))?;
    say!("{}", serde_json::to_string_pretty(&minter.jwks()).unwrap_or_default());
    Ok(())
}

/// `audit verify FILE`: the report on stdout, a progress line on stderr
/// for long files.
fn audit(args: &[String]) -> Result<(), Fail> {
    if wants_help(args, AUDIT_USAGE)? {
        return Ok(());
    }
    let [verb, path] = args else { return Err(usage(AUDIT_USAGE)) };
    if verb != "verify" {
        return Err(Fail(2, format!("unknown audit command {verb:?}\n{AUDIT_USAGE}")));
    }
    let file = std::fs::File::open(path).map_err(|e| Fail(2, format!("{path}: {e}")))?;
    let mut text = String::new();
    let mut reader = std::io::BufReader::new(file);
    let mut line = String::new();
    let mut lines = 0usize;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => text.push_str(&line),
            Err(e) => return Err(Fail(2, format!("{path}: {e}"))),
        }
        lines += 1;
        if lines.is_multiple_of(100_000) {
            eprint!("\rmodelgate: read {lines} records…");
        }
    }
    if lines >= 100_000 {
        eprintln!("\rmodelgate: read {lines} records, verifying…");
    }
    let report = chain::verify(&text);
    for c in &report.chains {
        let from =
            if c.first > 1 { format!(" (from record {}: the file starts mid-chain)", c.first) } else { String::new() };
        say!("chain {}: {} records, last {}{from}, head {}", c.id, c.records, c.last, c.head);
    }
    say!("{} record(s) outside any chain (Envoy's fallback log)", report.unchained);
    for p in &report.problems {
        say!("PROBLEM {p}");
    }
    if report.problems.is_empty() {
        say!("ok: every chain is continuous and every link holds");
        Ok(())
    } else {
        say!("{} problem(s)", report.problems.len());
        Err(Fail(1, String::new()))
    }
}
