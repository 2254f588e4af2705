//! `trustwatch import`: existing trust configuration in, TrustRoots and one ImageTrustPolicy out.
//!
//! - [`notation`]: a user's notation trust policy (`trustpolicy.json`) and trust store
//!   (`truststore/x509/...`): one Notation TrustRoot per trust policy statement, image rules from
//!   the statements' registry scopes.
//! - [`connaisseur`]: Connaisseur's Helm values (2.x and 3.x layouts): TrustRoots per validator
//!   trust root (Notary v1, cosign, Notation), image rules from its image policy.
//!
//! Both are pure: text and parsed files in, an [`Imported`] out. What cannot be expressed is
//! never approximated silently: each such item is one line of [`Imported::unmapped`]; what maps
//! with a difference the user should know is one line of [`Imported::notes`]. Every emitted
//! object passed its `spec.validate()`.

pub mod connaisseur;
pub mod names;
pub mod notation;
pub mod pattern;
pub mod pem;

use crate::crd::{ImageTrustPolicy, TrustRoot};
use std::collections::BTreeMap;

/// Annotation on imported objects: where each came from.
pub const SOURCE_ANNOTATION: &str = "trustwatch.dev/imported-from";

/// The default namespace of Secrets that imported TrustRoots refer to (the operator's).
pub const DEFAULT_SECRET_NAMESPACE: &str = "trustwatch-system";

/// What an import produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Imported {
    pub trust_roots: Vec<TrustRoot>,
    /// The one ImageTrustPolicy, when at least one image rule could be made.
    pub policy: Option<ImageTrustPolicy>,
    /// YAML comment lines printed above a TrustRoot (by name): which Secret to create.
    pub comments: BTreeMap<String, Vec<String>>,
    /// Everything that could not be mapped, one line each.
    pub unmapped: Vec<String>,
    /// Mapped, but with a difference the user should know, one line each.
    pub notes: Vec<String>,
}

/// Input an import cannot read. (Input of which nothing maps is an empty [`Imported`].)
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ImportError {
    #[error("cannot read {path}: {detail}")]
    Unreadable { path: String, detail: String },
    #[error("{path}: not valid YAML: {detail}")]
    InvalidYaml { path: String, detail: String },
    #[error(
        "{path}: no Connaisseur validators found (expected application.validators for Connaisseur 3 or validators for Connaisseur 2)"
    )]
    NotConnaisseurValues { path: String },
    #[error("{path}: {detail}")]
    UnsupportedConnaisseurVersion { path: String, detail: String },
    #[error("notation configuration: {detail}")]
    InvalidNotationConfig { detail: String },
}

impl ImportError {
    pub fn reason(&self) -> &'static str {
        match self {
            ImportError::Unreadable { .. } => "Unreadable",
            ImportError::InvalidYaml { .. } => "InvalidYaml",
            ImportError::NotConnaisseurValues { .. } => "NotConnaisseurValues",
            ImportError::UnsupportedConnaisseurVersion { .. } => "UnsupportedConnaisseurVersion",
            ImportError::InvalidNotationConfig { .. } => "InvalidNotationConfig",
        }
    }
}

impl Imported {
    /// Whether anything was produced.
    pub fn is_empty(&self) -> bool {
        self.trust_roots.is_empty() && self.policy.is_none()
    }

