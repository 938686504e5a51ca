//! Kubernetes' rules for the names a rendered Secret carries: its name (a DNS
//! subdomain), its namespace (a DNS label) and its data keys (a ConfigMap/Secret key).
//!
//! These names come from the repository, i.e. from whoever can push to it, and they
//! become file names (`render --output DIR` writes `DIR/<namespace>/<name>.yaml`) and
//! API paths. Checking them where Secrets are produced ([`super::render`]) means every
//! mode (render, the controller, later ones) refuses `../../x`, `/abs` or `a/b` before
//! anything is written. The rules are Kubernetes' own (apimachinery `validation`:
//! `IsDNS1123Subdomain`, `IsDNS1123Label`, `IsConfigMapKey`), so nothing valid in a
//! cluster is refused.

/// Longest Secret name (RFC 1123 subdomain; Kubernetes' `DNS1123SubdomainMaxLength`).
pub const MAX_NAME_LEN: usize = 253;
/// Longest namespace (RFC 1123 label; Kubernetes' `DNS1123LabelMaxLength`).
pub const MAX_NAMESPACE_LEN: usize = 63;
/// Longest data key (Kubernetes applies the subdomain length to keys).
pub const MAX_KEY_LEN: usize = 253;

/// Why a name is not acceptable to Kubernetes (the value itself is shown by the
/// caller: names and keys are not secret, and the user needs to see which one).
pub type NameRule = &'static str;

/// One RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (length checked by callers).
fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => edge(first) && edge(last) && b.iter().all(inner),
        _ => false,
    }
}

/// A Secret name: an RFC 1123 DNS subdomain, at most 253 characters.
pub fn check_secret_name(name: &str) -> Result<(), NameRule> {
    if name.len() > MAX_NAME_LEN {
        return Err("a Secret name has at most 253 characters");
    }
    if !name.split('.').all(is_label) {
        return Err("a Secret name is a DNS subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit");
    }
    Ok(())
}

/// A namespace: an RFC 1123 DNS label, at most 63 characters.
pub fn check_namespace(namespace: &str) -> Result<(), NameRule> {
    if namespace.len() > MAX_NAMESPACE_LEN {
        return Err("a namespace has at most 63 characters");
    }
    if !is_label(namespace) {
        return Err("a namespace is a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit");
    }
    Ok(())
}

/// A data key: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.`, `..` or `..*`
/// (Kubernetes' `IsConfigMapKey`: keys become file names in volumes).
pub fn check_data_key(key: &str) -> Result<(), NameRule> {
    if key.is_empty() {
        return Err("a data key must not be empty");
    }
    if key.len() > MAX_KEY_LEN {
        return Err("a data key has at most 253 characters");
    }
    if !key
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err("a data key has only letters, digits, '-', '_' and '.'");
    }
    if key.starts_with("..") || key == "." {
        return Err("a data key must not be '.' or start with '..'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_follow_the_dns_subdomain_rule() {
        for ok in ["a", "db-creds", "a.b.c", "0", "x1-2.y", &"a".repeat(253)] {
            assert_eq!(check_secret_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "../../../x",
            "/abs/dir",
            "a/b",
            "Upper",
            "-a",
            "a-",
            "a..b",
            ".a",
            "a.",
            "a_b",
            "a b",
            &"a".repeat(254),
        ] {
            assert!(check_secret_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn namespaces_follow_the_dns_label_rule() {
        for ok in ["default", "kube-system", "a", "0a", &"n".repeat(63)] {
            assert_eq!(check_namespace(ok), Ok(()), "{ok}");
        }
        for bad in ["", "..", "a.b", "/abs", "A", "-a", "a-", &"n".repeat(64)] {
            assert!(check_namespace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn data_keys_follow_the_configmap_key_rule() {
        for ok in ["a", ".env", "tls.crt", "A_B-c.d", ".a..b", &"k".repeat(253)] {
            assert_eq!(check_data_key(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "..a",
            "a/b",
            "/x",
            "a b",
            "é",
            &"k".repeat(254),
        ] {
            assert!(check_data_key(bad).is_err(), "{bad:?}");
        }
    }
}
