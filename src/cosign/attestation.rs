//! Attestation requirements, a pure core: does an in-toto statement (the payload of a DSSE
//! envelope whose signature was verified elsewhere) attest the running digest, with the
//! predicate type a policy asks for and, for SLSA provenance, the builder and the source
//! repository it names? The statement's bytes, the running digest and the requirement in; what
//! was found, or a typed reason, out.
//!
//! in-toto Attestation Framework, Statement layer (v1, and v0.1 which it keeps compatible):
//! "`subject` ... the set of software artifacts that the attestation applies to"; a consumer
//! "MUST ... match the artifact being evaluated against the subject's `digest`" and "MUST
//! reject the attestation if the `predicateType` is not one it understands or expects".
//! SLSA provenance v1 names the builder in `runDetails.builder.id` and, for GitHub Actions,
//! the source repository in `buildDefinition.externalParameters.workflow.repository`;
//! provenance v0.2 names them in `builder.id` and `invocation.configSource.uri`
//! (`git+<repository>@<ref>`).

use super::keyless::Matcher;
use crate::verdict::Verdict;
use serde_json::Value;
use thiserror::Error;

pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
pub const SLSA_PROVENANCE_V02: &str = "https://slsa.dev/provenance/v0.2";
const STATEMENT_TYPES: [&str; 2] = ["https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"];

/// What a policy requires of an attestation.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// The predicate type, exactly (e.g. [`SLSA_PROVENANCE_V1`]).
    pub predicate_type: String,
    /// SLSA provenance: the builder ID.
    pub builder_id: Option<Matcher>,
    /// SLSA provenance: the source repository (e.g. `https://github.com/acme/app`).
    pub source_repository: Option<Matcher>,
}

/// What a statement that meets a requirement says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    pub predicate_type: String,
    /// Every subject digest, as `<algorithm>:<hex>`.
    pub subjects: Vec<String>,
    pub builder_id: Option<String>,
    pub source_repository: Option<String>,
}

/// Why a statement does not meet a requirement.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum AttestationError {
    #[error("the attestation is not an in-toto statement: {0}")]
    Malformed(String),
    #[error("the attestation is for {subjects}, not for the running digest {running}")]
    SubjectMismatch { running: String, subjects: String },
    #[error("the attestation's predicate type is {found:?}, not the required {required:?}")]
    PredicateTypeMismatch { required: String, found: String },
    #[error("the provenance names builder {found:?}, which the requirement does not accept")]
    BuilderMismatch { found: String },
    #[error("the provenance names source repository {found:?}, which the requirement does not accept")]
    SourceMismatch { found: String },
}

impl AttestationError {
    /// Stable PascalCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            AttestationError::Malformed(_) => "AttestationMalformed",
            AttestationError::SubjectMismatch { .. } => "AttestationSubjectMismatch",
            AttestationError::PredicateTypeMismatch { .. } => "AttestationTypeMismatch",
            AttestationError::BuilderMismatch { .. } => "AttestationBuilderMismatch",
            AttestationError::SourceMismatch { .. } => "AttestationSourceMismatch",
        }
    }

    /// The shared verdict. A signed statement about other bytes attached to this digest is
    /// tampering, as a signature for another digest is; an attestation of another kind, or
    /// from another builder or source, is a required signer that did not attest.
    pub fn verdict(&self) -> Verdict {
        match self {
            AttestationError::Malformed(_) | AttestationError::SubjectMismatch { .. } => Verdict::Tampered,
            AttestationError::PredicateTypeMismatch { .. }
            | AttestationError::BuilderMismatch { .. }
            | AttestationError::SourceMismatch { .. } => Verdict::SignerMissing,
        }
    }
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// The repository of a SLSA v0.2 `configSource.uri`: `git+https://github.com/a/b@refs/x` is
/// `https://github.com/a/b`.
fn repository_of_uri(uri: &str) -> String {
    let uri = uri.strip_prefix("git+").unwrap_or(uri);
    match uri.rsplit_once('@') {
        Some((repo, _)) if repo.contains("://") => repo.to_string(),
        _ => uri.to_string(),
    }
}

