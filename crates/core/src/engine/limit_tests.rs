//! The per-session and per-engine limits: variables, sessions, id
//! characters, queued lock requests. Each refuses with an error and
//! changes nothing.

use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::clock::ManualClock;
use crate::command::{StoreIf, StoreReply};

fn engine(config: EngineConfig) -> (Engine, ClientHandle) {
    let engine = Engine::new(config, Arc::new(ManualClock::new(1_000_000)));
    let client = engine.connect();
    (engine, client)
}

fn sid(s: &str) -> SessionId {
    SessionId::new(Bytes::copy_from_slice(s.as_bytes()))
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn create(id: &str) -> Command {
    Command::Create {
        id: sid(id),
        class: None,
        data: None,
        timeout_ms: None,
    }
}

fn limit_what(r: Result<Reply, Error>) -> &'static str {
    match r {
        Err(Error::LimitExceeded { what, .. }) => what,
        other => panic!("expected a limit, got {other:?}"),
    }
}

#[test]
fn variables_past_max_vars_are_refused_whole() {
    let (e, c) = engine(EngineConfig {
        max_vars: 2,
        ..EngineConfig::default()
    });
    let run = |cmd| e.execute_now(&c, cmd);
    run(create("s")).unwrap();
    let set = |n: &str| Command::Set {
        id: sid("s"),
        name: b(n),
        value: b("1"),
    };
    run(set("a")).unwrap();
    run(set("b")).unwrap();
    assert!(limit_what(run(set("c"))).contains("variables"));
    run(set("a")).unwrap();
    // SETALL: one new name too many, so none of it is written.
    let all = Command::SetAll {
        id: sid("s"),
        pairs: vec![(b("a"), b("2")), (b("d"), b("1"))],
    };
    limit_what(run(all));
    assert_eq!(
        run(Command::Get {
            id: sid("s"),
            name: b("a"),
            default: None
        })
        .unwrap(),
        Reply::Bulk(b("1"))
    );
    limit_what(run(Command::Inc {
        id: sid("s"),
        name: b("n"),
        by: 1,
    }));
    // CLOSE with new variables: refused, the lock kept, the data untouched.
    let key = match run(Command::Lock {
        id: sid("s"),
        mode: LockMode::Write,
        wait_ms: 0,
        lease_ms: None,
    })
    .unwrap()
    {
        Reply::Key(k) => k,
        other => panic!("{other:?}"),
    };
    let close = |sets| Command::Close {
        id: sid("s"),
        key,
        data: Some(b("new data")),
        sets,
    };
    limit_what(run(close(vec![(b("x"), b("1"))])));
    assert_eq!(
        run(Command::GetData {
            id: sid("s"),
            touch: false
        })
        .unwrap(),
        Reply::Bulk(Bytes::new())
    );
    run(close(vec![(b("a"), b("3"))])).unwrap();
    // Deleting one makes room again.
    run(Command::Del {
        id: sid("s"),
        name: b("b"),
    })
    .unwrap();
    run(set("c")).unwrap();
}

#[test]
fn sessions_past_max_sessions_are_refused_never_evicted() {
    let (e, c) = engine(EngineConfig {
        max_sessions: 2,
        ..EngineConfig::default()
    });
    let run = |cmd| e.execute_now(&c, cmd);
    run(create("a")).unwrap();
    run(Command::Uniq {
        len: None,
        class: None,
        data: None,
        timeout_ms: None,
    })
    .unwrap();
    assert_eq!(limit_what(run(create("c"))), "the number of sessions");
    let store = |id: &str| Command::Store {
        id: sid(id),
        data: b("d"),
        timeout_ms: None,
        flags: None,
        condition: StoreIf::Always,
        reply: StoreReply::Ok,
        key_form: 0,
    };
    limit_what(run(store("c")));
    run(store("a")).unwrap();
    limit_what(run(Command::IncrData {
        id: sid("c"),
        delta: 1,
        decr: false,
        initial: Some((0, None)),
    }));
    limit_what(run(Command::Uniq {
        len: None,
        class: None,
        data: None,
        timeout_ms: None,
    }));
    assert_eq!(e.session_count(), 2, "nobody was evicted");
    run(Command::Destroy { id: sid("a") }).unwrap();
    run(create("c")).unwrap();
    // A rename neither adds nor removes.
    run(Command::Regenerate {
        id: sid("c"),
        new_id: Some(sid("d")),
    })
    .unwrap();
    assert_eq!(e.session_count(), 2);
}

