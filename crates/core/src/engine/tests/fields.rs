//! FIND, LISTVAR and GET over the fields of JSON, msgpack and PHP data:
//! indexed names answered from the hash index (hits checked against the
//! data), other names by reading every session, both paged.

use super::*;
use crate::fields::IndexFields;

fn with_fields(which: IndexFields) -> Fixture {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let engine = Engine::new(
        EngineConfig {
            index_fields: which,
            ..EngineConfig::default()
        },
        clock.clone(),
    );
    let client = engine.connect();
    Fixture {
        engine,
        clock,
        client,
    }
}

fn write(f: &Fixture, id: &str, data: &[u8]) {
    f.run(Command::Store {
        id: sid(id),
        data: Bytes::copy_from_slice(data),
        timeout_ms: None,
        condition: StoreIf::Always,
        flags: None,
        reply: StoreReply::Ok,
        key_form: 0,
    })
    .unwrap();
}

fn express(user: &str, role: &str) -> String {
    format!(
        r#"{{"cookie":{{"path":"/","httpOnly":true}},"user":"{user}","role":"{role}","passport":{{"user":"{user}-id"}}}}"#
    )
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn json_and_msgpack_sessions_are_found_by_their_fields() {
    for which in [
        IndexFields::default(),
        IndexFields::All,
        IndexFields::Only(vec![]),
    ] {
        let f = with_fields(which.clone());
        write(&f, "a", express("alice", "admin").as_bytes());
        write(&f, "b", express("bob", "member").as_bytes());
        write(&f, "c", express("alice", "member").as_bytes());
        // Flask-Session's msgpack: {"user": "alice", "role": "member"}
        write(&f, "m", b"\x82\xa4user\xa5alice\xa4role\xa6member");
        write(&f, "p", b"user|s:5:\"alice\";role|s:6:\"member\";");
        write(&f, "opaque", b"user alice");
        let ctx = format!("{which:?}");
        // Indexed by default (user, passport.user) and not (role): the
        // same answers either way.
        assert_eq!(
            sorted(f.find("user", "alice")),
            ["a", "c", "m", "p"],
            "{ctx}"
        );
        assert_eq!(f.find("passport.user", "bob-id"), ["b"], "{ctx}");
        assert_eq!(
            sorted(f.find("role", "member")),
            ["b", "c", "m", "p"],
            "{ctx}"
        );
        assert_eq!(f.find("cookie.path", "/").len(), 3, "{ctx}");
        assert!(f.find("user", "carol").is_empty(), "{ctx}");
        assert_eq!(
            f.get("a", "passport.user").unwrap(),
            Reply::Bulk(b("alice-id"))
        );
        let Reply::Map(listed) = f.run(Command::ListVar { name: b("role") }).unwrap() else {
            panic!("LISTVAR")
        };
        assert_eq!(listed.len(), 5, "{ctx}");
        // An explicit variable shadows the field.
        f.set("a", "user", "someone");
        assert_eq!(sorted(f.find("user", "alice")), ["c", "m", "p"], "{ctx}");
        assert_eq!(f.find("user", "someone"), ["a"], "{ctx}");
        // A rewrite moves the session in the index; a rename takes it along;
        // a destroy takes it out.
        write(&f, "c", express("carol", "member").as_bytes());
        assert_eq!(sorted(f.find("user", "alice")), ["m", "p"], "{ctx}");
        f.run(Command::Regenerate {
            id: sid("c"),
            new_id: Some(sid("c2")),
        })
        .unwrap();
        assert_eq!(f.find("user", "carol"), ["c2"], "{ctx}");
        f.run(Command::Destroy { id: sid("c2") }).unwrap();
        assert!(f.find("user", "carol").is_empty(), "{ctx}");
    }
}

#[test]
fn the_cursor_forms_return_each_match_once() {
    let f = fixture();
    for i in 0..700 {
        let user = if i % 2 == 0 { "even" } else { "odd" };
        write(&f, &format!("s{i}"), express(user, "member").as_bytes());
    }
    // Some with the same value as an explicit variable and a field.
    for i in (0..700).step_by(7) {
        f.set(&format!("s{i}"), "user", "odd");
    }
    let expected = (0..700).filter(|i| i % 2 == 1 || i % 7 == 0).count();
    for name in ["user", "role"] {
        let value = if name == "user" { "odd" } else { "member" };
        let (sizes, ids) = page_all(&f, |cursor| Command::FindPage {
            name: b(name),
            value: b(value),
            cursor,
            count: 33,
        });
        assert!(sizes.iter().all(|&n| n <= 33), "{sizes:?}");
        let ids = strs(Reply::Array(ids));
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{name}: no id twice");
        let want = if name == "user" { expected } else { 700 };
        assert_eq!(ids.len(), want, "{name}");
        assert_eq!(f.find(name, value).len(), want, "{name}: the unpaged form");
    }
    let (_, pairs) = page_all(&f, |cursor| Command::ListVarPage {
        name: b("passport.user"),
        cursor,
        count: 50,
    });
    assert_eq!(pairs.len(), 1400);
}

#[test]
fn the_index_keeps_hashes_and_a_hit_is_checked_against_the_data() {
    let f = fixture();
    write(&f, "a", express("alice", "member").as_bytes());
    // What the index holds for the session: one entry per indexed field
    // (user, passport.user), no copy of a name, value or id.
    let total: usize = (0..f.engine.store.len())
        .map(|i| f.engine.store.lock_at(i).fields.len())
        .sum();
    assert_eq!(total, 2);
    // Data changed behind the index's back cannot make FIND lie: the hit
    // is read from the data.
    let shard = f.engine.store.index_of(&sid("a"));
    f.engine
        .store
        .lock_at(shard)
        .sessions
        .get_mut(&sid("a"))
        .expect("a")
        .data = Bytes::from(express("mallory", "member"));
    assert!(f.find("user", "alice").is_empty());
}

#[test]
fn a_session_put_over_another_leaves_no_stale_entries() {
    let f = fixture();
    let entries = |f: &Fixture| -> usize {
        (0..f.engine.store.len())
            .map(|i| f.engine.store.lock_at(i).fields.len())
            .sum()
    };
    for user in ["alice", "bob"] {
        // Replaying a log over a snapshot puts a session where one is.
        let mut s = Session::new(1_000_000, 60_000, 1);
        s.data = Bytes::from(express(user, "member"));
        f.engine.apply(crate::Mutation::Put {
            id: sid("a"),
            session: s,
        });
    }
    assert_eq!(entries(&f), 2, "bob's user and passport.user only");
    assert!(f.find("user", "alice").is_empty());
    assert_eq!(f.find("user", "bob"), ["a"]);
    assert_eq!(f.engine.session_count(), 1);
}
