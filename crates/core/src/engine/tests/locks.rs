//! Locks: exclusion and FIFO grants, shared readers, leases, fencing keys, waits and their end, OPEN/CLOSE, owned (Redis and memcached) locks.

use super::*;

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
    let r = f
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
        .unwrap();
    let Outcome::Reply(Reply::Key(ka)) = r else {
        panic!("{r:?}")
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
    assert_eq!(f.get_data("s").unwrap(), Reply::Bulk(b("")));
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
    assert_eq!(f.get_data("s").unwrap(), Reply::Bulk(b("ok")));
    assert_eq!(f.get("s", "v").unwrap(), Reply::Bulk(b("1")));
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
    let r = f
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
        .unwrap();
    let Outcome::Reply(Reply::Array(parts)) = r else {
        panic!("{r:?}")
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
fn owned_locks_need_no_session_and_release_by_owner() {
    let f = fixture();
    let (a, b2) = (f.engine.connect(), f.engine.connect());
    let owned = |owner: &str| Command::LockOwned {
        id: sid("new"),
        owner: b(owner),
        lease_ms: Some(1000),
        wait_ms: Some(0),
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

#[test]
fn an_owned_lock_queues_for_the_door_wait_and_one_without_expiry_never_runs_out() {
    let f = fixture();
    let (a, b2) = (f.engine.connect(), f.engine.connect());
    // No lease asked for: held until released (or the connection ends).
    let forever = Command::LockOwned {
        id: sid("s"),
        owner: b("a|1"),
        lease_ms: None,
        wait_ms: Some(0),
    };
    assert!(matches!(f.run_as(&a, forever), Ok(Reply::Key(_))));
    f.clock.advance(10 * 86_400_000);
    f.engine.tick();
    // A door request waits in the queue (the configured door wait)...
    let door = Command::LockOwned {
        id: sid("s"),
        owner: b("b|2"),
        lease_ms: Some(5_000),
        wait_ms: None,
    };
    let Outcome::Wait(mut pending) = f.engine.execute(&b2, door).unwrap() else {
        panic!("not queued: ten days did not end a lock without expiry")
    };
    assert_eq!(pending.wait_ms, EngineConfig::default().door_lock_wait_ms);
    assert!(poll(&mut pending).is_none());
    // ...and has it the moment the holder lets go.
    let released = Command::UnlockOwned {
        id: sid("s"),
        owner: Some(b("a|1")),
    };
    assert_eq!(f.run_as(&a, released).unwrap(), Reply::Int(1));
    let granted = poll(&mut pending).expect("granted at once");
    assert!(matches!(
        f.engine.complete_wait(&pending, granted),
        Ok(Reply::Key(_))
    ));
}

#[test]
fn leases_and_timeouts_over_the_limits_are_capped_and_counted() {
    let f = fixture();
    let max_lease = EngineConfig::default().max_lease_ms;
    let long = Command::Lock {
        id: sid("s"),
        mode: LockMode::Write,
        wait_ms: 0,
        lease_ms: Some(max_lease * 10),
    };
    f.create("s");
    assert!(matches!(f.run(long), Ok(Reply::Key(_))));
    let year = 365 * 86_400_000;
    let max_timeout = EngineConfig::default().max_timeout_ms;
    assert!(max_timeout >= year, "a year's remember-me fits");
    f.run(Command::Timeout {
        id: sid("s"),
        timeout_ms: Some(max_timeout * 2),
    })
    .unwrap();
    assert_eq!(
        f.run(Command::Ttl { id: sid("s") }).unwrap(),
        Reply::Int((max_timeout / 1000) as i64)
    );
    let stats = f.engine.stats();
    assert_eq!((stats.capped_leases, stats.capped_timeouts), (1, 1));
}
