//! Lua plugins (docs/plugins.md): `SESSION.PLUGIN` runs a function of the
//! plugins directory on a session, all or nothing, inside its budgets and
//! sandbox; a reload with a broken file keeps the old functions. Runs on
//! every backend (the functions run on a cluster node's working copy).

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sessiond_client::{Client, CreateOptions, RespValue};
use sessiond_server::{Config, Role, ScriptLimits, Storage};

use crate::common::{TempDir, TestServer};

const VISITS: &str = r#"
-- Counts a session's visits and remembers the last page.
sessiond.register("visit", function(s, page)
  local n = s:incr("visits")
  s:set("last_page", page)
  return n
end)

sessiond.register("fail_after_write", function(s)
  s:set("visits", "999")
  s:set_data("gone")
  error("changed my mind")
end)

sessiond.register("spin", function(s)
  while true do end
end)

-- Catching its own stop does not let a function go on.
sessiond.register("spin_caught", function(s)
  while true do pcall(function() while true do end end) end
end)

-- Longer than a call may run in place on a request worker: it is run again,
-- whole, off the workers, and counts once.
sessiond.register("slow_incr", function(s)
  local n = s:incr("n")
  local x = 0
  for i = 1, 300000 do x = x + i end
  return n
end)

sessiond.register("hog", function(s)
  local t = {}
  while true do t[#t + 1] = string.rep("x", 65536) .. #t end
end)

sessiond.register("shell", function(s)
  return os.execute("touch " .. s.id)
end)

sessiond.register("set_global", function(s)
  leaked = 1
end)
"#;

async fn start(dir: &Path, limits: ScriptLimits) -> TestServer {
    TestServer::start_with(Config {
        storage: Storage::Memory,
        plugins_dir: dir.to_path_buf(),
        scripts: limits,
        ..Config::default()
    })
    .await
}

async fn plugin(c: &mut Client, args: &[&str]) -> Result<RespValue, sessiond_client::Error> {
    let mut all = vec!["SESSION.PLUGIN"];
    all.extend_from_slice(args);
    c.call(&all).await
}

fn bulk(s: &str) -> RespValue {
    RespValue::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn message(e: &sessiond_client::Error) -> String {
    e.to_string()
}

#[tokio::test]
async fn a_plugin_changes_the_session_it_is_called_on() {
    let dir = TempDir::new("plugins");
    std::fs::write(dir.0.join("visits.lua"), VISITS).unwrap();
    let s = start(&dir.0, ScriptLimits::default()).await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    assert_eq!(
        plugin(&mut c, &["a", "visit", "/home"]).await.unwrap(),
        RespValue::Int(1)
    );
    assert_eq!(
        plugin(&mut c, &["a", "visit", "/cart"]).await.unwrap(),
        RespValue::Int(2)
    );
    assert_eq!(
        c.get("a", "last_page").await.unwrap(),
        Some(Bytes::from("/cart"))
    );
    assert_eq!(c.get("a", "visits").await.unwrap(), Some(Bytes::from("2")));
    // A session that is not there is the engine's own refusal.
    let e = plugin(&mut c, &["nobody", "visit", "/"]).await.unwrap_err();
    assert_eq!(e.code(), Some("NOSESSION"), "{e}");
    // A function that is not loaded.
    let e = plugin(&mut c, &["a", "nope"]).await.unwrap_err();
    assert_eq!(e.code(), Some("NOSCRIPT"), "{e}");
    assert!(message(&e).contains("'nope'"), "{e}");
    // Counted per function: two calls, and the one that found no session.
    let (_, metrics) = crate::http::get(&s, "/metrics", None).await;
    assert!(
        metrics.contains("sessiond_plugin_calls_total{function=\"visit\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sessiond_plugin_errors_total{function=\"visit\"} 1"),
        "{metrics}"
    );
    // A name nobody loaded is not counted: clients cannot grow the table.
    assert!(!metrics.contains("function=\"nope\""), "{metrics}");
}

#[tokio::test]
async fn a_function_that_fails_keeps_nothing_it_did() {
    let dir = TempDir::new("plugins");
    std::fs::write(dir.0.join("visits.lua"), VISITS).unwrap();
    let s = start(&dir.0, ScriptLimits::default()).await;
    let mut c = s.client().await;
    c.create(
        "a",
        CreateOptions {
            data: Some(b"kept"),
            ..CreateOptions::default()
        },
    )
    .await
    .unwrap();
    plugin(&mut c, &["a", "visit", "/home"]).await.unwrap();
    let e = plugin(&mut c, &["a", "fail_after_write"])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ERR"), "{e}");
    assert!(message(&e).contains("changed my mind"), "{e}");
    assert!(message(&e).contains("nothing it did was kept"), "{e}");
    assert_eq!(c.get("a", "visits").await.unwrap(), Some(Bytes::from("1")));
    assert_eq!(c.get_data("a").await.unwrap(), Bytes::from("kept"));
}

/// An endless loop is stopped at its budget with an error that names the
/// limit, also when it catches its own stop; meanwhile other clients are
/// answered (PING latency measured through the runaway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_function_is_stopped_and_others_are_served_meanwhile() {
    let dir = TempDir::new("plugins");
    std::fs::write(dir.0.join("visits.lua"), VISITS).unwrap();
    let s = start(
        &dir.0,
        ScriptLimits {
            max_instructions: u64::MAX,
            max_time_ms: 1_500,
            ..ScriptLimits::default()
        },
    )
    .await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    for name in ["spin", "spin_caught"] {
        let mut runaway = s.client().await;
        let started = Instant::now();
        let call = tokio::spawn(async move { plugin(&mut runaway, &["a", name]).await });
        let mut other = s.client().await;
        let mut worst = Duration::ZERO;
        let mut pings = 0;
        while !call.is_finished() {
            let t = Instant::now();
            assert_eq!(
                other.call(&["PING"]).await.unwrap(),
                RespValue::Simple("PONG".into())
            );
            worst = worst.max(t.elapsed());
            pings += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let e = call.await.unwrap().unwrap_err();
        let took = started.elapsed();
        eprintln!("{name}: stopped after {took:?}; {pings} PINGs meanwhile, the slowest {worst:?}");
        assert!(message(&e).contains("scripts.max_time_ms"), "{e}");
        assert!(took >= Duration::from_millis(1_400), "{took:?}");
        assert!(pings >= 10, "{pings} PINGs in {took:?}");
        assert!(worst < Duration::from_millis(500), "a PING took {worst:?}");
    }
    // The instruction budget, on its default.
    drop(s);
    let s = start(&dir.0, ScriptLimits::default()).await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    let e = plugin(&mut c, &["a", "spin"]).await.unwrap_err();
    assert!(message(&e).contains("scripts.max_instructions"), "{e}");
    // The server goes on, and so do functions.
    assert_eq!(
        plugin(&mut c, &["a", "visit", "/"]).await.unwrap(),
        RespValue::Int(1)
    );
}

#[tokio::test]
async fn a_memory_hungry_function_is_stopped_at_its_limit() {
    let dir = TempDir::new("plugins");
    std::fs::write(dir.0.join("visits.lua"), VISITS).unwrap();
    let s = start(&dir.0, ScriptLimits::default()).await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    let e = plugin(&mut c, &["a", "hog"]).await.unwrap_err();
    assert!(message(&e).contains("scripts.max_memory_bytes"), "{e}");
    assert_eq!(
        plugin(&mut c, &["a", "visit", "/"]).await.unwrap(),
        RespValue::Int(1)
    );
}

#[tokio::test]
async fn the_sandbox_has_no_os_and_no_writable_globals() {
    let dir = TempDir::new("plugins");
    std::fs::write(dir.0.join("visits.lua"), VISITS).unwrap();
    let s = start(&dir.0, ScriptLimits::default()).await;
    let mut c = s.client().await;
    let target = dir.0.join("pwned");
    let id = target.to_string_lossy().to_string();
    c.create(&id, CreateOptions::default()).await.unwrap();
    let e = plugin(&mut c, &[&id, "shell"]).await.unwrap_err();
    assert!(message(&e).contains("no global 'os'"), "{e}");
    assert!(!target.exists(), "os.execute ran");
    let e = plugin(&mut c, &[&id, "set_global"]).await.unwrap_err();
    assert!(
        message(&e).contains("may not set the global 'leaked'"),
        "{e}"
    );
}

/// SIGHUP reloads the directory: a file that fails to load is reported
/// and its previous version stays; a good one replaces it.
#[tokio::test]
async fn a_reload_with_a_broken_file_keeps_the_old_functions() {
    if crate::common::on_cluster_pass(
        "a_reload_with_a_broken_file_keeps_the_old_functions",
        "one SIGHUP per process is enough, and the reload does not touch the store",
    ) {
        return;
    }
    let dir = TempDir::new("plugins");
    let file = dir.0.join("hello.lua");
    std::fs::write(
        &file,
        r#"sessiond.register("hello", function(s) return "v1" end)"#,
    )
    .unwrap();
    let s = start(&dir.0, ScriptLimits::default()).await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    assert_eq!(plugin(&mut c, &["a", "hello"]).await.unwrap(), bulk("v1"));

    let hangup = || {
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -HUP");
    };
    // Broken: the old version stays.
    std::fs::write(
        &file,
        "sessiond.register(\"hello\", function(s) return 'v2' en",
    )
    .unwrap();
    hangup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(plugin(&mut c, &["a", "hello"]).await.unwrap(), bulk("v1"));
    // Mended: the new version is called.
    std::fs::write(
        &file,
        r#"sessiond.register("hello", function(s) return "v2" end)"#,
    )
    .unwrap();
    hangup();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = plugin(&mut c, &["a", "hello"]).await.unwrap();
        if got == bulk("v2") {
            break;
        }
        assert!(Instant::now() < deadline, "still {got:?} after the reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The worked examples of docs/plugins.md, as they are in docs/plugins/.
#[tokio::test]
async fn the_documented_examples_run() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/plugins");
    let clock = std::sync::Arc::new(sessiond_core::ManualClock::new(1_700_000_000_000));
    let s = TestServer::start_with_clock(
        Config {
            storage: Storage::Memory,
            plugins_dir: dir,
            ..Config::default()
        },
        clock.clone(),
    )
    .await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();

    // Two calls a minute: then refused, until the window has passed.
    for left in [1, 0, -1, -1] {
        let got = plugin(&mut c, &["a", "rate_limit", "2", "60"])
            .await
            .unwrap();
        assert_eq!(got, RespValue::Int(left));
    }
    clock.advance(60_000);
    assert_eq!(
        plugin(&mut c, &["a", "rate_limit", "2", "60"])
            .await
            .unwrap(),
        RespValue::Int(1)
    );

    // Two different items fit; a third is refused and changes nothing.
    for (item, qty) in [("sku-1", 1), ("sku-1", 2), ("sku-2", 1)] {
        let got = plugin(&mut c, &["a", "cart_add", item, "2"]).await.unwrap();
        assert_eq!(got, RespValue::Int(qty), "{item}");
    }
    let e = plugin(&mut c, &["a", "cart_add", "sku-3", "2"])
        .await
        .unwrap_err();
    assert!(message(&e).contains("the cart is full"), "{e}");
    assert_eq!(
        c.get("a", "cart.items").await.unwrap(),
        Some(Bytes::from("2"))
    );
    assert_eq!(c.get("a", "cart.sku-3").await.unwrap(), None);

    // The last three pages, newest first.
    let mut last = RespValue::Nil;
    for page in ["/", "/shop", "/cart", "/checkout"] {
        last = plugin(&mut c, &["a", "visit_page", page, "3"])
            .await
            .unwrap();
    }
    assert_eq!(
        last,
        RespValue::Array(vec![bulk("/checkout"), bulk("/cart"), bulk("/shop")])
    );
    assert_eq!(
        c.get("a", "pages").await.unwrap(),
        Some(Bytes::from("/checkout\n/cart\n/shop"))
    );
}

/// HTTP_SessionServer's "your own commands": on the line protocol a word
/// that names a function runs it on the open session — the same session,
/// and the same function, as SESSION.PLUGIN, HTTP and FCALL reach.
#[tokio::test]
async fn the_line_protocol_runs_functions_as_its_own_commands() {
    let dir = TempDir::new("plugins");
    std::fs::write(dir.0.join("visits.lua"), VISITS).unwrap();
    std::fs::write(
        dir.0.join("pages.lua"),
        r#"sessiond.register("pages", function(s) return { s:get("last_page"), "a b" } end)"#,
    )
    .unwrap();
    let s = start(&dir.0, ScriptLimits::default()).await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    plugin(&mut c, &["a", "visit", "/home"]).await.unwrap();

    let mut l = crate::line_protocol::Line::connect(s.line.port()).await;
    assert!(l
        .ask("visit /x")
        .await
        .starts_with("err no session is open"));
    assert_eq!(l.ask("open a r").await, "ok");
    assert!(l
        .ask("visit /x")
        .await
        .starts_with("err the session is open read-only"));
    assert_eq!(l.ask("close").await, "ok");
    assert_eq!(l.ask("open a w").await, "ok");
    // Params are percent-decoded like values.
    assert_eq!(l.ask("visit /cart%20page").await, "ok 2");
    assert_eq!(l.ask("pages").await, "ok %2Fcart%20page a%20b");
    let failed = l.ask("fail_after_write").await;
    assert!(
        failed.starts_with("err function 'fail_after_write' failed"),
        "{failed}"
    );
    assert!(l
        .ask("nope")
        .await
        .starts_with("err unknown command 'nope'"));
    assert_eq!(l.ask("close").await, "ok");
    assert_eq!(
        c.get("a", "last_page").await.unwrap(),
        Some(Bytes::from("/cart page"))
    );
    assert_eq!(c.get("a", "visits").await.unwrap(), Some(Bytes::from("2")));

    // The same function on the same session over HTTP and the Redis
    // door's FCALL (its key naming the session).
    let (status, body) = crate::http::send(
        &s,
        "POST",
        "/api/v1/sessions/a/plugins/visit",
        None,
        r#"{"params": ["/http"]}"#,
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"result":3}"#));
    assert_eq!(
        c.call(&["FCALL", "visit", "1", "PHPREDIS_SESSION:a", "/fcall"])
            .await
            .unwrap(),
        RespValue::Int(4)
    );
    assert_eq!(
        c.get("a", "last_page").await.unwrap(),
        Some(Bytes::from("/fcall"))
    );
}

/// HTTP runs a function as SESSION.PLUGIN does, on the same session and
/// under the caller's role; `sessiond ctl reload` (an admin's) reads the
/// directory again and reports a file that fails, whose functions stay
/// out while the others load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_calls_functions_and_ctl_reloads_them() {
    let dir = TempDir::new("plugins");
    std::fs::write(dir.0.join("visits.lua"), VISITS).unwrap();
    std::fs::write(
        dir.0.join("pages.lua"),
        r#"sessiond.register("pages", function(s) return { s:get("last_page"), 7, false } end)"#,
    )
    .unwrap();
    let user = |name: &str, role| crate::common::user(name, &format!("pw-{name}"), "shop", role);
    let s = TestServer::start_with(Config {
        storage: Storage::Memory,
        plugins_dir: dir.0.clone(),
        users: vec![
            user("op", Role::Admin),
            user("web", Role::Readwrite),
            user("ro", Role::Readonly),
        ],
        ..Config::default()
    })
    .await;
    let mut c = s.client().await;
    c.auth("web", "pw-web").await.unwrap();
    c.create("a", CreateOptions::default()).await.unwrap();
    assert_eq!(
        plugin(&mut c, &["a", "visit", "/home"]).await.unwrap(),
        RespValue::Int(1)
    );

    let web = Some("web:pw-web");
    let post = |name: &str, body: &'static str, auth: Option<&'static str>| {
        let path = format!("/api/v1/sessions/a/plugins/{name}");
        let s = &s;
        async move {
            let (status, body) = crate::http::send(s, "POST", &path, auth, body).await;
            let json: serde_json::Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{status} {body:?} is not JSON: {e}"));
            (status, json)
        }
    };
    let (status, body) = post("visit", r#"{"params": ["/api"]}"#, web).await;
    assert_eq!((status, &body), (200, &serde_json::json!({ "result": 2 })));
    assert_eq!(
        c.get("a", "last_page").await.unwrap(),
        Some(Bytes::from("/api"))
    );
    // No body: no params. A list is an array; false, like nil, is null.
    let (status, body) = post("pages", "", web).await;
    assert_eq!(
        (status, &body),
        (200, &serde_json::json!({ "result": ["/api", 7, null] }))
    );
    // A readonly user may not run functions (they may write).
    let (status, body) = post("visit", r#"{"params": ["/ro"]}"#, Some("ro:pw-ro")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("NOPERM")),
        "{body}"
    );
    // Unknown, failing, malformed.
    let (status, body) = post("nope", "", web).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("NOSCRIPT")),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("sessiond ctl reload"),
        "{body}"
    );
    let (status, body) = post("fail_after_write", "", web).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("changed my mind"),
        "{body}"
    );
    let (status, body) = post("visit", r#"{"param": ["/x"]}"#, web).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("params"), "{body}");
    assert_eq!(c.get("a", "visits").await.unwrap(), Some(Bytes::from("2")));

    // A new file and a broken one, then `ctl reload`.
    std::fs::write(
        dir.0.join("hello.lua"),
        r#"sessiond.register("hello", function(s) return "hi " .. s.id end)"#,
    )
    .unwrap();
    std::fs::write(
        dir.0.join("broken.lua"),
        "sessiond.register(\"x\", function(s) en",
    )
    .unwrap();
    let addr = s.addr.to_string();
    let reload = |user: &'static str| {
        let addr = addr.clone();
        async move {
            let password = format!("pw-{user}");
            crate::ctl_import::sessiond(
                &["ctl", "--addr", &addr, "--user", user, "reload"],
                &[("SESSIOND_PASSWORD", &password)],
            )
            .await
        }
    };
    let out = reload("op").await;
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        said.contains("10 functions loaded: fail_after_write hello hog pages"),
        "{said}"
    );
    assert!(
        said.contains("not loaded: ") && said.contains("broken.lua"),
        "{said}"
    );
    let (status, body) = post("hello", "", web).await;
    assert_eq!(
        (status, &body),
        (200, &serde_json::json!({ "result": "hi a" }))
    );
    // Reloading is an admin's.
    let out = reload("web").await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not allow"),
        "{out:?}"
    );
    s.stop().await;
}

