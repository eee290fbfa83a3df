//! Variables: get, set, delete, increments, and the read-only view of PHP-encoded data.

use super::*;

#[test]
fn vars_get_set_del_getall_setall() {
    let f = fixture();
    f.create("s");
    assert_eq!(f.get("s", "a").unwrap(), Reply::Nil);
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
    assert_eq!(f.get("s", "a").unwrap(), Reply::Bulk(b("1")));
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
    assert_eq!(f.get("a", "user_id").unwrap(), Reply::Bulk(b("42")));
    assert_eq!(
        f.run(Command::GetAll { id: sid("a") }).unwrap(),
        Reply::Map(vec![
            (Reply::Bulk(b("user_id")), Reply::Bulk(b("42"))),
            (Reply::Bulk(b("name")), Reply::Bulk(b("Ann"))),
        ])
    );
    let mut found = f.find("user_id", "42");
    found.sort();
    assert_eq!(found, ["a", "b"], "both encodings are indexed");
    // An explicit variable shadows the PHP entry of the same name.
    f.set("b", "user_id", "7");
    assert_eq!(f.find("user_id", "42"), ["a"]);
    let r = f.run(Command::ListVar { name: b("user_id") }).unwrap();
    let Reply::Map(listed) = r else {
        panic!("{r:?}")
    };
    assert_eq!(listed.len(), 2);
    // New data replaces the view and the index.
    f.run(Command::SetData {
        id: sid("a"),
        data: b("user_id|i:43;"),
    })
    .unwrap();
    assert!(f.find("user_id", "42").is_empty());
    assert_eq!(f.find("user_id", "43"), ["a"]);
    f.run(Command::SetData {
        id: sid("a"),
        data: b("not php"),
    })
    .unwrap();
    assert_eq!(f.get("a", "name").unwrap(), Reply::Nil);
    assert!(f.find("user_id", "43").is_empty());
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
    let r = restarted
        .execute(
            &c,
            Command::Find {
                name: b("user_id"),
                value: b("42"),
            },
        )
        .unwrap();
    let Outcome::Reply(found) = r else {
        panic!("{r:?}")
    };
    assert_eq!(strs(found), ["a"]);
}
