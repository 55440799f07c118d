//! The container files name only settings Portcullis reads, and run it unprivileged.

use std::path::Path;

use portcullis::config::{KNOWN_SETTINGS, PREFIX};

fn read(file: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap()
}

/// Returns every `PORTCULLIS_*` name a file sets, as `NAME:` or `NAME=`.
fn settings_named_in(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let trimmed = line
            .trim()
            .trim_start_matches("ENV ")
            .trim_start_matches("- ");
        if let Some(rest) = trimmed.strip_prefix(PREFIX) {
            let end = rest.find([':', '=']).unwrap_or(rest.len());
            names.push(format!("{PREFIX}{}", &rest[..end]));
        }
    }
    names
}

#[test]
fn compose_sets_only_known_settings() {
    for file in ["docker-compose.yml", "Dockerfile"] {
        let names = settings_named_in(&read(file));
        assert!(
            !names.is_empty(),
            "{file} sets no setting, so this test checks nothing"
        );
        for name in names {
            let setting = name.strip_prefix(PREFIX).unwrap();
            assert!(
                KNOWN_SETTINGS.contains(&setting),
                "{file} sets {name}, which Portcullis does not read"
            );
        }
    }
}

#[test]
fn container_runs_unprivileged() {
    let dockerfile = read("Dockerfile");
    let user = dockerfile
        .lines()
        .rfind(|line| line.starts_with("USER "))
        .expect("the Dockerfile sets no USER");
    assert!(
        !user.contains("root") && !user.contains(" 0"),
        "the container runs as root: {user}"
    );
    assert!(
        dockerfile.matches("FROM ").count() >= 2,
        "the Dockerfile is not multi-stage"
    );
}

#[test]
fn compose_checks_postgres_health() {
    let compose = read("docker-compose.yml");
    assert!(
        compose.contains("healthcheck:"),
        "postgres has no health check"
    );
    assert!(
        compose.contains("condition: service_healthy"),
        "portcullis does not wait for a healthy postgres"
    );
    assert!(
        compose.contains("portcullis-postgres:/var/lib/postgresql/data"),
        "postgres data is not on a named volume"
    );
}
