//! Semantics of every command, expiry, lock ordering and leases, with a
//! manual clock: one module per concept, over the fixture and helpers here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::*;
use crate::clock::ManualClock;
use crate::command::{ExpireIf, StoreIf, StoreReply};
use crate::lock::{Grant, LockMode};

mod copy;
mod expiry;
mod fields;
mod listing;
mod locks;
mod model;
mod replay;
mod sessions;
mod stores;
mod transactions;
mod vars;

struct Fixture {
    engine: Engine,
    clock: Arc<ManualClock>,
    client: ClientHandle,
}

fn fixture() -> Fixture {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let engine = Engine::new(EngineConfig::default(), clock.clone());
    let client = engine.connect();
    Fixture {
        engine,
        clock,
        client,
    }
}

fn sid(s: &str) -> SessionId {
    SessionId::new(Bytes::copy_from_slice(s.as_bytes()))
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

impl Fixture {
    fn run(&self, cmd: Command) -> Result<Reply, Error> {
        self.run_as(&self.client, cmd)
    }

    fn run_as(&self, client: &ClientHandle, cmd: Command) -> Result<Reply, Error> {
        match self.engine.execute(client, cmd)? {
            Outcome::Reply(r) => Ok(r),
            Outcome::Wait(_) => panic!("unexpected wait"),
        }
    }

    /// Variable `name` of session `id`.
    fn get(&self, id: &str, name: &str) -> Result<Reply, Error> {
        self.run(Command::Get {
            id: sid(id),
            name: b(name),
            default: None,
        })
    }

    /// Session `id`'s data, without refreshing it.
    fn get_data(&self, id: &str) -> Result<Reply, Error> {
        self.run(Command::GetData {
            id: sid(id),
            touch: false,
        })
    }

    /// The ids of the sessions whose `name` is `value`.
    fn find(&self, name: &str, value: &str) -> Vec<String> {
        strs(
            self.run(Command::Find {
                name: b(name),
                value: b(value),
            })
            .unwrap(),
        )
    }

    fn create(&self, id: &str) {
        self.run(Command::Create {
            id: sid(id),
            class: None,
            data: None,
            timeout_ms: None,
        })
        .unwrap();
    }

    fn set(&self, id: &str, name: &str, value: &str) {
        self.run(Command::Set {
            id: sid(id),
            name: b(name),
            value: b(value),
        })
        .unwrap();
    }

    fn lock(
        &self,
        client: &ClientHandle,
        id: &str,
        mode: LockMode,
        wait_ms: u64,
    ) -> Result<Outcome, Error> {
        self.engine.execute(
            client,
            Command::Lock {
                id: sid(id),
                mode,
                wait_ms,
                lease_ms: None,
            },
        )
    }

    fn key(&self, client: &ClientHandle, id: &str, mode: LockMode) -> u64 {
        match self.lock(client, id, mode, 0).unwrap() {
            Outcome::Reply(Reply::Key(k)) => k,
            other => panic!("not granted: {other:?}"),
        }
    }

    fn pending(&self, client: &ClientHandle, id: &str, mode: LockMode) -> PendingLock {
        match self.lock(client, id, mode, 10_000).unwrap() {
            Outcome::Wait(p) => p,
            other => panic!("not queued: {other:?}"),
        }
    }
}

fn poll(p: &mut PendingLock) -> Option<Result<Grant, Error>> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(&mut p.wait).poll(&mut cx) {
        Poll::Ready(r) => Some(r),
        Poll::Pending => None,
    }
}

fn strs(r: Reply) -> Vec<String> {
    match r {
        Reply::Ids(ids) => ids
            .iter()
            .map(|id| String::from_utf8(id.as_bytes().to_vec()).unwrap())
            .collect(),
        Reply::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Reply::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
                other => panic!("not bulk: {other:?}"),
            })
            .collect(),
        other => panic!("not array: {other:?}"),
    }
}

/// A page reply's cursor and items: a `Page` of ids (`Scan`, `FindPage`,
/// `KeyScan`), or `[cursor, map]` (`ListVarPage`).
fn page_parts(r: Reply) -> (Bytes, Vec<Reply>) {
    match r {
        Reply::Page { cursor, ids } => (
            cursor,
            ids.into_iter()
                .map(|id| Reply::Bulk(id.to_bytes()))
                .collect(),
        ),
        Reply::Keys { cursor, keys } => (
            cursor,
            keys.into_iter()
                .map(|(id, _)| Reply::Bulk(id.to_bytes()))
                .collect(),
        ),
        Reply::Array(parts) => match <[Reply; 2]>::try_from(parts) {
            Ok([Reply::Bulk(next), Reply::Map(pairs)]) => {
                (next, pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())
            }
            Ok(other) => panic!("not a page: {other:?}"),
            Err(other) => panic!("not a page: {other:?}"),
        },
        other => panic!("not a page: {other:?}"),
    }
}

/// A log that keeps records in memory, as a test double for the file log.
#[derive(Default)]
struct MemoryLog {
    records: parking_lot::Mutex<Vec<crate::Mutation>>,
}

impl crate::MutationLog for MemoryLog {
    fn append(&self, m: &crate::Mutation) {
        self.records.lock().push(m.clone());
    }
    fn append_durable(&self, m: &crate::Mutation) {
        self.append(m);
    }
}

fn all_sessions(engine: &Engine) -> std::collections::BTreeMap<SessionId, crate::Session> {
    (0..engine.shard_count())
        .flat_map(|i| engine.shard_sessions(i))
        .collect()
}

fn item(f: &Fixture, id: &str) -> Result<(Bytes, u32, u64), Error> {
    match f.run(Command::Item {
        id: sid(id),
        timeout_ms: None,
    })? {
        Reply::Item {
            data,
            flags,
            version,
        } => Ok((data, flags, version)),
        other => panic!("item reply {other:?}"),
    }
}

fn mc_store(data: &str, flags: Option<u32>, condition: StoreIf) -> Command {
    Command::Store {
        id: sid("m"),
        data: b(data),
        timeout_ms: None,
        flags,
        condition,
        reply: StoreReply::Version,
        key_form: 0,
    }
}

/// Pages a cursor command to the end; every page's length and all items.
fn page_all(f: &Fixture, mut cmd: impl FnMut(Bytes) -> Command) -> (Vec<usize>, Vec<Reply>) {
    let mut cursor = b("0");
    let (mut sizes, mut all) = (Vec::new(), Vec::new());
    for _ in 0..100_000 {
        let (next, items) = page_parts(f.run(cmd(cursor.clone())).unwrap());
        sizes.push(items.len());
        all.extend(items);
        if next == "0" {
            return (sizes, all);
        }
        cursor = next;
    }
    panic!("the cursor never came back to 0");
}
