//! Semantics of every command, expiry, lock ordering and leases, with a
//! manual clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::*;
use crate::clock::ManualClock;
use crate::command::{StoreIf, StoreReply};
use crate::lock::{Grant, LockMode};

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

#[test]
fn create_twice_is_an_error() {
    let f = fixture();
    f.create("a");
    let err = f
        .run(Command::Create {
            id: sid("a"),
            class: None,
            data: None,
            timeout_ms: None,
        })
        .unwrap_err();
    assert_eq!(err, Error::Exists(sid("a")));
}

#[test]
fn commands_on_missing_sessions_answer_no_session() {
    let f = fixture();
    let missing = || sid("nope");
    for cmd in [
        Command::Get {
            id: missing(),
            name: b("x"),
            default: None,
        },
        Command::Set {
            id: missing(),
            name: b("x"),
            value: b("1"),
        },
        Command::GetData {
            id: missing(),
            touch: true,
        },
        Command::Destroy { id: missing() },
        Command::Ttl { id: missing() },
        Command::Touch { id: missing() },
        Command::Info { id: missing() },
        Command::GetAll { id: missing() },
        Command::Inc {
            id: missing(),
            name: b("n"),
            by: 1,
        },
    ] {
        assert_eq!(f.run(cmd).unwrap_err(), Error::NoSession(missing()));
    }
    assert_eq!(
        f.run(Command::Exists { id: missing() }).unwrap(),
        Reply::Int(0)
    );
}

#[test]
fn uniq_generates_long_random_ids() {
    let f = fixture();
    let r = f
        .run(Command::Uniq {
            len: None,
            class: None,
            data: Some(b("d")),
            timeout_ms: None,
        })
        .unwrap();
    let Reply::Bulk(id) = r else { panic!() };
    assert_eq!(id.len(), crate::id::DEFAULT_GENERATED_LEN);
    let id = SessionId::new(id);
    assert_eq!(
        f.run(Command::GetData { id, touch: true }).unwrap(),
        Reply::Bulk(b("d"))
    );
    let short = f.run(Command::Uniq {
        len: Some(8),
        class: None,
        data: None,
        timeout_ms: None,
    });
    assert!(matches!(short, Err(Error::InvalidArgument(_))));
}

#[test]
fn vars_get_set_del_getall_setall() {
    let f = fixture();
    f.create("s");
    assert_eq!(
        f.run(Command::Get {
            id: sid("s"),
            name: b("a"),
            default: None
        })
        .unwrap(),
        Reply::Nil
    );
    assert_eq!(
        f.run(Command::Get {
            id: sid("s"),
            name: b("a"),
            default: Some(b("dflt"))
        })
        .unwrap(),
        Reply::Bulk(b("dflt"))
    );
    f.set("s", "a", "1");
    f.run(Command::SetAll {
        id: sid("s"),
        pairs: vec![(b("b"), b("2")), (b("c"), b("3"))],
    })
    .unwrap();
    assert_eq!(
        f.run(Command::Get {
            id: sid("s"),
            name: b("a"),
            default: None
        })
        .unwrap(),
        Reply::Bulk(b("1"))
    );
    assert_eq!(
        f.run(Command::Del {
            id: sid("s"),
            name: b("b")
        })
        .unwrap(),
        Reply::Int(1)
    );
    assert_eq!(
        f.run(Command::Del {
            id: sid("s"),
            name: b("b")
        })
        .unwrap(),
        Reply::Int(0)
    );
    assert_eq!(
        f.run(Command::GetAll { id: sid("s") }).unwrap(),
        Reply::Map(vec![
            (Reply::Bulk(b("a")), Reply::Bulk(b("1"))),
            (Reply::Bulk(b("c")), Reply::Bulk(b("3"))),
        ])
    );
}

#[test]
fn data_blob_round_trips_and_versions_increase() {
    let f = fixture();
    f.create("s");
    let version = |f: &Fixture| match f.run(Command::Info { id: sid("s") }).unwrap() {
        Reply::Map(m) => m
            .into_iter()
            .find(|(k, _)| *k == Reply::text("version"))
            .map(|(_, v)| v)
            .unwrap(),
        _ => panic!(),
    };
    let v1 = version(&f);
    f.run(Command::SetData {
        id: sid("s"),
        data: b("blob\0bytes"),
    })
    .unwrap();
    let v2 = version(&f);
    assert!(matches!((v1, v2), (Reply::Int(a), Reply::Int(b)) if b > a));
    assert_eq!(
        f.run(Command::GetData {
            id: sid("s"),
            touch: true
        })
        .unwrap(),
        Reply::Bulk(b("blob\0bytes"))
    );
}

#[test]
fn inc_adds_and_refuses_non_integers_and_overflow() {
    let f = fixture();
    f.create("s");
    assert_eq!(
        f.run(Command::Inc {
            id: sid("s"),
            name: b("n"),
            by: 1
        })
        .unwrap(),
        Reply::Int(1)
    );
    assert_eq!(
        f.run(Command::Inc {
            id: sid("s"),
            name: b("n"),
            by: -5
        })
        .unwrap(),
        Reply::Int(-4)
    );
    f.set("s", "t", "abc");
    assert!(matches!(
        f.run(Command::Inc {
            id: sid("s"),
            name: b("t"),
            by: 1
        }),
        Err(Error::NotInteger { .. })
    ));
    f.set("s", "m", &i64::MAX.to_string());
    assert!(matches!(
        f.run(Command::Inc {
            id: sid("s"),
            name: b("m"),
            by: 1
        }),
        Err(Error::Overflow { .. })
    ));
}