#[test]
fn ids_outside_the_alphabet_are_refused() {
    let (e, c) = engine(EngineConfig {
        id_chars: IdChars::parse("A-Za-z0-9,-").unwrap(),
        ..EngineConfig::default()
    });
    let run = |cmd| e.execute_now(&c, cmd);
    run(create("abc,DEF-09")).unwrap();
    for bad in ["a b", "a_b", "a\r\nb", "é"] {
        match run(create(bad)) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("A-Za-z0-9,-"), "{m}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // The default lets every printable character in, and nothing else.
    let (e, c) = engine(EngineConfig::default());
    e.execute_now(&c, create("PHPREDIS_SESSION:x~!")).unwrap();
    assert!(e.execute_now(&c, create("a b")).is_err());
}

#[test]
fn lock_queues_past_max_lock_waiters_are_refused() {
    let (e, a) = engine(EngineConfig {
        max_lock_waiters: 1,
        ..EngineConfig::default()
    });
    let (b_client, c_client) = (e.connect(), e.connect());
    e.execute_now(&a, create("s")).unwrap();
    let lock = |wait_ms| Command::Lock {
        id: sid("s"),
        mode: LockMode::Write,
        wait_ms,
        lease_ms: None,
    };
    assert!(matches!(e.execute(&a, lock(0)), Ok(Outcome::Reply(_))));
    let queued = e.execute(&b_client, lock(5_000)).unwrap();
    assert!(matches!(queued, Outcome::Wait(_)));
    match e.execute(&c_client, lock(5_000)) {
        Err(Error::LimitExceeded { what, .. }) => assert!(what.contains("lock requests")),
        other => panic!("{other:?}"),
    }
    // Trying once is not queueing: the usual answer.
    assert!(matches!(
        e.execute(&c_client, lock(0)),
        Err(Error::Locked { .. })
    ));
}

#[test]
fn strict_ids_refuse_ids_chosen_by_clients() {
    let (e, c) = engine(EngineConfig {
        strict_ids: true,
        ..EngineConfig::default()
    });
    let run = |cmd| e.execute_now(&c, cmd);
    let refused = |r: Result<Reply, Error>| match r {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("SESSION.UNIQ"), "{m}"),
        other => panic!("{other:?}"),
    };
    refused(run(create("chosen")));
    refused(run(Command::Store {
        id: sid("chosen"),
        data: b("d"),
        timeout_ms: None,
        flags: None,
        condition: StoreIf::Always,
        reply: StoreReply::Ok,
        key_form: 0,
    }));
    refused(run(Command::Open {
        id: sid("chosen"),
        mode: LockMode::Write,
        wait_ms: 0,
        lease_ms: None,
        create: true,
    }));
    let id = match run(Command::Uniq {
        len: None,
        class: None,
        data: None,
        timeout_ms: None,
    })
    .unwrap()
    {
        Reply::Bulk(id) => SessionId::new(id),
        other => panic!("{other:?}"),
    };
    assert!(id.as_bytes().len() >= 22, "128 bits or more");
    // The server's own ids work as usual, and renames draw a new one.
    run(Command::Store {
        id: id.clone(),
        data: b("d"),
        timeout_ms: None,
        flags: None,
        condition: StoreIf::Always,
        reply: StoreReply::Ok,
        key_form: 0,
    })
    .unwrap();
    refused(run(Command::Regenerate {
        id: id.clone(),
        new_id: Some(sid("chosen")),
    }));
    let renamed = run(Command::Regenerate {
        id: id.clone(),
        new_id: None,
    })
    .unwrap();
    assert!(matches!(renamed, Reply::Bulk(n) if n != id.to_bytes()));
}

#[test]
fn bytes_past_max_bytes_are_refused_and_counted_back_when_freed() {
    let (e, c) = engine(EngineConfig {
        max_bytes: 100,
        ..EngineConfig::default()
    });
    let run = |cmd| e.execute_now(&c, cmd);
    let data = |id: &str, n: usize| Command::SetData {
        id: sid(id),
        data: Bytes::from(vec![b'x'; n]),
    };
    run(create("a")).unwrap();
    run(data("a", 60)).unwrap();
    assert_eq!(limit_what(run(data("a", 101))), "the bytes stored");
    // Replacing counts the difference: 60 -> 90 fits.
    run(data("a", 90)).unwrap();
    assert_eq!(e.store.bytes(), 90);
    limit_what(run(Command::Set {
        id: sid("a"),
        name: b("k"),
        value: Bytes::from(vec![b'v'; 20]),
    }));
    run(Command::Set {
        id: sid("a"),
        name: b("k"),
        value: b("v"),
    })
    .unwrap();
    assert_eq!(e.store.bytes(), 92);
    limit_what(run(Command::Append {
        id: sid("a"),
        data: Bytes::from(vec![b'y'; 9]),
        front: false,
    }));
    run(data("a", 98)).unwrap();
    // Full: no new sessions either.
    limit_what(run(create("b")));
    // Destroying gives every byte back.
    run(Command::Destroy { id: sid("a") }).unwrap();
    assert_eq!(e.store.bytes(), 0);
    run(create("b")).unwrap();
}