/// A function that outlasts the slice a call gets in place (on a request
/// worker) is run again off the workers: its effect and its answer are
/// those of one run.
#[tokio::test]
async fn a_call_too_long_to_run_in_place_counts_once() {
    let dir = TempDir::new("plugins");
    std::fs::write(dir.0.join("visits.lua"), VISITS).unwrap();
    let s = start(&dir.0, ScriptLimits::default()).await;
    let mut c = s.client().await;
    c.create("a", CreateOptions::default()).await.unwrap();
    for n in 1..=3 {
        assert_eq!(
            plugin(&mut c, &["a", "slow_incr"]).await.unwrap(),
            RespValue::Int(n)
        );
    }
    assert_eq!(c.get("a", "n").await.unwrap(), Some(Bytes::from("3")));
    let (_, metrics) = crate::http::get(&s, "/metrics", None).await;
    assert!(
        metrics.contains("sessiond_plugin_calls_total{function=\"slow_incr\"} 3"),
        "{metrics}"
    );
}

/// `sessiond.find` pages through the sessions where a variable has a value,
/// a bounded number at a time, from inside a function: here, the other
/// sessions of the caller's user. A cluster node refuses it (its sessions
/// are in the database), saying what to do instead.
#[tokio::test]
async fn a_function_finds_sessions_by_variable_a_page_at_a_time() {
    let dir = TempDir::new("plugins");
    std::fs::write(
        dir.0.join("others.lua"),
        r#"sessiond.register("other_sessions", function(s)
             local found, cursor = {}, "0"
             repeat
               local page
               page, cursor = sessiond.find("user", s:get("user"), 2, cursor)
               for _, id in ipairs(page) do
                 if id ~= s.id then found[#found + 1] = id end
               end
             until cursor == "0"
             table.sort(found)
             return found
           end)"#,
    )
    .unwrap();
    let s = start(&dir.0, ScriptLimits::default()).await;
    let mut c = s.client().await;
    for (id, user) in [("a1", "1"), ("a2", "1"), ("a3", "1"), ("b1", "2")] {
        c.create(id, CreateOptions::default()).await.unwrap();
        c.set(id, "user", user).await.unwrap();
    }
    let got = plugin(&mut c, &["a2", "other_sessions"]).await;
    if std::env::var("SESSIOND_TEST_BACKEND").is_ok_and(|b| b == "postgres" || b == "mysql") {
        let e = got.unwrap_err();
        assert!(
            message(&e).contains("not available on a cluster node"),
            "{e}"
        );
        return;
    }
    assert_eq!(got.unwrap(), RespValue::Array(vec![bulk("a1"), bulk("a3")]));
    assert_eq!(
        plugin(&mut c, &["b1", "other_sessions"]).await.unwrap(),
        RespValue::Array(vec![])
    );
}