#[test]
fn find_and_listvar_follow_writes() {
    let f = fixture();
    for id in ["a", "b", "c"] {
        f.create(id);
    }
    f.set("a", "user", "42");
    f.set("b", "user", "42");
    f.set("c", "user", "7");
    let mut found = strs(
        f.run(Command::Find {
            name: b("user"),
            value: b("42"),
        })
        .unwrap(),
    );
    found.sort();
    assert_eq!(found, ["a", "b"]);
    f.set("b", "user", "8");
    assert_eq!(
        strs(
            f.run(Command::Find {
                name: b("user"),
                value: b("42")
            })
            .unwrap()
        ),
        ["a"]
    );
    f.run(Command::Destroy { id: sid("a") }).unwrap();
    assert!(strs(
        f.run(Command::Find {
            name: b("user"),
            value: b("42")
        })
        .unwrap()
    )
    .is_empty());
    let Reply::Map(mut pairs) = f.run(Command::ListVar { name: b("user") }).unwrap() else {
        panic!()
    };
    pairs.sort_by_key(|(k, _)| format!("{k:?}"));
    assert_eq!(
        pairs,
        vec![
            (Reply::Bulk(b("b")), Reply::Bulk(b("8"))),
            (Reply::Bulk(b("c")), Reply::Bulk(b("7"))),
        ]
    );
}

#[test]
fn count_list_and_scan_with_classes() {
    let f = fixture();
    for i in 0..250u32 {
        let class = if i.is_multiple_of(5) {
            Some(b("admin"))
        } else {
            None
        };
        f.run(Command::Create {
            id: sid(&format!("s{i}")),
            class,
            data: None,
            timeout_ms: None,
        })
        .unwrap();
    }
    assert_eq!(
        f.run(Command::Count { class: None }).unwrap(),
        Reply::Int(250)
    );
    assert_eq!(
        f.run(Command::Count {
            class: Some(b("admin"))
        })
        .unwrap(),
        Reply::Int(50)
    );
    assert_eq!(
        strs(
            f.run(Command::List {
                class: Some(b("admin"))
            })
            .unwrap()
        )
        .len(),
        50
    );
    let mut seen = Vec::new();
    let mut cursor = b("0");
    loop {
        let (next, items) = page_parts(
            f.run(Command::Scan {
                cursor: cursor.clone(),
                count: 17,
                class: None,
            })
            .unwrap(),
        );
        let page = strs(Reply::Array(items));
        assert!(page.len() <= 17);
        seen.extend(page);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 250);
    assert!(f
        .run(Command::Scan {
            cursor: b("zz"),
            count: 10,
            class: None
        })
        .is_err());
}

#[test]
fn sliding_expiry_and_reaping() {
    let f = fixture();
    f.run(Command::Create {
        id: sid("s"),
        class: None,
        data: None,
        timeout_ms: Some(10_000),
    })
    .unwrap();
    f.clock.advance(9_000);
    // A read refreshes the deadline.
    f.run(Command::Get {
        id: sid("s"),
        name: b("x"),
        default: None,
    })
    .unwrap();
    f.clock.advance(9_000);
    assert_eq!(
        f.run(Command::Exists { id: sid("s") }).unwrap(),
        Reply::Int(1)
    );
    assert_eq!(f.run(Command::Ttl { id: sid("s") }).unwrap(), Reply::Int(1));
    // EXISTS and TTL do not refresh it.
    f.clock.advance(1_001);
    assert_eq!(
        f.run(Command::Exists { id: sid("s") }).unwrap(),
        Reply::Int(0)
    );
}

#[test]
fn tick_reaps_expired_sessions_without_access() {
    let f = fixture();
    for i in 0..100 {
        f.run(Command::Create {
            id: sid(&format!("s{i}")),
            class: None,
            data: None,
            timeout_ms: Some(1_000),
        })
        .unwrap();
    }
    f.create("long");
    f.set("s1", "u", "1");
    f.clock.advance(1_000);
    let report = f.engine.tick();
    assert_eq!(report.expired_sessions, 100);
    assert_eq!(
        f.run(Command::Count { class: None }).unwrap(),
        Reply::Int(1)
    );
    assert!(strs(
        f.run(Command::Find {
            name: b("u"),
            value: b("1")
        })
        .unwrap()
    )
    .is_empty());
}

#[test]
fn timeout_get_set_and_shorter_timeout_is_reaped() {
    let f = fixture();
    f.create("s");
    assert_eq!(
        f.run(Command::Timeout {
            id: sid("s"),
            timeout_ms: None
        })
        .unwrap(),
        Reply::Int(1440)
    );
    f.run(Command::Timeout {
        id: sid("s"),
        timeout_ms: Some(2_000),
    })
    .unwrap();
    assert_eq!(
        f.run(Command::Timeout {
            id: sid("s"),
            timeout_ms: None
        })
        .unwrap(),
        Reply::Int(2)
    );
    f.clock.advance(2_000);
    assert_eq!(f.engine.tick().expired_sessions, 1);
    assert!(f
        .run(Command::Timeout {
            id: sid("x"),
            timeout_ms: Some(0)
        })
        .is_err());
}

#[test]
fn touch_extends_life() {
    let f = fixture();
    f.run(Command::Create {
        id: sid("s"),
        class: None,
        data: None,
        timeout_ms: Some(5_000),
    })
    .unwrap();
    f.clock.advance(4_000);
    f.run(Command::Touch { id: sid("s") }).unwrap();
    f.clock.advance(4_000);
    assert_eq!(f.engine.tick().expired_sessions, 0);
    assert_eq!(
        f.run(Command::Exists { id: sid("s") }).unwrap(),
        Reply::Int(1)
    );
}

