//! The signature manifest (`signature-specification.md`, "Storage"): an OCI image manifest
//! whose one layer is the envelope and whose `subject` is the signed manifest. The shell reads
//! it from the registry; this checks it before the envelope is fetched and after.

use super::envelope::{Descriptor, MEDIA_TYPE_COSE, MEDIA_TYPE_JWS};
use super::error::NotationError;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Largest signature manifest accepted.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const THUMBPRINTS: &str = "io.cncf.notary.x509chain.thumbprint#S256";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// A validated signature manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureManifest {
    /// The envelope blob: its media type is the envelope format.
    pub envelope: Descriptor,
    /// The signed manifest.
    pub subject: Descriptor,
    /// SHA-256 fingerprints of the chain, leaf first, lower-case hex (from the annotation).
    pub thumbprints: Vec<String>,
}

fn bad(detail: impl Into<String>) -> NotationError {
    NotationError::MalformedSignatureManifest { detail: detail.into() }
}

/// Spec: "`mediaType` ... MUST be `application/vnd.oci.image.manifest.v1+json`." / config
/// "`mediaType` ... MUST be `application/vnd.cncf.notary.signature`" (or, for OCI 1.1
/// manifests with an empty config, `artifactType`) / "`layers` ... contains collection of only
/// one OCI descriptor referencing the signature envelope" with media type
/// `application/jose+json` or `application/cose` / "`subject` ... A REQUIRED artifact
/// descriptor referencing the signed manifest."
pub fn parse_signature_manifest(bytes: &[u8]) -> Result<SignatureManifest, NotationError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(NotationError::EnvelopeTooLarge {
            what: "signature manifest".into(),
            size: bytes.len() as u64,
            limit: MAX_MANIFEST_BYTES as u64,
        });
    }
    let m: ManifestJson = serde_json::from_slice(bytes).map_err(|e| bad(format!("not a JSON manifest: {e}")))?;
    if m.media_type.as_deref() != Some(OCI_MANIFEST) {
        return Err(bad(format!("mediaType {:?} is not {OCI_MANIFEST}", m.media_type)));
    }
    let config_type = m.config.as_ref().map(|c| c.media_type.as_str());
    if config_type != Some(super::SIGNATURE_ARTIFACT_TYPE)
        && m.artifact_type.as_deref() != Some(super::SIGNATURE_ARTIFACT_TYPE)
    {
        return Err(bad("neither config.mediaType nor artifactType is application/vnd.cncf.notary.signature"));
    }
    let [envelope] =
        <[Descriptor; 1]>::try_from(m.layers).map_err(|l| bad(format!("{} layers, exactly one expected", l.len())))?;
    if envelope.media_type != MEDIA_TYPE_JWS && envelope.media_type != MEDIA_TYPE_COSE {
        return Err(NotationError::UnsupportedEnvelopeType { media_type: envelope.media_type });
    }
    if envelope.size > super::envelope::MAX_ENVELOPE_BYTES as u64 {
        return Err(NotationError::EnvelopeTooLarge {
            what: "signature envelope".into(),
            size: envelope.size,
            limit: super::envelope::MAX_ENVELOPE_BYTES as u64,
        });
    }
    let subject = m.subject.ok_or_else(|| bad("no subject"))?;
    let thumbprints = match m.annotations.get(THUMBPRINTS) {
        Some(v) => serde_json::from_str::<Vec<String>>(v)
            .map_err(|e| bad(format!("{THUMBPRINTS}: {e}")))?
            .into_iter()
            .map(|t| t.to_ascii_lowercase())
            .collect(),
        None => vec![],
    };
    Ok(SignatureManifest { envelope, subject, thumbprints })
}

impl SignatureManifest {
    /// The fetched envelope blob is the one the manifest names (size and sha256 digest).
    pub fn check_envelope(&self, bytes: &[u8]) -> Result<(), NotationError> {
        if bytes.len() as u64 != self.envelope.size {
            return Err(NotationError::EnvelopeDigestMismatch {
                expected: format!("{} bytes", self.envelope.size),
                found: format!("{} bytes", bytes.len()),
            });
        }
        let found = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        if found != self.envelope.digest {
            return Err(NotationError::EnvelopeDigestMismatch { expected: self.envelope.digest.clone(), found });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(layers: &str, config: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{config}","digest":"sha256:44","size":2}},"layers":[{layers}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:aa","size":10}},"annotations":{{"{THUMBPRINTS}":"[\"AB\"]"}}}}"#
        )
    }
    const JWS_LAYER: &str = r#"{"mediaType":"application/jose+json","digest":"sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb","size":1}"#;

    #[test]
    fn a_signature_manifest_names_one_envelope_and_its_subject() {
        let m =
            parse_signature_manifest(manifest(JWS_LAYER, "application/vnd.cncf.notary.signature").as_bytes()).unwrap();
        assert_eq!((m.envelope.media_type.as_str(), m.subject.digest.as_str()), ("application/jose+json", "sha256:aa"));
        assert_eq!(m.thumbprints, vec!["ab".to_string()]);
        m.check_envelope(b"a").unwrap();
        assert_eq!(m.check_envelope(b"b").unwrap_err().reason(), "EnvelopeDigestMismatch");
        assert_eq!(m.check_envelope(b"ab").unwrap_err().verdict(), crate::verdict::Verdict::Tampered);
    }

    #[test]
    fn other_artifacts_and_multi_layer_manifests_are_refused() {
        let two = format!("{JWS_LAYER},{JWS_LAYER}");
        for (m, reason) in [
            (manifest(&two, "application/vnd.cncf.notary.signature"), "MalformedSignatureManifest"),
            (manifest("", "application/vnd.cncf.notary.signature"), "MalformedSignatureManifest"),
            (manifest(JWS_LAYER, "application/vnd.oci.image.config.v1+json"), "MalformedSignatureManifest"),
            (
                manifest(&JWS_LAYER.replace("jose+json", "json"), "application/vnd.cncf.notary.signature"),
                "UnsupportedEnvelopeType",
            ),
        ] {
            assert_eq!(parse_signature_manifest(m.as_bytes()).unwrap_err().reason(), reason, "{m}");
        }
    }
}
