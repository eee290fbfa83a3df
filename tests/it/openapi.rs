//! docs/openapi.yaml against the real server: schemathesis (from PyPI;
//! `.ci/run` installs it) generates valid and invalid requests for every
//! operation and checks every answer — no server errors, only documented
//! status codes and content types, bodies matching their schemas,
//! credentials really required, a destroyed session really gone.

use crate::common;

use common::TestServer;
use sessiond_server::{Config, LimitsConfig, Role, Storage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_server() {
    let mut st = std::process::Command::new("st");
    if !common::process::tool_available(
        st.arg("--version"),
        "schemathesis' `st` (pip install schemathesis)",
    ) {
        return;
    }
    let s = TestServer::start_with(Config {
        storage: Storage::Memory,
        // The worked examples, so the plugin call runs real functions.
        plugins_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/docs/plugins").into(),
        users: vec![common::user("ops", "pw", "default", Role::Admin)],
        limits: LimitsConfig {
            // schemathesis sends wrong credentials on purpose, many times.
            max_auth_failures: 1_000_000,
            ..LimitsConfig::default()
        },
        ..Config::default()
    })
    .await;
    let mut c = s.client().await;
    c.auth("ops", "pw").await.unwrap();
    for i in 0..20 {
        let id = format!("s{i}");
        c.call(&["SESSION.CREATE", &id, "DATA", "user|s:1:\"7\";"])
            .await
            .unwrap();
        c.call(&["SESSION.SET", &id, "user_id", &(i % 3).to_string()])
            .await
            .unwrap();
    }
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
    let url = format!("http://{}", s.http);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("st")
            .args([
                "--config-file",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml"),
                "run",
                spec,
                "--url",
                &url,
                "--auth",
                "ops:pw",
                "--checks",
                "all",
                "--max-examples",
                "40",
                "--seed",
                "7",
                "--workers",
                "1",
                // The run is the seed's alone: no examples kept from earlier
                // runs in this directory (a developer's machine and a clean
                // CI clone then test the same cases).
                "--generation-database",
                "none",
                "--no-color",
            ])
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .output()
            .expect("run schemathesis")
    })
    .await
    .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
    assert!(
        !report.contains("No operations"),
        "schemathesis tested nothing:\n{report}"
    );
    s.stop().await;
}
