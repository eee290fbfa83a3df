//! The HTTP door: probes, and Prometheus metrics that move as commands run,
//! scoped to the logged-in user's tenant on a server with users.

mod common;

use common::wire::Wire;
use common::TestServer;
use sessiond_server::{hash_password, Config, Role, Storage, UserConfig};

/// One HTTP/1.1 request; (status code, body).
async fn get(s: &TestServer, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut w = Wire::connect(s.http).await;
    let auth = auth.map_or(String::new(), |a| {
        use base64ct::Encoding;
        format!(
            "Authorization: Basic {}\r\n",
            base64ct::Base64::encode_string(a.as_bytes())
        )
    });
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: sessiond\r\n{auth}Connection: close\r\n\r\n");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    w.stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    w.stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of one sample line (`name{labels}`) in a metrics body.
fn sample(body: &str, series: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_and_metrics_move_with_the_commands() {
    let s = TestServer::start_with(Config {
        storage: Storage::Memory,
        ..Config::default()
    })
    .await;
    assert_eq!(get(&s, "/healthz", None).await, (200, "ok\n".into()));
    assert_eq!(get(&s, "/readyz", None).await, (200, "ready\n".into()));
    let (status, before) = get(&s, "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(
        before.contains("# TYPE sessiond_sessions gauge"),
        "{before}"
    );
    assert_eq!(sample(&before, "sessiond_sessions{tenant=\"default\"}"), 0);
    let commands = sample(&before, "sessiond_commands_total{tenant=\"default\"}");

    let mut c = s.client().await;
    c.call(&["SESSION.CREATE", "a", "DATA", "12345"])
        .await
        .unwrap();
    c.call(&["SESSION.SET", "a", "user", "42"]).await.unwrap();
    c.call(&["SET", "PHPREDIS_SESSION:b", "xy"]).await.unwrap();
    let (_, after) = get(&s, "/metrics", None).await;
    assert_eq!(sample(&after, "sessiond_sessions{tenant=\"default\"}"), 2);
    assert_eq!(
        sample(&after, "sessiond_session_bytes{tenant=\"default\"}"),
        5 + 4 + 2 + 2,
        "data, the variable's name and value, the other data"
    );
    assert!(sample(&after, "sessiond_commands_total{tenant=\"default\"}") >= commands + 3);
    assert!(sample(&after, "sessiond_connections") >= 1);
    assert!(sample(&after, "sessiond_connections_accepted_total") >= 1);
    assert_eq!(get(&s, "/nope", None).await.0, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_users_metrics_need_a_login_and_show_its_tenant_only() {
    let user = |name: &str, tenant: &str, role| UserConfig {
        name: name.into(),
        password_hash: hash_password(format!("pw-{name}").as_bytes()).unwrap(),
        tenant: tenant.into(),
        role,
    };
    let s = TestServer::start_with(Config {
        storage: Storage::Memory,
        users: vec![
            user("alice", "alpha", Role::Readwrite),
            user("bob", "beta", Role::Readwrite),
            user("root", "alpha", Role::Admin),
        ],
        ..Config::default()
    })
    .await;
    let mut c = s.client().await;
    c.auth("alice", "pw-alice").await.unwrap();
    c.call(&["SESSION.CREATE", "a1"]).await.unwrap();

    assert_eq!(
        get(&s, "/healthz", None).await.0,
        200,
        "probes need no login"
    );
    assert_eq!(get(&s, "/metrics", None).await.0, 401);
    assert_eq!(get(&s, "/metrics", Some("alice:wrong")).await.0, 401);
    let (status, body) = get(&s, "/metrics", Some("bob:pw-bob")).await;
    assert_eq!(status, 200);
    assert_eq!(sample(&body, "sessiond_sessions{tenant=\"beta\"}"), 0);
    assert!(!body.contains("alpha"), "bob sees no other tenant: {body}");
    assert!(
        !body.contains("sessiond_connections "),
        "nor server-wide figures"
    );
    let (_, body) = get(&s, "/metrics", Some("alice:pw-alice")).await;
    assert_eq!(sample(&body, "sessiond_sessions{tenant=\"alpha\"}"), 1);
    assert_eq!(get(&s, "/api/v1/sessions/a1", None).await.0, 401);
    assert_eq!(
        get(&s, "/api/v1/sessions/a1", Some("alice:pw-alice"))
            .await
            .0,
        200
    );
    let (status, body) = get(&s, "/api/v1/sessions/a1", Some("bob:pw-bob")).await;
    assert_eq!(
        status, 404,
        "another tenant's session does not exist for bob: {body}"
    );
    let (_, body) = get(&s, "/metrics", Some("root:pw-root")).await;
    assert_eq!(sample(&body, "sessiond_auth_failures_total"), 1);
    assert!(
        sample(&body, "sessiond_connections") >= 1,
        "admins see the server"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_as_json_without_touching_it() {
    let s = TestServer::start_with(Config {
        storage: Storage::Memory,
        ..Config::default()
    })
    .await;
    let mut c = s.client().await;
    c.call(&[
        "SESSION.CREATE",
        "abc",
        "CLASS",
        "shop",
        "DATA",
        "user_id|s:2:\"42\";",
        "TIMEOUT",
        "600",
    ])
    .await
    .unwrap();
    c.call(&["SESSION.SET", "abc", "cart", "3"]).await.unwrap();
    c.call(&["SESSION.LOCK", "abc"]).await.unwrap();
    c.call(&[&b"SET"[..], b"PHPREDIS_SESSION:bin", &[0u8, 0xff]])
        .await
        .unwrap();
    let (status, body) = get(&s, "/api/v1/sessions/abc", None).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["id"], "abc");
    assert_eq!(v["tenant"], "default");
    assert_eq!(v["class"], "shop");
    assert_eq!(v["timeout_s"], 600);
    assert_eq!(v["lock"], "write");
    assert_eq!(v["data"], "user_id|s:2:\"42\";");
    assert_eq!(v["vars"]["cart"], "3");
    assert!(v["php"]["user_id"].is_string(), "the PHP view: {v}");
    // Reading it here does not refresh it.
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let (_, again) = get(&s, "/api/v1/sessions/abc", None).await;
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["accessed_ms"], v["accessed_ms"]);
    let (_, bin) = get(&s, "/api/v1/sessions/bin", None).await;
    let bin: serde_json::Value = serde_json::from_str(&bin).unwrap();
    assert_eq!(
        bin["data_base64"], "AP8=",
        "binary data is not mangled: {bin}"
    );
    assert!(bin.get("data").is_none());
    let (status, body) = get(&s, "/api/v1/sessions/missing", None).await;
    assert_eq!(status, 404);
    assert!(body.contains("no session 'missing'"), "{body}");
    s.stop().await;
}
