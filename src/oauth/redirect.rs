//! Redirect URI rules: what a client may register (RFC 7591 §2, RFC 8252 §7, RFC 6749
//! §3.1.2) and how a requested URI is matched against the registered ones.
//!
//! Matching is byte-for-byte string comparison (RFC 9700 §2.1), with one exception for
//! native clients (RFC 8252 §7.3): a registered `http` URI on a loopback host matches the
//! same URI with any port, because native apps listen on an ephemeral port. The host must be
//! spelled exactly as registered, so `localhost` matches only `localhost` and `127.0.0.1`
//! only `127.0.0.1`. Nothing is normalised, so no decoding or path resolution can turn a
//! different string into an accepted one.

use crate::config::is_loopback_host;

/// Maximum length of a redirect URI accepted at registration, in bytes.
pub const MAX_REDIRECT_URI_LENGTH: usize = 2000;

/// Schemes that can run code or read local data in a browser or app, listed so that the
/// rejection message gives the reason.
const DANGEROUS_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "blob",
    "about",
    "filesystem",
    "view-source",
    "ftp",
    "ws",
    "wss",
    "mailto",
    "tel",
    "jar",
    "chrome",
    "resource",
];

/// Kind of a registered redirect URI, which decides how it is matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectKind {
    /// `https` on any host.
    Https,
    /// Plain `http` on a loopback host.
    Loopback,
    /// A private-use scheme such as `com.example.app:/callback` (RFC 8252 §7.1).
    PrivateUse,
}

/// Classifies a redirect URI offered at registration, or returns why it is unacceptable.
pub fn classify(uri: &str) -> Result<RedirectKind, String> {
    if uri.len() > MAX_REDIRECT_URI_LENGTH {
        return Err(format!(
            "a redirect URI is longer than {MAX_REDIRECT_URI_LENGTH} characters"
        ));
    }
    if let Some(byte) = uri.bytes().find(|byte| !(0x21..=0x7e).contains(byte)) {
        return Err(format!(
            "redirect URI {uri:?} contains the byte 0x{byte:02x}; whitespace, control and \
             non-ASCII characters are not allowed (percent-encode them)"
        ));
    }
    if uri.contains('#') {
        return Err(format!(
            "redirect URI {uri:?} has a fragment, which RFC 6749 §3.1.2 forbids"
        ));
    }
    let Some((scheme, _)) = uri.split_once(':') else {
        return Err(format!("redirect URI {uri:?} is not an absolute URI"));
    };
    let lowered = scheme.to_ascii_lowercase();
    if DANGEROUS_SCHEMES.contains(&lowered.as_str()) {
        return Err(format!("redirect URI scheme {scheme:?} is not allowed"));
    }
    if scheme != lowered {
        return Err(format!(
            "redirect URI {uri:?} must write its scheme in lowercase"
        ));
    }
    let parsed = url::Url::parse(uri)
        .map_err(|error| format!("redirect URI {uri:?} is invalid: {error}"))?;
    match scheme {
        "https" | "http" => {
            // The URL parser reads `https:///cb` and `https:cb` as the host `cb`, so the
            // authority is also checked in the string as written.
            let authority = authority_of(uri);
            let host = parsed
                .host_str()
                .filter(|host| !host.is_empty() && !authority.is_empty())
                .ok_or_else(|| format!("redirect URI {uri:?} has no host"))?;
            if !parsed.username().is_empty()
                || parsed.password().is_some()
                || authority.contains('@')
            {
                return Err(format!(
                    "redirect URI {uri:?} must not contain user information"
                ));
            }
            if scheme == "https" {
                Ok(RedirectKind::Https)
            } else if is_loopback_host(host) {
                Ok(RedirectKind::Loopback)
            } else {
                Err(format!(
                    "redirect URI {uri:?} uses plain http on a non-loopback host; use https"
                ))
            }
        }
        _ if scheme.contains('.') => Ok(RedirectKind::PrivateUse),
        _ => Err(format!(
            "redirect URI scheme {scheme:?} is not allowed: use https, http on a loopback host, \
             or a reverse-domain private-use scheme such as com.example.app"
        )),
    }
}

/// Returns the authority written right after `scheme://`, up to the next `/`, `?` or `#`, or
/// an empty string when the URI has none. A `://` in the path or query is not an authority.
fn authority_of(uri: &str) -> &str {
    let after_scheme = uri
        .split_once(':')
        .and_then(|(_, rest)| rest.strip_prefix("//"))
        .unwrap_or("");
    let end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    &after_scheme[..end]
}

/// Returns whether `requested` may be used in place of the registered URI.
pub fn matches(registered: &str, requested: &str, native: bool) -> bool {
    if registered == requested {
        return true;
    }
    native && loopback_matches_any_port(registered, requested)
}

/// RFC 8252 §7.3: for `http` on a loopback host, everything but the port must be equal.
fn loopback_matches_any_port(registered: &str, requested: &str) -> bool {
    let (Some(registered), Some(requested)) =
        (split_loopback(registered), split_loopback(requested))
    else {
        return false;
    };
    registered.host == requested.host && registered.rest == requested.rest
}

