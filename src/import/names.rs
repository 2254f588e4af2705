//! Kubernetes names for imported objects: Connaisseur and notation names (`docker_official`,
//! `Team App`) become RFC 1123 labels, unique within one import.

use std::collections::BTreeSet;

/// The longest name generated: a DNS label, so that every generated name is also a valid
/// label value and a valid RootKey/KeySource name.
pub const MAX_NAME: usize = 63;

/// `text` as an RFC 1123 label: lowercase, runs of anything but `[a-z0-9]` become one `-`,
/// no leading or trailing `-`, at most [`MAX_NAME`] characters. `fallback` when nothing is left.
pub fn label(text: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    let mut s: String = trimmed.chars().take(MAX_NAME).collect();
    while s.ends_with('-') {
        s.pop();
    }
    if s.is_empty() { fallback.to_string() } else { s }
}

/// Hands out unique names: a taken name gets `-2`, `-3`, ... (shortened to stay a label).
#[derive(Debug, Default)]
pub struct Names {
    taken: BTreeSet<String>,
}

impl Names {
    pub fn unique(&mut self, wanted: &str) -> String {
        let base = label(wanted, "imported");
        if self.taken.insert(base.clone()) {
            return base;
        }
        for n in 2.. {
            let suffix = format!("-{n}");
            let head: String = base.chars().take(MAX_NAME - suffix.len()).collect();
            let candidate = format!("{}{suffix}", head.trim_end_matches('-'));
            if self.taken.insert(candidate.clone()) {
                return candidate;
            }
        }
        unreachable!("some suffix is free")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_unique_dns_labels() {
        assert_eq!(label("docker_official", "x"), "docker-official");
        assert_eq!(label("  Team App!! ", "x"), "team-app");
        assert_eq!(label("__", "fallback"), "fallback");
        assert_eq!(label(&"a".repeat(80), "x").len(), MAX_NAME);
        let mut n = Names::default();
        assert_eq!(n.unique("dockerhub-default"), "dockerhub-default");
        assert_eq!(n.unique("dockerhub_default"), "dockerhub-default-2");
        assert_eq!(n.unique("dockerhub-default"), "dockerhub-default-3");
        let long = "b".repeat(70);
        assert_eq!(n.unique(&long).len(), MAX_NAME);
        let second = n.unique(&long);
        assert!(second.ends_with("-2") && second.len() == MAX_NAME, "{second}");
    }
}
