//! Configuration from the environment.

use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
pub const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379/";
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 150;
pub const MIN_KEY_LEN: usize = 32;

#[derive(Debug)]
pub struct Config {
    pub listen: String,
    pub redis_url: String,
    pub key: String,
    pub redis_timeout: Duration,
}

impl Config {
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let listen = var("MODELGATE_LEDGER_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.into());
        let redis_url = var("MODELGATE_LEDGER_REDIS").unwrap_or_else(|| DEFAULT_REDIS.into());
        let key = var("MODELGATE_LEDGER_KEY").ok_or_else(|| {
            format!(
                "MODELGATE_LEDGER_KEY is not set: every request must carry `authorization: Bearer <key>`; \
                 set it to a random secret of at least {MIN_KEY_LEN} bytes (e.g. `openssl rand -hex 32`)"
            )
        })?;
        if key.len() < MIN_KEY_LEN {
            return Err(format!(
                "MODELGATE_LEDGER_KEY is {} bytes long; it must be at least {MIN_KEY_LEN} (e.g. `openssl rand -hex 32`)",
                key.len()
            ));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("MODELGATE_LEDGER_KEY must be printable ASCII without spaces (it is sent in a header)".into());
        }
        let redis_timeout = match var("MODELGATE_LEDGER_REDIS_TIMEOUT_MS") {
            None => DEFAULT_REDIS_TIMEOUT_MS,
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if (1..=10_000).contains(&ms) => ms,
                _ => return Err(format!("MODELGATE_LEDGER_REDIS_TIMEOUT_MS must be 1..=10000 (ms), not {v:?}")),
            },
        };
        Ok(Self { listen, redis_url, key, redis_timeout: Duration::from_millis(redis_timeout) })
    }
}

/// The Redis URL with its password (if any) replaced by `***`, for logs.
pub fn redact(url: &str) -> String {
    let url = redact_userinfo(url);
    // redis+unix:///run/redis.sock?pass=…
    match url.find("pass=") {
        Some(i) => {
            let end = url[i..].find('&').map_or(url.len(), |j| i + j);
            format!("{}pass=***{}", &url[..i], &url[end..])
        }
        None => url,
    }
}

fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let masked = if userinfo.contains(':') || !user.is_empty() { format!("{user}:***") } else { String::new() };
    format!("{}{masked}{}", &url[..scheme_end], &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_string())
    }

    #[test]
    fn key_is_required_and_long() {
        let e = Config::from_env(env(&[])).unwrap_err();
        assert!(e.contains("MODELGATE_LEDGER_KEY is not set"), "{e}");
        let e = Config::from_env(env(&[("MODELGATE_LEDGER_KEY", "short")])).unwrap_err();
        assert!(e.contains("at least 32"), "{e}");
        let c = Config::from_env(env(&[("MODELGATE_LEDGER_KEY", &"k".repeat(32))])).unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN);
        assert_eq!(c.redis_url, DEFAULT_REDIS);
        assert_eq!(c.redis_timeout, Duration::from_millis(150));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
        assert_eq!(redact("redis://:s3cret@redis:6379/0"), "redis://:***@redis:6379/0");
        assert_eq!(redact("redis://ledger:s3cret@redis:6379"), "redis://ledger:***@redis:6379");
        assert_eq!(redact("redis://ledger@redis"), "redis://ledger:***@redis");
        assert_eq!(redact("rediss://u:p@w@h:1/?x=@"), "rediss://u:***@h:1/?x=@");
        assert_eq!(redact("redis+unix:///r.sock?db=1&pass=p&x=1"), "redis+unix:///r.sock?db=1&pass=***&x=1");
    }
}
