//! `ImageTrustReport`: the audit record of one workload, written by trustwatch.
//!
//! The object is status-only: the spec is empty and everything trustwatch found is in status,
//! so that users can read but not forge findings (RBAC lets the operator alone write status).

use crate::verdict::Verdict;
use crate::verifier::{CertificateEvidence, SignatureFormat};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// Empty: everything trustwatch records is in status.
// Every `printcolumn(..)` repeats `name`, `type_`, ...: not the duplicates clippy means.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[kube(
    group = "trustwatch.dev",
    version = "v1alpha1",
    kind = "ImageTrustReport",
    plural = "imagetrustreports",
    shortname = "itr",
    category = "trustwatch",
    namespaced,
    status = "ImageTrustReportStatus",
    derive = "PartialEq",
    doc = "ImageTrustReport is the audit record trustwatch keeps for one workload (its top owner: Deployment, StatefulSet, DaemonSet, CronJob, Job or a bare Pod): the verdict on every container it runs, which digest runs, which digest is signed, by whom, and until when. trustwatch writes it; it is deleted with the workload.",
    printcolumn(
        name = "Kind",
        type_ = "string",
        json_path = ".status.workload.kind",
        description = "Kind of the workload"
    ),
    printcolumn(
        name = "Workload",
        type_ = "string",
        json_path = ".status.workload.name",
        description = "Name of the workload"
    ),
    printcolumn(
        name = "Policy",
        type_ = "string",
        json_path = ".status.policy",
        description = "The ImageTrustPolicy that selected it"
    ),
    printcolumn(
        name = "Verdict",
        type_ = "string",
        json_path = ".status.verdict",
        description = "The worst verdict of its containers"
    ),
    printcolumn(
        name = "Verified",
        type_ = "integer",
        json_path = ".status.summary.verified",
        description = "Containers running a trusted image"
    ),
    printcolumn(
        name = "Failing",
        type_ = "integer",
        json_path = ".status.summary.failing",
        description = "Containers running an image that failed verification"
    ),
    printcolumn(
        name = "Migration",
        type_ = "string",
        json_path = ".status.migration",
        description = "NotaryV1Only, SuccessorVerified or SuccessorFailing",
        priority = 1
    ),
    printcolumn(name = "Last Verified", type_ = "date", json_path = ".status.lastVerified"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
pub struct ImageTrustReportSpec {}

/// The most entries `status.containers` holds; the rest are counted in `status.omitted`.
pub const MAX_REPORT_ENTRIES: usize = 64;
/// The most pod names an entry lists in `samplePods`.
pub const MAX_SAMPLE_PODS: usize = 5;
/// The longest `message` of an entry (longer messages are cut, with an ellipsis).
pub const MAX_MESSAGE_LEN: usize = 1024;

/// What trustwatch found for the workload.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageTrustReportStatus {
    /// The workload the report is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadRef>,

    /// The name of the ImageTrustPolicy that selected the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,

    /// The worst verdict of the workload's containers. Trusted: Verified, ExpiringSoon.
    /// Failed: Unsigned, DigestDrift, SignerMissing, SignerRevoked, TrustDataExpired,
    /// SignatureInvalid, Tampered. Undecided: TrustDataUnavailable (the trust data could not be
    /// fetched, or what the container runs is not known yet) and NotCovered (no policy entry
    /// matches the image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_verdict_schema")]
    pub verdict: Option<Verdict>,

    /// Counts over the workload's pods and containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<ReportSummary>,

    /// When the workload's containers were last verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified: Option<Time>,

    /// One entry per container name, image and running digest, with how many of the
    /// workload's pods run it and a few of their names: a Deployment of 2,000 identical pods
    /// has one entry. The worst entries come first; at most 64 are kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub containers: Vec<ContainerVerification>,

    /// Where the workload stands in the migration off Docker Content Trust: NotaryV1Only when
    /// any of its containers depends on Notary v1 alone, SuccessorFailing when a successor
    /// signature fails, SuccessorVerified when every container has a Notation or cosign
    /// signature that verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationState>,

    /// How many entries did not fit in `containers` (the least severe ones are left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted: Option<i32>,

    /// The quarantine of the workload's pods (policies with action Quarantine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<QuarantineStatus>,
}

/// How the workload's pods are quarantined.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuarantineStatus {
    /// Pods labelled `trustwatch.dev/quarantined=true`.
    #[serde(default)]
    pub quarantined: i32,
    /// Failing pods not quarantined yet: the failure has not lasted spec.quarantineAfter.
    #[serde(default)]
    pub pending: i32,
    /// Failing pods a dry run (spec.dryRun) would quarantine.
    #[serde(default)]
    pub would_quarantine: i32,
    /// Why isolation does not hold for some quarantined pods: a `hostNetwork` pod (no
    /// NetworkPolicy applies to it), or another NetworkPolicy that allows its traffic
    /// (NetworkPolicies add up: any allow wins over trustwatch's deny-all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 512)))]
    pub ineffective: Vec<String>,
}

