//! `TrustRoot`: where trust comes from (a Notary server and the root keys pinned for it).

use super::checks;
use super::duration::{DURATION_PATTERN, parse_duration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Default of `spec.refreshInterval`.
pub const DEFAULT_REFRESH_INTERVAL: &str = "5m";
/// Default of `spec.expiryWarning`.
pub const DEFAULT_EXPIRY_WARNING: &str = "7d";
/// The shortest `spec.refreshInterval` the operator accepts, to spare the Notary server.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

pub fn default_refresh_interval() -> String {
    DEFAULT_REFRESH_INTERVAL.to_string()
}

pub fn default_expiry_warning() -> String {
    DEFAULT_EXPIRY_WARNING.to_string()
}

/// Where image trust comes from, one kind per TrustRoot: a Notary v1 server and its pinned
/// root keys (`server`, `rootKeys`), a Notation trust policy (`notation`), or cosign keys
/// (`cosign`).
// Every `printcolumn(..)` repeats `name`, `type_`, ...: not the duplicates clippy means.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "trustwatch.dev",
    version = "v1alpha1",
    kind = "TrustRoot",
    plural = "trustroots",
    shortname = "troot",
    category = "trustwatch",
    status = "TrustRootStatus",
    derive = "PartialEq",
    doc = "TrustRoot says where image trust comes from, in one of three kinds: Notary v1 (Docker Content Trust: spec.server and the root keys pinned for its repositories), Notation (spec.notation: X.509 trust stores and trusted identities, signatures stored in the registry) or cosign (spec.cosign: public keys, signatures stored in the registry). ImageTrustPolicies refer to it by name. trustwatch refreshes the trust data in use at spec.refreshInterval and reports versions, signers and expiries in status.",
    printcolumn(
        name = "Kind",
        type_ = "string",
        json_path = ".status.kind",
        description = "NotaryV1, Notation or Cosign"
    ),
    printcolumn(
        name = "Server",
        type_ = "string",
        json_path = ".spec.server",
        description = "The Notary server (Notary v1)"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the trust data of every repository in use is verified"
    ),
    printcolumn(
        name = "Repositories",
        type_ = "integer",
        json_path = ".status.repositoryCount",
        description = "Repositories in use with this trust root"
    ),
    printcolumn(
        name = "Next Expiry",
        type_ = "string",
        json_path = ".status.nextExpiry.time",
        description = "The earliest expiry of a role that people sign (root, targets, delegations)"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.server), has(self.notation), has(self.cosign)].filter(k, k).size() == 1").message("set exactly one kind of trust root: server and rootKeys (Notary v1), notation, or cosign"))]
#[x_kube(validation = Rule::new("!has(self.server) || (has(self.rootKeys) && size(self.rootKeys) > 0)").message("a Notary v1 trust root (spec.server) needs at least one entry in rootKeys"))]
#[x_kube(validation = Rule::new("!has(self.server) || !has(self.registry)").message("registry is for Notation and cosign trust roots; a Notary v1 trust root uses caBundle and authSecretRef"))]
pub struct TrustRootSpec {
    /// Notary v1: URL of the Notary server, e.g. `https://notary.docker.io`. Only https is
    /// accepted: the trust data is signed, but the transport must still be authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != ''").message("must be an https:// URL with a host"))]
    #[schemars(length(min = 1, max = 2048))]
    pub server: Option<String>,

    /// Notary v1: PEM bundle of the certificate authorities that sign the server's TLS
    /// certificate (a self-signed server certificate works too). When unset, the system roots
    /// are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.contains('-----BEGIN CERTIFICATE-----')").message("must hold at least one PEM certificate (-----BEGIN CERTIFICATE-----)"))]
    #[schemars(length(max = 262144))]
    pub ca_bundle: Option<String>,

    /// Notary v1: Secret with the credentials for the server's token service: keys `username`
    /// and `password`, or a `.dockerconfigjson` (type kubernetes.io/dockerconfigjson) whose
    /// entry for the server's host is used. When unset, trust data is fetched anonymously. The
    /// Secret must be in the operator's namespace unless the operator allows another one
    /// (`trustwatch run --secret-namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretRef>,

    /// Notary v1: root keys pinned for every repository verified with this trust root. A
    /// repository's root metadata is trusted only when a pinned key is among its root keys and
    /// signed it (an older pinned root is followed through its signed rotations), and its root
    /// certificate names the repository (CN = GUN). Keys are compared by public key, so a
    /// certificate and its bare public key pin the same key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 32))]
    pub root_keys: Vec<RootKey>,

