//! Shared by the integration tests: a real `redis-server` in a temporary
//! directory, the built `modelgate-ledger` binary, and a small HTTP/1.1 client.
//! Both processes are killed when their handle drops.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const KEY: &str = "test-ledger-key-0123456789abcdef0123456789";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn redis_binary() -> String {
    let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    match Command::new(&bin).arg("--version").output() {
        Ok(o) if o.status.success() => bin,
        _ => panic!(
            "`{bin}` was not found: the ledger's tests need a real Redis. Install it \
             (`apt-get install -y redis-server`) or point REDIS_SERVER at the binary."
        ),
    }
}

/// A `redis-server` with no persistence on a free port.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Redis { port: free_port(), child: None, dir };
        r.restart();
        r
    }

    /// Starts (again) on the same port, empty.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis is running");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut child = Command::new(redis_binary())
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .current_dir(self.dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            // Up when it answers PING; retry if the port is not free yet.
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if self.ping() {
                    self.child = Some(child);
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "redis-server did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// One command; its reply: `:42`, `+OK`, `$-1` (nil), or a bulk string's content.
    pub fn command(&self, args: &[&str]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.starts_with('$') && !line.starts_with("$-1") {
            line.clear();
            reader.read_line(&mut line).unwrap();
        }
        line.trim_end().to_string()
    }

    /// Kills it (SIGKILL): connections drop, the port refuses.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP / SIGCONT: connections stay open but nothing answers.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let sig = if frozen { "-STOP" } else { "-CONT" };
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_ref() {
            let _ = Command::new("kill").args(["-CONT", &c.id().to_string()]).status();
        }
        self.stop();
    }
}

/// The built `modelgate-ledger` binary, listening on a port it picked.
pub struct Ledger {
    pub addr: SocketAddr,
    child: Child,
    // Kept open: the ledger's stdout stays a live pipe.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Ledger {
    pub fn start(redis_url: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_modelgate-ledger"))
            .env("MODELGATE_LEDGER_LISTEN", "127.0.0.1:0")
            .env("MODELGATE_LEDGER_REDIS", redis_url)
            .env("MODELGATE_LEDGER_KEY", KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // The first line names the address: "… listening on 127.0.0.1:PORT, redis …".
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .parse()
            .unwrap();
        Ledger { addr, child, _stdout: stdout }
    }

    pub fn request(&self, method: &str, path: &str, auth: Option<&str>, body: &[u8]) -> (u16, String) {
        http(self.addr, method, path, auth, body)
    }

    /// POST with the right key; the answer's status and JSON.
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, text) = self.request("POST", path, Some(KEY), body.to_string().as_bytes());
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} answered {status} {text:?}: {e}"));
        (status, v)
    }

    pub fn reserve(&self, body: &Value) -> Value {
        let (status, v) = self.post("/v1/reserve", body);
        assert_eq!(status, 200, "{v}");
        v
    }

    pub fn settle(&self, body: &Value) -> Value {
        let (status, v) = self.post("/v1/settle", body);
        assert_eq!(status, 200, "{v}");
        v
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; the status and body.
pub fn http(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: ledger\r\nconnection: close\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n",
        body.len()
    );
    if let Some(k) = auth {
        head.push_str(&format!("authorization: Bearer {k}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading all of a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {text:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    (status, if chunked { dechunk(body) } else { body.to_string() })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// A fresh reservation id: 32 lowercase hex digits.
pub fn rid(n: u64) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    format!("{n:016x}{nanos:016x}")
}

/// A window end a day from now, in ms.
pub fn window_end() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 + 86_400_000
}

pub fn draw(key: &str, limit_tokens: Option<u64>, limit_nusd: Option<u64>, tokens: u64, nusd: u64) -> Value {
    json!({"key": key, "window_end_ms": window_end(),
           "limit": {"tokens": limit_tokens, "nano_usd": limit_nusd},
           "amount": {"tokens": tokens, "nano_usd": nusd}})
}

pub fn charge(key: &str, limit_tokens: Option<u64>, limit_nusd: Option<u64>, tokens: u64, nusd: u64) -> Value {
    json!({"key": key, "window_end_ms": window_end(),
           "limit": {"tokens": limit_tokens, "nano_usd": limit_nusd},
           "charge": {"tokens": tokens, "nano_usd": nusd}})
}

pub fn reserve_body(id: &str, hold_ms: u64, draws: Vec<Value>) -> Value {
    json!({"reservation": id, "hold_ms": hold_ms, "draws": draws})
}

pub fn settle_body(id: &str, draws: Vec<Value>) -> Value {
    json!({"reservation": id, "draws": draws})
}

/// Remaining tokens of the answer's draw `i`.
pub fn tokens_left(answer: &Value, i: usize) -> Option<u64> {
    answer["draws"][i]["remaining"]["tokens"].as_u64()
}