/// The schema of an optional verdict: the enum, nullable, without the type's own description
/// (kube's optional-enum rewrite would otherwise put it in place of the field's).
fn optional_verdict_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Verdict>();
    schema.remove("description");
    schema.insert("nullable".into(), true.into());
    schema
}

/// What one trust root said about a container's running digest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustRootResult {
    /// The TrustRoot.
    pub name: String,
    /// Its kind: NotaryV1, Notation or Cosign.
    pub format: SignatureFormat,
    /// Its verdict.
    pub verdict: Verdict,
    /// Its reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Where a running digest stands in the migration off Docker Content Trust.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, schemars::JsonSchema)]
pub enum MigrationState {
    /// Only Notary v1 vouches for it (no successor trust root, or no successor signature).
    NotaryV1Only,
    /// A Notation or cosign signature verifies it.
    SuccessorVerified,
    /// A Notation or cosign signature exists for it but fails verification.
    SuccessorFailing,
}

impl MigrationState {
    pub const ALL: [MigrationState; 3] =
        [MigrationState::NotaryV1Only, MigrationState::SuccessorVerified, MigrationState::SuccessorFailing];

    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::NotaryV1Only => "NotaryV1Only",
            MigrationState::SuccessorVerified => "SuccessorVerified",
            MigrationState::SuccessorFailing => "SuccessorFailing",
        }
    }
}

/// The top owner of a pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub struct WorkloadRef {
    /// Deployment, StatefulSet, DaemonSet, CronJob, Job, ReplicaSet (without a Deployment) or Pod.
    pub kind: String,
    /// The name of the workload, in the report's namespace.
    pub name: String,
}

/// Counts over the pods and containers of a report.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportSummary {
    /// Pods of the workload.
    #[serde(default)]
    pub pods: i32,
    /// Containers verified (of all pods).
    #[serde(default)]
    pub containers: i32,
    /// Containers running a trusted image (Verified or ExpiringSoon).
    #[serde(default)]
    pub verified: i32,
    /// Containers whose image failed verification, as the policy counts it.
    #[serde(default)]
    pub failing: i32,
    /// Containers whose image is trusted but expires within the trust root's expiryWarning.
    #[serde(default)]
    pub expiring_soon: i32,
}

/// The verification of one container, image and running digest, for the pods that run it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerVerification {
    /// The container name (init and ephemeral containers included).
    pub container: String,
    /// The image as written in the pod spec, e.g. `nginx:1.27`.
    #[schemars(length(max = 1024))]
    pub image: String,
    /// The digest the container runs (`sha256:...`, from the container status), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_digest: Option<String>,
    /// How many of the workload's pods run this container with this image and digest.
    #[serde(default)]
    pub pods: i32,
    /// Up to 5 of those pods, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    pub sample_pods: Vec<String>,
    /// The digest the trust data signs for the image's tag, when one was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_digest: Option<String>,
    /// The verdict for this container (see status.verdict for the values).
    pub verdict: Verdict,
    /// A stable PascalCase reason refining the verdict, e.g. NotSignedBySigner.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A human-readable explanation (at most 1024 characters).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 1100))]
    pub message: String,
    /// Who signed what the verdict rests on: delegations (`targets/releases`), certificate
    /// subjects or key names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub signers: Vec<String>,
    /// The TrustRoot whose answer decided the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_root: Option<String>,
    /// The signature format that decided the verdict: NotaryV1, Notation or Cosign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<SignatureFormat>,
    /// With several trust roots (spec.images[].trustRoots): what each one said.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub trust_roots: Vec<TrustRootResult>,
    /// Where the running digest stands in the migration off Docker Content Trust:
    /// NotaryV1Only (it depends on Notary v1 alone), SuccessorVerified (a Notation or cosign
    /// signature verifies it) or SuccessorFailing (one exists but fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationState>,
    /// The signing certificate (Notation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateEvidence>,
    /// When the signature was made; proven by a timestamp authority when `timestamped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_time: Option<Time>,
    /// Whether a trusted timestamp authority countersigned the signing time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamped: Option<bool>,
    /// Notation and cosign: the tag now points to this other digest in the registry
    /// (informational: the running digest is what is verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_digest: Option<String>,
    /// The repository of the image: the Notary GUN, e.g. `docker.io/library/nginx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gun: Option<String>,
    /// The earliest expiry in the chain of trust data the verdict rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Time>,
    /// What `expires` belongs to: a Notary role, `signature`, `leaf certificate`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_what: Option<String>,
    /// Since when this entry has been failing (kept across scans; spec.quarantineAfter counts
    /// from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Time>,
    /// When this entry last verified as trusted (Verified or ExpiringSoon). While trust data
    /// is unavailable, this is the last good verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trusted: Option<Time>,
    /// When this container was last verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified: Option<Time>,
}
