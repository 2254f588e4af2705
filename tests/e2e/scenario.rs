//! The scenario, shared by the cluster test and its offline twin: what is signed, the
//! workloads, the TrustRoot and the policy, and the verdict each workload must get.
//!
//! The workloads' images live in `registry.e2e`, a registry that does not exist: their pods
//! never pull (ImagePullBackOff), so their status has no `imageID` and the operator verifies
//! what the pod spec names (see `scanner::plan`: the running digest stands in for a missing
//! spec digest only when one is known; a digest in the spec is checked as written). That
//! needs no registry and no image push, and covers every verdict the test wants:
//!
//! | workload   | image                                   | verdict                                   |
//! |------------|-----------------------------------------|-------------------------------------------|
//! | `signed`   | `registry.e2e/app:v1`                   | Verified: v1 is signed                    |
//! | `drifted`  | `registry.e2e/app:v1@sha256:<other>`    | DigestDrift: v1 is signed for another digest |
//! | `unsigned` | `registry.e2e/unsigned:v1`              | Unsigned: no trust data, until it is signed |
//! | `revoked`  | `registry.e2e/payments:v1`              | SignerRevoked: the signer's key was removed |

use crate::support::{KeyKind, NotaryClient, sha_hex};
use serde_json::{Value, json};
use trustwatch::verdict::Verdict;

pub const APP: &str = "registry.e2e/app";
pub const PAYMENTS: &str = "registry.e2e/payments";
pub const UNSIGNED: &str = "registry.e2e/unsigned";
/// The namespace of the workloads: the policy selects it by [`ENFORCE_LABEL`], and nothing else.
pub const APPS_NAMESPACE: &str = "trustwatch-e2e-apps";
pub const ENFORCE_LABEL: &str = "e2e.trustwatch.dev/enforce";
pub const TRUST_ROOT: &str = "e2e-notary";
pub const POLICY: &str = "e2e-quarantine";
/// The delegation that signs payments, and then loses its only key.
pub const RELEASES: &str = "targets/releases";

/// What [`sign`] produced.
#[derive(Debug, Clone)]
pub struct Signed {
    /// `sha256:<hex>` signed for `registry.e2e/app:v1`.
    pub app_v1: String,
    /// A digest nobody signed, pinned by the drifted workload.
    pub app_other: String,
    /// The root certificate of the repositories (the CLI reuses one root key for all of them,
    /// and trustwatch pins by public key, so one certificate anchors every repository).
    pub root_cert_pem: String,
}

/// Signs with the real notary CLI: `app:v1` in targets; `payments:v1` by targets/releases,
/// whose only key is then removed (a revoked signer); nothing for `unsigned`.
pub fn sign(client: &NotaryClient) -> Signed {
    let app_v1 = sha_hex("registry.e2e/app:v1");
    client.init(APP);
    client.add_hash(APP, "v1", 1024, &app_v1, &[]);

    client.init(PAYMENTS);
    client.add_delegation_signer(PAYMENTS, RELEASES, "ci", KeyKind::Ecdsa);
    client.add_hash(PAYMENTS, "v1", 1024, &sha_hex("registry.e2e/payments:v1"), &[RELEASES]);
    let keys = client.delegation_key_ids(PAYMENTS, RELEASES);
    assert_eq!(keys.len(), 1, "targets/releases of {PAYMENTS} has one key: {keys:?}");
    client.delegation_remove_key(PAYMENTS, RELEASES, &keys[0]);

    Signed {
        app_v1: format!("sha256:{app_v1}"),
        app_other: format!("sha256:{}", sha_hex("registry.e2e/app:v1 (not signed)")),
        root_cert_pem: client.root_cert_pem(APP),
    }
}

/// The fix for the `unsigned` workload: sign its tag.
pub fn sign_the_unsigned_repository(client: &NotaryClient) {
    client.init(UNSIGNED);
    client.add_hash(UNSIGNED, "v1", 1024, &sha_hex("registry.e2e/unsigned:v1"), &[]);
}