    /// Notary v1: key IDs (64 hex digits, either the TUF key ID or Notary's canonical key ID)
    /// that are never trusted, whatever the metadata says. Signatures by these keys do not count
    /// towards any threshold, so images they alone sign report SignerRevoked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(length(max = 256), inner(pattern("^[0-9a-f]{64}$")))]
    pub revoked_keys: Vec<String>,

    /// Notation (Notary Project) signatures, stored in the registry beside the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notation: Option<NotationTrust>,

    /// cosign (Sigstore) signatures, stored in the registry beside the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosign: Option<CosignTrust>,

    /// Notation and cosign: how to reach the registries that hold the signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryAccess>,

    /// How often the trust data of each repository in use is refreshed, e.g. `30s`, `5m`,
    /// `1h`. Units: s, m, h, d; combinations like `1h30m` work. At least 10s. Refreshes
    /// also happen when a role is about to expire, so an expiry is noticed when it happens.
    /// Notation and cosign: how long the signatures found for a digest are reused; Notation
    /// CRLs and OCSP answers are fetched again after this long too (at most every hour), so a
    /// revocation is seen within one interval.
    #[serde(default = "default_refresh_interval")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub refresh_interval: String,

    /// How long before a signed role (root, targets, a delegation or a delegation's
    /// certificate) expires that images it covers report ExpiringSoon instead of Verified,
    /// e.g. `7d`, `72h`. `0s` disables the warning.
    #[serde(default = "default_expiry_warning")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub expiry_warning: String,

    /// How long before a known retirement date of the trust root's Notary server (for
    /// `notary.docker.io`: 2026-12-08) the `EndpointRetiring` alert fires while containers
    /// still depend on it alone, e.g. `30d`.
    #[serde(default = "default_retirement_warning")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub retirement_warning: String,
}

/// Default of `spec.retirementWarning`.
pub const DEFAULT_RETIREMENT_WARNING: &str = "30d";

pub fn default_retirement_warning() -> String {
    DEFAULT_RETIREMENT_WARNING.to_string()
}

/// A Notation trust policy statement: which certificates anchor signatures, whose signatures
/// count, and how strictly each check is enforced (the Notary Project trust policy,
/// `signatureVerification`, `trustStores`, `trustedIdentities`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotationTrust {
    /// The trust stores: root (or intermediate) certificates of the CAs that issue signing
    /// certificates (`ca`), of signing authorities (`signingAuthority`), and of RFC 3161
    /// timestamp authorities (`tsa`).
    pub trust_stores: NotationTrustStores,

    /// Whose signatures count: `x509.subject: C=US, ST=WA, O=Acme, CN=release` (C, ST and O
    /// required; the leaf's subject must hold every attribute listed), or `*` for any
    /// certificate the trust stores anchor.
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(length(min = 1, max = 32), inner(length(min = 1, max = 1024)))]
    pub trusted_identities: Vec<String>,

    /// `strict` (default): every check enforced. `permissive`: integrity and authenticity
    /// enforced; authentic timestamp, expiry and revocation only logged (what the Notary
    /// Project suggests at run time). `audit`: integrity enforced, everything else logged.
    #[serde(default)]
    pub verification_level: NotationLevel,

    /// Per-check overrides of the level: `enforce`, `log` or (revocation only) `skip`.
    /// Integrity is always enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<NotationOverrides>,

    /// When a timestamp countersignature is verified: `Always` (default) or
    /// `AfterCertExpiry` (only once the signing certificate has expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_timestamp: Option<VerifyTimestampMode>,

    /// How long one revocation check (OCSP or CRL download) may take, e.g. `5s` (default).
    /// A check that cannot complete is "unknown": enforced revocation then reads
    /// TrustDataUnavailable, logged revocation a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub revocation_timeout: Option<String>,
}

/// The three trust stores of a Notation trust policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotationTrustStores {
    /// Certificates anchoring `notary.x509` signatures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub ca: Vec<CertificateSource>,
    /// Certificates anchoring `notary.x509.signingAuthority` signatures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub signing_authority: Vec<CertificateSource>,
    /// Certificates of timestamp authorities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub tsa: Vec<CertificateSource>,
}

/// PEM data, inline or from a key of a ConfigMap or Secret in the operator's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.pem), has(self.configMapKeyRef), has(self.secretKeyRef)].filter(k, k).size() == 1").message("set exactly one of pem, configMapKeyRef and secretKeyRef"))]
pub struct CertificateSource {
    /// A name for people (which CA this is).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// One or more PEM certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.contains('-----BEGIN CERTIFICATE-----')").message("must hold at least one PEM certificate (-----BEGIN CERTIFICATE-----)"))]
    #[schemars(length(max = 32768))]
    pub pem: Option<String>,
    /// A key of a ConfigMap in the operator's namespace holding the PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
    /// A key of a Secret in the operator's namespace holding the PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
}