/// Checks one statement against one requirement, for the running digest (`sha256:<hex>`, or
/// any `<algorithm>:<hex>`).
pub fn check(statement: &[u8], running: &str, req: &Requirement) -> Result<Attested, AttestationError> {
    let v: Value = serde_json::from_slice(statement).map_err(|e| AttestationError::Malformed(e.to_string()))?;
    let ty = v.get("_type").and_then(Value::as_str).unwrap_or_default();
    if !STATEMENT_TYPES.contains(&ty) {
        return Err(AttestationError::Malformed(format!("`_type` is {ty:?}")));
    }
    let predicate_type =
        v.get("predicateType").and_then(Value::as_str).ok_or(AttestationError::Malformed("no predicateType".into()))?;
    let mut subjects = vec![];
    for s in v.get("subject").and_then(Value::as_array).ok_or(AttestationError::Malformed("no subject".into()))? {
        for (alg, hex) in s.get("digest").and_then(Value::as_object).into_iter().flatten() {
            if let Some(hex) = hex.as_str() {
                subjects.push(format!("{alg}:{}", hex.to_ascii_lowercase()));
            }
        }
    }
    // in-toto: the artifact is matched against the subject's digest.
    if !subjects.iter().any(|s| s == &running.to_ascii_lowercase()) {
        return Err(AttestationError::SubjectMismatch { running: running.into(), subjects: subjects.join(", ") });
    }
    // in-toto: reject a predicate type that is not the expected one.
    if predicate_type != req.predicate_type {
        return Err(AttestationError::PredicateTypeMismatch {
            required: req.predicate_type.clone(),
            found: predicate_type.into(),
        });
    }
    let predicate = v.get("predicate").unwrap_or(&Value::Null);
    let (builder_id, source_repository) = match predicate_type {
        SLSA_PROVENANCE_V1 => (
            text(predicate, &["runDetails", "builder", "id"]).map(String::from),
            text(predicate, &["buildDefinition", "externalParameters", "workflow", "repository"]).map(String::from),
        ),
        SLSA_PROVENANCE_V02 => (
            text(predicate, &["builder", "id"]).map(String::from),
            text(predicate, &["invocation", "configSource", "uri"]).map(repository_of_uri),
        ),
        _ => (None, None),
    };
    // A requirement on a field the statement does not state is not met (not even by a
    // pattern that matches the empty string).
    let unmet = |m: &Option<Matcher>, found: &Option<String>| match (m, found) {
        (None, _) => None,
        (Some(m), Some(f)) if m.matches(f) => None,
        (Some(_), f) => Some(f.clone().unwrap_or_else(|| "(none)".into())),
    };
    if let Some(found) = unmet(&req.builder_id, &builder_id) {
        return Err(AttestationError::BuilderMismatch { found });
    }
    if let Some(found) = unmet(&req.source_repository, &source_repository) {
        return Err(AttestationError::SourceMismatch { found });
    }
    Ok(Attested { predicate_type: predicate_type.into(), subjects, builder_id, source_repository })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(predicate_type: &str, predicate: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "app", "digest": {"sha256": "AB".repeat(32)}}],
            "predicateType": predicate_type, "predicate": predicate}))
        .unwrap()
    }

    #[test]
    fn a_missing_field_never_meets_a_requirement_on_it() {
        let running = format!("sha256:{}", "ab".repeat(32));
        let req = Requirement {
            predicate_type: SLSA_PROVENANCE_V1.into(),
            builder_id: Some(Matcher::regex(".*").unwrap()),
            source_repository: None,
        };
        let e = check(&statement(SLSA_PROVENANCE_V1, serde_json::json!({})), &running, &req).unwrap_err();
        assert_eq!(e.reason(), "AttestationBuilderMismatch");
        // Subject digests compare without regard to the hex case.
        let ok = Requirement { builder_id: None, ..req };
        assert!(check(&statement(SLSA_PROVENANCE_V1, serde_json::json!({})), &running, &ok).is_ok());
    }

    #[test]
    fn a_v02_config_source_names_its_repository_without_the_ref() {
        assert_eq!(repository_of_uri("git+https://github.com/a/b@refs/heads/main"), "https://github.com/a/b");
        assert_eq!(repository_of_uri("https://github.com/a/b"), "https://github.com/a/b");
    }
}
