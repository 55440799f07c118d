//! The JWS algorithms a tenant may sign with: ES256 (the default), EdDSA with Ed25519, and
//! RS256 with 2048-bit keys for resource servers that support nothing else.

use josekit::jwk::Jwk;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, JwsSigner, JwsVerifier, RS256};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningAlgorithm {
    Es256,
    EdDsa,
    Rs256,
}

impl SigningAlgorithm {
    /// Every algorithm, in the order help texts list them.
    pub const ALL: [Self; 3] = [Self::Es256, Self::EdDsa, Self::Rs256];

    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.into_iter().map(Self::name).collect();
                format!(
                    "signing algorithm {name:?} is not supported; use one of {}",
                    names.join(", ")
                )
            })
    }

    /// Returns the JWS `alg` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
        }
    }

    /// Generates a key pair; returns the private and public JWK, each with `kid`, `alg` and
    /// `use`.
    pub fn generate(self, kid: &str) -> Result<(Jwk, Jwk), josekit::JoseError> {
        let (mut private, mut public) = match self {
            Self::Es256 => {
                let pair = ES256.generate_key_pair()?;
                (pair.to_jwk_private_key(), pair.to_jwk_public_key())
            }
            Self::EdDsa => {
                let pair = EdDSA.generate_key_pair(EdCurve::Ed25519)?;
                (pair.to_jwk_private_key(), pair.to_jwk_public_key())
            }
            Self::Rs256 => {
                let pair = RS256.generate_key_pair(2048)?;
                (pair.to_jwk_private_key(), pair.to_jwk_public_key())
            }
        };
        for jwk in [&mut private, &mut public] {
            jwk.set_key_id(kid);
            jwk.set_algorithm(self.name());
            jwk.set_key_use("sig");
        }
        Ok((private, public))
    }

    pub fn signer(self, private: &Jwk) -> Result<Box<dyn JwsSigner>, josekit::JoseError> {
        Ok(match self {
            Self::Es256 => Box::new(ES256.signer_from_jwk(private)?),
            Self::EdDsa => Box::new(EdDSA.signer_from_jwk(private)?),
            Self::Rs256 => Box::new(RS256.signer_from_jwk(private)?),
        })
    }

    pub fn verifier(self, public: &Jwk) -> Result<Box<dyn JwsVerifier>, josekit::JoseError> {
        Ok(match self {
            Self::Es256 => Box::new(ES256.verifier_from_jwk(public)?),
            Self::EdDsa => Box::new(EdDSA.verifier_from_jwk(public)?),
            Self::Rs256 => Box::new(RS256.verifier_from_jwk(public)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_and_verifies() {
        for name in SigningAlgorithm::ALL.map(SigningAlgorithm::name) {
            let algorithm = SigningAlgorithm::parse(name).unwrap();
            let (private, public) = algorithm.generate("kid-1").unwrap();
            assert_eq!(public.algorithm(), Some(name));
            assert!(
                public.parameter("d").is_none(),
                "{name} public key carries private material"
            );
            let signature = algorithm
                .signer(&private)
                .unwrap()
                .sign(b"message")
                .unwrap();
            algorithm
                .verifier(&public)
                .unwrap()
                .verify(b"message", &signature)
                .unwrap();
            assert!(
                algorithm
                    .verifier(&public)
                    .unwrap()
                    .verify(b"other", &signature)
                    .is_err()
            );
        }
    }

    #[test]
    fn unknown_algorithms_are_rejected() {
        for name in ["none", "HS256", "es256", "PS256", ""] {
            assert!(
                SigningAlgorithm::parse(name).is_err(),
                "{name:?} should be rejected"
            );
        }
    }
}