#[test]
fn write_lock_excludes_and_grants_fifo() {
    let f = fixture();
    f.create("s");
    let (a, b2, c) = (f.engine.connect(), f.engine.connect(), f.engine.connect());
    let ka = f.key(&a, "s", LockMode::Write);
    assert!(matches!(
        f.lock(&b2, "s", LockMode::Write, 0),
        Err(Error::Locked { .. })
    ));
    let mut pb = f.pending(&b2, "s", LockMode::Write);
    let mut pc = f.pending(&c, "s", LockMode::Write);
    assert!(poll(&mut pb).is_none());
    f.run(Command::Unlock {
        id: sid("s"),
        key: ka,
    })
    .unwrap();
    let gb = poll(&mut pb).unwrap().unwrap();
    assert!(gb.key > ka, "fencing keys increase");
    assert!(poll(&mut pc).is_none(), "second waiter still waits");
    f.run(Command::Unlock {
        id: sid("s"),
        key: gb.key,
    })
    .unwrap();
    let gc = poll(&mut pc).unwrap().unwrap();
    assert!(gc.key > gb.key);
    // A released key is stale.
    assert_eq!(
        f.run(Command::Unlock {
            id: sid("s"),
            key: ka
        })
        .unwrap_err(),
        Error::StaleKey {
            id: sid("s"),
            key: ka
        }
    );
}

#[test]
fn readers_share_and_a_queued_writer_blocks_new_readers() {
    let f = fixture();
    f.create("s");
    let (r1, r2, w, r3) = (
        f.engine.connect(),
        f.engine.connect(),
        f.engine.connect(),
        f.engine.connect(),
    );
    let k1 = f.key(&r1, "s", LockMode::Read);
    let k2 = f.key(&r2, "s", LockMode::Read);
    let mut pw = f.pending(&w, "s", LockMode::Write);
    // FIFO: a reader arriving after a queued writer waits behind it.
    let mut pr3 = f.pending(&r3, "s", LockMode::Read);
    f.run(Command::Unlock {
        id: sid("s"),
        key: k1,
    })
    .unwrap();
    assert!(poll(&mut pw).is_none());
    f.run(Command::Unlock {
        id: sid("s"),
        key: k2,
    })
    .unwrap();
    let gw = poll(&mut pw).unwrap().unwrap();
    assert!(poll(&mut pr3).is_none());
    // COMMIT downgrades to read, which lets the queued reader in.
    f.run(Command::Commit {
        id: sid("s"),
        key: gw.key,
    })
    .unwrap();
    assert_eq!(poll(&mut pr3).unwrap().unwrap().mode, LockMode::Read);
}

#[test]
fn lease_expiry_releases_and_stale_key_is_refused() {
    let f = fixture();
    f.create("s");
    let (a, b2) = (f.engine.connect(), f.engine.connect());
    let Outcome::Reply(Reply::Key(ka)) = f
        .engine
        .execute(
            &a,
            Command::Lock {
                id: sid("s"),
                mode: LockMode::Write,
                wait_ms: 0,
                lease_ms: Some(500),
            },
        )
        .unwrap()
    else {
        panic!()
    };
    let mut pb = f.pending(&b2, "s", LockMode::Write);
    f.clock.advance(500);
    assert_eq!(f.engine.tick().expired_leases, 1);
    let gb = poll(&mut pb).unwrap().unwrap();
    let close = Command::Close {
        id: sid("s"),
        key: ka,
        data: Some(b("late")),
        sets: vec![],
    };
    assert!(matches!(f.run_as(&a, close), Err(Error::StaleKey { .. })));
    assert_eq!(
        f.run(Command::GetData {
            id: sid("s"),
            touch: false
        })
        .unwrap(),
        Reply::Bulk(b(""))
    );
    f.run_as(
        &b2,
        Command::Close {
            id: sid("s"),
            key: gb.key,
            data: Some(b("ok")),
            sets: vec![(b("v"), b("1"))],
        },
    )
    .unwrap();
    assert_eq!(
        f.run(Command::GetData {
            id: sid("s"),
            touch: false
        })
        .unwrap(),
        Reply::Bulk(b("ok"))
    );
    assert_eq!(
        f.run(Command::Get {
            id: sid("s"),
            name: b("v"),
            default: None
        })
        .unwrap(),
        Reply::Bulk(b("1"))
    );
}

#[test]
fn disconnect_releases_locks_and_drops_waits() {
    let f = fixture();
    f.create("s");
    let (a, b2, c) = (f.engine.connect(), f.engine.connect(), f.engine.connect());
    f.key(&a, "s", LockMode::Write);
    let _pb = f.pending(&b2, "s", LockMode::Write);
    let mut pc = f.pending(&c, "s", LockMode::Write);
    f.engine.disconnect(&b2);
    f.engine.disconnect(&a);
    assert!(
        poll(&mut pc).unwrap().is_ok(),
        "c is next once a and b are gone"
    );
}

#[test]
fn destroy_fails_waiters() {
    let f = fixture();
    f.create("s");
    let (a, b2) = (f.engine.connect(), f.engine.connect());
    f.key(&a, "s", LockMode::Write);
    let mut pb = f.pending(&b2, "s", LockMode::Write);
    f.run(Command::Destroy { id: sid("s") }).unwrap();
    assert_eq!(
        poll(&mut pb).unwrap().unwrap_err(),
        Error::DestroyedWhileWaiting(sid("s"))
    );
}

#[test]
fn cancel_wait_removes_the_waiter_or_returns_a_racing_grant() {
    let f = fixture();
    f.create("s");
    let (a, b2, c) = (f.engine.connect(), f.engine.connect(), f.engine.connect());
    let ka = f.key(&a, "s", LockMode::Write);
    let pb = f.pending(&b2, "s", LockMode::Write);
    assert!(matches!(
        f.engine.cancel_wait(&pb),
        Err(Error::Locked { .. })
    ));
    let pc = f.pending(&c, "s", LockMode::Write);
    f.run(Command::Unlock {
        id: sid("s"),
        key: ka,
    })
    .unwrap();
    // The grant happened before the cancel: the grant wins.
    let g = f.engine.cancel_wait(&pc).unwrap();
    assert!(g.key > ka);
}

