//! Redis scripting on sessions (docs/plugins.md, "Redis scripts"): EVAL,
//! EVALSHA, SCRIPT and FCALL answer as real redis-server does, the same
//! scripts run side by side on both; the deliberate differences (all or
//! nothing, declared keys only) are asserted as such. Runs on every
//! backend.

use std::process::Command;

use bytes::Bytes;
use sessiond_client::{CreateOptions, RespValue as V};
use sessiond_server::{Config, Storage};

use crate::common::{self, TempDir, TestServer};
use crate::redis_compare::{both, call};

fn bulk(s: &str) -> V {
    V::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

/// Rate limiters and a lock release as real applications send them,
/// through redis-py's Script objects (EVALSHA, NOSCRIPT, SCRIPT LOAD), on
/// sessiond and on redis-server: the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_world_scripts_through_redis_py_answer_as_redis_does() {
    let mut probe = Command::new("python3");
    if !common::process::tool_available(
        probe.args(["-c", "import redis"]),
        "python3 with redis-py (pip install redis)",
    ) {
        return;
    }
    let script = |redis: u16, _memcached: u16| {
        let mut c = Command::new("python3");
        c.args([
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/python/redis_py_scripts.py"
            ),
            &redis.to_string(),
        ]);
        c
    };
    let Some((_server, ours, real)) = common::ours_and_real(script).await else {
        return;
    };
    let json = |out: Vec<u8>| -> serde_json::Value { serde_json::from_slice(&out).expect("JSON") };
    let (ours, real) = (json(ours), json(real));
    assert_eq!(ours, real, "sessiond vs redis-server");
    // And what both answered is what the scripts are for.
    assert_eq!(ours["fixed"], serde_json::json!([1, 2, 3]));
    assert_eq!(ours["fixed_ttl_set"], true);
    assert_eq!(ours["sliding"], serde_json::json!([1, 1, 1, 0, 0]));
    assert_eq!(ours["sliding_count"], "3");
    assert_eq!(
        (&ours["release_other"], &ours["still_held"]),
        (&serde_json::json!(0), &serde_json::json!("owner-a"))
    );
    assert_eq!(
        (&ours["release_own"], &ours["gone"]),
        (&serde_json::json!(1), &serde_json::json!(0))
    );
    assert_eq!(ours["shapes"][2], 3, "a number loses its fraction");
    assert_eq!(ours["shapes"][4], serde_json::Value::Null, "false is nil");
    assert_eq!(ours["call_error"], "value", "redis-py drops the ERR");
    assert_eq!(ours["returned_error"], "MYERR");
    assert_eq!(
        ours["noscript"], "No",
        "redis-py drops NOSCRIPT: No matching script"
    );
    assert_eq!(
        (&ours["sha_known"], &ours["flushed"]),
        (&serde_json::json!(true), &serde_json::json!(false))
    );
}

