//! OCI descriptors, image manifests and indexes, and content digests.
//!
//! Only what the signature verifiers read is modelled; unknown fields are ignored, as the
//! image specification requires of consumers.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256, Sha512};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The config media type of artifacts with no config (`{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// The manifest media types we ask for and accept.
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default, deserialize_with = "null_as_default")]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// The artifact type as the distribution specification defines it for referrers:
    /// `artifactType` when set, else the config media type.
    pub fn effective_artifact_type(&self) -> &str {
        self.artifact_type.as_deref().unwrap_or(&self.config.media_type)
    }
}

/// An image index (OCI or Docker manifest list); also the referrers API answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    /// olareg answers `"manifests": null` for a digest without referrers.
    #[serde(default, deserialize_with = "null_as_default")]
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub annotations: BTreeMap<String, String>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// What a manifest is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestContent {
    Image(ImageManifest),
    Index(ImageIndex),
}

/// A manifest as fetched: its descriptor (digest verified by hashing the body) and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub descriptor: Descriptor,
    pub bytes: Arc<[u8]>,
    pub content: ManifestContent,
}

impl Manifest {
    /// Parses manifest bytes of `media_type` (the `Content-Type`, or the body's own
    /// `mediaType` when the header is generic).
    pub fn parse(media_type: &str, digest: String, bytes: Arc<[u8]>) -> Result<Manifest, String> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            #[serde(default)]
            media_type: Option<String>,
            #[serde(default)]
            manifests: Option<serde_json::Value>,
        }
        let probe: Probe = serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
        let declared = probe.media_type.clone();
        let media_type = if MANIFEST_MEDIA_TYPES.contains(&media_type) {
            media_type.to_string()
        } else if let Some(m) = declared.as_deref().filter(|m| MANIFEST_MEDIA_TYPES.contains(m)) {
            m.to_string()
        } else if probe.manifests.is_some() {
            OCI_INDEX.to_string()
        } else if declared.is_none() {
            OCI_MANIFEST.to_string()
        } else {
            return Err(format!("unsupported manifest media type {:?}", declared.unwrap_or_default()));
        };
        // The image spec: mediaType, when present, must match the descriptor's.
        if let Some(d) = declared.as_deref() {
            if d != media_type {
                return Err(format!("manifest declares media type {d:?} but was served as {media_type:?}"));
            }
        }
        let content = if media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST {
            ManifestContent::Index(serde_json::from_slice(&bytes).map_err(|e| format!("invalid index: {e}"))?)
        } else {
            ManifestContent::Image(serde_json::from_slice(&bytes).map_err(|e| format!("invalid manifest: {e}"))?)
        };
        let descriptor = Descriptor {
            media_type,
            digest,
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: Default::default(),
        };
        Ok(Manifest { descriptor, bytes, content })
    }

    pub fn image(&self) -> Option<&ImageManifest> {
        match &self.content {
            ManifestContent::Image(m) => Some(m),
            ManifestContent::Index(_) => None,
        }
    }

    pub fn index(&self) -> Option<&ImageIndex> {
        match &self.content {
            ManifestContent::Index(i) => Some(i),
            ManifestContent::Image(_) => None,
        }
    }
}

/// Validates a digest string: `sha256:<64 hex>` or `sha512:<128 hex>`, lowercase.
pub fn validate_digest(d: &str) -> Result<(), String> {
    let (alg, hex) = d.split_once(':').ok_or_else(|| format!("digest {d:?} has no algorithm"))?;
    let len = match alg {
        "sha256" => 64,
        "sha512" => 128,
        other => return Err(format!("digest algorithm {other:?} is not supported (sha256, sha512)")),
    };
    if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("digest {d:?} is not {alg} followed by {len} lowercase hex digits"));
    }
    Ok(())
}

/// The digest of `bytes` with the algorithm of `like` (sha256 unless `like` is sha512).
pub fn digest_like(like: &str, bytes: &[u8]) -> String {
    if like.starts_with("sha512:") {
        format!("sha512:{}", hex::encode(Sha512::digest(bytes)))
    } else {
        sha256_digest(bytes)
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The referrers tag schema (distribution-spec v1.1): "`<alg>-<ref>`", where "`<alg>`: the
/// digest algorithm (e.g. `sha256` or `sha512`)" and "`<ref>`: the digest from the `subject`
/// field", with `<alg>` truncated to 32 and `<ref>` to 64 characters.
pub fn referrers_tag(digest: &str) -> String {
    let (alg, r) = digest.split_once(':').unwrap_or(("sha256", digest));
    format!("{}-{}", &alg[..alg.len().min(32)], &r[..r.len().min(64)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_manifests_and_annotations_parse_as_empty() {
        let b: Arc<[u8]> = Arc::from(
            &br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":null}"#[..],
        );
        let m = Manifest::parse("application/json", sha256_digest(&b), b.clone()).unwrap();
        assert_eq!(m.index().unwrap().manifests, vec![]);
        assert_eq!(m.descriptor.media_type, OCI_INDEX);
    }

    #[test]
    fn a_body_that_contradicts_its_content_type_is_refused() {
        let b: Arc<[u8]> = Arc::from(
            &br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#[..],
        );
        assert!(Manifest::parse(OCI_MANIFEST, sha256_digest(&b), b).unwrap_err().contains("declares"));
    }

    #[test]
    fn digests_are_validated_and_computed_per_algorithm() {
        assert!(validate_digest(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(validate_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(validate_digest("md5:abc").is_err());
        assert!(digest_like("sha512:", b"x").starts_with("sha512:"));
        assert_eq!(referrers_tag("sha256:ab"), "sha256-ab");
        assert_eq!(referrers_tag(&format!("sha512:{}", "c".repeat(128))), format!("sha512-{}", "c".repeat(64)));
    }
}
