//! Small pure checks shared by the spec validators. Each returns a readable reason on failure;
//! the caller prefixes the field path.

/// An `https://host[:port][/path]` URL: no credentials, query, fragment or whitespace.
pub(crate) fn https_url(url: &str) -> Result<(), String> {
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => rest,
        Some((scheme, _)) => return Err(format!("must be an https:// URL, not {scheme}://")),
        None => return Err("must be an https:// URL (e.g. https://notary.example.com)".into()),
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace".into());
    }
    if url.contains(['?', '#']) {
        return Err("must not have a query or fragment".into());
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err("must not embed credentials (use authSecretRef)".into());
    }
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 literal `[::1]` has colons of its own.
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (authority, None),
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    if let Some(p) = port
        && p.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!("has an invalid port {p:?}"));
    }
    Ok(())
}

/// A Kubernetes object name (RFC 1123 subdomain): lowercase alphanumerics, `-` and `.`, at most
/// 253 characters, starting and ending with an alphanumeric.
pub(crate) fn dns_subdomain(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid object name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
        ))
    }
}

/// A Kubernetes namespace name (RFC 1123 label).
pub(crate) fn dns_label(name: &str) -> Result<(), String> {
    dns_subdomain(name)?;
    if name.contains('.') || name.len() > 63 {
        return Err(format!("{name:?} is not a valid namespace name (no '.', at most 63 characters)"));
    }
    Ok(())
}

/// PEM armor of one of `kinds` (`PUBLIC KEY`, `CERTIFICATE`): a BEGIN line, a base64 body and the
/// matching END line. The key material itself is parsed by the verifier.
pub(crate) fn pem_armor(text: &str, kinds: &[&str]) -> Result<(), String> {
    let expected = || kinds.iter().map(|k| format!("'-----BEGIN {k}-----'")).collect::<Vec<_>>().join(" or ");
    let mut found = false;
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(end_of_label) = after.find("-----") else {
            return Err("has a truncated '-----BEGIN' line".into());
        };
        let label = &after[..end_of_label];
        if !kinds.contains(&label) {
            return Err(format!("has a '{label}' PEM block, expected {}", expected()));
        }
        let body_and_rest = &after[end_of_label + "-----".len()..];
        let end_line = format!("-----END {label}-----");
        let Some(end) = body_and_rest.find(&end_line) else {
            return Err(format!("has no '{end_line}' line"));
        };
        let body = &body_and_rest[..end];
        let body_ok = body.chars().all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c) || c.is_ascii_whitespace())
            && body.chars().any(|c| c.is_ascii_alphanumeric());
        if !body_ok {
            return Err(format!("the {label} PEM block has no valid base64 body"));
        }
        found = true;
        rest = &body_and_rest[end + end_line.len()..];
    }
    if found { Ok(()) } else { Err(format!("is not PEM: expected {}", expected())) }
}

/// A TUF key ID: 64 lowercase hex digits (the sha256 of the key).
pub(crate) fn key_id(id: &str) -> Result<(), String> {
    if id.len() == 64 && id.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
        Ok(())
    } else {
        Err(format!("{id:?} is not a key ID (64 lowercase hex digits)"))
    }
}

/// Reports the first duplicate of a list, if any.
pub(crate) fn first_duplicate<'a>(items: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = std::collections::BTreeSet::new();
    items.into_iter().find(|i| !seen.insert(*i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_urls_with_host_and_port_pass() {
        for ok in [
            "https://notary.docker.io",
            "https://127.0.0.1:4443",
            "https://n.example.com/prefix/",
            "https://[::1]:4443",
        ] {
            assert_eq!(https_url(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn non_https_or_odd_urls_fail() {
        for (bad, why) in [
            ("http://notary", "not http://"),
            ("notary.example.com", "must be an https:// URL"),
            ("https://", "no host"),
            ("https://u:p@host", "credentials"),
            ("https://host:99999", "invalid port"),
            ("https://host/?x=1", "query"),
            ("https://ho st", "whitespace"),
        ] {
            let err = https_url(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn pem_armor_requires_the_expected_block_with_a_body() {
        let key = "-----BEGIN PUBLIC KEY-----\nMFkwEw==\n-----END PUBLIC KEY-----\n";
        assert_eq!(pem_armor(key, &["PUBLIC KEY", "CERTIFICATE"]), Ok(()));
        assert!(pem_armor(key, &["CERTIFICATE"]).unwrap_err().contains("'PUBLIC KEY' PEM block"));
        assert!(pem_armor("MFkwEw==", &["PUBLIC KEY"]).unwrap_err().contains("is not PEM"));
        let private = "-----BEGIN EC PRIVATE KEY-----\nMHc=\n-----END EC PRIVATE KEY-----";
        assert!(pem_armor(private, &["PUBLIC KEY"]).unwrap_err().contains("EC PRIVATE KEY"));
        let truncated = "-----BEGIN PUBLIC KEY-----\nMFkwEw==\n";
        assert!(pem_armor(truncated, &["PUBLIC KEY"]).unwrap_err().contains("no '-----END PUBLIC KEY-----'"));
        let empty = "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----";
        assert!(pem_armor(empty, &["PUBLIC KEY"]).unwrap_err().contains("no valid base64 body"));
    }

    #[test]
    fn names_and_key_ids() {
        assert!(dns_subdomain("docker-hub.notary").is_ok());
        assert!(dns_subdomain("Docker").is_err());
        assert!(dns_subdomain("-a").is_err());
        assert!(dns_label("trustwatch-system").is_ok());
        assert!(dns_label("a.b").is_err());
        assert!(key_id(&"ab".repeat(32)).is_ok());
        assert!(key_id(&"AB".repeat(32)).is_err());
        assert!(key_id("abc").is_err());
        assert_eq!(first_duplicate(["a", "b", "a"]), Some("a"));
        assert_eq!(first_duplicate(["a", "b"]), None);
    }
}