    /// The objects as one multi-document YAML stream: a header comment, the TrustRoots (each
    /// after its comment lines), then the ImageTrustPolicy.
    pub fn to_yaml(&self, header: &str) -> String {
        let mut docs: Vec<String> = vec![];
        for root in &self.trust_roots {
            let name = root.metadata.name.clone().unwrap_or_default();
            let mut doc = String::new();
            for line in self.comments.get(&name).into_iter().flatten() {
                doc.push_str(&format!("# {line}\n"));
            }
            doc.push_str(&serde_saphyr::to_string(root).expect("a TrustRoot serializes to YAML"));
            docs.push(doc);
        }
        if let Some(p) = &self.policy {
            docs.push(serde_saphyr::to_string(p).expect("an ImageTrustPolicy serializes to YAML"));
        }
        let mut out = String::new();
        for line in header.lines() {
            out.push_str(&format!("# {line}\n"));
        }
        for doc in docs {
            out.push_str("---\n");
            out.push_str(&doc);
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }

    /// The lines for standard error: `not mapped: ...` then `note: ...`.
    pub fn report_lines(&self) -> Vec<String> {
        self.unmapped
            .iter()
            .map(|l| format!("not mapped: {l}"))
            .chain(self.notes.iter().map(|l| format!("note: {l}")))
            .collect()
    }

    /// Runs every emitted spec's `validate()`; an object that fails is dropped and its errors
    /// reported, so that the stream only holds objects the operator accepts.
    fn keep_valid(&mut self) {
        let mut kept = vec![];
        for root in std::mem::take(&mut self.trust_roots) {
            match root.spec.validate() {
                Ok(()) => kept.push(root),
                Err(errors) => {
                    let name = root.metadata.name.clone().unwrap_or_default();
                    self.unmapped.push(format!("TrustRoot {name} was not emitted: {}", errors.join("; ")));
                    self.comments.remove(&name);
                }
            }
        }
        self.trust_roots = kept;
        if let Some(p) = &self.policy
            && let Err(errors) = p.spec.validate()
        {
            let name = p.metadata.name.clone().unwrap_or_default();
            self.unmapped.push(format!("ImageTrustPolicy {name} was not emitted: {}", errors.join("; ")));
            self.policy = None;
        }
    }
}

/// `metadata` with a name and the source annotation.
fn metadata(name: &str, source: &str) -> kube::api::ObjectMeta {
    kube::api::ObjectMeta {
        name: Some(name.to_string()),
        annotations: Some(BTreeMap::from([(SOURCE_ANNOTATION.to_string(), source.to_string())])),
        ..Default::default()
    }
}

/// A TrustRootSpec with nothing set but the defaults.
fn empty_trust_root_spec() -> crate::crd::TrustRootSpec {
    crate::crd::TrustRootSpec {
        server: None,
        ca_bundle: None,
        auth_secret_ref: None,
        root_keys: vec![],
        revoked_keys: vec![],
        notation: None,
        cosign: None,
        registry: None,
        refresh_interval: crate::crd::default_refresh_interval(),
        expiry_warning: crate::crd::default_expiry_warning(),
        retirement_warning: crate::crd::default_retirement_warning(),
    }
}

/// An ImageTrustPolicySpec with the given rules and the defaults (action Audit).
fn policy_spec(images: Vec<crate::crd::ImageRule>) -> crate::crd::ImageTrustPolicySpec {
    crate::crd::ImageTrustPolicySpec {
        namespace_selector: None,
        images,
        action: crate::crd::PolicyAction::Audit,
        interval: crate::crd::default_interval(),
        on_unavailable: crate::crd::UnavailablePolicy::Ignore,
        unmatched_images: crate::crd::UnmatchedPolicy::Ignore,
        quarantine_limit: crate::crd::default_quarantine_limit(),
        quarantine_after: None,
        dry_run: false,
        admission: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_has_a_header_comments_and_one_document_per_object() {
        let mut spec = empty_trust_root_spec();
        spec.cosign = Some(crate::crd::CosignTrust {
            keys: vec![crate::crd::KeySource {
                name: "k".into(),
                public_key: Some("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n".into()),
                config_map_key_ref: None,
                secret_key_ref: None,
                rsa_pss: false,
            }],
            annotations: Default::default(),
            log_keys: vec![],
        });
        let root = TrustRoot { metadata: metadata("a", "test"), spec, status: None };
        let imported = Imported {
            trust_roots: vec![root],
            comments: BTreeMap::from([("a".to_string(), vec!["create Secret x".to_string()])]),
            ..Default::default()
        };
        let yaml = imported.to_yaml("from test");
        assert!(
            yaml.starts_with("# from test\n---\n# create Secret x\napiVersion: trustwatch.dev/v1alpha1\n"),
            "{yaml}"
        );
        let docs = crate::audit::parse_documents(&yaml).unwrap();
        assert_eq!(docs.len(), 1);
        let back: TrustRoot = serde_json::from_value(docs[0].clone()).unwrap();
        assert_eq!(back, imported.trust_roots[0]);
    }
}
