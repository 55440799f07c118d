//! JWT access tokens per RFC 9068, and their verification.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::JwsVerifier;
use josekit::jwt;
use serde_json::Value;

use super::{SigningAlgorithm, TenantKeys};

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessTokenClaims {
    pub issuer: String,
    pub subject: String,
    pub audience: String,
    pub client_id: String,
    pub scope: String,
    pub issued_at: i64,
    pub expires_at: i64,
    /// `{family id}.{random}` for tokens from a refresh-token family, so that revoking the
    /// family deactivates them; a bare random value otherwise.
    pub jwt_id: String,
}

impl AccessTokenClaims {
    /// Returns the refresh-token family the token belongs to, if any.
    pub fn family_id(&self) -> Option<&str> {
        self.jwt_id.split_once('.').map(|(family, _)| family)
    }
}

/// Reason a token failed verification. The variants are for logs and tests; clients only
/// learn that the token is not active.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the token is not a well-formed signed JWT")]
    Malformed,
    #[error("the token header has typ other than at+jwt")]
    WrongType,
    #[error("the token names an unknown key or an algorithm other than the key's")]
    UnknownKey,
    #[error("the signature is invalid")]
    BadSignature,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is for another audience")]
    WrongAudience,
    #[error("the token has expired or is not yet valid")]
    Expired,
    #[error("a required claim is missing")]
    MissingClaim,
}

/// Public keys by `kid`, each with the one algorithm it may verify.
pub struct VerifierSet {
    verifiers: HashMap<String, (SigningAlgorithm, Box<dyn JwsVerifier>)>,
    /// Seconds of clock difference tolerated for `exp`, `nbf` and `iat`.
    clock_skew: i64,
}

impl VerifierSet {
    /// Builds verifiers from public JWKs. Each key must carry `kid` and an `alg` this server
    /// signs with; the algorithm comes from the key, never from a token header.
    pub fn new(keys: &[Jwk], clock_skew: i64) -> Result<Self, String> {
        let mut verifiers = HashMap::with_capacity(keys.len());
        for key in keys {
            let kid = key.key_id().ok_or("a public key has no kid")?;
            let algorithm = SigningAlgorithm::parse(
                key.algorithm()
                    .ok_or_else(|| format!("key {kid} has no alg"))?,
            )?;
            let verifier = algorithm
                .verifier(key)
                .map_err(|error| format!("key {kid}: {error}"))?;
            verifiers.insert(kid.to_owned(), (algorithm, verifier));
        }
        Ok(Self {
            verifiers,
            clock_skew,
        })
    }

    /// Builds verifiers from a JWKS document, as a resource server fetches it.
    pub fn from_jwks(document: &[u8], clock_skew: i64) -> Result<Self, String> {
        let set = JwkSet::from_bytes(document).map_err(|error| format!("invalid JWKS: {error}"))?;
        let keys: Vec<Jwk> = set.keys().into_iter().cloned().collect();
        Self::new(&keys, clock_skew)
    }

    /// Returns the distinct algorithms of the keys, sorted.
    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self
            .verifiers
            .values()
            .map(|(algorithm, _)| algorithm.name())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Verifies a token for one resource server: everything `verify` checks, and `aud`.
    pub fn verify_for(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        now: i64,
    ) -> Result<AccessTokenClaims, VerifyError> {
        let claims = self.verify(token, issuer, now)?;
        if claims.audience != audience {
            return Err(VerifyError::WrongAudience);
        }
        Ok(claims)
    }

