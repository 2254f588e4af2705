//! Our own OCI registry client, shared by the Notation and cosign verifiers: manifests and
//! blobs verified against their digests, the referrers API with the referrers tag schema as
//! fallback (their union), tags, the bearer token flow and basic auth with credentials from
//! a docker `config.json`, bounded reads, `429`/`Retry-After`, typed errors, a bounded
//! content-addressed cache and request counters.
//!
//! The distribution specification rules it implements are quoted above the code in
//! [`client`]. Verifiers never see HTTP: they get verified bytes, `None` for 404, or an
//! [`OciError`] whose [`OciError::verdict`] says whether it is an outage or tampering.

pub mod auth;
pub mod cache;
pub mod client;
pub mod error;
pub mod types;

pub use auth::DockerConfig;
pub use cache::ContentCache;
pub use client::{
    Limits, Referrers, RegistryClient, RegistryConfig, RequestCounts, RequestEvent, RequestKind, RequestObserver,
    RetryPolicy,
};
pub use error::OciError;
pub(crate) use error::Problem;
pub use types::{Descriptor, ImageIndex, ImageManifest, Manifest, ManifestContent, referrers_tag, sha256_digest};

use crate::image::{DOCKER_HUB, ImageRef};

/// The API host of Docker Hub: `docker.io` references are served by `registry-1.docker.io`.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// A repository in a registry, as the client addresses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    /// The registry as image references name it (`docker.io`, `ghcr.io`, `127.0.0.1:5000`):
    /// the key for credentials.
    pub registry: String,
    /// The host (and port) the API is served from.
    pub api_host: String,
    /// The repository path (`library/nginx`, `team/app`).
    pub name: String,
}

impl Repository {
    pub fn new(registry: &str, name: &str) -> Repository {
        let api_host = if registry == DOCKER_HUB { DOCKER_HUB_API_HOST.to_string() } else { registry.to_string() };
        Repository { registry: registry.to_string(), api_host, name: name.to_string() }
    }

    /// The repository of an image reference.
    pub fn from_image(image: &ImageRef) -> Repository {
        Repository::new(&image.registry, &image.repository)
    }
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_images_are_served_by_registry_1() {
        let r = Repository::from_image(&ImageRef::parse("nginx:1").unwrap());
        assert_eq!(
            (r.registry.as_str(), r.api_host.as_str(), r.name.as_str()),
            ("docker.io", DOCKER_HUB_API_HOST, "library/nginx")
        );
        let r = Repository::from_image(&ImageRef::parse("ghcr.io/acme/app:v1").unwrap());
        assert_eq!((r.api_host.as_str(), r.to_string().as_str()), ("ghcr.io", "ghcr.io/acme/app"));
    }
}
