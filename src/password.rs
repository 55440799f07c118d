//! User passwords, hashed with argon2id (the `argon2` crate's defaults: 19 MiB, 2 passes).
//!
//! Hashing takes tens of milliseconds of CPU, so it runs on the blocking thread pool, and a
//! semaphore bounds how many run at once so that a burst of logins cannot starve token
//! requests.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// Shortest password accepted by the admin commands.
pub const MIN_PASSWORD_LENGTH: usize = 12;

/// Returns the PHC string of a new argon2id hash of `password`.
pub fn hash_password(password: &SecretString) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&crate::secret::random_bytes::<16>())?;
    Ok(Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)?
        .to_string())
}

/// Returns whether `password` matches the PHC string `stored`; a malformed hash matches
/// nothing.
pub fn verify_password(password: &SecretString, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok()
    })
}

/// Verifies passwords off the async workers, a bounded number at a time.
#[derive(Clone)]
pub struct PasswordChecker {
    permits: Arc<Semaphore>,
    /// Hash of a random password, checked when the user does not exist, so that the
    /// response time does not reveal which usernames exist.
    decoy_hash: Arc<str>,
}

impl PasswordChecker {
    pub fn new(concurrency: usize) -> Self {
        let decoy = SecretString::from(crate::secret::random_token());
        let decoy_hash = hash_password(&decoy).expect("hashing a random password failed");
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            decoy_hash: decoy_hash.into(),
        }
    }

    /// Checks `password` against `stored`, or against a decoy when `stored` is `None`.
    pub async fn verify(&self, password: SecretString, stored: Option<String>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known_user = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.decoy_hash.to_string());
        let matched = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        matched && known_user
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let password = SecretString::from("correct horse battery staple");
        let stored = hash_password(&password).unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify_password(&password, &stored));
        assert!(!verify_password(&SecretString::from("wrong"), &stored));
        assert!(!verify_password(&password, "not a hash"));
    }
}
