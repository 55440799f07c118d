//! JWT access tokens per RFC 9068, and their verification.

use std::collections::HashMap;

use josekit::jwk::{Jwk, JwkSet};
use josekit::jws::{JwsHeader, JwsVerifier};
use josekit::jwt::{self, JwtPayload};
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

/// Why a token failed verification. The variants are for logs and tests; clients only
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

    /// Returns whether a key with this id is known.
    pub fn has_key(&self, kid: &str) -> bool {
        self.verifiers.contains_key(kid)
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

impl TenantKeys {
    /// Signs an access token with the tenant's current key.
    pub fn sign_access_token(
        &self,
        claims: &AccessTokenClaims,
    ) -> Result<String, josekit::JoseError> {
        let mut header = JwsHeader::new();
        header.set_token_type("at+jwt");
        header.set_key_id(&self.signing_kid);

        let mut payload = JwtPayload::new();
        payload.set_issuer(&claims.issuer);
        payload.set_subject(&claims.subject);
        payload.set_claim("aud", Some(Value::String(claims.audience.clone())))?;
        payload.set_claim("client_id", Some(Value::String(claims.client_id.clone())))?;
        if !claims.scope.is_empty() {
            payload.set_claim("scope", Some(Value::String(claims.scope.clone())))?;
        }
        // josekit's set_issued_at and set_expires_at write floats such as 1700000000.0;
        // integers are what resource servers expect and what verification reads back.
        payload.set_claim("iat", Some(Value::from(claims.issued_at)))?;
        payload.set_claim("exp", Some(Value::from(claims.expires_at)))?;
        payload.set_jwt_id(&claims.jwt_id);
        jwt::encode_with_signer(&payload, &header, self.signer.as_ref())
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
