use bytes::Bytes;
use sessiond_core::{Command, Error, LockMode, Reply, SessionId, StoreIf, StoreReply};

use super::*;

fn p(words: &[&str]) -> Result<RedisRequest, CommandError> {
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    parse(&args, &RedisKeys::default(), 7)
}

fn id(s: &str) -> SessionId {
    SessionId::new(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn phpredis_session_commands() {
    let get = p(&["GET", "PHPREDIS_SESSION:abc"]).unwrap();
    assert_eq!(
        get.commands,
        vec![Command::GetData {
            id: id("abc"),
            touch: false
        }]
    );
    let setex = p(&["SETEX", "PHPREDIS_SESSION:abc", "1440", "a|i:1;"]).unwrap();
    assert_eq!(
        setex.commands,
        vec![Command::Store {
            id: id("abc"),
            data: Bytes::from("a|i:1;"),
            timeout_ms: Some(1_440_000),
            condition: StoreIf::Always,
            flags: None,
            reply: StoreReply::Ok,
            key_form: 0,
        }]
    );
    let lock = p(&[
        "SET",
        "PHPREDIS_SESSION:abc_LOCK",
        "host|42",
        "NX",
        "PX",
        "30000",
    ])
    .unwrap();
    assert_eq!(
        lock.commands,
        vec![Command::LockOwned {
            id: id("abc"),
            owner: Bytes::from("host|42"),
            lease_ms: Some(30_000),
            wait_ms: None,
        }]
    );
    assert_eq!(lock.render, Render::LockAcquired);
    let sha = std::str::from_utf8(UNLOCK_SHA).unwrap();
    let unlock = p(&["EVALSHA", sha, "1", "PHPREDIS_SESSION:abc_LOCK", "host|42"]).unwrap();
    assert_eq!(
        unlock.commands,
        vec![Command::UnlockOwned {
            id: id("abc"),
            owner: Some(Bytes::from("host|42"))
        }]
    );
    let lua = std::str::from_utf8(UNLOCK_LUA).unwrap();
    assert_eq!(
        p(&["EVAL", lua, "1", "PHPREDIS_SESSION:abc_LOCK", "host|42"])
            .unwrap()
            .commands,
        unlock.commands
    );
    // Any other script is the connection's to resolve and run.
    assert_eq!(
        p(&["EVALSHA", "0000", "1", "k", "v"]).unwrap().render,
        Render::Script(Scripting::EvalSha {
            sha: Bytes::from("0000"),
            keys: vec![Bytes::from("k")],
            args: vec![Bytes::from("v")],
        })
    );
    assert_eq!(
        p(&["EVAL", "return 1", "0"]).unwrap().render,
        Render::Script(Scripting::Eval {
            source: Bytes::from("return 1"),
            keys: vec![],
            args: vec![],
        })
    );
    assert_eq!(
        p(&["EVAL", "return 1", "2", "k"]).unwrap_err().message,
        "Number of keys can't be greater than number of args"
    );
    assert_eq!(
        p(&["FCALL", "f", "-1"]).unwrap_err().message,
        "Number of keys can't be negative"
    );
}

#[test]
fn replies_render_like_redis() {
    let keys = RedisKeys::default();
    let missing = || Err(Error::NoSession(id("x")));
    assert_eq!(
        render(&Render::NilIfMissing, &keys, vec![missing()]),
        Ok(Reply::Nil)
    );
    assert_eq!(
        render(&Render::Ttl, &keys, vec![missing()]),
        Ok(Reply::Int(-2))
    );
    assert_eq!(
        render(&Render::IntOrZero, &keys, vec![missing()]),
        Ok(Reply::Int(0))
    );
    assert_eq!(
        render(&Render::IntOrZero, &keys, vec![Ok(Reply::Int(1))]),
        Ok(Reply::Int(1))
    );
    let locked = Err(Error::Locked {
        id: id("x"),
        mode: LockMode::Write,
        waited_ms: 0,
    });
    assert_eq!(
        render(&Render::LockAcquired, &keys, vec![locked]),
        Ok(Reply::Nil)
    );
    assert_eq!(
        render(&Render::LockAcquired, &keys, vec![Ok(Reply::Int(9))]),
        Ok(Reply::Ok)
    );
    assert_eq!(
        render(
            &Render::Count,
            &keys,
            vec![
                Ok(Reply::Ok),
                missing(),
                Ok(Reply::Int(1)),
                Ok(Reply::Int(0))
            ]
        ),
        Ok(Reply::Int(2))
    );
    assert_eq!(
        render(&Render::Type, &keys, vec![Ok(Reply::Int(0))]),
        Ok(Reply::Status("none"))
    );
    // Each key as written: the default form, then no prefix.
    let ids = Ok(Reply::Keys {
        cursor: Bytes::from("0"),
        keys: vec![(id("a1"), 0), (id("b2"), 0), (id("sess:a3"), 1)],
    });
    assert_eq!(
        render(
            &Render::Keys {
                pattern: Bytes::from("*a*"),
                scan: false
            },
            &keys,
            vec![ids]
        ),
        Ok(Reply::Array(vec![
            Reply::bulk("PHPREDIS_SESSION:a1"),
            Reply::bulk("sess:a3")
        ]))
    );
}

#[test]
fn set_options_and_errors() {
    let r = p(&["SET", "k", "v", "XX", "GET", "EX", "10"]).unwrap();
    assert_eq!(
        r.commands,
        vec![Command::Store {
            id: id("k"),
            data: Bytes::from("v"),
            timeout_ms: Some(10_000),
            condition: StoreIf::Present,
            flags: None,
            reply: StoreReply::Old,
            key_form: 1,
        }]
    );
    assert_eq!(
        p(&["SET", "k", "v", "NX", "XX"]).unwrap_err().message,
        "syntax error"
    );
    assert_eq!(
        p(&["SET", "k", "v", "EX", "0"]).unwrap_err().message,
        "invalid expire time in 'set' command"
    );
    assert_eq!(
        p(&["SETEX", "k", "x", "v"]).unwrap_err().message,
        "value is not an integer or out of range"
    );
    assert_eq!(
        p(&["GET"]).unwrap_err().message,
        "wrong number of arguments for 'get' command"
    );
    assert_eq!(
        p(&["FLUSHDB", "ASYNC"]).unwrap().commands,
        vec![Command::FlushAll]
    );
    assert_eq!(p(&["FLUSHALL", "NOW"]).unwrap_err().message, "syntax error");
    assert_eq!(
        p(&["SELECT", "3"]).unwrap().render,
        Render::Fixed(Reply::Ok)
    );
}

/// The RESP door looks a name up in the Redis table first, then the native
/// one: that order is free only while no name is in both.
#[test]
fn no_name_is_both_a_redis_and_a_native_command() {
    for spec in crate::native::COMMANDS {
        assert!(
            !is_redis_command(spec.name.as_bytes()),
            "{} is in both tables",
            spec.name
        );
    }
    for name in ["get", "Set", "MULTI", "exec", "evalsha", "PSETEX"] {
        assert!(is_redis_command(name.as_bytes()), "{name}");
    }
    for name in [
        "",
        "GE",
        "GETT",
        "GET\0",
        "SESSION.GET",
        "averyveryverylongname",
    ] {
        assert!(!is_redis_command(name.as_bytes()), "{name:?}");
    }
    // Every name is short enough to be found.
    for name in COMMANDS
        .iter()
        .flat_map(|c| c.names)
        .chain(TRANSACTION_WORDS)
    {
        assert!(
            is_redis_command(name.to_ascii_lowercase().as_bytes()),
            "{name}"
        );
    }
}
