//! Image references and the Notary GUNs they map to.
//!
//! `host[:port]/path[:tag][@sha256:<hex>]`; Docker Hub short names are normalized the way
//! Docker does (`nginx` -> `docker.io/library/nginx`), and the GUN is `<registry>/<path>`.

use std::fmt;

pub const DOCKER_HUB: &str = "docker.io";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host, with port when given (`docker.io`, `registry.example.com:5000`).
    pub registry: String,
    /// Repository path below the registry (`library/nginx`, `team/app`).
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses an image reference. A reference with neither tag nor digest means `:latest`.
    pub fn parse(input: &str) -> Result<ImageRef, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("empty image reference".into());
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(d).map_err(|e| format!("{input:?}: {e}"))?)),
            None => (s, None),
        };
        // A tag follows the last ':' after the last '/', so a registry port is not a tag.
        let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let (n, t) = name_tag.split_at(last_slash + i);
                (n, Some(t[1..].to_string()))
            }
            None => (name_tag, None),
        };
        if let Some(t) = &tag {
            let valid = !t.is_empty()
                && t.len() <= 128
                && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                && !t.starts_with(['.', '-']);
            if !valid {
                return Err(format!("{input:?}: invalid tag {t:?}"));
            }
        }
        let (registry, repository) = split_registry(name);
        if repository.is_empty() || repository.split('/').any(|c| c.is_empty()) {
            return Err(format!("{input:?}: invalid repository path"));
        }
        if !repository.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c)) {
            return Err(format!("{input:?}: repository names must be lowercase (a-z, 0-9, '.', '_', '-')"));
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(ImageRef { registry, repository, tag, digest })
    }

    /// The Notary globally unique name: `<registry>/<repository>`.
    pub fn gun(&self) -> String {
        // Built by hand: called for every image of every scan, where `format!` showed.
        let mut gun = String::with_capacity(self.registry.len() + 1 + self.repository.len());
        gun.push_str(&self.registry);
        gun.push('/');
        gun.push_str(&self.repository);
        gun
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn split_registry(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            let registry =
                if first == "index.docker.io" || first == "registry-1.docker.io" { DOCKER_HUB } else { first };
            let rest = if registry == DOCKER_HUB && !rest.contains('/') {
                format!("library/{rest}")
            } else {
                rest.to_string()
            };
            (registry.to_string(), rest)
        }
        Some(_) => (DOCKER_HUB.to_string(), name.to_string()),
        None => (DOCKER_HUB.to_string(), format!("library/{name}")),
    }
}

/// Validates `sha256:<64 lowercase hex>`.
pub fn parse_digest(d: &str) -> Result<String, String> {
    let hex = d.strip_prefix("sha256:").ok_or_else(|| format!("digest {d:?} is not sha256:<hex>"))?;
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
        return Err(format!("digest {d:?} is not sha256 followed by 64 lowercase hex digits"));
    }
    Ok(d.to_string())
}

/// What `status.containerStatuses[].imageID` says a container runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunningDigest {
    /// `docker-pullable://repo@sha256:..` or `repo@sha256:..` (containerd, CRI-O): the
    /// manifest digest the image was pulled by, which is what signatures cover.
    Repository(String),
    /// `sha256:..` or `docker://sha256:..` with no repository: the runtime reports the image
    /// ID (the digest of the image's config), e.g. for an image built or loaded locally. It
    /// is not a manifest digest and must never be compared with a signed digest as drift.
    ConfigId(String),
    /// Not started yet (empty) or not a form we read.
    Missing,
}

impl RunningDigest {
    /// The manifest digest, when the runtime reported one.
    pub fn repository(&self) -> Option<&str> {
        match self {
            RunningDigest::Repository(d) => Some(d),
            _ => None,
        }
    }
}

/// Reads the digest a container runs from its `imageID`.
pub fn running_digest(image_id: &str) -> RunningDigest {
    let s = image_id.trim();
    let s = s.rsplit_once("://").map_or(s, |(_, rest)| rest);
    match s.rsplit_once('@') {
        Some((repo, d)) if !repo.is_empty() => {
            parse_digest(d).map_or(RunningDigest::Missing, RunningDigest::Repository)
        }
        Some(_) => RunningDigest::Missing,
        None => parse_digest(s).map_or(RunningDigest::Missing, RunningDigest::ConfigId),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_short_names_are_normalized_like_docker() {
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(r.gun(), "docker.io/library/nginx");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(ImageRef::parse("bitnami/redis:7").unwrap().gun(), "docker.io/bitnami/redis");
        assert_eq!(ImageRef::parse("index.docker.io/nginx:1").unwrap().gun(), "docker.io/library/nginx");
    }

    #[test]
    fn registry_ports_are_not_tags_and_digests_are_kept() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("localhost:5000/team/app:v1@{d}")).unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        let r = ImageRef::parse(&format!("registry.example.com:443/app@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.to_string(), format!("registry.example.com:443/app@{d}"));
    }

    #[test]
    fn malformed_references_are_refused_with_the_reason() {
        assert!(ImageRef::parse("").is_err());
        assert!(ImageRef::parse("Upper/Case").unwrap_err().contains("lowercase"));
        assert!(ImageRef::parse("app@sha256:xyz").unwrap_err().contains("64"));
        assert!(ImageRef::parse("app:").is_err());
        assert!(ImageRef::parse("a//b").is_err());
    }

    #[test]
    fn running_digest_reads_every_runtime_image_id_form() {
        let d = format!("sha256:{}", "b".repeat(64));
        let repo = RunningDigest::Repository(d.clone());
        assert_eq!(running_digest(&format!("docker-pullable://nginx@{d}")), repo);
        assert_eq!(running_digest(&format!("docker.io/library/nginx@{d}")), repo);
        assert_eq!(running_digest(&format!("localhost:5000/team/app@{d}")), repo);
        assert_eq!(repo.repository(), Some(d.as_str()));
        // An image ID (config digest) is not a manifest digest: never compared as drift.
        let config = RunningDigest::ConfigId(d.clone());
        assert_eq!(running_digest(&d), config, "a bare sha256 is an image (config) ID");
        assert_eq!(running_digest(&format!("docker://{d}")), config, "docker://sha256 is an image ID");
        assert_eq!(config.repository(), None);
        for missing in ["", "nginx:latest", "docker://", &format!("@{d}"), "nginx@sha256:abc"] {
            assert_eq!(running_digest(missing), RunningDigest::Missing, "{missing:?}");
        }
    }
}