/// A key of a ConfigMap or Secret in the operator's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct KeyRef {
    /// The object's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key within its data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Notation verification levels (`skip` is not offered: a policy that verifies nothing is not
/// a trust root).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NotationLevel {
    #[default]
    Strict,
    Permissive,
    Audit,
}

/// What to do when a check fails.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CheckAction {
    Enforce,
    Log,
    Skip,
}

/// Per-check overrides of the verification level.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.authenticity) || self.authenticity != 'skip'").message("authenticity can be enforce or log, not skip"))]
#[x_kube(validation = Rule::new("!has(self.authenticTimestamp) || self.authenticTimestamp != 'skip'").message("authenticTimestamp can be enforce or log, not skip"))]
#[x_kube(validation = Rule::new("!has(self.expiry) || self.expiry != 'skip'").message("expiry can be enforce or log, not skip"))]
pub struct NotationOverrides {
    /// The signing certificate chains to a trust store and is a trusted identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticity: Option<CheckAction>,
    /// The signing time is proven by a trusted timestamp (or the certificate is still valid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentic_timestamp: Option<CheckAction>,
    /// The signature's own expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<CheckAction>,
    /// No certificate of the chain is revoked (OCSP, CRL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<CheckAction>,
}

/// When timestamps are verified.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum VerifyTimestampMode {
    Always,
    AfterCertExpiry,
}

/// cosign public keys and what a signature must carry.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CosignTrust {
    /// Signer keys: a signature verified by any of them counts (ECDSA P-256, RSA or Ed25519
    /// public keys, PEM). Keyless (Fulcio certificate) signatures are not supported.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(min = 1, max = 32))]
    pub keys: Vec<KeySource>,

    /// Annotations a signature must carry (`cosign sign -a key=value`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,

    /// Rekor transparency log public keys. When set, every signature needs a log entry that
    /// verifies offline with one of them; when empty the log is not checked (as `cosign
    /// verify --insecure-ignore-tlog`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub log_keys: Vec<KeySource>,
}

/// A public key, inline or from a ConfigMap or Secret in the operator's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.publicKey), has(self.configMapKeyRef), has(self.secretKeyRef)].filter(k, k).size() == 1").message("set exactly one of publicKey, configMapKeyRef and secretKeyRef"))]
pub struct KeySource {
    /// A name for the key: the signer reported when it verifies.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The PEM public key (`-----BEGIN PUBLIC KEY-----`), e.g. `cosign.pub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.contains('-----BEGIN PUBLIC KEY-----')").message("must be a PEM public key (-----BEGIN PUBLIC KEY-----)"))]
    #[schemars(length(max = 16384))]
    pub public_key: Option<String>,
    /// A key of a ConfigMap in the operator's namespace holding the PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
    /// A key of a Secret in the operator's namespace holding the PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
    /// RSA keys: signatures are RSASSA-PSS instead of PKCS#1 v1.5.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rsa_pss: bool,
}

/// How trustwatch reaches the registries that hold Notation and cosign signatures.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RegistryAccess {
    /// PEM bundle of the certificate authorities of the registries' TLS certificates. When
    /// unset, the system roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.contains('-----BEGIN CERTIFICATE-----')").message("must hold at least one PEM certificate (-----BEGIN CERTIFICATE-----)"))]
    #[schemars(length(max = 262144))]
    pub ca_bundle: Option<String>,
    /// A Secret of type kubernetes.io/dockerconfigjson with registry credentials (basic
    /// credentials and the bearer token flow). When unset, registries are read anonymously.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretRef>,
    /// Also use the running pod's own imagePullSecrets (and its ServiceAccount's), so that
    /// trustwatch sees the registry as the kubelet did. Needs Secrets readable across
    /// namespaces: add the kustomize component config/components/pod-pull-secrets knowingly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_pod_pull_secrets: bool,
    /// Talk plain HTTP to the registries (a local or lab registry only: signatures are signed,
    /// but credentials would travel in clear).
    #[serde(default, skip_serializing_if = "std::ops::Not::not", rename = "plainHTTP")]
    pub plain_http: bool,
}

/// A reference to a Secret in a given namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Secret.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
}

