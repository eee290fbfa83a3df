//! The mutation log: replaying it rebuilds the same state; identical rewrites log nothing.

use super::*;

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
            let cmd = match rnd(14) {
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
                // A Redis or memcached store: the data alone changing, or
                // with its timeout and flags, PHP data (indexed) or not.
                11 | 12 => Command::Store {
                    id,
                    data: b(["x", "y", "uid|i:1;", "uid|i:2;"][rnd(4) as usize]),
                    timeout_ms: [None, Some(3_000), Some(4_000)][rnd(3) as usize],
                    flags: [None, Some(0), Some(7)][rnd(3) as usize],
                    condition: crate::command::StoreIf::Always,
                    reply: crate::command::StoreReply::Version,
                    key_form: 0,
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
                (
                    &a.data,
                    a.vars(),
                    a.version,
                    a.timeout_ms,
                    a.flags,
                    a.class()
                ),
                (
                    &r.data,
                    r.vars(),
                    r.version,
                    r.timeout_ms,
                    r.flags,
                    r.class()
                ),
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
