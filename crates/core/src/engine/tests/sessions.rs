//! Creating, reading and destroying sessions, ids, data blobs, renames.

use super::*;

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
    let Reply::Bulk(id) = r else { panic!("{r:?}") };
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
fn data_blob_round_trips_and_versions_increase() {
    let f = fixture();
    f.create("s");
    let version = |f: &Fixture| match f.run(Command::Info { id: sid("s") }).unwrap() {
        Reply::Map(m) => m
            .into_iter()
            .find(|(k, _)| *k == Reply::text("version"))
            .map(|(_, v)| v)
            .unwrap(),
        other => panic!("{other:?}"),
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
fn regenerate_moves_data_vars_and_lock() {
    let f = fixture();
    f.create("old");
    f.set("old", "user", "42");
    let key = f.key(&f.client, "old", LockMode::Write);
    let other = f.engine.connect();
    let mut pending = f.pending(&other, "old", LockMode::Write);
    let r = f
        .run(Command::Regenerate {
            id: sid("old"),
            new_id: None,
        })
        .unwrap();
    let Reply::Bulk(new) = r else { panic!("{r:?}") };
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
        f.find("user", "42"),
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
fn randstr_lengths() {
    let f = fixture();
    let r = f.run(Command::RandStr { len: 40 }).unwrap();
    let Reply::Bulk(s) = r else { panic!("{r:?}") };
    assert_eq!(s.len(), 40);
    assert!(f.run(Command::RandStr { len: 0 }).is_err());
    assert!(f.run(Command::RandStr { len: 1 << 20 }).is_err());
}
