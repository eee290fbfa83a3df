//! `Command::Exec`: a list of commands as one step.

use std::thread;

use super::*;

fn incr(id: &str) -> Command {
    Command::IncrBy {
        id: sid(id),
        by: 1,
        key_form: 0,
    }
}

fn read(id: &str) -> Command {
    Command::GetData {
        id: sid(id),
        touch: false,
    }
}

fn exec(f: &Fixture, commands: Vec<Command>) -> Option<Vec<Result<Reply, Error>>> {
    match f.run(Command::Exec {
        watched: vec![],
        commands,
    }) {
        Ok(Reply::Exec(results)) => results,
        other => panic!("not a transaction's reply: {other:?}"),
    }
}

#[test]
fn commands_run_in_order_and_each_answers_even_a_refusal() {
    let f = fixture();
    let results = exec(
        &f,
        vec![
            incr("a"),
            Command::Store {
                id: sid("t"),
                data: b("text"),
                timeout_ms: None,
                condition: StoreIf::Always,
                flags: None,
                reply: StoreReply::Ok,
                key_form: 0,
            },
            Command::IncrBy {
                id: sid("t"),
                by: 1,
                key_form: 0,
            },
            incr("a"),
            read("a"),
        ],
    )
    .expect("nothing watched");
    assert_eq!(results.len(), 5);
    assert_eq!(results[0], Ok(Reply::Int(1)));
    assert_eq!(results[1], Ok(Reply::Ok));
    assert_eq!(results[2], Err(Error::NotAnInteger));
    assert_eq!(results[3], Ok(Reply::Int(2)));
    assert_eq!(results[4], Ok(Reply::Bulk(b("2"))));
}

#[test]
fn a_changed_watched_session_runs_nothing() {
    let f = fixture();
    f.run(incr("w")).expect("incr");
    let version = match f.run(Command::Item {
        id: sid("w"),
        timeout_ms: None,
    }) {
        Ok(Reply::Item { version, .. }) => version,
        other => panic!("{other:?}"),
    };
    let tx = |watched| Command::Exec {
        watched,
        commands: vec![incr("x")],
    };
    // Unchanged: it runs.
    let ran = f.run(tx(vec![(sid("w"), Some(version))])).expect("exec");
    assert_eq!(ran, Reply::Exec(Some(vec![Ok(Reply::Int(1))])));
    // Changed since: nothing runs, x stays 1.
    f.run(incr("w")).expect("incr");
    let ran = f.run(tx(vec![(sid("w"), Some(version))])).expect("exec");
    assert_eq!(ran, Reply::Exec(None));
    assert_eq!(f.get_data("x"), Ok(Reply::Bulk(b("1"))));
    // Watched while absent, created since: nothing runs.
    let ran = f.run(tx(vec![(sid("new"), None)])).expect("exec");
    assert_eq!(ran, Reply::Exec(Some(vec![Ok(Reply::Int(2))])));
    f.run(incr("new")).expect("incr");
    let ran = f.run(tx(vec![(sid("new"), None)])).expect("exec");
    assert_eq!(ran, Reply::Exec(None));
}

#[test]
fn commands_that_walk_or_wait_are_refused_whole() {
    let f = fixture();
    for cmd in [
        Command::KeyScan {
            cursor: 0,
            count: 10,
        },
        Command::Lock {
            id: sid("a"),
            mode: LockMode::Write,
            wait_ms: 1000,
            lease_ms: None,
        },
    ] {
        let refused = f.run(Command::Exec {
            watched: vec![],
            commands: vec![incr("a"), cmd],
        });
        assert!(
            matches!(refused, Err(Error::InvalidArgument(ref m)) if m.contains("transaction")),
            "{refused:?}"
        );
    }
    // Nothing ran.
    assert_eq!(f.engine.session_count(), 0);
}

#[test]
fn a_taken_lock_key_answers_at_once_inside_a_transaction() {
    let f = fixture();
    let other = f.engine.connect();
    let lock = |owner: &str| Command::LockOwned {
        id: sid("s"),
        owner: b(owner),
        lease_ms: None,
        wait_ms: None,
    };
    f.run_as(&other, lock("first")).expect("free lock");
    let results = exec(&f, vec![lock("second")]).expect("nothing watched");
    assert_eq!(results.len(), 1);
    assert!(results[0].is_err(), "{results:?}");
}

/// A reader's transaction never sees one of two counters bumped and not
/// the other, while a writer bumps both in each of its own, on another
/// thread, sessions on different shards.
#[test]
fn no_other_command_sees_part_of_a_transaction() {
    let f = Arc::new(fixture());
    // Two ids on different shards.
    let a = "a".to_string();
    let b_id = (0..)
        .map(|i| format!("b{i}"))
        .find(|b| f.engine.store.index_of(&sid(b)) != f.engine.store.index_of(&sid(&a)))
        .expect("another shard");
    const ROUNDS: i64 = 3000;
    let writer = {
        let (f, a, b_id) = (f.clone(), a.clone(), b_id.clone());
        thread::spawn(move || {
            let client = f.engine.connect();
            for _ in 0..ROUNDS {
                // Reads between the two bumps widen the window a reader
                // would see, were the transaction not one step.
                let mut commands = vec![incr(&a)];
                commands.extend((0..50).map(|i| read(&format!("filler{i}"))));
                commands.push(incr(&b_id));
                f.run_as(
                    &client,
                    Command::Exec {
                        watched: vec![],
                        commands,
                    },
                )
                .expect("exec");
            }
        })
    };
    let number = |r: &Result<Reply, Error>| match r {
        Ok(Reply::Bulk(v)) => std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<i64>().ok()),
        _ => None,
    };
    let mut seen = 0;
    loop {
        // One plain read each, in the writer's order: between them the
        // writer may have run, so only a >= b holds...
        let first = f.run(read(&b_id));
        let second = f.run(read(&a));
        if let (Some(bv), Some(av)) = (number(&first), number(&second)) {
            assert!(av >= bv, "a={av} b={bv}");
        }
        // ...while one transaction's two reads always agree.
        let both = exec(&f, vec![read(&a), read(&b_id)]).expect("nothing watched");
        let (av, bv) = (number(&both[0]), number(&both[1]));
        assert_eq!(av, bv, "a transaction saw another in part");
        seen += 1;
        if av == Some(ROUNDS) {
            break;
        }
    }
    writer.join().expect("writer");
    assert!(seen > 1);
}