    /// Verifies `typ`, `kid`, `alg` against the key's own algorithm (so `none` and algorithm
    /// confusion fail), the signature, `iss`, and `exp`, `nbf` and `iat` with the clock skew.
    /// The audience is returned for the caller to check.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        now: i64,
    ) -> Result<AccessTokenClaims, VerifyError> {
        let (payload, header) = jwt::decode_with_verifier_selector(token, |header| {
            let Some(kid) = header.key_id() else {
                return Ok(None);
            };
            match (self.verifiers.get(kid), header.algorithm()) {
                (Some((algorithm, verifier)), Some(alg)) if algorithm.name() == alg => {
                    Ok(Some(verifier.as_ref()))
                }
                _ => Ok(None),
            }
        })
        .map_err(|error| match error {
            josekit::JoseError::InvalidSignature(_) => VerifyError::BadSignature,
            josekit::JoseError::InvalidJwtFormat(_) | josekit::JoseError::InvalidJson(_) => {
                VerifyError::Malformed
            }
            _ => VerifyError::UnknownKey,
        })?;
        if header
            .token_type()
            .is_none_or(|typ| !typ.eq_ignore_ascii_case("at+jwt"))
        {
            return Err(VerifyError::WrongType);
        }
        if payload.issuer() != Some(issuer) {
            return Err(VerifyError::WrongIssuer);
        }
        let seconds = |claim: &str| payload.claim(claim).and_then(Value::as_i64);
        let expires_at = seconds("exp").ok_or(VerifyError::MissingClaim)?;
        let issued_at = seconds("iat").ok_or(VerifyError::MissingClaim)?;
        if expires_at + self.clock_skew <= now || issued_at - self.clock_skew > now {
            return Err(VerifyError::Expired);
        }
        if seconds("nbf").is_some_and(|not_before| not_before - self.clock_skew > now) {
            return Err(VerifyError::Expired);
        }
        let text = |claim: &str| {
            payload
                .claim(claim)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let audience = match payload.claim("aud") {
            Some(Value::String(audience)) => audience.clone(),
            Some(Value::Array(values)) if values.len() == 1 => values[0]
                .as_str()
                .ok_or(VerifyError::MissingClaim)?
                .to_owned(),
            _ => return Err(VerifyError::MissingClaim),
        };
        Ok(AccessTokenClaims {
            issuer: issuer.to_owned(),
            subject: text("sub").ok_or(VerifyError::MissingClaim)?,
            audience,
            client_id: text("client_id").ok_or(VerifyError::MissingClaim)?,
            scope: text("scope").unwrap_or_default(),
            issued_at,
            expires_at,
            jwt_id: text("jti").ok_or(VerifyError::MissingClaim)?,
        })
    }
}

/// The claims of an access token as signed (RFC 9068 §2.2). Times are integers, which is
/// what resource servers expect and what verification reads back.
#[derive(serde::Serialize)]
struct Payload<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
    iat: i64,
    exp: i64,
    jti: &'a str,
}

