//! The HTTP door: probes, and Prometheus metrics that move as commands run,
//! scoped to the logged-in user's tenant on a server with users.

use crate::common;

use common::wire::Wire;
use common::TestServer;
use sessiond_server::{Config, Fsync, Role, Storage};

/// One HTTP/1.1 GET; (status code, body).
pub(crate) async fn get(s: &TestServer, path: &str, auth: Option<&str>) -> (u16, String) {
    request(s, "GET", path, auth).await
}

/// One HTTP/1.1 request; (status code, body).
async fn request(s: &TestServer, method: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    send(s, method, path, auth, "").await
}

/// One HTTP/1.1 request with a JSON body (none when empty); (status code,
/// body).
pub(crate) async fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut w = Wire::connect(s.http).await;
    let auth = auth.map_or(String::new(), |a| {
        use base64ct::Encoding;
        format!(
            "Authorization: Basic {}\r\n",
            base64ct::Base64::encode_string(a.as_bytes())
        )
    });
    let content = if body.is_empty() {
        String::new()
    } else {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: sessiond\r\n{auth}{content}Connection: close\r\n\r\n{body}"
    );
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
/// Every id of a paged listing at `path` (which has a `count`), page by
/// page: each page holds at most `count` ids, and the cursor runs to `0`.
async fn pages(s: &TestServer, path: &str, auth: Option<&str>) -> Vec<String> {
    let count: usize = path
        .split("count=")
        .nth(1)
        .and_then(|c| c.split('&').next())
        .and_then(|c| c.parse().ok())
        .expect("a count in the path");
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let (status, body) = get(s, &format!("{path}&cursor={cursor}"), auth).await;
        assert_eq!(status, 200, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        let ids = page["sessions"].as_array().unwrap();
        assert!(ids.len() <= count, "{body}");
        seen.extend(ids.iter().map(|v| v.as_str().unwrap().to_string()));
        cursor = page["cursor"].as_str().unwrap().to_string();
        if cursor == "0" {
            return seen;
        }
    }
}

