use bytes::Bytes;
use sessiond_core::{Command, LockMode, SessionId};

use super::*;

fn p(words: &[&str]) -> Result<Request> {
    parse(
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect(),
    )
}

fn cmd(words: &[&str]) -> Command {
    match p(words).unwrap() {
        Request::Engine(c) => c,
        other => panic!("not an engine command: {other:?}"),
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn names_and_options_are_case_insensitive() {
    assert_eq!(
        cmd(&["session.create", "abc", "timeout", "60", "Class", "admin"]),
        Command::Create {
            id: SessionId::new(b("abc")),
            class: Some(b("admin")),
            data: None,
            timeout_ms: Some(60_000),
        }
    );
}

#[test]
fn lock_and_open_options() {
    assert_eq!(
        cmd(&[
            "SESSION.LOCK",
            "s",
            "MODE",
            "read",
            "WAIT",
            "500",
            "LEASE",
            "1000"
        ]),
        Command::Lock {
            id: SessionId::new(b("s")),
            mode: LockMode::Read,
            wait_ms: 500,
            lease_ms: Some(1000),
        }
    );
    assert_eq!(
        cmd(&["SESSION.OPEN", "s", "CREATE"]),
        Command::Open {
            id: SessionId::new(b("s")),
            mode: LockMode::Write,
            wait_ms: 0,
            lease_ms: None,
            create: true,
        }
    );
    assert!(p(&["SESSION.LOCK", "s", "MODE", "exclusive"]).is_err());
    assert!(p(&["SESSION.LOCK", "s", "WAIT"]).is_err());
    assert!(p(&["SESSION.LOCK", "s", "WAIT", "-1"]).is_err());
}

#[test]
fn close_takes_data_then_pairs() {
    assert_eq!(
        cmd(&[
            "SESSION.CLOSE",
            "s",
            "7",
            "DATA",
            "blob",
            "SET",
            "a",
            "1",
            "b",
            "2"
        ]),
        Command::Close {
            id: SessionId::new(b("s")),
            key: 7,
            data: Some(b("blob")),
            sets: vec![(b("a"), b("1")), (b("b"), b("2"))],
        }
    );
    assert!(p(&["SESSION.CLOSE", "s", "7", "SET", "a"]).is_err());
    assert!(p(&["SESSION.CLOSE", "s", "x"]).is_err());
}

#[test]
fn arity_errors_name_the_syntax() {
    let err = p(&["SESSION.SET", "s", "a"]).unwrap_err();
    assert_eq!(
        err.message,
        "wrong number of arguments for 'SESSION.SET': SESSION.SET id name value"
    );
    assert!(p(&["SESSION.SETALL", "s", "a", "1", "b"]).is_err());
    assert!(p(&["NOPE"])
        .unwrap_err()
        .message
        .starts_with("unknown command 'NOPE'"));
}

#[test]
fn hello_quit_command() {
    assert_eq!(
        p(&["HELLO", "3"]).unwrap(),
        Request::Hello {
            protover: Some(3),
            auth: None
        }
    );
    assert!(p(&["HELLO", "4"]).is_err());
    assert_eq!(
        p(&["HELLO", "3", "auth", "u", "pw", "SETNAME", "web1"]).unwrap(),
        Request::Hello {
            protover: Some(3),
            auth: Some((Bytes::from("u"), Bytes::from("pw")))
        }
    );
    assert!(p(&["HELLO", "3", "AUTH", "u"]).is_err());
    assert!(p(&["HELLO", "3", "SETNAME"]).is_err());
    assert!(p(&["HELLO", "3", "NOPE"]).is_err());
    assert_eq!(
        p(&["AUTH", "pw"]).unwrap(),
        Request::Auth {
            user: None,
            password: Bytes::from("pw")
        }
    );
    assert_eq!(
        p(&["auth", "u", "pw"]).unwrap(),
        Request::Auth {
            user: Some(Bytes::from("u")),
            password: Bytes::from("pw")
        }
    );
    assert!(p(&["AUTH"]).is_err());
    assert!(p(&["AUTH", "a", "b", "c"]).is_err());
    assert_eq!(p(&["quit"]).unwrap(), Request::Quit);
    assert!(
        matches!(p(&["COMMAND", "COUNT"]).unwrap(), Request::Reply(sessiond_core::Reply::Int(n)) if n == COMMANDS.len() as i64)
    );
}

#[test]
fn every_table_entry_is_handled() {
    for spec in COMMANDS {
        let mut words = vec![spec.name.to_string()];
        // Enough plausible arguments for the minimum arity.
        let need = spec.arity.unsigned_abs() as usize;
        while words.len() < need {
            words.push("1".into());
        }
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        if let Err(e) = p(&refs) {
            assert!(
                !e.message.contains("not handled"),
                "{}: {}",
                spec.name,
                e.message
            );
        }
    }
}

/// `lookup` searches the names upper-cased on a 32-byte stack buffer: every
/// name must be upper case and fit, and be found in any case.
#[test]
fn every_command_is_found_by_its_name_in_any_case() {
    for spec in crate::native::COMMANDS {
        assert_eq!(spec.name, spec.name.to_ascii_uppercase());
        assert!(spec.name.len() <= 32, "{}", spec.name);
        for name in [spec.name.to_string(), spec.name.to_ascii_lowercase()] {
            let found = crate::native::lookup(name.as_bytes()).map(|s| s.name);
            assert_eq!(found, Some(spec.name));
        }
    }
    assert!(crate::native::lookup(b"SESSION.NOPE").is_none());
    assert!(crate::native::lookup(&[b'A'; 40]).is_none());
    assert!(crate::native::lookup(b"PING\0").is_none());
}