/// Script errors, arity, the cache and reply shapes, command by command
/// on both servers (errors compared by their code).
#[tokio::test]
async fn eval_and_the_script_cache_answer_as_redis_does() {
    let Some(mut pair) = both().await else {
        return;
    };
    // The SHA1 as redis-server computes it; its cache emptied again.
    let V::Bulk(sha) = call(
        &mut pair.redis,
        &["SCRIPT", "LOAD", "return ARGV[1] .. KEYS[1]"],
    )
    .await
    else {
        panic!("SCRIPT LOAD answered no SHA");
    };
    let sha = String::from_utf8(sha.to_vec()).unwrap();
    call(&mut pair.redis, &["SCRIPT", "FLUSH"]).await;
    pair.same(&[
        &["EVAL", "return 1", "0"],
        &["EVAL", "return ARGV[1] .. KEYS[1]", "1", "k", "v"],
        &["EVAL", "return {1, 'a', {2, false}, true, 2.5}", "0"],
        &["EVAL", "return {ok = 'FINE'}", "0"],
        &["EVAL", "return {err = 'MYCODE my message'}", "0"],
        &["EVAL", "return redis.error_reply('NOPE x')", "0"],
        &["EVAL", "return nil", "0"],
        &["EVAL", "error('boom')", "0"],
        &["EVAL", "this is not lua", "0"],
        &["EVAL", "return 1", "2", "k"],
        &["EVAL", "return 1", "-1"],
        &["EVAL", "return 1"],
        &[
            "EVAL",
            "return redis.call('set', KEYS[1], ARGV[1])",
            "1",
            "s",
            "v1",
        ],
        &["EVAL", "return redis.call('get', KEYS[1])", "1", "s"],
        &["EVAL", "return redis.call('get', KEYS[1])", "1", "missing"],
        &["EVAL", "return redis.call('incr', KEYS[1])", "1", "s"],
        &[
            "EVAL",
            "return redis.pcall('incr', KEYS[1])['err']",
            "1",
            "s",
        ],
        &["EVAL", "return redis.call('nosuchcommand')", "0"],
        &[
            "EVAL",
            "return redis.call('exists', KEYS[1], KEYS[2])",
            "2",
            "s",
            "missing",
        ],
        &[
            "EVAL",
            "return redis.call('mget', KEYS[1], KEYS[2])",
            "2",
            "s",
            "missing",
        ],
        &[
            "EVAL",
            "redis.call('setex', KEYS[1], 100, 'x'); return redis.call('ttl', KEYS[1])",
            "1",
            "t",
        ],
        &["EVAL", "return redis.call('del', KEYS[1])", "1", "t"],
        &["EVAL", "x = 1", "0"],
        &["EVALSHA", &sha, "1", "k", "v"],
        &[
            "SCRIPT",
            "EXISTS",
            &sha,
            "0000000000000000000000000000000000000000",
        ],
        &["SCRIPT", "LOAD", "return ARGV[1] .. KEYS[1]"],
        &["SCRIPT", "LOAD", "this is not lua"],
        &["EVALSHA", &sha, "1", "k", "v"],
        &["EVALSHA", &sha.to_uppercase(), "1", "k", "v"],
        &["SCRIPT", "FLUSH"],
        &["SCRIPT", "EXISTS", &sha],
        &["EVALSHA", &sha, "1", "k", "v"],
        &["SCRIPT", "KILL"],
    ])
    .await;
    // EVAL keeps the script for EVALSHA, as Redis does.
    pair.same(&[
        &["EVAL", "return ARGV[1] .. KEYS[1]", "1", "k", "v"],
        &["EVALSHA", &sha, "1", "k", "v"],
    ])
    .await;
    // Scripts cannot be queued in a transaction here.
    assert_eq!(
        call(&mut pair.ours, &["MULTI"]).await,
        V::Simple("OK".into())
    );
    assert_eq!(
        call(&mut pair.ours, &["EVAL", "return 1", "0"]).await,
        V::Error("ERR".into())
    );
    assert_eq!(
        call(&mut pair.ours, &["EXEC"]).await,
        V::Error("EXECABORT".into())
    );
}

/// The deliberate differences from Redis: a script that fails keeps
/// nothing it wrote (Redis keeps the writes made before the error), and a
/// script works only on the keys it declares (Redis lets a script reach
/// any key outside a cluster).
#[tokio::test]
async fn a_failing_script_keeps_nothing_and_undeclared_keys_are_refused() {
    let Some(mut pair) = both().await else {
        return;
    };
    let failing = "redis.call('set', KEYS[1], 'changed'); return redis.call('incr', KEYS[1])";
    for c in [&mut pair.ours, &mut pair.redis] {
        assert_eq!(call(c, &["SET", "k", "kept"]).await, V::Simple("OK".into()));
        assert_eq!(
            call(c, &["EVAL", failing, "1", "k"]).await,
            V::Error("ERR".into())
        );
    }
    assert_eq!(call(&mut pair.ours, &["GET", "k"]).await, bulk("kept"));
    assert_eq!(call(&mut pair.redis, &["GET", "k"]).await, bulk("changed"));

    let undeclared = "return redis.call('get', 'other')";
    assert_eq!(
        call(&mut pair.redis, &["EVAL", undeclared, "0"]).await,
        V::Nil
    );
    let e = pair
        .ours
        .call(&["EVAL", undeclared, "0"])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("declares in KEYS"), "{e}");
    // Lock keys are the sessions' locks: a script may not take them.
    let e = pair
        .ours
        .call(&[
            "EVAL",
            "return redis.call('set', KEYS[1], 'me', 'NX', 'PX', '1000')",
            "1",
            "k_LOCK",
        ])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("lock"), "{e}");
}