impl TenantKeys {
    /// Signs an access token with the tenant's current key, as a compact JWS.
    pub fn sign_access_token(&self, claims: &AccessTokenClaims) -> Result<String, String> {
        let payload = Payload {
            iss: &claims.issuer,
            sub: &claims.subject,
            aud: &claims.audience,
            client_id: &claims.client_id,
            scope: &claims.scope,
            iat: claims.issued_at,
            exp: claims.expires_at,
            jti: &claims.jwt_id,
        };
        let payload = serde_json::to_vec(&payload).map_err(|error| error.to_string())?;
        let mut token =
            String::with_capacity(self.encoded_header.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&self.encoded_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.signer.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// Verifies an access token of this tenant; see `VerifierSet::verify`.
    pub fn verify_access_token(
        &self,
        token: &str,
        issuer: &str,
        now: i64,
    ) -> Result<AccessTokenClaims, VerifyError> {
        self.verifiers.verify(token, issuer, now)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use josekit::jwk::Jwk;

    use super::*;

    const ISSUER: &str = "https://auth.example/t/acme";
    const AUDIENCE: &str = "https://mcp.example/mcp";
    const NOW: i64 = 1_800_000_000;

    /// Signs `claims` with `header` using a new key of `algorithm`; returns the token and a
    /// verifier set with that key.
    fn signed(
        algorithm: SigningAlgorithm,
        header: Value,
        claims: Value,
    ) -> (String, VerifierSet, Jwk) {
        let (private, public) = algorithm.generate("kid-1").unwrap();
        let signer = algorithm.signer(&private).unwrap();
        let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
        let input = format!("{}.{}", encode(&header), encode(&claims));
        let signature = signer.sign(input.as_bytes()).unwrap();
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
        (
            token,
            VerifierSet::new(std::slice::from_ref(&public), 30).unwrap(),
            public,
        )
    }

    fn header(alg: &str) -> Value {
        serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": "kid-1"})
    }

    fn claims() -> Value {
        serde_json::json!({
            "iss": ISSUER, "sub": "alice", "aud": AUDIENCE, "client_id": "c1",
            "scope": "mcp:tools", "iat": NOW, "exp": NOW + 600, "jti": "j1",
        })
    }

    #[test]
    fn valid_tokens_verify_for_every_algorithm() {
        for algorithm in SigningAlgorithm::ALL {
            let (token, verifiers, _) = signed(algorithm, header(algorithm.name()), claims());
            let verified = verifiers.verify_for(&token, ISSUER, AUDIENCE, NOW).unwrap();
            assert_eq!(verified.subject, "alice", "{algorithm:?}");
        }
    }

    #[test]
    fn claim_checks_reject_tokens() {
        let mut wrong_issuer = claims();
        wrong_issuer["iss"] = "https://evil.example".into();
        let mut expired = claims();
        expired["exp"] = (NOW - 31).into();
        let mut future = claims();
        future["nbf"] = (NOW + 31).into();
        let mut issued_later = claims();
        issued_later["iat"] = (NOW + 31).into();
        let mut float_times = claims();
        float_times["exp"] = serde_json::json!((NOW + 600) as f64 + 0.5);
        let mut no_subject = claims();
        no_subject.as_object_mut().unwrap().remove("sub");
        let untyped = serde_json::json!({"alg": "ES256", "kid": "kid-1"});
        let id_token_type = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": "kid-1"});
        let unknown_kid = serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": "other"});
        let cases = [
            (
                header("ES256"),
                wrong_issuer,
                VerifyError::WrongIssuer,
                "wrong issuer",
            ),
            (header("ES256"), expired, VerifyError::Expired, "expired"),
            (
                header("ES256"),
                future,
                VerifyError::Expired,
                "not yet valid",
            ),
            (
                header("ES256"),
                issued_later,
                VerifyError::Expired,
                "issued in the future",
            ),
            (
                header("ES256"),
                float_times,
                VerifyError::MissingClaim,
                "non-integer exp",
            ),
            (
                header("ES256"),
                no_subject,
                VerifyError::MissingClaim,
                "no sub",
            ),
            (untyped, claims(), VerifyError::WrongType, "no typ"),
            (id_token_type, claims(), VerifyError::WrongType, "typ JWT"),
            (
                unknown_kid,
                claims(),
                VerifyError::UnknownKey,
                "unknown kid",
            ),
        ];
        for (header, claims, expected, case) in cases {
            let (token, verifiers, _) = signed(SigningAlgorithm::Es256, header, claims);
            assert_eq!(
                verifiers.verify(&token, ISSUER, NOW).unwrap_err(),
                expected,
                "{case}"
            );
        }
        let (token, verifiers, _) = signed(SigningAlgorithm::Es256, header("ES256"), claims());
        assert_eq!(
            verifiers
                .verify_for(&token, ISSUER, "https://other.example/mcp", NOW)
                .unwrap_err(),
            VerifyError::WrongAudience
        );
    }

    #[test]
    fn algorithm_confusion_is_rejected() {
        let (token, verifiers, public) = signed(SigningAlgorithm::Es256, header("ES256"), claims());
        let (_, payload_and_signature) = token.split_once('.').unwrap();
        let (payload, _) = payload_and_signature.split_once('.').unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(header("none").to_string());
        let none_token = format!("{none_header}.{payload}.");
        assert!(
            verifiers.verify(&none_token, ISSUER, NOW).is_err(),
            "alg none was accepted"
        );

        // HS256 keyed with the public key's bytes, the classic confusion attack.
        let hs_header = URL_SAFE_NO_PAD.encode(header("HS256").to_string());
        let input = format!("{hs_header}.{payload}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public.to_string().as_bytes());
        let tag = ring::hmac::sign(&key, input.as_bytes());
        let hs_token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert!(
            verifiers.verify(&hs_token, ISSUER, NOW).is_err(),
            "HS256 with the public key was accepted"
        );

        // An EdDSA header on an ES256 key.
        let ed_header = URL_SAFE_NO_PAD.encode(header("EdDSA").to_string());
        let (_, signature) = payload_and_signature.split_once('.').unwrap();
        let ed_token = format!("{ed_header}.{payload}.{signature}");
        assert!(
            verifiers.verify(&ed_token, ISSUER, NOW).is_err(),
            "a header naming another algorithm was accepted"
        );
    }
}