/// A Deployment of the scenario and the verdicts it must get.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: &'static str,
    pub image: String,
    /// Before anything is fixed.
    pub initially: Verdict,
    /// After [`sign_the_unsigned_repository`].
    pub once_signed: Verdict,
}

impl Workload {
    /// `<kind>-<workload>-<policy>`, as the operator names reports.
    pub fn report_name(&self) -> String {
        format!("deployment-{}-{POLICY}", self.name)
    }

    pub fn fails_initially(&self) -> bool {
        !self.initially.is_trusted()
    }
}

pub fn workloads(signed: &Signed) -> Vec<Workload> {
    let w = |name, image: String, initially, once_signed| Workload { name, image, initially, once_signed };
    // The images never pull, so no container reports an imageID: each is pinned by digest,
    // which is what the runtime would run (a tag alone is never verified).
    let pinned = |repo: &str| format!("{repo}:v1@sha256:{}", sha_hex(&format!("{repo}:v1")));
    vec![
        w("signed", format!("{APP}:v1@{}", signed.app_v1), Verdict::Verified, Verdict::Verified),
        w("drifted", format!("{APP}:v1@{}", signed.app_other), Verdict::DigestDrift, Verdict::DigestDrift),
        w("unsigned", pinned(UNSIGNED), Verdict::Unsigned, Verdict::Verified),
        w("revoked", pinned(PAYMENTS), Verdict::SignerRevoked, Verdict::SignerRevoked),
    ]
}

/// The TrustRoot: the server, its CA and the pinned root certificate; refreshed every 10s.
pub fn trust_root(server: &str, ca_pem: &str, root_cert_pem: &str) -> Value {
    json!({
        "apiVersion": "trustwatch.dev/v1alpha1",
        "kind": "TrustRoot",
        "metadata": {"name": TRUST_ROOT},
        "spec": {
            "server": server,
            "caBundle": ca_pem,
            "rootKeys": [{"name": "e2e-root", "publicKey": root_cert_pem}],
            "refreshInterval": "10s"
        }
    })
}

/// The policy: every `registry.e2e` image, payments signed by `releases`; only the
/// namespaces labelled [`ENFORCE_LABEL`]; re-verified every 10s.
pub fn policy(action: &str) -> Value {
    json!({
        "apiVersion": "trustwatch.dev/v1alpha1",
        "kind": "ImageTrustPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "namespaceSelector": {"matchLabels": {ENFORCE_LABEL: "true"}},
            "images": [
                {"pattern": "registry.e2e/**", "trustRoot": TRUST_ROOT},
                {"pattern": PAYMENTS, "trustRoot": TRUST_ROOT, "signers": ["releases"]}
            ],
            "action": action,
            "interval": "10s"
        }
    })
}

pub fn apps_namespace() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": APPS_NAMESPACE, "labels": {ENFORCE_LABEL: "true"}}
    })
}

pub fn deployment(w: &Workload) -> Value {
    let labels = json!({"app": w.name});
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": w.name, "namespace": APPS_NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": false,
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "app", "image": w.image, "imagePullPolicy": "IfNotPresent"}]
                }
            }
        }
    })
}

/// The pod of [`deployment`] as the API server shows it while its image cannot be pulled
/// (owned by the Deployment's ReplicaSet, no `imageID`): the input of the offline twin.
pub fn unpulled_pod(w: &Workload) -> Value {
    let hash = "5f7d8c9b6d";
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("{}-{hash}-x2k4p", w.name),
            "namespace": APPS_NAMESPACE,
            "uid": format!("uid-pod-{}", w.name),
            "labels": {"app": w.name, "pod-template-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{}-{hash}", w.name),
                                 "uid": format!("uid-rs-{}", w.name), "controller": true}]
        },
        "spec": {"containers": [{"name": "app", "image": w.image}]},
        "status": {
            "phase": "Pending",
            "containerStatuses": [{
                "name": "app", "image": w.image, "imageID": "", "ready": false, "restartCount": 0, "started": false,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image {:?}", w.image)}}
            }]
        }
    })
}
