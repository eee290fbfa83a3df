//! Sliding expiry, timeouts and reaping, on the manual clock.

use super::*;

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
    f.get("s", "x").unwrap();
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
    assert!(f.find("u", "1").is_empty());
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
    assert_eq!(f.get_data("s").unwrap(), Reply::Bulk(b("kept")));
}

#[test]
fn a_session_without_expiry_never_expires_and_expire_follows_its_conditions() {
    let f = fixture();
    f.run(Command::Store {
        id: sid("k"),
        data: b("v"),
        timeout_ms: Some(crate::NEVER),
        flags: None,
        condition: StoreIf::Always,
        reply: StoreReply::Ok,
        key_form: 0,
    })
    .unwrap();
    assert_eq!(
        f.run(Command::Ttl { id: sid("k") }).unwrap(),
        Reply::Int(-1)
    );
    f.clock.advance(10 * 365 * 86_400_000);
    f.engine.tick();
    assert_eq!(
        f.get_data("k").unwrap(),
        Reply::Bulk(b("v")),
        "ten years on"
    );
    let expire = |ms: Option<u64>, when| Command::Expire {
        id: sid("k"),
        timeout_ms: ms,
        when,
    };
    // No expiry counts as an infinite deadline.
    assert_eq!(
        f.run(expire(Some(5_000), ExpireIf::Later)).unwrap(),
        Reply::Int(0)
    );
    assert_eq!(
        f.run(expire(Some(5_000), ExpireIf::HasExpiry)).unwrap(),
        Reply::Int(0)
    );
    assert_eq!(
        f.run(expire(Some(5_000), ExpireIf::Sooner)).unwrap(),
        Reply::Int(1)
    );
    assert_eq!(
        f.run(expire(Some(9_000), ExpireIf::NoExpiry)).unwrap(),
        Reply::Int(0)
    );
    assert_eq!(
        f.run(expire(Some(9_000), ExpireIf::Later)).unwrap(),
        Reply::Int(1)
    );
    assert_eq!(f.run(Command::Ttl { id: sid("k") }).unwrap(), Reply::Int(9));
    // PERSIST: only what has an expiry.
    assert_eq!(
        f.run(expire(None, ExpireIf::HasExpiry)).unwrap(),
        Reply::Int(1)
    );
    assert_eq!(
        f.run(expire(None, ExpireIf::HasExpiry)).unwrap(),
        Reply::Int(0)
    );
    // A deadline already past destroys it.
    assert_eq!(
        f.run(expire(Some(0), ExpireIf::Always)).unwrap(),
        Reply::Int(1)
    );
    assert!(matches!(f.get_data("k"), Err(Error::NoSession(_))));
}

#[test]
fn incr_by_counts_as_redis_does() {
    let f = fixture();
    let incr = |by| Command::IncrBy {
        id: sid("c"),
        by,
        key_form: 0,
    };
    assert_eq!(f.run(incr(5)).unwrap(), Reply::Int(5));
    assert_eq!(
        f.run(Command::Ttl { id: sid("c") }).unwrap(),
        Reply::Int(-1)
    );
    assert_eq!(f.run(incr(-7)).unwrap(), Reply::Int(-2));
    assert_eq!(f.get_data("c").unwrap(), Reply::Bulk(b("-2")));
    for bad in ["x", " 1", "01", "+1", "-0", ""] {
        f.run(Command::SetData {
            id: sid("c"),
            data: b(bad),
        })
        .unwrap();
        assert_eq!(f.run(incr(1)), Err(Error::NotAnInteger), "{bad:?}");
    }
    f.run(Command::SetData {
        id: sid("c"),
        data: b("9223372036854775807"),
    })
    .unwrap();
    assert_eq!(f.run(incr(1)), Err(Error::IncrOverflow));
}

