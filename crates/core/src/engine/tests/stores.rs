//! Redis and memcached stores: conditions, flags, versions (CAS), append, counters, gat.

use super::*;

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
        key_form: 0,
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
    assert_eq!(f.get_data("s").unwrap(), Reply::Bulk(b("d")));
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
