//! Sources of the master keys, and the checks that make a wrong one fail at start.
//!
//! `PORTCULLIS_MASTER_KEY` names the key that seals; `PORTCULLIS_PREVIOUS_MASTER_KEYS` may
//! name older keys that still open. Without a configured key, the embedded SQLite default
//! generates one into `portcullis.master-key` next to the database file, readable by its
//! owner only, and warns. Production mode and PostgreSQL require an explicit key: several
//! instances must share it, and a key in a file next to a shared database protects nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use josekit::jwk::Jwk;
use secrecy::ExposeSecret;

use super::sealing::{MasterKey, MasterKeys};
use crate::config::Settings;
use crate::store::{SigningKeyRecord, Store, StoreError};

/// File name of the generated master key, next to the SQLite database.
pub const KEY_FILE_NAME: &str = "portcullis.master-key";

/// Loads the configured master keys, or reads or creates the embedded default's key file.
pub fn load(settings: &Settings) -> Result<MasterKeys, String> {
    let previous = settings
        .master_keys
        .previous
        .iter()
        .map(|key| {
            MasterKey::parse(key.expose_secret())
                .map_err(|error| format!("PORTCULLIS_PREVIOUS_MASTER_KEYS: {error}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(current) = &settings.master_keys.current {
        let current = MasterKey::parse(current.expose_secret())
            .map_err(|error| format!("PORTCULLIS_MASTER_KEY: {error}"))?;
        return Ok(MasterKeys::new(current, previous));
    }
    if settings.production {
        return Err("PORTCULLIS_MASTER_KEY is required in production".into());
    }
    let Some(path) = key_file_path(&settings.database.url) else {
        return Err(
            "PORTCULLIS_MASTER_KEY is required with PostgreSQL, and every instance needs the same key; \
             generate one with `portcullis master-key generate`"
                .into(),
        );
    };
    let current = read_or_create_key_file(&path)?;
    Ok(MasterKeys::new(current, previous))
}

/// Returns the key file path for a SQLite database URL, or `None` for other databases.
fn key_file_path(database_url: &str) -> Option<PathBuf> {
    if !database_url.starts_with("sqlite:") {
        return None;
    }
    // An in-memory database and a file in the working directory keep the key file there.
    let directory = crate::store::sqlite_file(database_url).and_then(|file| {
        file.parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .map(Path::to_path_buf)
    });
    Some(directory.map_or_else(
        || PathBuf::from(KEY_FILE_NAME),
        |directory| directory.join(KEY_FILE_NAME),
    ))
}

fn read_or_create_key_file(path: &Path) -> Result<MasterKey, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::parse(&text)
            .map_err(|error| format!("master key file {}: {error}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let encoded = MasterKey::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(path).map_err(|error| {
                format!(
                    "creating the master key file {} failed: {error}",
                    path.display()
                )
            })?;
            file.write_all(encoded.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|error| {
                    format!(
                        "writing the master key file {} failed: {error}",
                        path.display()
                    )
                })?;
            tracing::warn!(
                path = %path.display(),
                "generated a master key file for the signing keys; back it up with the database, \
                 and set PORTCULLIS_MASTER_KEY in production"
            );
            MasterKey::parse(&encoded)
        }
        Err(error) => Err(format!(
            "reading the master key file {} failed: {error}",
            path.display()
        )),
    }
}

/// Opens a stored key's private part: sealed, or plain JWK text for a key stored before
/// sealing.
pub fn open_private_key(
    master_keys: &MasterKeys,
    record: &SigningKeyRecord,
) -> Result<Jwk, String> {
    let text = match &record.master_key_id {
        Some(master_key_id) => master_keys
            .open(&record.kid, master_key_id, &record.sealed_private_key)
            .map_err(|error| error.to_string())?,
        None => record.sealed_private_key.clone().into_bytes(),
    };
    Jwk::from_bytes(&text).map_err(|error| format!("the private key is not a JWK: {error}"))
}

/// Opens every stored private key once, so a wrong master key stops the start with a clear
/// message instead of failing the first token request, and seals keys stored before sealing.
pub async fn check_stored_keys(store: &Store, master_keys: &MasterKeys) -> Result<(), String> {
    let keys = store.sealed_signing_keys().await.map_err(|error| {
        format!(
            "reading signing keys failed: {:#}",
            anyhow::Error::new(error)
        )
    })?;
    for (tenant, record) in &keys {
        if let Some(id) = record
            .master_key_id
            .as_deref()
            .filter(|id| !master_keys.knows(id))
        {
            return Err(format!(
                "signing key {} of tenant {tenant} was sealed with master key {id}, but the configured \
                 master key is {}; set PORTCULLIS_MASTER_KEY (or PORTCULLIS_PREVIOUS_MASTER_KEYS) to the key \
                 it was sealed with",
                record.kid,
                master_keys.current_id()
            ));
        }
        let private = open_private_key(master_keys, record).map_err(|reason| {
            format!("signing key {} of tenant {tenant} cannot be opened with the configured master key: {reason}", record.kid)
        })?;
        if record.master_key_id.is_none() {
            reseal(store, master_keys, record, &private)
                .await
                .map_err(|error| format!("sealing signing key {} failed: {error}", record.kid))?;
            tracing::info!(kid = %record.kid, tenant = %tenant, "sealed a signing key stored in plain text");
        }
    }
    Ok(())
}

/// Re-seals every key sealed under a previous master key with the current one; returns how
/// many keys changed.
pub async fn reseal_all(store: &Store, master_keys: &MasterKeys) -> Result<usize, StoreError> {
    let mut changed = 0;
    for (_, record) in store.sealed_signing_keys().await? {
        if record
            .master_key_id
            .as_deref()
            .is_some_and(|id| master_keys.is_current(id))
        {
            continue;
        }
        let private = open_private_key(master_keys, &record).map_err(|reason| {
            StoreError::Corrupt(format!("signing key {}: {reason}", record.kid))
        })?;
        if reseal(store, master_keys, &record, &private).await? {
            changed += 1;
        }
    }
    Ok(changed)
}

/// Seals `private` under the current master key in place of `record`'s sealed key, unless
/// another process re-sealed it meanwhile; returns whether the row changed.
async fn reseal(
    store: &Store,
    master_keys: &MasterKeys,
    record: &SigningKeyRecord,
    private: &Jwk,
) -> Result<bool, StoreError> {
    let (sealed, master_key_id) = master_keys.seal(&record.kid, private.to_string().as_bytes());
    store
        .reseal_signing_key(
            &record.kid,
            record.master_key_id.as_deref(),
            &sealed,
            &master_key_id,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_sits_next_to_the_database() {
        assert_eq!(
            key_file_path("sqlite://portcullis.db"),
            Some(PathBuf::from(KEY_FILE_NAME))
        );
        assert_eq!(
            key_file_path("sqlite:///var/lib/p/db.sqlite?mode=rwc"),
            Some(PathBuf::from("/var/lib/p").join(KEY_FILE_NAME))
        );
        assert_eq!(
            key_file_path("sqlite://data/p.db"),
            Some(PathBuf::from("data").join(KEY_FILE_NAME))
        );
        assert_eq!(key_file_path("postgres://u@127.0.0.1/db"), None);
    }
}
