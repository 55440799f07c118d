//! Request parameters from a query string or an `application/x-www-form-urlencoded` body.
//!
//! RFC 6749 §3.1 and §3.2: parameters must not be included more than once, and a parameter
//! sent without a value is treated as omitted.

use std::collections::HashMap;

use super::OAuthError;

/// Most parameters one request may carry; real requests send fewer than twenty.
const MAX_PARAMETERS: usize = 64;

/// Parsed parameters, with the name of the first repeated one kept aside so that each
/// endpoint decides when to report it.
#[derive(Debug, Default)]
pub struct Params {
    values: HashMap<String, String>,
    repeated: Vec<String>,
}

impl Params {
    pub fn parse(input: &[u8]) -> Result<Self, OAuthError> {
        let mut params = Self::default();
        for (count, (name, value)) in form_urlencoded::parse(input).enumerate() {
            if count >= MAX_PARAMETERS {
                return Err(OAuthError::invalid_request(format!(
                    "the request has more than {MAX_PARAMETERS} parameters"
                )));
            }
            if value.is_empty() {
                continue;
            }
            if params.values.contains_key(name.as_ref()) {
                if !params.repeated.iter().any(|known| known == name.as_ref()) {
                    params.repeated.push(name.into_owned());
                }
                continue;
            }
            params.values.insert(name.into_owned(), value.into_owned());
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
    fn params_limit_count() {
        let body: String = (0..100).map(|index| format!("p{index}=1&")).collect();
        assert!(Params::parse(body.as_bytes()).is_err());
    }
}
