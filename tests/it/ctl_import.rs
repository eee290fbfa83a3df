//! `sessiond import` and `sessiond ctl`, run as the real binary against a
//! real server: a PHP `files` directory (nested layout) imported without
//! losing a byte and idempotently; list, find, show, destroy, stats, top,
//! check; an online dump restored into another server.

use crate::common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

use common::TestServer;
use sessiond_client::RespValue;
use sessiond_server::{Config, Role, Storage};

/// Runs `sessiond <args>` (blocking, off the runtime's threads); the
/// arguments are copied at once, so the future borrows nothing.
pub(crate) fn sessiond(
    args: &[&str],
    env: &[(&str, &str)],
) -> impl std::future::Future<Output = Output> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    async move {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_sessiond"))
                .args(&args)
                .envs(env)
                .env_remove("SESSIOND_USER")
                .output()
                .expect("run sessiond")
        })
        .await
        .unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn memory() -> Config {
    Config {
        storage: Storage::Memory,
        ..Config::default()
    }
}

fn write(path: &Path, data: &[u8], age: Duration) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_files_import_idempotently_and_ctl_sees_and_ends_them() {
    let s = TestServer::start_with(memory()).await;
    let addr = s.addr.to_string();
    let dir = common::TempDir::new("php-files");
    // session.save_path = "2;/dir": two levels of one-character folders.
    let alice = b"user|s:2:\"42\";cart|a:1:{i:0;s:3:\"tea\";}";
    write(
        &dir.0.join("a/b/sess_ab42x"),
        alice,
        Duration::from_secs(10),
    );
    write(&dir.0.join("c/d/sess_cdnull"), b"", Duration::from_secs(60));
    write(
        &dir.0.join("e/f/sess_efold"),
        b"user|s:1:\"7\";",
        Duration::from_secs(3600),
    );
    write(&dir.0.join("a/b/not-a-session"), b"x", Duration::ZERO);
    let import = || {
        sessiond(
            &[
                "import",
                "--from-php-files",
                dir.0.to_str().unwrap(),
                "--addr",
                &addr,
            ],
            &[],
        )
    };

    let out = import().await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "imported 2, skipped 1 (0 already there, 1 expired), failed 0\n"
    );
    let mut c = s.client().await;
    assert_eq!(
        c.call(&["SESSION.GETDATA", "ab42x"]).await.unwrap(),
        RespValue::Bulk(alice.to_vec().into()),
        "byte for byte"
    );
    assert_eq!(
        c.call(&["GET", "PHPREDIS_SESSION:ab42x"]).await.unwrap(),
        RespValue::Bulk(alice.to_vec().into()),
        "the same session through phpredis's door"
    );
    assert_eq!(
        c.call(&["SESSION.TTL", "ab42x"]).await.unwrap(),
        RespValue::Int(1440),
        "PHP's gc_maxlifetime as the timeout"
    );
    assert_eq!(
        c.call(&["SESSION.EXISTS", "efold"]).await.unwrap(),
        RespValue::Int(0)
    );

    // A re-run changes nothing, not even a session changed meanwhile.
    c.call(&["SESSION.SETDATA", "ab42x", "user|s:2:\"42\";"])
        .await
        .unwrap();
    let out = import().await;
    assert_eq!(
        stdout(&out),
        "imported 0, skipped 3 (2 already there, 1 expired), failed 0\n"
    );
    assert_eq!(
        c.call(&["SESSION.GETDATA", "ab42x"]).await.unwrap(),
        RespValue::Bulk("user|s:2:\"42\";".into())
    );

    // ctl: list, find (a PHP entry), show, stats, top, check.
    let ctl = |args: &[&str]| {
        let mut all = vec!["ctl", "--addr", addr.as_str()];
        all.extend_from_slice(args);
        all.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        sessiond(&refs, &[]).await
    };
    let mut listed: Vec<String> = stdout(&run(ctl(&["sessions", "list"])).await)
        .lines()
        .map(String::from)
        .collect();
    listed.sort();
    assert_eq!(listed, ["ab42x", "cdnull"]);
    assert_eq!(
        stdout(&run(ctl(&["sessions", "find", "user", "42"])).await),
        "ab42x\n"
    );
    let shown = stdout(&run(ctl(&["sessions", "show", "ab42x"])).await);
    assert!(
        shown.contains("\"data\": \"user|s:2:\\\"42\\\";\""),
        "{shown}"
    );
    let stats = stdout(&run(ctl(&["stats"])).await);
    assert!(
        stats.contains("# Keyspace") && stats.contains("db0"),
        "{stats}"
    );
    let top = run(ctl(&["top", "--interval", "0.2", "--iterations", "2"])).await;
    assert!(top.status.success());
    assert!(stdout(&top).contains("COMMAND"), "{}", stdout(&top));
    assert!(stdout(&top).contains("session_scan") || stdout(&top).contains("scan"));
    let check = run(ctl(&["check"])).await;
    assert!(check.status.success(), "{check:?}");
    assert!(stdout(&check).ends_with("ok\n"));

    // Log user 42 out everywhere.
    let gone = run(ctl(&[
        "sessions", "destroy", "--var", "user", "--value", "42",
    ]))
    .await;
    assert_eq!(stdout(&gone), "destroyed 1\n");
    assert_eq!(
        c.call(&["SESSION.EXISTS", "ab42x"]).await.unwrap(),
        RespValue::Int(0)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_dump_restores_into_another_server() {
    let from = TestServer::start_with(memory()).await;
    let mut c = from.client().await;
    c.call(&[
        "SESSION.CREATE",
        "s1",
        "CLASS",
        "shop",
        "DATA",
        "a|i:1;",
        "TIMEOUT",
        "600",
    ])
    .await
    .unwrap();
    c.call(&["SESSION.SET", "s1", "user_id", "42"])
        .await
        .unwrap();
    c.call(&[&b"SESSION.CREATE"[..], b"s2", b"DATA", &[0xff, 0x00, 0x01]])
        .await
        .unwrap();
    let dir = common::TempDir::new("dump");
    let dump = sessiond(&["ctl", "--addr", &from.addr.to_string(), "dump"], &[]).await;
    assert!(dump.status.success(), "{dump:?}");
    assert_eq!(stdout(&dump).lines().count(), 2);
    let file = dir.0.join("dump.jsonl");
    std::fs::write(&file, &dump.stdout).unwrap();

    let to = TestServer::start_with(memory()).await;
    let out = sessiond(
        &[
            "import",
            "--from-dump",
            file.to_str().unwrap(),
            "--addr",
            &to.addr.to_string(),
        ],
        &[],
    )
    .await;
    assert_eq!(
        stdout(&out),
        "imported 2, skipped 0 (0 already there, 0 expired), failed 0\n",
        "{out:?}"
    );
    let mut d = to.client().await;
    assert_eq!(
        d.call(&["SESSION.GET", "s1", "user_id"]).await.unwrap(),
        RespValue::Bulk("42".into())
    );
    assert_eq!(
        d.call(&["SESSION.GETDATA", "s2"]).await.unwrap(),
        RespValue::Bulk(vec![0xff, 0x00, 0x01].into()),
        "binary data survives the JSON"
    );
    let info = d.info("s1").await.unwrap();
    assert_eq!((info.class.as_deref(), info.timeout), (Some("shop"), 600));
    from.stop().await;
    to.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_logs_in_with_the_password_from_the_environment() {
    let s = TestServer::start_with(Config {
        users: vec![common::user("ops", "pw", "default", Role::Admin)],
        ..memory()
    })
    .await;
    let addr = s.addr.to_string();
    let args = ["ctl", "--addr", &addr, "--user", "ops", "check"];
    let ok = sessiond(&args, &[("SESSIOND_PASSWORD", "pw")]).await;
    assert!(ok.status.success(), "{ok:?}");
    let wrong = sessiond(&args, &[("SESSIOND_PASSWORD", "nope")]).await;
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("cannot log in as ops"));
    let anonymous = sessiond(&["ctl", "--addr", &addr, "check"], &[]).await;
    assert_eq!(anonymous.status.code(), Some(2), "{anonymous:?}");
    s.stop().await;
}