/// A pinned root key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RootKey {
    /// A name for the key, unique within the trust root (who holds it, where it comes from).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The key as a PEM public key (`-----BEGIN PUBLIC KEY-----`, ECDSA P-256 or RSA) or a PEM
    /// certificate (`-----BEGIN CERTIFICATE-----`, e.g. the root certificate Notary creates
    /// with `notary init`; `notary key list` shows its ID and the trust directory holds it).
    #[x_kube(validation = Rule::new("self.contains('-----BEGIN PUBLIC KEY-----') || self.contains('-----BEGIN CERTIFICATE-----')").message("must be a PEM public key or certificate"))]
    #[schemars(length(min = 1, max = 16384))]
    pub public_key: String,
}

/// What trustwatch last verified for this trust root.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrustRootStatus {
    /// `Ready`: True when the spec is valid and the trust data of every repository in use was
    /// verified on the last refresh; the reason says what failed otherwise. `EndpointRetiring`:
    /// the Notary server is a known retiring endpoint; the message says when and who said so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The kind of trust root: NotaryV1, Notation or Cosign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<crate::verifier::SignatureFormat>,

    /// Notation: the certificates of the trust stores, with their expiry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 96))]
    pub certificates: Vec<CertificateStatus>,

    /// Notary v1: when the server is known to retire, when and who announced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retirement: Option<Retirement>,

    /// The metadata.generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The canonical key IDs of spec.rootKeys, in order, as computed from the PEM: compare them
    /// with `notary key list` to check what is pinned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pinned_key_ids: Vec<String>,

    /// The number of entries in repositories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_count: Option<i32>,

    /// The trust data of each repository (GUN) that a policy uses with this trust root. The
    /// versions and signers are also what trustwatch remembers across restarts to detect
    /// rollbacks and revoked signers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["gun".into()]))]
    pub repositories: Vec<RepositoryTrust>,

    /// The earliest expiry, across repositories, of a role that people sign (root, targets,
    /// delegations and their certificates; not the server-managed snapshot and timestamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_expiry: Option<NextExpiry>,
}

/// A certificate of a Notation trust store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// `ca`, `signingAuthority` or `tsa`, and the source's name: `ca/acme-root`.
    pub store: String,
    /// The certificate's subject.
    pub subject: String,
    /// When it expires (RFC 3339).
    pub not_after: String,
}

/// A retiring Notary endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retirement {
    /// The endpoint, e.g. `notary.docker.io`.
    pub endpoint: String,
    /// When it stops serving (RFC 3339 date).
    pub date: String,
    /// Where the notice comes from.
    pub source: String,
}

/// The verified trust data of one repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryTrust {
    /// The Notary globally unique name: `<registry>/<repository>`, e.g. `docker.io/library/nginx`.
    pub gun: String,

    /// The trusted version of each role: `root`, `targets`, `snapshot`, `timestamp` and every
    /// delegation (`targets/releases`). A lower version served later is a rollback.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, i64>,

    /// When each role expires (RFC 3339), including delegations and `<role> certificate` for
    /// delegations signed with certificates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub expires: BTreeMap<String, String>,

    /// The delegations (signers) of the repository and the key IDs authorized for each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<SignerKeys>,

    /// When the trust data was last refreshed successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<Time>,

    /// Why the last refresh failed; unset after a successful refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A delegation role and its keys.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignerKeys {
    /// The delegation role, e.g. `targets/releases`.
    pub name: String,
    /// The key IDs authorized to sign for the role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_ids: Vec<String>,
}

/// The earliest upcoming expiry of a role.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NextExpiry {
    /// The role, e.g. `targets`, `targets/releases` or `targets/releases certificate`.
    pub role: String,
    /// The repository of the role.
    pub gun: String,
    /// When it expires (RFC 3339).
    pub time: String,
}

