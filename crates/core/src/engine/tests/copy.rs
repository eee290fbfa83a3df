//! The engine as a working copy: the store's figures count with what is
//! loaded, sessions moving in and out are not counted twice, and the
//! quotas see the whole tenant.

use super::*;

fn create(id: &str) -> Command {
    Command::Create {
        id: sid(id),
        class: None,
        data: Some(b("12345")),
        timeout_ms: None,
    }
}

#[test]
fn figures_count_with_what_is_loaded_and_quotas_see_them() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = EngineConfig {
        max_sessions: 3,
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, clock);
    let client = engine.connect();
    // The store holds two sessions of 10 bytes and one lock of 200.
    engine.set_figures(Figures {
        sessions: 2,
        persistent: 0,
        bytes: 20,
        locks: 1,
        lock_bytes: 200,
    });
    let stats = engine.stats();
    assert_eq!((stats.sessions, stats.bytes, stats.locks), (2, 20, 1));
    // One of them is loaded, read and put back: still two.
    let s = Session::restored(
        None,
        b("0123456789"),
        Default::default(),
        0,
        1,
        1,
        60_000,
        7,
    );
    engine.load(&sid("a"), Some(s));
    assert_eq!(engine.stats().sessions, 2);
    assert_eq!(engine.stats().bytes, 20);
    engine.unload(&sid("a"));
    assert_eq!(engine.stats().sessions, 2);
    // A new one made here counts once it is out of the copy too.
    engine.load(&sid("n"), None);
    engine.execute_now(&client, create("n")).unwrap();
    engine.unload(&sid("n"));
    assert_eq!(engine.stats().sessions, 3);
    assert_eq!(engine.stats().bytes, 25);
    // The tenant is full, whatever the copy holds.
    engine.load(&sid("m"), None);
    let e = engine.execute_now(&client, create("m")).unwrap_err();
    assert!(matches!(e, Error::LimitExceeded { .. }), "{e:?}");
    engine.unload(&sid("m"));
    // Read again while nothing is loaded: the figures as given.
    engine.set_figures(Figures {
        sessions: 1,
        ..Figures::default()
    });
    assert_eq!(engine.stats().sessions, 1);
    engine.note_lock_usage(2, 300);
    assert_eq!((engine.stats().locks, engine.stats().lock_bytes), (2, 300));
}

/// A session loaded as held (its lock is held in the store behind the
/// copy) outlives its deadline, as one locked in the engine does; loaded
/// as not held, it is gone at its deadline. Loading it again forgets it
/// was held.
#[test]
fn a_session_held_elsewhere_outlives_its_deadline() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let engine = Engine::new(EngineConfig::default(), clock);
    let client = engine.connect();
    // Accessed at 1 s with a 60 s timeout: past its deadline now.
    let expired = || Session::restored(None, b("data"), Default::default(), 0, 1, 1_000, 60_000, 3);
    let get = |id: &str| {
        engine.execute_now(
            &client,
            Command::GetData {
                id: sid(id),
                touch: false,
            },
        )
    };
    engine.load_held(&sid("h"), Some(expired()), true);
    assert_eq!(get("h").unwrap(), Reply::Bulk(b("data")));
    engine.unload(&sid("h"));
    engine.load_held(&sid("h"), Some(expired()), false);
    assert!(
        matches!(get("h"), Err(Error::NoSession(_))),
        "{:?}",
        get("h")
    );
    engine.unload(&sid("h"));
}
