//! One method per native command.

use bytes::Bytes;
use sessiond_proto::resp::Value;

use crate::{bulk, byte_pairs, int, ok, pairs, text, texts, Client, Error};

/// Options of `SESSION.CREATE` and `SESSION.UNIQ`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions<'a> {
    /// Application class (msession classname).
    pub class: Option<&'a [u8]>,
    /// Initial data blob.
    pub data: Option<&'a [u8]>,
    /// Idle timeout in seconds (server default when absent).
    pub timeout: Option<u64>,
    /// Length of a generated id (`UNIQ` only).
    pub len: Option<usize>,
}

/// Lock mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LockMode {
    #[default]
    Write,
    Read,
}

/// Options of `SESSION.LOCK` and `SESSION.OPEN`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LockOptions {
    pub mode: LockMode,
    /// How long to wait for a busy lock, ms (0: try once).
    pub wait_ms: u64,
    /// Lease in ms (server default when absent).
    pub lease_ms: Option<u64>,
    /// `OPEN` only: create the session if it does not exist.
    pub create: bool,
}

/// What `SESSION.OPEN` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub key: u64,
    pub data: Bytes,
    pub vars: Vec<(Bytes, Bytes)>,
}

/// What `SESSION.INFO` returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionInfo {
    pub class: Option<String>,
    pub created: i64,
    pub accessed: i64,
    pub timeout: i64,
    pub ttl: i64,
    pub version: i64,
    pub vars: i64,
    pub data_bytes: i64,
    /// `none`, `write` or `read`.
    pub lock: String,
    pub lock_holders: i64,
    pub lock_waiters: i64,
}

impl Client {
    /// `SESSION.CREATE`.
    pub async fn create(
        &mut self,
        id: impl AsRef<[u8]>,
        opts: CreateOptions<'_>,
    ) -> Result<(), Error> {
        let timeout = opts.timeout.map(|t| t.to_string());
        let mut a: Vec<&[u8]> = vec![b"SESSION.CREATE", id.as_ref()];
        push_create_opts(&mut a, &opts, timeout.as_deref(), None);
        ok(self.call(&a).await?)
    }

    /// `SESSION.UNIQ`: returns the new id.
    pub async fn uniq(&mut self, opts: CreateOptions<'_>) -> Result<String, Error> {
        let timeout = opts.timeout.map(|t| t.to_string());
        let len = opts.len.map(|l| l.to_string());
        let mut a: Vec<&[u8]> = vec![b"SESSION.UNIQ"];
        push_create_opts(&mut a, &opts, timeout.as_deref(), len.as_deref());
        text(self.call(&a).await?)
    }

    /// `SESSION.DESTROY`.
    pub async fn destroy(&mut self, id: impl AsRef<[u8]>) -> Result<(), Error> {
        ok(self.call(&[b"SESSION.DESTROY", id.as_ref()]).await?)
    }

    /// `SESSION.EXISTS`.
    pub async fn exists(&mut self, id: impl AsRef<[u8]>) -> Result<bool, Error> {
        Ok(int(self.call(&[b"SESSION.EXISTS", id.as_ref()]).await?)? == 1)
    }

    /// `SESSION.INFO`.
    pub async fn info(&mut self, id: impl AsRef<[u8]>) -> Result<SessionInfo, Error> {
        let mut info = SessionInfo::default();
        for (k, v) in pairs(self.call(&[b"SESSION.INFO", id.as_ref()]).await?)? {
            let n = match &v {
                Value::Int(n) => *n,
                _ => 0,
            };
            match text(k)?.as_str() {
                "class" => info.class = bulk(v)?.map(|b| String::from_utf8_lossy(&b).into_owned()),
                "created" => info.created = n,
                "accessed" => info.accessed = n,
                "timeout" => info.timeout = n,
                "ttl" => info.ttl = n,
                "version" => info.version = n,
                "vars" => info.vars = n,
                "data_bytes" => info.data_bytes = n,
                "lock" => info.lock = text(v)?,
                "lock_holders" => info.lock_holders = n,
                "lock_waiters" => info.lock_waiters = n,
                _ => {}
            }
        }
        Ok(info)
    }