struct LoopbackParts<'a> {
    host: &'a str,
    rest: &'a str,
}

/// Splits `http://HOST[:PORT]REST` when HOST is a loopback name or IP literal and PORT, if
/// present, is a valid port number.
fn split_loopback(uri: &str) -> Option<LoopbackParts<'_>> {
    let after_scheme = uri.strip_prefix("http://")?;
    let authority = authority_of(uri);
    let rest = &after_scheme[authority.len()..];
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (inside, after) = bracketed.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (&authority[..inside.len() + 2], port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if let Some(port) = port {
        let valid =
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|byte| byte.is_ascii_digit());
        if !valid
            || port
                .parse::<u32>()
                .ok()
                .filter(|number| (1..=65535).contains(number))
                .is_none()
        {
            return None;
        }
    }
    is_loopback_host(host).then_some(LoopbackParts { host, rest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_accepts_safe_uris() {
        assert_eq!(
            classify("https://client.example/cb"),
            Ok(RedirectKind::Https)
        );
        assert_eq!(classify("http://127.0.0.1/cb"), Ok(RedirectKind::Loopback));
        assert_eq!(classify("http://[::1]:8080/cb"), Ok(RedirectKind::Loopback));
        assert_eq!(
            classify("http://localhost:53682/callback"),
            Ok(RedirectKind::Loopback)
        );
        assert_eq!(
            classify("com.example.app:/oauth"),
            Ok(RedirectKind::PrivateUse)
        );
    }

    #[test]
    fn classify_rejects_dangerous_uris() {
        let cases = [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "jAvAsCrIpT:alert(1)",
            " javascript:alert(1)",
            "java\tscript:alert(1)",
            "javascript\n:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "DATA:text/html,x",
            "vbscript:msgbox(1)",
            "file:///etc/passwd",
            "FILE:///etc/passwd",
            "ftp://client.example/cb",
            "http://client.example/cb",
            "https://client.example/app/#/oauth",
            "https://client.example/cb#",
            "HTTPS://client.example/cb",
            "https://user@client.example/cb",
            "http://127.0.0.1@attacker.example/cb",
            "https://client.example/c\u{0}b",
            "https://client.example/c\u{a0}b",
            "noscheme",
            "custom:/cb",
            "/relative/cb",
            "https:///cb",
            "https:cb",
            "https:/cb",
            "http:///127.0.0.1/cb",
            "https:cb?x=://evil.example",
            "https:/cb/x://evil.example",
            "http:/127.0.0.1/cb?x://y",
            "http:127.0.0.1/cb?r=https://a",
        ];
        for uri in cases {
            assert!(classify(uri).is_err(), "{uri:?} should be rejected");
        }
        assert!(classify(&format!("https://client.example/{}", "a".repeat(2000))).is_err());
    }

    #[test]
    fn matches_requires_exact_string() {
        let registered = "https://client.example/cb";
        for requested in [
            "https://evilclient.example/cb",
            "https://x.client.example/cb",
            "https://client.example.attacker.example/cb",
            "https://client.example/cb/../../other",
            "https://client.example/cbx",
            "https://client.example/cb/",
            "https://client.example/cb?x=1",
            "https://client.example:443/cb",
            "https://CLIENT.example/cb",
            "https://client.example/cb#frag",
            "https://client.example/cb;jsessionid=x",
        ] {
            assert!(
                !matches(registered, requested, true),
                "{requested} should not match"
            );
        }
        assert!(matches(registered, registered, false));
    }

    #[test]
    fn matches_loopback_any_port_for_native_only() {
        let registered = "http://127.0.0.1/callback";
        assert!(matches(registered, "http://127.0.0.1:53219/callback", true));
        assert!(!matches(
            registered,
            "http://127.0.0.1:53219/callback",
            false
        ));
        assert!(matches(
            "http://[::1]/callback",
            "http://[::1]:8080/callback",
            true
        ));
        assert!(matches(
            "http://localhost:3000/callback",
            "http://localhost:40123/callback",
            true
        ));
    }

    #[test]
    fn matches_loopback_rejects_other_hosts_and_paths() {
        let registered = "http://127.0.0.1/cb";
        for requested in [
            "http://127.0.0.1.attacker.example/cb",
            "http://127.0.0.1@attacker.example/cb",
            "http://127.0.0.2/cb",
            "http://[::1]/cb",
            "http://localhost/cb",
            "https://127.0.0.1:8080/cb",
            "http://127.0.0.1:8080/other",
            "http://127.0.0.1:8080/cb?x=1",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:99999/cb",
            "http://127.0.0.1:+80/cb",
            "http://127.0.0.1:8080/cb#x",
        ] {
            assert!(
                !matches(registered, requested, true),
                "{requested} should not match"
            );
        }
        assert!(!matches(
            "http://localhost/cb",
            "http://localhost.attacker.example:8080/cb",
            true
        ));
    }
}