#[test]
fn open_locks_and_reads_in_one_step_and_close_writes_and_unlocks() {
    let f = fixture();
    assert!(matches!(
        f.engine.execute(
            &f.client,
            Command::Open {
                id: sid("n"),
                mode: LockMode::Write,
                wait_ms: 0,
                lease_ms: None,
                create: false
            }
        ),
        Err(Error::NoSession(_))
    ));
    let Outcome::Reply(Reply::Array(parts)) = f
        .engine
        .execute(
            &f.client,
            Command::Open {
                id: sid("n"),
                mode: LockMode::Write,
                wait_ms: 0,
                lease_ms: None,
                create: true,
            },
        )
        .unwrap()
    else {
        panic!()
    };
    let Reply::Key(key) = parts[0] else {
        panic!("{parts:?}")
    };
    assert_eq!(parts[1], Reply::Bulk(b("")));
    assert_eq!(parts[2], Reply::Map(vec![]));
    f.run(Command::Close {
        id: sid("n"),
        key,
        data: Some(b("x")),
        sets: vec![],
    })
    .unwrap();
    assert!(matches!(
        f.run(Command::Close {
            id: sid("n"),
            key,
            data: None,
            sets: vec![]
        }),
        Err(Error::StaleKey { .. })
    ));
    // A read lock cannot write.
    let kr = f.key(&f.client, "n", LockMode::Read);
    assert!(matches!(
        f.run(Command::Close {
            id: sid("n"),
            key: kr,
            data: Some(b("y")),
            sets: vec![]
        }),
        Err(Error::ReadOnlyLock { .. })
    ));
}

#[test]
fn regenerate_moves_data_vars_and_lock() {
    let f = fixture();
    f.create("old");
    f.set("old", "user", "42");
    let key = f.key(&f.client, "old", LockMode::Write);
    let other = f.engine.connect();
    let mut pending = f.pending(&other, "old", LockMode::Write);
    let Reply::Bulk(new) = f
        .run(Command::Regenerate {
            id: sid("old"),
            new_id: None,
        })
        .unwrap()
    else {
        panic!()
    };
    let new_id = SessionId::new(new);
    assert_eq!(
        f.run(Command::Exists { id: sid("old") }).unwrap(),
        Reply::Int(0)
    );
    assert_eq!(
        f.run(Command::Get {
            id: new_id.clone(),
            name: b("user"),
            default: None
        })
        .unwrap(),
        Reply::Bulk(b("42"))
    );
    assert_eq!(
        strs(
            f.run(Command::Find {
                name: b("user"),
                value: b("42")
            })
            .unwrap()
        ),
        [String::from_utf8(new_id.to_bytes().to_vec()).unwrap()]
    );
    // The lock moved with it: the old key unlocks the new id, and the waiter
    // is granted the new id.
    f.run(Command::Unlock {
        id: new_id.clone(),
        key,
    })
    .unwrap();
    assert_eq!(poll(&mut pending).unwrap().unwrap().id, new_id);
    f.create("taken");
    assert_eq!(
        f.run(Command::Regenerate {
            id: new_id,
            new_id: Some(sid("taken"))
        })
        .unwrap_err(),
        Error::Exists(sid("taken"))
    );
}

#[test]
fn locked_session_does_not_expire_under_its_holder() {
    let f = fixture();
    f.run(Command::Create {
        id: sid("s"),
        class: None,
        data: None,
        timeout_ms: Some(1_000),
    })
    .unwrap();
    let key = f.key(&f.client, "s", LockMode::Write);
    f.clock.advance(2_000);
    f.engine.tick();
    f.run(Command::Close {
        id: sid("s"),
        key,
        data: Some(b("kept")),
        sets: vec![],
    })
    .unwrap();
    assert_eq!(
        f.run(Command::GetData {
            id: sid("s"),
            touch: false
        })
        .unwrap(),
        Reply::Bulk(b("kept"))
    );
}

#[test]
fn randstr_lengths() {
    let f = fixture();
    let Reply::Bulk(s) = f.run(Command::RandStr { len: 40 }).unwrap() else {
        panic!()
    };
    assert_eq!(s.len(), 40);
    assert!(f.run(Command::RandStr { len: 0 }).is_err());
    assert!(f.run(Command::RandStr { len: 1 << 20 }).is_err());
}

