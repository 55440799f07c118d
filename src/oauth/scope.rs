//! Scope values (RFC 6749 §3.3): space-delimited, case-sensitive tokens of printable ASCII
//! other than space, `"` and `\`. A scope is kept as a sorted set so that equal sets have
//! one spelling in storage and in consent records.

use std::collections::BTreeSet;

use super::{ErrorCode, OAuthError};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    pub fn parse(value: &str) -> Result<Self, OAuthError> {
        let mut tokens = BTreeSet::new();
        for token in value.split(' ') {
            let valid = !token.is_empty()
                && token.bytes().all(|byte| {
                    byte == 0x21 || (0x23..=0x5b).contains(&byte) || (0x5d..=0x7e).contains(&byte)
                });
            if !valid {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "scope must be space-separated tokens of printable ASCII without quotes or backslashes",
                ));
            }
            tokens.insert(token.to_owned());
        }
        Ok(Self(tokens))
    }

    /// Reads a scope written by `to_string`, where an empty string is the empty set.
    pub fn from_stored(value: &str) -> Self {
        Self(
            value
                .split(' ')
                .filter(|token| !token.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn intersection(&self, other: &Scope) -> Scope {
        Self(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn union(&self, other: &Scope) -> Scope {
        Self(self.0.union(&other.0).cloned().collect())
    }

    /// Returns the tokens of `self` missing from `other`, space-separated.
    pub fn missing_from(&self, other: &Scope) -> String {
        self.0
            .difference(&other.0)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for token in &self.0 {
            if !first {
                formatter.write_str(" ")?;
            }
            formatter.write_str(token)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_sorts_and_deduplicates() {
        let scope = Scope::parse("b a b").unwrap();
        assert_eq!(scope.to_string(), "a b");
    }

    #[test]
    fn scope_rejects_malformed_tokens() {
        for value in ["a  b", " a", "a\"b", "a\\b", "a\tb", "é"] {
            assert!(Scope::parse(value).is_err(), "{value:?} should be rejected");
        }
    }

    #[test]
    fn scope_set_operations() {
        let wide = Scope::parse("a b c").unwrap();
        let narrow = Scope::parse("a c").unwrap();
        assert!(narrow.is_subset(&wide));
        assert_eq!(wide.missing_from(&narrow), "b");
        assert_eq!(Scope::from_stored("").to_string(), "");
    }
}
