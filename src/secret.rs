//! Random values, hashing and comparison for secrets.
//!
//! Codes, refresh tokens, client secrets, session ids and registration access tokens are
//! 256-bit random values shown to their holder once and stored only as SHA-256 hashes. A
//! SHA-256 preimage search on 256 bits of entropy is infeasible, so a slow password hash
//! would add cost to every request without adding safety.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

/// Returns `N` bytes from the operating system's secure random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system random source failed");
    bytes
}

/// Returns `N` bytes from `rand`'s thread generator (ChaCha12, reseeded from the operating
/// system every 64 KiB), which spares tokens and ids a system call each.
fn thread_random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// Returns a new 256-bit random token in unpadded base64url (43 characters).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(thread_random_bytes::<32>())
}

/// Returns a new 128-bit random identifier in unpadded base64url (22 characters).
pub fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(thread_random_bytes::<16>())
}

/// Returns the lowercase hex SHA-256 digest of `value`, the form in which every bearer
/// secret is stored.
pub fn hash_token(value: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
    hex(digest.as_ref())
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.ct_eq(right).into()
}

/// Returns `bytes` as lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out
}

/// A bearer secret (token, code or client secret) whose `Debug` output never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Bearer(String);

impl Bearer {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn generate() -> Self {
        Self(random_token())
    }

    /// Returns the secret itself, for the one response that hands it to its holder.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> String {
        hash_token(&self.0)
    }
}

impl std::fmt::Debug for Bearer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Bearer([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_token_has_256_bits() {
        let token = random_token();
        assert_eq!(token.len(), 43);
        assert_ne!(token, random_token());
    }

    #[test]
    fn hash_token_matches_known_digest() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bearer_debug_is_redacted() {
        let bearer = Bearer::new("s3cret".into());
        assert!(!format!("{bearer:?}").contains("s3cret"));
    }

    #[test]
    fn constant_time_eq_compares_content() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