/// Random operation sequences against the engine and against a plain map
/// model; every answer must agree. Deterministic (seeded), so a failure
/// reproduces; the fuzz targets of the security work go wider.
#[test]
fn engine_agrees_with_a_model_on_random_operations() {
    use std::collections::{BTreeMap, HashMap};

    #[derive(Clone)]
    struct M {
        data: Bytes,
        vars: BTreeMap<Bytes, Bytes>,
        timeout: u64,
        accessed: u64,
    }

    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for round in 0..20 {
        let f = fixture();
        let mut model: HashMap<String, M> = HashMap::new();
        for step in 0..400 {
            let now = f.engine.now_ms();
            model.retain(|_, m| m.accessed + m.timeout > now);
            let id = format!("s{}", rnd(8));
            let name = b(["a", "b", "c"][rnd(3) as usize]);
            let value = b(&rnd(4).to_string());
            let ctx = format!("round {round} step {step}");
            match rnd(11) {
                0 => {
                    let timeout = 1_000 * (1 + rnd(5));
                    let r = f.run(Command::Create {
                        id: sid(&id),
                        class: None,
                        data: None,
                        timeout_ms: Some(timeout),
                    });
                    match model.get(&id) {
                        Some(_) => assert_eq!(r, Err(Error::Exists(sid(&id))), "{ctx}"),
                        None => {
                            assert_eq!(r, Ok(Reply::Ok), "{ctx}");
                            model.insert(
                                id,
                                M {
                                    data: Bytes::new(),
                                    vars: BTreeMap::new(),
                                    timeout,
                                    accessed: now,
                                },
                            );
                        }
                    }
                }
                1 => {
                    let r = f.run(Command::Destroy { id: sid(&id) });
                    assert_eq!(r.is_ok(), model.remove(&id).is_some(), "{ctx}");
                }
                2 | 3 => {
                    let r = f.run(Command::Set {
                        id: sid(&id),
                        name: name.clone(),
                        value: value.clone(),
                    });
                    match model.get_mut(&id) {
                        Some(m) => {
                            assert_eq!(r, Ok(Reply::Ok), "{ctx}");
                            m.vars.insert(name, value);
                            m.accessed = now;
                        }
                        None => assert_eq!(r, Err(Error::NoSession(sid(&id))), "{ctx}"),
                    }
                }
                4 => {
                    let r = f.run(Command::Del {
                        id: sid(&id),
                        name: name.clone(),
                    });
                    match model.get_mut(&id) {
                        Some(m) => {
                            m.accessed = now;
                            let had = m.vars.remove(&name).is_some();
                            assert_eq!(r, Ok(Reply::Int(i64::from(had))), "{ctx}");
                        }
                        None => assert!(r.is_err(), "{ctx}"),
                    }
                }
                5 => {
                    let r = f.run(Command::SetData {
                        id: sid(&id),
                        data: value.clone(),
                    });
                    match model.get_mut(&id) {
                        Some(m) => {
                            assert_eq!(r, Ok(Reply::Ok), "{ctx}");
                            m.data = value;
                            m.accessed = now;
                        }
                        None => assert!(r.is_err(), "{ctx}"),
                    }
                }
                6 => {
                    let r = f.run(Command::GetAll { id: sid(&id) });
                    match model.get_mut(&id) {
                        Some(m) => {
                            m.accessed = now;
                            assert_eq!(r, Ok(data::vars_reply(&m.vars)), "{ctx}");
                        }
                        None => assert!(r.is_err(), "{ctx}"),
                    }
                }
                7 => {
                    let r = f.run(Command::GetData {
                        id: sid(&id),
                        touch: true,
                    });
                    match model.get_mut(&id) {
                        Some(m) => {
                            m.accessed = now;
                            assert_eq!(r, Ok(Reply::Bulk(m.data.clone())), "{ctx}");
                        }
                        None => assert!(r.is_err(), "{ctx}"),
                    }
                }
                8 => {
                    let mut got = strs(
                        f.run(Command::Find {
                            name: name.clone(),
                            value: value.clone(),
                        })
                        .unwrap(),
                    );
                    got.sort();
                    let mut want: Vec<String> = model
                        .iter()
                        .filter(|(_, m)| m.vars.get(&name) == Some(&value))
                        .map(|(k, _)| k.clone())
                        .collect();
                    want.sort();
                    assert_eq!(got, want, "{ctx}");
                    assert_eq!(
                        f.run(Command::Count { class: None }),
                        Ok(Reply::Int(model.len() as i64)),
                        "{ctx}"
                    );
                }
                9 => {
                    let to = format!("s{}", rnd(8));
                    let r = f.run(Command::Regenerate {
                        id: sid(&id),
                        new_id: Some(sid(&to)),
                    });
                    if !model.contains_key(&id) {
                        assert_eq!(r, Err(Error::NoSession(sid(&id))), "{ctx}");
                    } else if model.contains_key(&to) {
                        assert_eq!(r, Err(Error::Exists(sid(&to))), "{ctx}");
                    } else {
                        assert_eq!(r, Ok(Reply::Bulk(b(&to))), "{ctx}");
                        let mut m = model.remove(&id).unwrap();
                        m.accessed = now;
                        model.insert(to, m);
                    }
                }
                _ => {
                    f.clock.advance(rnd(1_500));
                    f.engine.tick();
                }
            }
        }
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

/// Random operations with a log installed, then the log replayed into a new
/// engine: the same sessions, variables, data, versions and timeouts; access
/// times at most the touch-logging interval behind.
#[test]
fn replaying_the_log_rebuilds_the_same_state() {
    let mut state: u64 = 0x1234_5678_9ABC_DEF1;
    let mut rnd = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for _round in 0..10 {
        let f = fixture();
        let log = Arc::new(MemoryLog::default());
        assert!(f.engine.install_log(log.clone()));
        for _ in 0..500 {
            let id = sid(&format!("s{}", rnd(10)));
            let name = b(["a", "b"][rnd(2) as usize]);
            let value = b(&rnd(3).to_string());
            let cmd = match rnd(12) {
                0 => Command::Create {
                    id,
                    class: Some(b("c")),
                    data: None,
                    timeout_ms: Some(2_000 + rnd(5) * 1000),
                },
                1 => Command::Destroy { id },
                2 => Command::Set { id, name, value },
                3 => Command::Del { id, name },
                4 => Command::SetData { id, data: value },
                5 => Command::Inc {
                    id,
                    name: b("n"),
                    by: 1,
                },
                6 => Command::Timeout {
                    id,
                    timeout_ms: Some(1_000 + rnd(4) * 1000),
                },
                7 => Command::Get {
                    id,
                    name,
                    default: None,
                },
                8 => Command::Regenerate {
                    id,
                    new_id: Some(sid(&format!("s{}", rnd(10)))),
                },
                9 => Command::Close {
                    id,
                    key: 1,
                    data: Some(value),
                    sets: vec![],
                },
                10 => Command::Lock {
                    id,
                    mode: LockMode::Write,
                    wait_ms: 0,
                    lease_ms: Some(50),
                },
                _ => {
                    f.clock.advance(rnd(700));
                    f.engine.tick();
                    continue;
                }
            };
            let _ = f.engine.execute(&f.client, cmd);
        }
        let restarted = Engine::new(EngineConfig::default(), f.clock.clone());
        for m in log.records.lock().iter().cloned() {
            restarted.apply(m);
        }
        let now = f.engine.now_ms();
        let before: std::collections::BTreeMap<_, _> = all_sessions(&f.engine)
            .into_iter()
            .filter(|(_, s)| s.deadline_ms() > now)
            .collect();
        let after = all_sessions(&restarted);
        for (id, s) in &after {
            // Anything recovered that the live engine no longer has must be
            // expired (and is dropped at start-up), never resurrected.
            assert!(
                before.contains_key(id) || s.deadline_ms() <= now,
                "{id} came back"
            );
        }
        let after: std::collections::BTreeMap<_, _> = after
            .into_iter()
            .filter(|(id, _)| before.contains_key(id))
            .collect();
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>()
        );
        for (id, a) in &before {
            let r = &after[id];
            assert_eq!(
                (&a.data, a.vars(), a.version, a.timeout_ms, a.class()),
                (&r.data, r.vars(), r.version, r.timeout_ms, r.class()),
                "{id}"
            );
            let slack = (a.timeout_ms / 16).max(100);
            assert!(
                r.accessed_ms <= a.accessed_ms && a.accessed_ms - r.accessed_ms <= slack,
                "{id}: {} vs {}",
                a.accessed_ms,
                r.accessed_ms
            );
        }
        // Fencing keys continue above every key handed out before.
        assert!(restarted.next_fencing_key() >= f.engine.next_fencing_key());
    }
}

#[test]
fn identical_rewrites_do_not_grow_the_log() {
    let f = fixture();
    f.create("s");
    let log = Arc::new(MemoryLog::default());
    f.engine.install_log(log.clone());
    f.run(Command::SetData {
        id: sid("s"),
        data: b("same"),
    })
    .unwrap();
    f.set("s", "a", "1");
    let n = log.records.lock().len();
    assert_eq!(n, 2);
    for _ in 0..10 {
        f.run(Command::SetData {
            id: sid("s"),
            data: b("same"),
        })
        .unwrap();
        f.set("s", "a", "1");
        // PHP handlers resend the same timeout on every request.
        f.run(Command::Timeout {
            id: sid("s"),
            timeout_ms: Some(1_440_000),
        })
        .unwrap();
    }
    assert_eq!(
        log.records.lock().len(),
        n,
        "no record for a write that changes nothing"
    );
    // A changed variable logs that variable only, not the whole session.
    f.set("s", "b", "2");
    let last = log.records.lock().last().cloned().unwrap();
    assert!(
        matches!(last, crate::Mutation::SetVars { ref pairs, .. } if pairs.len() == 1),
        "{last:?}"
    );
}

#[test]
fn php_encoded_data_is_visible_as_read_only_vars() {
    let f = fixture();
    f.create("a");
    f.create("b");
    f.run(Command::SetData {
        id: sid("a"),
        data: b("user_id|i:42;name|s:3:\"Ann\";"),
    })
    .unwrap();
    f.run(Command::SetData {
        id: sid("b"),
        data: b("a:1:{s:7:\"user_id\";s:2:\"42\";}"),
    })
    .unwrap();
    assert_eq!(
        f.run(Command::Get {
            id: sid("a"),
            name: b("user_id"),
            default: None
        })
        .unwrap(),
        Reply::Bulk(b("42"))
    );
    assert_eq!(
        f.run(Command::GetAll { id: sid("a") }).unwrap(),
        Reply::Map(vec![
            (Reply::Bulk(b("user_id")), Reply::Bulk(b("42"))),
            (Reply::Bulk(b("name")), Reply::Bulk(b("Ann"))),
        ])
    );
    let mut found = strs(
        f.run(Command::Find {
            name: b("user_id"),
            value: b("42"),
        })
        .unwrap(),
    );
    found.sort();
    assert_eq!(found, ["a", "b"], "both encodings are indexed");
    // An explicit variable shadows the PHP entry of the same name.
    f.set("b", "user_id", "7");
    assert_eq!(
        strs(
            f.run(Command::Find {
                name: b("user_id"),
                value: b("42")
            })
            .unwrap()
        ),
        ["a"]
    );
    let Reply::Map(listed) = f.run(Command::ListVar { name: b("user_id") }).unwrap() else {
        panic!()
    };
    assert_eq!(listed.len(), 2);
    // New data replaces the view and the index.
    f.run(Command::SetData {
        id: sid("a"),
        data: b("user_id|i:43;"),
    })
    .unwrap();
    assert!(strs(
        f.run(Command::Find {
            name: b("user_id"),
            value: b("42")
        })
        .unwrap()
    )
    .is_empty());
    assert_eq!(
        strs(
            f.run(Command::Find {
                name: b("user_id"),
                value: b("43")
            })
            .unwrap()
        ),
        ["a"]
    );
    f.run(Command::SetData {
        id: sid("a"),
        data: b("not php"),
    })
    .unwrap();
    assert_eq!(
        f.run(Command::Get {
            id: sid("a"),
            name: b("name"),
            default: None
        })
        .unwrap(),
        Reply::Nil
    );
    assert!(strs(
        f.run(Command::Find {
            name: b("user_id"),
            value: b("43")
        })
        .unwrap()
    )
    .is_empty());
}

#[test]
fn php_view_is_rebuilt_by_replay() {
    let f = fixture();
    let log = Arc::new(MemoryLog::default());
    f.engine.install_log(log.clone());
    f.create("a");
    f.run(Command::SetData {
        id: sid("a"),
        data: b("user_id|i:42;"),
    })
    .unwrap();
    let restarted = Engine::new(EngineConfig::default(), f.clock.clone());
    for m in log.records.lock().iter().cloned() {
        restarted.apply(m);
    }
    let c = restarted.connect();
    let Outcome::Reply(found) = restarted
        .execute(
            &c,
            Command::Find {
                name: b("user_id"),
                value: b("42"),
            },
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(strs(found), ["a"]);
}

#[test]
fn store_creates_replaces_and_honours_conditions() {
    use crate::command::{StoreIf, StoreReply};
    let f = fixture();
    let store = |data: &str, timeout_ms, condition, return_old: bool| Command::Store {
        id: sid("s"),
        data: b(data),
        timeout_ms,
        flags: None,
        condition,
        reply: if return_old {
            StoreReply::Old
        } else {
            StoreReply::Ok
        },
    };
    assert_eq!(
        f.run(store("x", None, StoreIf::Present, false)).unwrap(),
        Reply::Nil,
        "XX on a missing session"
    );
    assert_eq!(
        f.run(store("a", Some(60_000), StoreIf::Absent, false))
            .unwrap(),
        Reply::Ok
    );
    assert_eq!(
        f.run(store("b", None, StoreIf::Absent, false)).unwrap(),
        Reply::Nil,
        "NX on an existing one"
    );
    assert_eq!(
        f.run(store("c", None, StoreIf::Always, true)).unwrap(),
        Reply::Bulk(b("a")),
        "GET returns the old data"
    );
    assert_eq!(
        f.run(Command::Timeout {
            id: sid("s"),
            timeout_ms: None
        })
        .unwrap(),
        Reply::Int(60),
        "no timeout keeps it"
    );
    f.run(store("d", Some(5_000), StoreIf::Always, false))
        .unwrap();
    assert_eq!(
        f.run(Command::PTtl { id: sid("s") }).unwrap(),
        Reply::Int(5_000)
    );
    assert_eq!(
        f.run(Command::GetData {
            id: sid("s"),
            touch: false
        })
        .unwrap(),
        Reply::Bulk(b("d"))
    );
}

#[test]
fn owned_locks_need_no_session_and_release_by_owner() {
    let f = fixture();
    let (a, b2) = (f.engine.connect(), f.engine.connect());
    let owned = |owner: &str| Command::LockOwned {
        id: sid("new"),
        owner: b(owner),
        lease_ms: Some(1000),
    };
    assert!(
        matches!(f.run_as(&a, owned("host|1")).unwrap(), Reply::Key(_)),
        "no session needed"
    );
    assert!(matches!(
        f.run_as(&b2, owned("host|2")),
        Err(Error::Locked { .. })
    ));
    assert_eq!(
        f.run(Command::LockOwner { id: sid("new") }).unwrap(),
        Reply::Bulk(b("host|1"))
    );
    // Someone else's secret releases nothing.
    assert_eq!(
        f.run(Command::UnlockOwned {
            id: sid("new"),
            owner: Some(b("host|2"))
        })
        .unwrap(),
        Reply::Int(0)
    );
    assert_eq!(
        f.run(Command::UnlockOwned {
            id: sid("new"),
            owner: Some(b("host|1"))
        })
        .unwrap(),
        Reply::Int(1)
    );
    assert_eq!(
        f.run(Command::LockOwner { id: sid("new") }).unwrap(),
        Reply::Nil
    );
    // An owned lock and a native lock exclude each other.
    f.create("new");
    f.run_as(&a, owned("host|1")).unwrap();
    assert!(matches!(
        f.lock(&b2, "new", LockMode::Write, 0),
        Err(Error::Locked { .. })
    ));
    // The lease ends an abandoned owned lock.
    f.clock.advance(1000);
    f.engine.tick();
    assert!(f.lock(&b2, "new", LockMode::Write, 0).is_ok());
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
    }
}

#[test]
fn memcached_store_keeps_flags_and_compares_versions() {
    let f = fixture();
    let Reply::Version(v1) = f.run(mc_store("a", Some(7), StoreIf::Always)).unwrap() else {
        panic!("store answers the version")
    };
    assert_eq!(item(&f, "m").unwrap(), (b("a"), 7, v1));
    // cas with a stale version stores nothing; with the current one it does.
    assert_eq!(
        f.run(mc_store("b", Some(7), StoreIf::Version(v1 + 1000)))
            .unwrap(),
        Reply::Nil
    );
    let Reply::Version(v2) = f.run(mc_store("b", Some(9), StoreIf::Version(v1))).unwrap() else {
        panic!("cas answers the version")
    };
    assert!(v2 > v1);
    assert_eq!(item(&f, "m").unwrap(), (b("b"), 9, v2));
    // flags None keeps them.
    f.run(mc_store("c", None, StoreIf::Present)).unwrap();
    assert_eq!(item(&f, "m").unwrap().1, 9);
    // cas on a missing session is NoSession (memcached NOT_FOUND).
    f.run(Command::Destroy { id: sid("m") }).unwrap();
    assert!(matches!(
        f.run(mc_store("d", None, StoreIf::Version(v2))),
        Err(Error::NoSession(_))
    ));
    assert!(matches!(item(&f, "m"), Err(Error::NoSession(_))));
}

#[test]
fn append_prepend_and_counters() {
    let f = fixture();
    let append = |data: &str, front| Command::Append {
        id: sid("m"),
        data: b(data),
        front,
    };
    assert_eq!(f.run(append("x", false)).unwrap(), Reply::Nil);
    f.run(mc_store("mid", None, StoreIf::Always)).unwrap();
    f.run(append("<", true)).unwrap();
    f.run(append(">", false)).unwrap();
    assert_eq!(item(&f, "m").unwrap().0, b("<mid>"));

    let incr = |delta, decr| Command::IncrData {
        id: sid("m"),
        delta,
        decr,
        initial: None,
    };
    let value = |r: Reply| match r {
        Reply::Counter { value, .. } => value,
        other => panic!("incr reply {other:?}"),
    };
    assert!(matches!(f.run(incr(1, false)), Err(Error::NotNumeric(_))));
    f.run(mc_store("10", None, StoreIf::Always)).unwrap();
    assert_eq!(value(f.run(incr(5, false)).unwrap()), 15);
    // decr stops at zero and pads the stored text like memcached.
    assert_eq!(value(f.run(incr(100, true)).unwrap()), 0);
    assert_eq!(item(&f, "m").unwrap().0, b("0 "));
    assert_eq!(value(f.run(incr(7, false)).unwrap()), 7);
    // incr wraps at 2^64.
    f.run(mc_store("18446744073709551615", None, StoreIf::Always))
        .unwrap();
    assert_eq!(value(f.run(incr(2, false)).unwrap()), 1);
    // A missing counter is created only when asked to.
    f.run(Command::Destroy { id: sid("m") }).unwrap();
    assert!(matches!(f.run(incr(1, false)), Err(Error::NoSession(_))));
    let create = Command::IncrData {
        id: sid("m"),
        delta: 1,
        decr: false,
        initial: Some((42, None)),
    };
    assert_eq!(value(f.run(create).unwrap()), 42);
}

#[test]
fn item_with_timeout_sets_it() {
    let f = fixture();
    f.run(mc_store("a", None, StoreIf::Always)).unwrap();
    f.run(Command::Item {
        id: sid("m"),
        timeout_ms: Some(5_000),
    })
    .unwrap();
    f.clock.advance(4_000);
    assert!(item(&f, "m").is_ok(), "alive before the new timeout");
    f.clock.advance(2_000);
    assert!(matches!(item(&f, "m"), Err(Error::NoSession(_))));
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

#[test]
fn listings_past_max_reply_items_point_to_their_cursor_forms() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = EngineConfig {
        max_reply_items: 100,
        shards: 4,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, clock.clone());
    let client = engine.connect();
    let f = Fixture {
        engine,
        clock,
        client,
    };
    for i in 0..1000 {
        let id = format!("s{i:04}");
        f.create(&id);
        f.run(Command::Set {
            id: sid(&id),
            name: b("user"),
            value: b(if i % 2 == 0 { "even" } else { "odd" }),
        })
        .unwrap();
    }
    for (cmd, form) in [
        (Command::List { class: None }, "SESSION.SCAN"),
        (
            Command::Find {
                name: b("user"),
                value: b("odd"),
            },
            "SESSION.FIND name value CURSOR",
        ),
        (
            Command::ListVar { name: b("user") },
            "SESSION.LISTVAR name CURSOR",
        ),
    ] {
        let e = f.run(cmd).unwrap_err();
        assert_eq!(e.code(), "LIMIT");
        assert!(e.to_string().contains(form), "{e}");
    }
    // The cursor forms return everything exactly once, a page at a time.
    let (sizes, ids) = page_all(&f, |cursor| Command::FindPage {
        name: b("user"),
        value: b("odd"),
        cursor,
        count: 33,
    });
    assert!(sizes.iter().all(|&n| n <= 33), "{sizes:?}");
    let mut ids = strs(Reply::Array(ids));
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 500);
    let (sizes, pairs) = page_all(&f, |cursor| Command::ListVarPage {
        name: b("user"),
        cursor,
        count: 70,
    });
    assert!(sizes.iter().all(|&n| n <= 140), "{sizes:?}");
    let mut ids: Vec<_> = strs(Reply::Array(pairs.into_iter().step_by(2).collect()));
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000);
}