    /// `SESSION.COUNT [CLASS c]`.
    pub async fn count(&mut self, class: Option<&str>) -> Result<u64, Error> {
        let v = match class {
            None => self.call(&["SESSION.COUNT"]).await?,
            Some(c) => self.call(&["SESSION.COUNT", "CLASS", c]).await?,
        };
        Ok(u64::try_from(int(v)?).unwrap_or(0))
    }

    /// `SESSION.LIST [CLASS c]`.
    pub async fn list(&mut self, class: Option<&str>) -> Result<Vec<String>, Error> {
        texts(match class {
            None => self.call(&["SESSION.LIST"]).await?,
            Some(c) => self.call(&["SESSION.LIST", "CLASS", c]).await?,
        })
    }

    /// `SESSION.SCAN cursor COUNT n`: the next cursor (`"0"` when done) and a page.
    pub async fn scan(
        &mut self,
        cursor: &str,
        count: usize,
    ) -> Result<(String, Vec<String>), Error> {
        let count = count.to_string();
        match self
            .call(&["SESSION.SCAN", cursor, "COUNT", &count])
            .await?
        {
            Value::Array(mut parts) if parts.len() == 2 => {
                let page = texts(parts.pop().unwrap_or(Value::Nil))?;
                let next = text(parts.pop().unwrap_or(Value::Nil))?;
                Ok((next, page))
            }
            other => Err(Error::unexpected("[cursor, ids]", &other)),
        }
    }

    /// `SESSION.GET`: `None` when the variable is absent.
    pub async fn get(
        &mut self,
        id: impl AsRef<[u8]>,
        name: impl AsRef<[u8]>,
    ) -> Result<Option<Bytes>, Error> {
        bulk(
            self.call(&[b"SESSION.GET", id.as_ref(), name.as_ref()])
                .await?,
        )
    }

    /// `SESSION.GET … DEFAULT v`.
    pub async fn get_or(
        &mut self,
        id: impl AsRef<[u8]>,
        name: impl AsRef<[u8]>,
        default: impl AsRef<[u8]>,
    ) -> Result<Bytes, Error> {
        let v = self
            .call(&[
                b"SESSION.GET",
                id.as_ref(),
                name.as_ref(),
                b"DEFAULT",
                default.as_ref(),
            ])
            .await?;
        Ok(bulk(v)?.unwrap_or_default())
    }

    /// `SESSION.SET`.
    pub async fn set(
        &mut self,
        id: impl AsRef<[u8]>,
        name: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), Error> {
        ok(self
            .call(&[b"SESSION.SET", id.as_ref(), name.as_ref(), value.as_ref()])
            .await?)
    }

    /// `SESSION.DEL`: whether the variable was there.
    pub async fn del(
        &mut self,
        id: impl AsRef<[u8]>,
        name: impl AsRef<[u8]>,
    ) -> Result<bool, Error> {
        Ok(int(self
            .call(&[b"SESSION.DEL", id.as_ref(), name.as_ref()])
            .await?)?
            == 1)
    }

    /// `SESSION.GETALL`.
    pub async fn get_all(&mut self, id: impl AsRef<[u8]>) -> Result<Vec<(Bytes, Bytes)>, Error> {
        byte_pairs(self.call(&[b"SESSION.GETALL", id.as_ref()]).await?)
    }

    /// `SESSION.SETALL`.
    pub async fn set_all(
        &mut self,
        id: impl AsRef<[u8]>,
        vars: &[(&[u8], &[u8])],
    ) -> Result<(), Error> {
        let mut a: Vec<&[u8]> = vec![b"SESSION.SETALL", id.as_ref()];
        for (n, v) in vars {
            a.push(n);
            a.push(v);
        }
        ok(self.call(&a).await?)
    }

