//! The documented settings and the migrations stay in step with the code.

use std::collections::BTreeSet;
use std::path::Path;

use portcullis::config::{KNOWN_SETTINGS, PREFIX, Settings};

fn env_example_pairs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".env.example"))
        .unwrap();
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (name, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("line {line:?} is not NAME=VALUE"));
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect()
}

#[test]
fn env_example_lists_every_setting_once() {
    let pairs = env_example_pairs();
    let listed: Vec<&str> = pairs
        .iter()
        .map(|(name, _)| {
            name.strip_prefix(PREFIX)
                .expect("every name has the prefix")
        })
        .collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "a setting is listed twice in .env.example"
    );
    let known: BTreeSet<&str> = KNOWN_SETTINGS.iter().copied().collect();
    assert_eq!(
        unique, known,
        ".env.example and the settings the code reads differ"
    );
}

#[test]
fn env_example_values_are_the_defaults() {
    let documented =
        Settings::from_variables(env_example_pairs()).expect(".env.example does not load");
    let defaults = Settings::from_variables(Vec::new()).unwrap();
    assert_eq!(
        format!("{documented:?}"),
        format!("{defaults:?}"),
        ".env.example states values other than the defaults"
    );
}

fn migration_names(dialect: &str) -> Vec<String> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    let mut names: Vec<String> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("reading {} failed: {error}", directory.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn migrations_are_in_step_across_databases() {
    let sqlite = migration_names("sqlite");
    let postgres = migration_names("postgres");
    assert!(!sqlite.is_empty(), "no SQLite migrations found");
    assert_eq!(
        sqlite, postgres,
        "migrations/sqlite and migrations/postgres hold different files"
    );
    for name in &sqlite {
        assert!(name.ends_with(".sql"), "{name} is not an .sql file");
        let (number, _) = name
            .split_once('_')
            .unwrap_or_else(|| panic!("{name} lacks a NNNN_ prefix"));
        assert!(
            number.len() == 4 && number.bytes().all(|byte| byte.is_ascii_digit()),
            "{name} lacks a NNNN_ prefix"
        );
    }
}
