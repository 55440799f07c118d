//! Signing with a tenant's current key. ES256 and EdDSA sign with `ring`, which needs no
//! per-signature setup; through josekit, OpenSSL 3 looked up its algorithm objects on every
//! signature, which the profile of a token-issuing server showed as a large share of each
//! request. RS256 still signs through josekit.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jws::JwsSigner;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

use super::SigningAlgorithm;

pub enum TokenSigner {
    Ecdsa(EcdsaKeyPair, SystemRandom),
    Ed25519(Ed25519KeyPair),
    Jose(Box<dyn JwsSigner>),
}

impl TokenSigner {
    /// Builds a signer from the private JWK and the public JWK of one key pair. The public
    /// members come from the published key, since josekit's private EC JWKs omit them.
    pub fn from_jwk(
        algorithm: SigningAlgorithm,
        private: &Jwk,
        public: &Jwk,
    ) -> Result<Self, String> {
        let member = |name: &str| -> Result<Vec<u8>, String> {
            let source = if name == "d" { private } else { public };
            let text = source
                .parameter(name)
                .and_then(|value| value.as_str())
                .ok_or(format!("the JWK has no {name}"))?;
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| format!("the JWK member {name} is not base64url"))
        };
        match algorithm {
            SigningAlgorithm::Es256 => {
                let mut public = vec![0x04];
                public.extend(member("x")?);
                public.extend(member("y")?);
                let rng = SystemRandom::new();
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &member("d")?,
                    &public,
                    &rng,
                )
                .map_err(|error| format!("the P-256 key was rejected: {error}"))?;
                Ok(Self::Ecdsa(pair, rng))
            }
            SigningAlgorithm::EdDsa => {
                let pair = Ed25519KeyPair::from_seed_and_public_key(&member("d")?, &member("x")?)
                    .map_err(|error| format!("the Ed25519 key was rejected: {error}"))?;
                debug_assert_eq!(pair.public_key().as_ref(), member("x")?.as_slice());
                Ok(Self::Ed25519(pair))
            }
            SigningAlgorithm::Rs256 => algorithm
                .signer(private)
                .map(Self::Jose)
                .map_err(|error| error.to_string()),
        }
    }

    /// Returns the JWS signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Self::Ecdsa(pair, rng) => pair
                .sign(rng, message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| "ECDSA signing failed".to_owned()),
            Self::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Self::Jose(signer) => signer.sign(message).map_err(|error| error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_signatures_verify_with_josekit() {
        for algorithm in SigningAlgorithm::ALL {
            let (private, public) = algorithm.generate("kid").unwrap();
            let signer = TokenSigner::from_jwk(algorithm, &private, &public).unwrap();
            let signature = signer.sign(b"header.payload").unwrap();
            algorithm
                .verifier(&public)
                .unwrap()
                .verify(b"header.payload", &signature)
                .unwrap();
        }
    }
}
