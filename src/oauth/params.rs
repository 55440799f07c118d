//! Request parameters from a query string or an `application/x-www-form-urlencoded` body.
//!
//! RFC 6749 §3.1 and §3.2: parameters must not be included more than once, and a parameter
//! sent without a value is treated as omitted.

use std::collections::HashMap;

use super::OAuthError;

/// Most parameters one request may carry; real requests send fewer than twenty.
const MAX_PARAMETERS: usize = 64;

/// Parsed parameters, with the names of repeated ones kept aside so that each endpoint
/// decides when to report them.
#[derive(Debug, Default)]
pub struct Params {
    values: HashMap<String, String>,
    repeated: Vec<String>,
}

impl Params {
    /// Parses `name=value` pairs. Values must decode to UTF-8 without NUL characters: a
    /// lossy decoding would change `state` behind the client's back, and no parameter of
    /// this server has a use for NUL.
    pub fn parse(input: &[u8]) -> Result<Self, OAuthError> {
        let mut params = Self::default();
        let pairs = input
            .split(|byte| *byte == b'&')
            .filter(|pair| !pair.is_empty());
        for (count, pair) in pairs.enumerate() {
            let (name, value) = match pair.iter().position(|byte| *byte == b'=') {
                Some(index) => (&pair[..index], &pair[index + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            let name = decode(name)?;
            let value = decode(value).map_err(|_| {
                OAuthError::invalid_request(format!(
                    "the {name} parameter is not valid UTF-8 or contains NUL"
                ))
            })?;
            if count >= MAX_PARAMETERS {
                return Err(OAuthError::invalid_request(format!(
                    "the request has more than {MAX_PARAMETERS} parameters"
                )));
            }
            if value.is_empty() {
                continue;
            }
            if params.values.contains_key(&name) {
                if !params.repeated.contains(&name) {
                    params.repeated.push(name);
                }
                continue;
            }
            params.values.insert(name, value);
        }
        Ok(params)
    }

    /// Returns the value of `name`, or `None` when it is absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("the {name} parameter is missing")))
    }

    pub fn is_repeated(&self, name: &str) -> bool {
        self.repeated.iter().any(|known| known == name)
    }

    /// Fails with `invalid_request` naming the first repeated parameter, if any.
    pub fn reject_repeated(&self) -> Result<(), OAuthError> {
        match self.repeated.first() {
            Some(name) => Err(OAuthError::invalid_request(format!(
                "the {name} parameter is repeated; send each parameter once"
            ))),
            None => Ok(()),
        }
    }

    /// Fails like `reject_repeated`, except that `allowed` may repeat.
    pub fn reject_repeated_except(&self, allowed: &str) -> Result<(), OAuthError> {
        match self.repeated.iter().find(|name| name.as_str() != allowed) {
            Some(name) => Err(OAuthError::invalid_request(format!(
                "the {name} parameter is repeated; send each parameter once"
            ))),
            None => Ok(()),
        }
    }
}

/// The reason a form-encoded component was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    NotUtf8,
    ContainsNul,
}

/// Decodes one form-encoded component, where `+` is a space and `%XX` a byte. The text must
/// be UTF-8 without NUL characters.
pub(crate) fn decode_component(raw: &[u8]) -> Result<String, DecodeError> {
    let spaced: std::borrow::Cow<'_, [u8]> = if raw.contains(&b'+') {
        raw.iter()
            .map(|byte| if *byte == b'+' { b' ' } else { *byte })
            .collect::<Vec<u8>>()
            .into()
    } else {
        raw.into()
    };
    let text = percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .map_err(|_| DecodeError::NotUtf8)?;
    if text.contains('\0') {
        return Err(DecodeError::ContainsNul);
    }
    Ok(text.into_owned())
}

/// Decodes a parameter's name or value for `Params::parse`.
fn decode(raw: &[u8]) -> Result<String, OAuthError> {
    decode_component(raw).map_err(|error| match error {
        DecodeError::NotUtf8 => OAuthError::invalid_request("a parameter is not valid UTF-8"),
        DecodeError::ContainsNul => {
            OAuthError::invalid_request("a parameter contains a NUL character")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_decode_values() {
        let params = Params::parse(b"a=1&b=x%20y&c=").unwrap();
        assert_eq!(params.get("a"), Some("1"));
        assert_eq!(params.get("b"), Some("x y"));
        assert_eq!(params.get("c"), None);
        assert!(params.reject_repeated().is_ok());
    }

    #[test]
    fn params_report_repeats() {
        let params = Params::parse(b"a=1&a=2&b=1").unwrap();
        assert!(params.is_repeated("a"));
        assert!(!params.is_repeated("b"));
        let error = params.reject_repeated().unwrap_err();
        assert!(error.description.contains("the a parameter"));
    }

    #[test]
    fn params_report_repeats_besides_allowed_one() {
        let params = Params::parse(b"resource=a&resource=b&code=1&code=2").unwrap();
        let error = params.reject_repeated_except("resource").unwrap_err();
        assert!(error.description.contains("the code parameter"));
        let params = Params::parse(b"resource=a&resource=b&code=1").unwrap();
        assert!(params.reject_repeated_except("resource").is_ok());
    }

    #[test]
    fn params_reject_bad_encodings() {
        for input in [&b"state=%FF%FE"[..], b"client_id=%00", b"a%00=1", b"x=\xff"] {
            assert!(
                Params::parse(input).is_err(),
                "{input:?} should be rejected"
            );
        }
        assert_eq!(
            Params::parse(b"s=caf%C3%A9+au+lait").unwrap().get("s"),
            Some("café au lait")
        );
    }

    #[test]
    fn params_limit_count() {
        let body: String = (0..100).map(|index| format!("p{index}=1&")).collect();
        assert!(Params::parse(body.as_bytes()).is_err());
    }
}