impl TrustRootSpec {
    /// Checks what the schema cannot: the server URL, the PEM armor of the keys, unique key
    /// names, the durations. Returns every problem, each prefixed with its field path.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let kinds = [self.server.is_some(), self.notation.is_some(), self.cosign.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            errors.push(
                "spec: set exactly one kind of trust root: server and rootKeys (Notary v1), notation, or cosign".into(),
            );
        }
        if let Some(server) = &self.server
            && let Err(e) = checks::https_url(server)
        {
            errors.push(format!("spec.server: {e}"));
        }
        if let Some(n) = &self.notation {
            self.validate_notation(n, &mut errors);
        }
        if let Some(c) = &self.cosign {
            if c.keys.is_empty() {
                errors.push("spec.cosign.keys: at least one key is required".into());
            }
            if let Some(dup) = checks::first_duplicate(c.keys.iter().map(|k| k.name.as_str())) {
                errors.push(format!("spec.cosign.keys: the name {dup:?} is used twice"));
            }
        }
        if self.server.is_some() && self.registry.is_some() {
            errors.push("spec.registry: a Notary v1 trust root uses caBundle and authSecretRef".into());
        }
        if let Some(r) = &self.registry
            && let Some(ca) = &r.ca_bundle
            && let Err(e) = checks::pem_armor(ca, &["CERTIFICATE"])
        {
            errors.push(format!("spec.registry.caBundle: {e}"));
        }
        if let Some(ca) = &self.ca_bundle
            && let Err(e) = checks::pem_armor(ca, &["CERTIFICATE"])
        {
            errors.push(format!("spec.caBundle: {e}"));
        }
        if let Some(r) = &self.auth_secret_ref {
            if let Err(e) = checks::dns_subdomain(&r.name) {
                errors.push(format!("spec.authSecretRef.name: {e}"));
            }
            if let Err(e) = checks::dns_label(&r.namespace) {
                errors.push(format!("spec.authSecretRef.namespace: {e}"));
            }
        }
        if self.server.is_some() && self.root_keys.is_empty() {
            errors.push("spec.rootKeys: at least one root key must be pinned".into());
        }
        for (i, k) in self.root_keys.iter().enumerate() {
            if k.name.trim().is_empty() {
                errors.push(format!("spec.rootKeys[{i}].name: must not be empty"));
            }
            if let Err(e) = checks::pem_armor(&k.public_key, &["PUBLIC KEY", "CERTIFICATE"]) {
                errors.push(format!("spec.rootKeys[{i}].publicKey ({:?}): {e}", k.name));
            }
        }
        if let Some(dup) = checks::first_duplicate(self.root_keys.iter().map(|k| k.name.as_str())) {
            errors.push(format!("spec.rootKeys: the name {dup:?} is used twice"));
        }
        for (i, id) in self.revoked_keys.iter().enumerate() {
            if let Err(e) = checks::key_id(id) {
                errors.push(format!("spec.revokedKeys[{i}]: {e}"));
            }
        }
        match parse_duration(&self.refresh_interval) {
            Ok(d) if d < MIN_REFRESH_INTERVAL => errors
                .push(format!("spec.refreshInterval: {:?} is shorter than the minimum of 10s", self.refresh_interval)),
            Ok(_) => {}
            Err(e) => errors.push(format!("spec.refreshInterval: {e}")),
        }
        if let Err(e) = parse_duration(&self.expiry_warning) {
            errors.push(format!("spec.expiryWarning: {e}"));
        }
        if let Err(e) = parse_duration(&self.retirement_warning) {
            errors.push(format!("spec.retirementWarning: {e}"));
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    fn validate_notation(&self, n: &NotationTrust, errors: &mut Vec<String>) {
        let stores = &n.trust_stores;
        if stores.ca.is_empty() && stores.signing_authority.is_empty() {
            errors
                .push("spec.notation.trustStores: at least one ca or signingAuthority certificate is required".into());
        }
        for (kind, list) in [("ca", &stores.ca), ("signingAuthority", &stores.signing_authority), ("tsa", &stores.tsa)]
        {
            for (i, c) in list.iter().enumerate() {
                if let Some(pem) = &c.pem
                    && let Err(e) = checks::pem_armor(pem, &["CERTIFICATE"])
                {
                    errors.push(format!("spec.notation.trustStores.{kind}[{i}].pem ({:?}): {e}", c.name));
                }
            }
        }
        if n.trusted_identities.is_empty() {
            errors.push("spec.notation.trustedIdentities: at least one identity (or \"*\") is required".into());
        }
        if let Some(t) = &n.revocation_timeout
            && let Err(e) = parse_duration(t)
        {
            errors.push(format!("spec.notation.revocationTimeout: {e}"));
        }
    }

    /// The kind of trust root the spec describes.
    pub fn kind(&self) -> crate::verifier::SignatureFormat {
        use crate::verifier::SignatureFormat;
        match (&self.notation, &self.cosign) {
            (Some(_), _) => SignatureFormat::Notation,
            (None, Some(_)) => SignatureFormat::Cosign,
            (None, None) => SignatureFormat::NotaryV1,
        }
    }

    /// `spec.refreshInterval`, or its default when it does not parse ([`Self::validate`]
    /// reports that).
    pub fn refresh_period(&self) -> Duration {
        parse_duration(&self.refresh_interval)
            .unwrap_or_else(|_| parse_duration(DEFAULT_REFRESH_INTERVAL).expect("valid default"))
    }

    /// `spec.expiryWarning`, or its default when it does not parse.
    pub fn expiry_warning_period(&self) -> Duration {
        parse_duration(&self.expiry_warning)
            .unwrap_or_else(|_| parse_duration(DEFAULT_EXPIRY_WARNING).expect("valid default"))
    }
}