#[test]
fn scan_work_is_bounded_even_when_nothing_matches() {
    let f = fixture();
    for i in 0..600 {
        f.create(&format!("s{i}"));
    }
    // A class nobody has: each page visits about COUNT sessions, so the
    // walk takes many small pages instead of one that visits everything.
    let (sizes, ids) = page_all(&f, |cursor| Command::Scan {
        cursor,
        count: 50,
        class: Some(b("nobody")),
    });
    assert!(ids.is_empty());
    assert!(sizes.len() >= 600 / 50, "{} pages", sizes.len());
}

#[test]
fn key_scan_returns_every_id_once_with_numeric_cursors() {
    let f = fixture();
    // Ids sharing long prefixes too, so pages end inside prefix groups.
    let mut want = Vec::new();
    for i in 0..700 {
        let id = if i % 3 == 0 {
            format!("abcdefgh{i}")
        } else {
            format!("x{i}")
        };
        f.create(&id);
        want.push(id);
    }
    let mut cursor = 0u64;
    let mut got = Vec::new();
    let mut pages = 0;
    loop {
        let (next, items) = page_parts(f.run(Command::KeyScan { cursor, count: 20 }).unwrap());
        got.extend(strs(Reply::Array(items)));
        pages += 1;
        cursor = std::str::from_utf8(&next).unwrap().parse().unwrap();
        if cursor == 0 {
            break;
        }
    }
    assert!(pages > 10);
    let n = got.len();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), n, "no id twice");
    want.sort();
    assert_eq!(got, want);
}
