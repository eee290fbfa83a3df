//! What `sessiond ctl` and `sessiond import` share: how to reach a running
//! server over the native protocol, log in, and read its replies; JSON
//! lines of sessions; a progress bar.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use serde_json::{json, Value as Json};
use sessiond_client::{Client, RespValue};

/// Where the server is and who to log in as.
#[derive(Args, Clone)]
pub struct RemoteArgs {
    /// The server's native (RESP) listener.
    #[arg(long, env = "SESSIOND_ADDR", default_value = "127.0.0.1:6390")]
    pub addr: String,
    /// Log in as this user (servers with `[[users]]`); the password comes
    /// from the environment variable SESSIOND_PASSWORD, never the command
    /// line (where `ps` would show it).
    #[arg(long, env = "SESSIOND_USER")]
    pub user: Option<String>,
}

impl RemoteArgs {
    /// A logged-in connection.
    pub async fn connect(&self) -> Result<Client, String> {
        let mut c = Client::connect(&self.addr)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.addr))?;
        if let Some(user) = &self.user {
            let password = std::env::var("SESSIOND_PASSWORD")
                .map_err(|_| format!("--user {user} needs its password in SESSIOND_PASSWORD"))?;
            c.auth(user, &password)
                .await
                .map_err(|e| format!("cannot log in as {user}: {e}"))?;
        }
        Ok(c)
    }
}

/// A map reply's pairs, whether RESP3 sent a map or RESP2 a flat array.
pub fn pairs(v: RespValue) -> Vec<(String, RespValue)> {
    let flat = match v {
        RespValue::Map(m) => return m.into_iter().map(|(k, v)| (text(&k), v)).collect(),
        RespValue::Array(a) => a,
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((text(&k), v));
    }
    out
}

/// A reply as text (bulk, simple, number), lossy for binary.
pub fn text(v: &RespValue) -> String {
    match v {
        RespValue::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        RespValue::Simple(s) | RespValue::Number(s) | RespValue::Error(s) => s.clone(),
        RespValue::Int(n) => n.to_string(),
        RespValue::Bool(b) => b.to_string(),
        RespValue::Nil => String::new(),
        other => format!("{other:?}"),
    }
}

/// The ids of an array reply.
pub fn ids(v: RespValue) -> Vec<Bytes> {
    match v {
        RespValue::Array(a) => a
            .into_iter()
            .filter_map(|x| match x {
                RespValue::Bulk(b) => Some(b),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Bytes in JSON as the dump writes them: a string when UTF-8, else
/// `{"hex": "..."}` — nothing is lost either way.
pub fn json_bytes(b: &[u8]) -> Json {
    match std::str::from_utf8(b) {
        Ok(s) => Json::from(s),
        Err(_) => json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
    }
}

/// The inverse of [`json_bytes`].
pub fn bytes_of(v: &Json) -> Option<Vec<u8>> {
    match v {
        Json::String(s) => Some(s.clone().into_bytes()),
        Json::Object(o) => {
            let hex = o.get("hex")?.as_str()?;
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect()
        }
        _ => None,
    }
}

/// A progress bar on standard error, drawn only when it is a terminal
/// (a pipe or a log gets the final summary only), at most ten times a
/// second.
pub struct Progress {
    what: &'static str,
    total: Option<u64>,
    done: u64,
    shown: Option<Instant>,
    on: bool,
}

impl Progress {
    pub fn new(what: &'static str, total: Option<u64>) -> Self {
        Self {
            what,
            total,
            done: 0,
            shown: None,
            on: std::io::stderr().is_terminal(),
        }
    }

    pub fn add(&mut self, n: u64) {
        self.done += n;
        if self.on
            && self
                .shown
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(100))
        {
            self.shown = Some(Instant::now());
            self.draw();
        }
    }

    fn draw(&self) {
        let line = match self.total {
            Some(total) if total > 0 => {
                let width = 30u64;
                let filled = (self.done.min(total) * width / total) as usize;
                format!(
                    "\r[{}{}] {}/{} {} ({}%)",
                    "#".repeat(filled),
                    " ".repeat(width as usize - filled),
                    self.done,
                    total,
                    self.what,
                    self.done.min(total) * 100 / total
                )
            }
            _ => format!("\r{} {}", self.done, self.what),
        };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }

    /// The final state, then a new line.
    pub fn finish(&self) {
        if self.on {
            self.draw();
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_survive_json_both_ways() {
        for b in [&b"a|s:1:\"x\";"[..], &[0xff, 0x00, 0x41][..], b""] {
            assert_eq!(bytes_of(&json_bytes(b)).as_deref(), Some(b));
        }
        assert_eq!(bytes_of(&json!({ "hex": "zz" })), None);
        assert_eq!(bytes_of(&json!(3)), None);
    }

    #[test]
    fn map_replies_read_the_same_in_resp2_and_resp3() {
        let k = |s: &'static str| RespValue::Bulk(Bytes::from_static(s.as_bytes()));
        let flat = RespValue::Array(vec![k("a"), RespValue::Int(1), k("b"), k("x")]);
        let map = RespValue::Map(vec![(k("a"), RespValue::Int(1)), (k("b"), k("x"))]);
        assert_eq!(pairs(flat), pairs(map));
    }
}
