//! Counting, listing, finding and paging across sessions.

use super::*;

#[test]
fn find_and_listvar_follow_writes() {
    let f = fixture();
    for id in ["a", "b", "c"] {
        f.create(id);
    }
    f.set("a", "user", "42");
    f.set("b", "user", "42");
    f.set("c", "user", "7");
    let mut found = f.find("user", "42");
    found.sort();
    assert_eq!(found, ["a", "b"]);
    f.set("b", "user", "8");
    assert_eq!(f.find("user", "42"), ["a"]);
    f.run(Command::Destroy { id: sid("a") }).unwrap();
    assert!(f.find("user", "42").is_empty());
    let r = f.run(Command::ListVar { name: b("user") }).unwrap();
    let Reply::Map(mut pairs) = r else {
        panic!("{r:?}")
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
