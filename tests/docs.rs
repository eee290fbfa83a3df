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