fn sample(body: &str, series: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_and_metrics_move_with_the_commands() {
    let dir = common::TempDir::new("metrics");
    let s = TestServer::start_with(common::durable(&dir.0, Fsync::Always)).await;
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
    assert!(
        sample(&before, "sessiond_connections{door=\"http\"}") >= 1,
        "the scrape's own HTTP connection counts: {before}"
    );
    assert_eq!(
        sample(&before, "sessiond_log_records_total{tenant=\"default\"}"),
        0
    );
    let resp_in = sample(&before, "sessiond_received_bytes_total{door=\"resp\"}");
    let resp_out = sample(&before, "sessiond_sent_bytes_total{door=\"resp\"}");

    let mut c = s.client().await;
    c.call(&["SESSION.CREATE", "a", "DATA", "12345"])
        .await
        .unwrap();
    c.call(&["SESSION.SET", "a", "user", "42"]).await.unwrap();
    c.call(&["SET", "PHPREDIS_SESSION:b", "xy"]).await.unwrap();
    assert!(c.call(&["SESSION.GET", "nope", "user"]).await.is_err());
    // A lock wait: `a` held by one client while another queues for it.
    c.call(&["SESSION.LOCK", "a", "LEASE", "10000"])
        .await
        .unwrap();
    let mut waiter = s.client().await;
    let queued = tokio::spawn(async move {
        let r = waiter.call(&["SESSION.LOCK", "a", "WAIT", "5000"]).await;
        (waiter, r)
    });
    let mut seen_waiting = false;
    for _ in 0..100 {
        let (_, body) = get(&s, "/metrics", None).await;
        if sample(&body, "sessiond_lock_waiting{tenant=\"default\"}") == 1 {
            seen_waiting = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen_waiting, "the queued lock request shows as waiting");
    drop(c);
    let (_waiter, granted) = queued.await.unwrap();
    granted.expect("granted once the holder hung up");
    let (_, after) = get(&s, "/metrics", None).await;
    assert_eq!(sample(&after, "sessiond_sessions{tenant=\"default\"}"), 2);
    assert_eq!(
        sample(&after, "sessiond_session_bytes{tenant=\"default\"}"),
        5 + 4 + 2 + 2,
        "data, the variable's name and value, the other data"
    );
    assert!(sample(&after, "sessiond_commands_total{tenant=\"default\"}") >= commands + 3);
    let by_name = |door: &str, cmd: &str| {
        sample(
            &after,
            &format!("sessiond_commands_by_name_total{{tenant=\"default\",door=\"{door}\",command=\"{cmd}\"}}"),
        )
    };
    assert_eq!(by_name("native", "create"), 1);
    assert_eq!(by_name("native", "set"), 1);
    assert_eq!(by_name("native", "lock"), 2);
    assert_eq!(by_name("redis", "store"), 1, "SET is a store");
    assert_eq!(
        sample(
            &after,
            "sessiond_errors_total{tenant=\"default\",door=\"native\",code=\"NOSESSION\"}"
        ),
        1
    );
    assert_eq!(
        sample(&after, "sessiond_lock_waits_total{tenant=\"default\"}"),
        1
    );
    assert_eq!(
        sample(&after, "sessiond_lock_waiting{tenant=\"default\"}"),
        0
    );
    assert_eq!(
        sample(
            &after,
            "sessiond_lock_wait_seconds_count{tenant=\"default\"}"
        ),
        1
    );
    assert_eq!(
        sample(
            &after,
            "sessiond_lock_wait_failures_total{tenant=\"default\"}"
        ),
        0
    );
    assert!(
        sample(
            &after,
            "sessiond_command_duration_seconds_count{tenant=\"default\",door=\"native\"}"
        ) >= 5
    );
    assert!(sample(&after, "sessiond_received_bytes_total{door=\"resp\"}") > resp_in);
    assert!(sample(&after, "sessiond_sent_bytes_total{door=\"resp\"}") > resp_out);
    assert!(sample(&after, "sessiond_received_bytes_total{door=\"http\"}") > 0);
    assert!(sample(&after, "sessiond_connections_accepted_total{door=\"resp\"}") >= 2);
    // Persistence: every write logged and fsynced (`fsync always`).
    assert!(sample(&after, "sessiond_log_records_total{tenant=\"default\"}") >= 3);
    assert!(sample(&after, "sessiond_log_bytes{tenant=\"default\"}") > 0);
    assert_eq!(
        sample(&after, "sessiond_log_pending_records{tenant=\"default\"}"),
        0
    );
    assert!(
        sample(
            &after,
            "sessiond_fsync_duration_seconds_count{tenant=\"default\"}"
        ) >= 1
    );
    assert!(sample(&after, "sessiond_resident_memory_bytes") > 1 << 20);
    assert_eq!(get(&s, "/nope", None).await.0, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_users_metrics_need_a_login_and_show_its_tenant_only() {
    let user =
        |name: &str, tenant: &str, role| common::user(name, &format!("pw-{name}"), tenant, role);
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
        !body.contains("sessiond_connections{"),
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
        sample(&body, "sessiond_connections{door=\"http\"}") >= 1,
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
    assert!(v["fields"]["user_id"].is_string(), "the PHP view: {v}");
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
    // Written by SET without EX: no expiry, shown as null.
    assert!(
        bin["timeout_s"].is_null() && bin["ttl_ms"].is_null(),
        "{bin}"
    );
    let (status, body) = get(&s, "/api/v1/sessions/missing", None).await;
    assert_eq!(status, 404);
    assert!(body.contains("no session 'missing'"), "{body}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_find_and_log_a_user_out_everywhere() {
    let user = |name: &str, role| common::user(name, &format!("pw-{name}"), "shop", role);
    let s = TestServer::start_with(Config {
        storage: Storage::Memory,
        users: vec![user("web", Role::Readwrite), user("ro", Role::Readonly)],
        ..Config::default()
    })
    .await;
    let mut c = s.client().await;
    c.auth("web", "pw-web").await.unwrap();
    for (id, uid) in [("s1", "42"), ("s2", "42"), ("s3", "7")] {
        c.call(&["SESSION.CREATE", id]).await.unwrap();
        c.call(&["SESSION.SET", id, "user_id", uid]).await.unwrap();
    }
    // A PHP session of user 42 too, written the way phpredis does.
    c.call(&["SET", "PHPREDIS_SESSION:p1", "user_id|s:2:\"42\";"])
        .await
        .unwrap();
    let json = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap();
    let web = Some("web:pw-web");

    // Paging through every id.
    let mut seen = pages(&s, "/api/v1/sessions?count=2", web).await;
    seen.sort();
    assert_eq!(seen, ["p1", "s1", "s2", "s3"]);

    let (_, body) = get(&s, "/api/v1/find?var=user_id&value=42", web).await;
    let mut found: Vec<String> = json(&body)["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().into())
        .collect();
    found.sort();
    assert_eq!(found, ["p1", "s1", "s2"], "variables and PHP entries alike");
    // The same a page at a time.
    let mut paged = pages(&s, "/api/v1/find?var=user_id&value=42&count=1", web).await;
    paged.sort();
    assert_eq!(paged, found);

    // readonly may look, not destroy.
    assert_eq!(
        request(&s, "DELETE", "/api/v1/sessions/s3", Some("ro:pw-ro"))
            .await
            .0,
        403
    );
    assert_eq!(
        request(
            &s,
            "DELETE",
            "/api/v1/sessions?var=user_id&value=42",
            Some("ro:pw-ro")
        )
        .await
        .0,
        403
    );
    assert_eq!(request(&s, "DELETE", "/api/v1/sessions", web).await.0, 400);
    // Log user 42 out everywhere.
    let (status, body) = request(&s, "DELETE", "/api/v1/sessions?var=user_id&value=42", web).await;
    assert_eq!(
        (status, json(&body)["destroyed"].as_u64()),
        (200, Some(3)),
        "{body}"
    );
    assert_eq!(c.count(None).await.unwrap(), 1);
    assert!(c.exists("s3").await.unwrap());
    let (status, _) = request(&s, "DELETE", "/api/v1/sessions/s3", web).await;
    assert_eq!(status, 200);
    let (status, body) = request(&s, "DELETE", "/api/v1/sessions/s3", web).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(c.count(None).await.unwrap(), 0);
    s.stop().await;
}
