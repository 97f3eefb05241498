//! The modelgate command-line tool: the same engine as the filter, for the
//! work around it.
//!
//!     modelgate jwks (--key-file PATH | --key-env VAR) [--kid KID]
//!     modelgate audit verify FILE
//!
//! `jwks` prints the public JWK Set of a `minted_jwt` signing key (or of a
//! `token_exchange`'s minted assertions), for the endpoints that verify
//! what the gateway mints. `audit verify` checks the hash chains of an
//! audit log file (docs/audit.md).

use std::process::ExitCode;

use modelgate_policies::chain;
use modelgate_policies::mint::Minter;

const USAGE: &str = "usage: modelgate jwks (--key-file PATH | --key-env VAR) [--kid KID]
       modelgate audit verify FILE

  jwks   print the public JWK Set of a minted_jwt signing key (PKCS#8 PEM,
         SEC1 PEM or a private JWK); the kid is the key's RFC 7638
         thumbprint unless --kid (or the JWK's own kid) names it

  audit verify   check every hash chain of an audit log file: continuous,
                 every link right, in order; exit 1 when anything is wrong";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("audit") {
        return audit(&args[1..]);
    }
    match run(&args) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("modelgate: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    match args.first().map(String::as_str) {
        Some("jwks") => jwks(&args[1..]),
        Some("-h" | "--help") | None => Err(USAGE.to_string()),
        Some(other) => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

/// `audit verify FILE`: the report on stdout; 0 when every chain holds,
/// 1 when something is wrong, 2 when the file cannot be read.
fn audit(args: &[String]) -> ExitCode {
    let [verb, path] = args else {
        eprintln!("modelgate: {USAGE}");
        return ExitCode::from(2);
    };
    if verb != "verify" {
        eprintln!("modelgate: unknown audit command {verb:?}\n{USAGE}");
        return ExitCode::from(2);
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("modelgate: {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let report = chain::verify(&text);
    for c in &report.chains {
        let from =
            if c.first > 1 { format!(" (from record {}: the file starts mid-chain)", c.first) } else { String::new() };
        println!("chain {}: {} records, last {}{from}, head {}", c.id, c.records, c.last, c.head);
    }
    println!("{} record(s) outside any chain (Envoy's fallback log)", report.unchained);
    for p in &report.problems {
        println!("PROBLEM {p}");
    }
    if report.problems.is_empty() {
        println!("ok: every chain is continuous and every link holds");
        ExitCode::SUCCESS
    } else {
        println!("{} problem(s)", report.problems.len());
        ExitCode::from(1)
    }
}

fn jwks(args: &[String]) -> Result<String, String> {
    let mut key = None;
    let mut kid = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--key-file" => {
                let path = value()?;
                key = Some(std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?);
            }
            "--key-env" => {
                let var = value()?;
                key = Some(std::env::var(&var).map_err(|_| format!("environment variable {var} is not set"))?);
            }
            "--kid" => kid = Some(value()?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    let key = key.ok_or_else(|| format!("give the key with --key-file or --key-env\n{USAGE}"))?;
    let minter = Minter::new(&key, kid, String::new(), String::new(), 60)?;
    serde_json::to_string_pretty(&minter.jwks()).map_err(|e| e.to_string())
}