    /// `SESSION.GETDATA`.
    pub async fn get_data(&mut self, id: impl AsRef<[u8]>) -> Result<Bytes, Error> {
        Ok(bulk(self.call(&[b"SESSION.GETDATA", id.as_ref()]).await?)?.unwrap_or_default())
    }

    /// `SESSION.SETDATA`.
    pub async fn set_data(
        &mut self,
        id: impl AsRef<[u8]>,
        data: impl AsRef<[u8]>,
    ) -> Result<(), Error> {
        ok(self
            .call(&[b"SESSION.SETDATA", id.as_ref(), data.as_ref()])
            .await?)
    }

    /// `SESSION.INC … BY n`: the new value.
    pub async fn inc(
        &mut self,
        id: impl AsRef<[u8]>,
        name: impl AsRef<[u8]>,
        by: i64,
    ) -> Result<i64, Error> {
        let by = by.to_string();
        int(self
            .call(&[
                b"SESSION.INC",
                id.as_ref(),
                name.as_ref(),
                b"BY",
                by.as_bytes(),
            ])
            .await?)
    }

    /// `SESSION.FIND`.
    pub async fn find(
        &mut self,
        name: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<Vec<String>, Error> {
        texts(
            self.call(&[b"SESSION.FIND", name.as_ref(), value.as_ref()])
                .await?,
        )
    }

    /// `SESSION.LISTVAR`: (id, value) pairs.
    pub async fn list_var(
        &mut self,
        name: impl AsRef<[u8]>,
    ) -> Result<Vec<(String, Bytes)>, Error> {
        byte_pairs(self.call(&[b"SESSION.LISTVAR", name.as_ref()]).await?).map(|p| {
            p.into_iter()
                .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
                .collect()
        })
    }

    /// `SESSION.TIMEOUT id`: seconds.
    pub async fn timeout(&mut self, id: impl AsRef<[u8]>) -> Result<u64, Error> {
        Ok(u64::try_from(int(self.call(&[b"SESSION.TIMEOUT", id.as_ref()]).await?)?).unwrap_or(0))
    }

    /// `SESSION.TIMEOUT id seconds`.
    pub async fn set_timeout(&mut self, id: impl AsRef<[u8]>, seconds: u64) -> Result<(), Error> {
        let s = seconds.to_string();
        ok(self
            .call(&[b"SESSION.TIMEOUT", id.as_ref(), s.as_bytes()])
            .await?)
    }

    /// `SESSION.TTL`: seconds left.
    pub async fn ttl(&mut self, id: impl AsRef<[u8]>) -> Result<i64, Error> {
        int(self.call(&[b"SESSION.TTL", id.as_ref()]).await?)
    }

    /// `SESSION.TOUCH`.
    pub async fn touch(&mut self, id: impl AsRef<[u8]>) -> Result<(), Error> {
        ok(self.call(&[b"SESSION.TOUCH", id.as_ref()]).await?)
    }

    /// `SESSION.LOCK`: the fencing key.
    pub async fn lock(&mut self, id: impl AsRef<[u8]>, opts: LockOptions) -> Result<u64, Error> {
        let (wait, lease) = (
            opts.wait_ms.to_string(),
            opts.lease_ms.map(|l| l.to_string()),
        );
        let mut a: Vec<&[u8]> = vec![b"SESSION.LOCK", id.as_ref()];
        push_lock_opts(&mut a, &opts, &wait, lease.as_deref());
        Ok(u64::try_from(int(self.call(&a).await?)?).unwrap_or(0))
    }

    /// `SESSION.UNLOCK`.
    pub async fn unlock(&mut self, id: impl AsRef<[u8]>, key: u64) -> Result<(), Error> {
        let k = key.to_string();
        ok(self
            .call(&[b"SESSION.UNLOCK", id.as_ref(), k.as_bytes()])
            .await?)
    }

    /// `SESSION.COMMIT`: downgrade write to read.
    pub async fn commit(&mut self, id: impl AsRef<[u8]>, key: u64) -> Result<(), Error> {
        let k = key.to_string();
        ok(self
            .call(&[b"SESSION.COMMIT", id.as_ref(), k.as_bytes()])
            .await?)
    }

    /// `SESSION.OPEN`: lock and read in one round trip.
    pub async fn open(&mut self, id: impl AsRef<[u8]>, opts: LockOptions) -> Result<Opened, Error> {
        let (wait, lease) = (
            opts.wait_ms.to_string(),
            opts.lease_ms.map(|l| l.to_string()),
        );
        let mut a: Vec<&[u8]> = vec![b"SESSION.OPEN", id.as_ref()];
        push_lock_opts(&mut a, &opts, &wait, lease.as_deref());
        if opts.create {
            a.push(b"CREATE");
        }
        match self.call(&a).await? {
            Value::Array(parts) if parts.len() == 3 => {
                let mut it = parts.into_iter();
                let key = int(it.next().unwrap_or(Value::Nil))?;
                let data = bulk(it.next().unwrap_or(Value::Nil))?.unwrap_or_default();
                let vars = byte_pairs(it.next().unwrap_or(Value::Nil))?;
                Ok(Opened {
                    key: u64::try_from(key).unwrap_or(0),
                    data,
                    vars,
                })
            }
            other => Err(Error::unexpected("[key, data, vars]", &other)),
        }
    }

    /// `SESSION.CLOSE`: write (optionally) and unlock in one round trip.
    pub async fn close(
        &mut self,
        id: impl AsRef<[u8]>,
        key: u64,
        data: Option<&[u8]>,
        sets: &[(&[u8], &[u8])],
    ) -> Result<(), Error> {
        let k = key.to_string();
        let mut a: Vec<&[u8]> = vec![b"SESSION.CLOSE", id.as_ref(), k.as_bytes()];
        if let Some(d) = data {
            a.push(b"DATA");
            a.push(d);
        }
        if !sets.is_empty() {
            a.push(b"SET");
            for (n, v) in sets {
                a.push(n);
                a.push(v);
            }
        }
        ok(self.call(&a).await?)
    }

    /// `SESSION.REGENERATE`: the new id.
    pub async fn regenerate(
        &mut self,
        id: impl AsRef<[u8]>,
        new_id: Option<&[u8]>,
    ) -> Result<String, Error> {
        let mut a: Vec<&[u8]> = vec![b"SESSION.REGENERATE", id.as_ref()];
        if let Some(n) = new_id {
            a.push(n);
        }
        text(self.call(&a).await?)
    }

    /// `SESSION.RANDSTR n`.
    pub async fn randstr(&mut self, len: usize) -> Result<String, Error> {
        let n = len.to_string();
        text(self.call(&["SESSION.RANDSTR", &n]).await?)
    }
}

fn push_create_opts<'a>(
    a: &mut Vec<&'a [u8]>,
    opts: &CreateOptions<'a>,
    timeout: Option<&'a str>,
    len: Option<&'a str>,
) {
    if let Some(c) = opts.class {
        a.extend([&b"CLASS"[..], c]);
    }
    if let Some(d) = opts.data {
        a.extend([&b"DATA"[..], d]);
    }
    if let Some(t) = timeout {
        a.extend([&b"TIMEOUT"[..], t.as_bytes()]);
    }
    if let Some(l) = len {
        a.extend([&b"LEN"[..], l.as_bytes()]);
    }
}

fn push_lock_opts<'a>(
    a: &mut Vec<&'a [u8]>,
    opts: &LockOptions,
    wait: &'a str,
    lease: Option<&'a str>,
) {
    let mode: &[u8] = match opts.mode {
        LockMode::Write => b"write",
        LockMode::Read => b"read",
    };
    a.extend([&b"MODE"[..], mode, b"WAIT", wait.as_bytes()]);
    if let Some(l) = lease {
        a.extend([&b"LEASE"[..], l.as_bytes()]);
    }
}