/// The reads that look a session up once (GET, a memcached get, a store's
/// look at the old value) see a session past its deadline as gone unless
/// it is locked, and a touching GET slides the deadline.
#[test]
fn one_look_up_reads_see_expiry_as_the_others_do() {
    use crate::command::{StoreIf, StoreReply};
    let f = fixture();
    let create = |id: &str| Command::Create {
        id: sid(id),
        class: None,
        data: Some(b("v")),
        timeout_ms: Some(1_000),
    };
    let item = |id: &str| Command::Item {
        id: sid(id),
        timeout_ms: None,
    };
    let absent_store = |id: &str| Command::Store {
        id: sid(id),
        data: b("new"),
        timeout_ms: None,
        flags: None,
        condition: StoreIf::Absent,
        reply: StoreReply::Old,
        key_form: 0,
    };
    for id in ["alive", "touched", "expired", "locked", "stored"] {
        f.run(create(id)).unwrap();
    }
    let key = f.key(&f.client, "locked", LockMode::Write);
    f.clock.advance(600);
    // A touching read at 600 ms slides "touched" to 1,600.
    assert_eq!(
        f.run(Command::GetData {
            id: sid("touched"),
            touch: true
        })
        .unwrap(),
        Reply::Bulk(b("v"))
    );
    assert_eq!(f.get_data("alive").unwrap(), Reply::Bulk(b("v")));
    assert!(matches!(f.run(item("alive")).unwrap(), Reply::Item { .. }));
    f.clock.advance(600);
    assert_eq!(f.get_data("touched").unwrap(), Reply::Bulk(b("v")));
    assert!(matches!(f.get_data("expired"), Err(Error::NoSession(_))));
    assert!(matches!(f.run(item("alive")), Err(Error::NoSession(_))));
    // A held lock keeps its session alive past the deadline.
    assert_eq!(f.get_data("locked").unwrap(), Reply::Bulk(b("v")));
    assert!(matches!(f.run(item("locked")).unwrap(), Reply::Item { .. }));
    // NX stores over an expired session as over a missing one.
    assert_eq!(f.run(absent_store("stored")).unwrap(), Reply::Nil);
    assert_eq!(f.get_data("stored").unwrap(), Reply::Bulk(b("new")));
    f.run(Command::Unlock {
        id: sid("locked"),
        key,
    })
    .unwrap();
}

/// A lent read (the doors' GET and memcached get, `Engine::read_lent`)
/// sees what the commands see: the same data, flags and version, a session
/// past its deadline gone unless locked, and a touching read sliding the
/// deadline as `GetData { touch: true }` does.
#[test]
fn a_lent_read_sees_what_the_commands_see() {
    let f = fixture();
    let lent = |id: &str, touch: bool| {
        let now = f.engine.now_ms();
        f.engine.read_lent(&sid(id), touch, now, |r| {
            r.map(|v| (Bytes::copy_from_slice(v.data), v.flags, v.version))
        })
    };
    for id in ["alive", "touched", "expired", "locked"] {
        f.run(Command::Create {
            id: sid(id),
            class: None,
            data: Some(b(id)),
            timeout_ms: Some(1_000),
        })
        .unwrap();
    }
    f.run(mc_store("flagged", Some(7), StoreIf::Always))
        .unwrap();
    let key = f.key(&f.client, "locked", LockMode::Write);
    let every = ["alive", "touched", "expired", "locked", "m", "missing"];
    for id in every {
        assert_eq!(lent(id, false), item(&f, id), "{id}");
    }
    assert_eq!(lent("m", false).unwrap().1, 7);
    f.clock.advance(600);
    // A touching lent read at 600 ms slides "touched" to 1,600.
    assert_eq!(lent("touched", true).unwrap().0, b("touched"));
    f.clock.advance(600);
    for id in every {
        assert_eq!(lent(id, false), item(&f, id), "{id}");
    }
    assert!(lent("touched", false).is_ok());
    assert!(matches!(lent("expired", false), Err(Error::NoSession(_))));
    assert!(lent("locked", false).is_ok());
    assert!(matches!(lent("missing", false), Err(Error::NoSession(_))));
    f.run(Command::Unlock {
        id: sid("locked"),
        key,
    })
    .unwrap();
}
