//! Proof Key for Code Exchange (RFC 7636) with the `S256` method only. `plain` offers no
//! protection when the authorization request leaks, so OAuth 2.1 servers may refuse it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::OAuthError;
use crate::secret::constant_time_eq;

/// A validated `S256` code challenge: 43 base64url characters, the encoding of a SHA-256
/// digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Checks the challenge and its method. A missing method would mean `plain` (RFC 7636
    /// §4.3), so it is rejected like `plain` itself.
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Self, OAuthError> {
        let challenge = challenge
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| {
                OAuthError::invalid_request(
                    "code_challenge is required: this server requires PKCE with S256",
                )
            })?;
        match method {
            Some("S256") => {}
            None => {
                return Err(OAuthError::invalid_request(
                    "code_challenge_method is required and must be S256",
                ));
            }
            Some(other) => {
                return Err(OAuthError::invalid_request(format!(
                    "code_challenge_method {other:?} is not supported; use S256"
                )));
            }
        }
        let valid = challenge.len() == 43
            && challenge
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if !valid {
            return Err(OAuthError::invalid_request(
                "code_challenge must be 43 base64url characters: BASE64URL(SHA256(code_verifier))",
            ));
        }
        Ok(Self(challenge.to_owned()))
    }

    /// Wraps a challenge read back from the store, where only valid ones are written.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns whether `verifier` hashes to this challenge, comparing in constant time.
    pub fn is_satisfied_by(&self, verifier: &CodeVerifier) -> bool {
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.0.as_bytes());
        let computed = URL_SAFE_NO_PAD.encode(digest.as_ref());
        constant_time_eq(computed.as_bytes(), self.0.as_bytes())
    }
}

/// A syntactically valid code verifier: 43 to 128 unreserved characters (RFC 7636 §4.1).
#[derive(Clone)]
pub struct CodeVerifier(String);

impl CodeVerifier {
    pub fn parse(value: &str) -> Result<Self, OAuthError> {
        let valid_length = (43..=128).contains(&value.len());
        let valid_characters = value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~'));
        if valid_length && valid_characters {
            Ok(Self(value.to_owned()))
        } else {
            Err(OAuthError::invalid_grant(
                "code_verifier must be 43 to 128 characters from A-Z a-z 0-9 - . _ ~",
            ))
        }
    }
}

impl std::fmt::Debug for CodeVerifier {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("CodeVerifier([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn challenge_accepts_rfc_example() {
        let challenge = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap();
        assert!(challenge.is_satisfied_by(&CodeVerifier::parse(VERIFIER).unwrap()));
    }

    #[test]
    fn challenge_rejects_wrong_verifier() {
        let challenge = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap();
        let other = CodeVerifier::parse(&"a".repeat(43)).unwrap();
        assert!(!challenge.is_satisfied_by(&other));
    }

    #[test]
    fn challenge_rejects_plain_missing_and_malformed() {
        let cases = [
            (Some(CHALLENGE), Some("plain"), "plain method"),
            (Some(CHALLENGE), None, "missing method"),
            (None, Some("S256"), "missing challenge"),
            (Some(" "), Some("S256"), "blank challenge"),
            (Some("short"), Some("S256"), "short challenge"),
            (
                Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"),
                Some("S256"),
                "non-base64url",
            ),
            (Some(CHALLENGE), Some("s256"), "lowercase method"),
        ];
        for (challenge, method, case) in cases {
            assert!(
                CodeChallenge::parse(challenge, method).is_err(),
                "{case} should be rejected"
            );
        }
    }

    #[test]
    fn verifier_rejects_bad_length_and_characters() {
        assert!(CodeVerifier::parse(&"a".repeat(42)).is_err());
        assert!(CodeVerifier::parse(&"a".repeat(129)).is_err());
        assert!(CodeVerifier::parse(&format!("{}!", "a".repeat(43))).is_err());
        assert!(CodeVerifier::parse(&"a".repeat(128)).is_ok());
    }
}
