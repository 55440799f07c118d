//! Signing keys at rest: each private key is sealed with AES-256-GCM under a master key,
//! and each sealed value is tagged with the id of the master key that sealed it, so the
//! master key can be replaced while the old one still opens what it sealed.
//!
//! A master key is 32 random bytes, written in base64url. Its id is the first 16 hex digits
//! of a SHA-256 digest of the key with a fixed label: safe to store and print, useless for
//! opening anything.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::secret::random_bytes;

const KEY_ID_LABEL: &[u8] = b"portcullis master key id\0";

/// Reason a sealed key could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed with master key {0}, which is not configured")]
    UnknownMasterKey(String),
    #[error("the sealed value is damaged or was sealed for another key")]
    Damaged,
}

/// One master key and its id.
pub struct MasterKey {
    id: String,
    key: LessSafeKey,
}

impl MasterKey {
    /// Parses 32 bytes written in base64url or standard base64, padded or not.
    pub fn parse(encoded: &str) -> Result<Self, String> {
        let trimmed = encoded.trim().trim_end_matches('=');
        let bytes = URL_SAFE_NO_PAD
            .decode(trimmed)
            .or_else(|_| STANDARD.decode(encoded.trim()))
            .map_err(|_| "a master key must be 32 bytes in base64url; generate one with `portcullis master-key generate`".to_owned())?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != 32 {
            return Err(format!(
                "a master key must be 32 bytes, not {}",
                bytes.len()
            ));
        }
        let mut labelled = KEY_ID_LABEL.to_vec();
        labelled.extend_from_slice(bytes);
        let digest = ring::digest::digest(&ring::digest::SHA256, &labelled);
        let id = crate::secret::hex(&digest.as_ref()[..8]);
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| "the master key was rejected by AES-256-GCM".to_owned())?;
        Ok(Self {
            id: format!("mk-{id}"),
            key: LessSafeKey::new(key),
        })
    }

    /// Returns a new random master key in base64url.
    pub fn generate() -> String {
        URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The master key that seals, and older ones that may still open.
pub struct MasterKeys {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl MasterKeys {
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self { current, previous }
    }

    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// Seals `plaintext` for the signing key `kid`; returns the sealed text and the id of the
    /// master key used. The kid is authenticated data, so a sealed value copied onto another
    /// key's row does not open.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> (String, String) {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut in_out = plaintext.to_vec();
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(kid.as_bytes()),
                &mut in_out,
            )
            .expect("AES-256-GCM sealing failed");
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend_from_slice(&in_out);
        (URL_SAFE_NO_PAD.encode(sealed), self.current.id.clone())
    }

    /// Opens a value sealed for `kid` by the master key `master_key_id`.
    pub fn open(&self, kid: &str, master_key_id: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == master_key_id)
            .ok_or_else(|| SealError::UnknownMasterKey(master_key_id.to_owned()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| SealError::Damaged)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Damaged);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Damaged)?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = key
            .key
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut in_out)
            .map_err(|_| SealError::Damaged)?;
        Ok(plaintext.to_vec())
    }

    /// Returns whether a configured master key has this id.
    pub fn knows(&self, master_key_id: &str) -> bool {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .any(|key| key.id == master_key_id)
    }

    /// Returns whether `master_key_id` is the key that seals now.
    pub fn is_current(&self, master_key_id: &str) -> bool {
        self.current.id == master_key_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> MasterKeys {
        MasterKeys::new(
            MasterKey::parse(&MasterKey::generate()).unwrap(),
            Vec::new(),
        )
    }

    #[test]
    fn sealed_value_opens_with_same_kid() {
        let keys = keys();
        let (sealed, id) = keys.seal("kid-1", b"private key");
        assert_eq!(keys.open("kid-1", &id, &sealed).unwrap(), b"private key");
        assert!(!sealed.contains("private"));
    }

    #[test]
    fn sealed_value_rejects_other_kid_and_tampering() {
        let keys = keys();
        let (sealed, id) = keys.seal("kid-1", b"private key");
        assert_eq!(keys.open("kid-2", &id, &sealed), Err(SealError::Damaged));
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            keys.open("kid-1", &id, std::str::from_utf8(&tampered).unwrap()),
            Err(SealError::Damaged)
        );
    }

    #[test]
    fn previous_key_still_opens() {
        let old = MasterKey::generate();
        let before = MasterKeys::new(MasterKey::parse(&old).unwrap(), Vec::new());
        let (sealed, id) = before.seal("kid-1", b"secret");
        let after = MasterKeys::new(
            MasterKey::parse(&MasterKey::generate()).unwrap(),
            vec![MasterKey::parse(&old).unwrap()],
        );
        assert!(!after.is_current(&id));
        assert_eq!(after.open("kid-1", &id, &sealed).unwrap(), b"secret");
        let without = keys();
        assert_eq!(
            without.open("kid-1", &id, &sealed),
            Err(SealError::UnknownMasterKey(id))
        );
    }

    #[test]
    fn master_key_must_be_32_bytes() {
        assert!(MasterKey::parse("c2hvcnQ").is_err());
        assert!(MasterKey::parse("not base64 at all!").is_err());
        let id = MasterKey::parse(&MasterKey::generate())
            .unwrap()
            .id()
            .to_owned();
        assert!(id.starts_with("mk-"), "{id} lacks the mk- prefix");
        assert_eq!(id.len(), 19, "{id} is not mk- and 16 hex digits");
    }
}