/// A script that never ends is stopped at its budget with an error naming
/// it, nothing it did kept, and the connection goes on.
#[tokio::test]
async fn a_runaway_script_is_stopped_at_its_budget() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let e = c
        .call(&[
            "EVAL",
            "redis.call('set', KEYS[1], 'x'); while true do end",
            "1",
            "k",
        ])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("scripts.max_instructions"), "{e}");
    assert!(
        e.to_string().contains("nothing the script did was kept"),
        "{e}"
    );
    assert_eq!(c.call(&["EXISTS", "k"]).await.unwrap(), V::Int(0));
    assert_eq!(c.call(&["EVAL", "return 7", "0"]).await.unwrap(), V::Int(7));
}

/// A Redis function library, as FUNCTION LOAD takes it on redis-server,
/// loads unchanged from sessiond's plugins directory; FCALL answers the
/// same on both. FCALL also calls a sessiond function on the first key's
/// session — the session SESSION.PLUGIN, the line protocol and HTTP reach.
#[tokio::test]
async fn fcall_runs_a_redis_library_and_plugin_functions() {
    let Some((_redis, port)) = common::process::start_peer(common::process::Peer::Redis) else {
        return;
    };
    let library = "#!lua name=limits\n\
        local function hit(keys, args)\n\
          local n = redis.call('INCR', keys[1])\n\
          if n == 1 then redis.call('EXPIRE', keys[1], args[1]) end\n\
          return n\n\
        end\n\
        redis.register_function('hit', hit)\n\
        redis.register_function{function_name = 'peek', callback = function(keys) return redis.call('GET', keys[1]) end, flags = {'no-writes'}}\n";
    let dir = TempDir::new("plugins");
    std::fs::write(dir.0.join("limits.lua"), library).unwrap();
    std::fs::write(
        dir.0.join("visits.lua"),
        r#"sessiond.register("visit", function(s, page)
             local n = s:incr("visits")
             s:set("last_page", page)
             return n
           end)"#,
    )
    .unwrap();
    let s = TestServer::start_with(Config {
        storage: Storage::Memory,
        plugins_dir: dir.0.clone(),
        ..Config::default()
    })
    .await;
    let mut ours = s.client().await;
    let mut redis =
        sessiond_client::Client::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap();
    assert_eq!(
        call(&mut redis, &["FUNCTION", "LOAD", library]).await,
        bulk("limits")
    );
    crate::redis_compare::same(
        &mut ours,
        &mut redis,
        &[
            &["FCALL", "hit", "1", "rl:u1", "60"],
            &["FCALL", "hit", "1", "rl:u1", "60"],
            &["FCALL", "peek", "1", "rl:u1"],
            &["FCALL", "nosuch", "0"],
            &["FCALL", "hit", "2", "rl:u1"],
        ],
    )
    .await;
    let ttl = call(&mut ours, &["TTL", "rl:u1"]).await;
    assert!(matches!(ttl, V::Int(1..=60)), "{ttl:?}");

    // A sessiond function through FCALL: the key names its session.
    ours.create("a", CreateOptions::default()).await.unwrap();
    assert_eq!(
        call(
            &mut ours,
            &["FCALL", "visit", "1", "PHPREDIS_SESSION:a", "/fcall"]
        )
        .await,
        V::Int(1)
    );
    assert_eq!(
        call(&mut ours, &["SESSION.PLUGIN", "a", "visit", "/native"]).await,
        V::Int(2)
    );
    assert_eq!(
        ours.get("a", "last_page").await.unwrap(),
        Some(Bytes::from("/native"))
    );
    let e = ours.call(&["FCALL", "visit", "0"]).await.unwrap_err();
    assert!(e.to_string().contains("first key"), "{e}");
    // A Redis function is FCALL's only.
    let e = ours
        .call(&["SESSION.PLUGIN", "a", "hit", "60"])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("call it with FCALL"), "{e}");
    // FUNCTION LOAD says where functions come from.
    let e = ours.call(&["FUNCTION", "LOAD", library]).await.unwrap_err();
    assert!(e.to_string().contains("plugins directory"), "{e}");
    // Counted: each function by name, every EVAL as "(eval)".
    ours.call(&["EVAL", "return 1", "0"]).await.unwrap();
    let (_, metrics) = crate::http::get(&s, "/metrics", None).await;
    for line in [
        "sessiond_plugin_calls_total{function=\"hit\"} 2",
        "sessiond_plugin_calls_total{function=\"visit\"} 3",
        "sessiond_plugin_errors_total{function=\"visit\"} 1",
        "sessiond_plugin_calls_total{function=\"(eval)\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}
