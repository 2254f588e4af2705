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

/// A Notary v1 server and the root keys pinned for the repositories verified against it.
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
    doc = "TrustRoot says where image trust comes from: a Notary v1 server (Docker Content Trust) and the root keys pinned for the repositories verified against it. ImageTrustPolicies refer to it by name. trustwatch refreshes the trust data of every repository in use at spec.refreshInterval and reports each repository's trusted versions, signers and expiries in status.",
    printcolumn(name = "Server", type_ = "string", json_path = ".spec.server", description = "The Notary server"),
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
pub struct TrustRootSpec {
    /// URL of the Notary server, e.g. `https://notary.docker.io`. Only https is accepted: the
    /// trust data is signed, but the transport must still be authenticated.
    #[x_kube(validation = Rule::new("isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != ''").message("must be an https:// URL with a host"))]
    #[schemars(length(min = 1, max = 2048))]
    pub server: String,

    /// PEM bundle of the certificate authorities that sign the server's TLS certificate.
    /// When unset, the system roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.contains('-----BEGIN CERTIFICATE-----')").message("must hold at least one PEM certificate (-----BEGIN CERTIFICATE-----)"))]
    #[schemars(length(max = 262144))]
    pub ca_bundle: Option<String>,

    /// Secret with the credentials for the server's token service: keys `username` and
    /// `password`, or a `.dockerconfigjson` (type kubernetes.io/dockerconfigjson) whose entry
    /// for the server's host is used. When unset, trust data is fetched anonymously.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretRef>,

    /// Root keys pinned for every repository verified with this trust root. A repository's
    /// root metadata is trusted only when a pinned key is among its root keys and signed it
    /// (an older pinned root is followed through its signed rotations). Keys are compared by
    /// public key, so a certificate and its bare public key pin the same key.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(min = 1, max = 32))]
    pub root_keys: Vec<RootKey>,

    /// Key IDs (64 hex digits, either the TUF key ID or Notary's canonical key ID) that are
    /// never trusted, whatever the metadata says. Signatures by these keys do not count
    /// towards any threshold, so images they alone sign report SignerRevoked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(length(max = 256), inner(pattern("^[0-9a-f]{64}$")))]
    pub revoked_keys: Vec<String>,

    /// How often the trust data of each repository in use is refreshed, e.g. `30s`, `5m`,
    /// `1h`. Units: s, m, h, d; combinations like `1h30m` work. At least 10s. Refreshes
    /// also happen when a role is about to expire, so an expiry is noticed when it happens.
    #[serde(default = "default_refresh_interval")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub refresh_interval: String,

    /// How long before a signed role (root, targets, a delegation or a delegation's
    /// certificate) expires that images it covers report ExpiringSoon instead of Verified,
    /// e.g. `7d`, `72h`. `0s` disables the warning.
    #[serde(default = "default_expiry_warning")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub expiry_warning: String,
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
    /// verified on the last refresh; the reason says what failed otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

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
        if let Err(e) = checks::https_url(&self.server) {
            errors.push(format!("spec.server: {e}"));
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
        if self.root_keys.is_empty() {
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
        if errors.is_empty() { Ok(()) } else { Err(errors) }
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
