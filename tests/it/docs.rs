//! The documentation keeps up with the code: every command in the native
//! table has its section in docs/protocol.md, and the README keeps its two
//! set-up commands.

use sessiond_proto::native::COMMANDS;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn every_command_is_documented() {
    let doc = read("docs/protocol.md");
    let headings: Vec<&str> = doc.lines().filter(|l| l.starts_with("### ")).collect();
    for spec in COMMANDS {
        let documented = headings
            .iter()
            .any(|h| h[4..].split([',', ' ']).any(|word| word == spec.name));
        assert!(
            documented,
            "docs/protocol.md has no '### {}' section",
            spec.name
        );
    }
}

#[test]
fn every_redis_command_is_in_the_redis_table_of_the_docs() {
    let doc = read("docs/protocol.md");
    // The Redis door's table rows: `| `NAME args` …, `NAME2 …` | … |`.
    let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| `")).collect();
    for name in sessiond_proto::redis::COMMANDS
        .iter()
        .flat_map(|c| c.names.iter())
    {
        let listed = rows.iter().any(|row| {
            let first = row.split(" | ").next().unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .any(|code| code.split([' ', '/']).next() == Some(name))
        });
        assert!(
            listed,
            "docs/protocol.md's Redis table has no row for {name}"
        );
    }
}

#[test]
fn readme_has_the_two_setup_commands() {
    let readme = read("README.md");
    assert!(readme.contains("cargo run --release -- serve"));
    assert!(readme.contains("cargo test --workspace"));
    let ci = read(".ci/run");
    assert!(
        ci.contains("cargo test --workspace"),
        ".ci/run runs the README's test command"
    );
}

#[test]
fn readme_configuration_example_is_the_default() {
    let readme = read("README.md");
    let section = readme
        .split("## Configuration")
        .nth(1)
        .expect("a Configuration section");
    let toml = section
        .split("```toml\n")
        .nth(1)
        .and_then(|t| t.split("```").next())
        .expect("a toml block");
    let parsed = sessiond_server::Config::from_toml(toml).expect("the README's TOML parses");
    assert_eq!(parsed, sessiond_server::Config::default());
    // Every setting is shown, not just left to its default.
    for line in sessiond_server::Config::default().to_toml().lines() {
        if let Some((key, _)) = line.split_once(" = ") {
            assert!(
                toml.lines().any(|l| l.starts_with(&format!("{key} ="))),
                "the README's configuration example lacks `{key}`"
            );
        }
    }
}
