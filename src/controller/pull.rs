//! The running pod's own registry credentials, for trust roots with
//! `registry.usePodPullSecrets`: the Secrets its `imagePullSecrets` and its ServiceAccount's
//! name, merged into one docker configuration, so that trustwatch sees the registry with the
//! rights the kubelet had.
//!
//! Reading them needs Secrets and ServiceAccounts readable in the pods' namespaces, which the
//! default RBAC does not grant: the kustomize component `config/components/pod-pull-secrets`
//! does, and is added knowingly. Without it, verification reads `TrustDataUnavailable` with the
//! reason `PullSecretUnreadable` and a message that says so.

use super::Context;
use crate::scanner::pods::PullRef;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::Api;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Pod credential sets read recently: when, and the merged docker configuration (or why not).
pub type PullCache = HashMap<PullRef, (Instant, Result<Vec<u8>, String>)>;

/// Credentials read once are reused this long; a failure (a missing permission, a Secret not
/// there yet) is retried sooner.
const PULL_CONFIG_TTL: Duration = Duration::from_secs(60);
const PULL_FAILURE_TTL: Duration = Duration::from_secs(10);
/// The most credential sets remembered.
const MAX_PULL_CONFIGS: usize = 4096;

/// The merged docker configuration of each pod credential set, or why it cannot be read.
pub async fn read_pull_configs<'a>(
    ctx: &Context,
    refs: impl Iterator<Item = &'a PullRef>,
) -> HashMap<PullRef, Result<Vec<u8>, String>> {
    let mut out = HashMap::new();
    let mut cache = ctx.pull_configs.lock().await;
    cache.retain(|_, (at, v)| at.elapsed() < if v.is_ok() { PULL_CONFIG_TTL } else { PULL_FAILURE_TTL });
    if cache.len() > MAX_PULL_CONFIGS {
        cache.clear();
    }
    for r in refs {
        if out.contains_key(r) {
            continue;
        }
        let value = match cache.get(r) {
            Some((_, v)) => v.clone(),
            None => {
                let v = read_one(ctx, r).await;
                cache.insert(r.clone(), (Instant::now(), v.clone()));
                v
            }
        };
        out.insert(r.clone(), value);
    }
    out
}

fn forbidden_hint(what: &str, e: &kube::Error) -> String {
    let hint = match e {
        kube::Error::Api(s) if s.code == 403 => {
            ": trustwatch may not read it; add the kustomize component config/components/pod-pull-secrets to let it read pods' pull secrets"
        }
        _ => "",
    };
    format!("cannot read {what}: {e}{hint}")
}

async fn read_one(ctx: &Context, r: &PullRef) -> Result<Vec<u8>, String> {
    let mut names = r.secrets.clone();
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &r.namespace);
    match sas.get_opt(&r.service_account).await {
        Ok(Some(sa)) => names.extend(sa.image_pull_secrets.iter().flatten().map(|s| s.name.clone())),
        Ok(None) => {}
        Err(e) => return Err(forbidden_hint(&format!("ServiceAccount {}/{}", r.namespace, r.service_account), &e)),
    }
    names.sort();
    names.dedup();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &r.namespace);
    let mut auths: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for name in names {
        let secret = match secrets.get_opt(&name).await {
            Ok(Some(s)) => s,
            // A pull secret that does not exist pulls nothing for the kubelet either.
            Ok(None) => continue,
            Err(e) => return Err(forbidden_hint(&format!("Secret {}/{name}", r.namespace), &e)),
        };
        let data = secret.data.unwrap_or_default();
        let raw = data.get(".dockerconfigjson").or_else(|| data.get(".dockercfg"));
        let Some(raw) = raw else { continue };
        let v: serde_json::Value = serde_json::from_slice(&raw.0)
            .map_err(|e| format!("Secret {}/{name} is not a docker configuration: {e}", r.namespace))?;
        // `.dockerconfigjson` nests the entries under `auths`; the legacy `.dockercfg` does not.
        let entries = v.get("auths").cloned().unwrap_or(v);
        if let Some(map) = entries.as_object() {
            for (k, e) in map {
                auths.insert(k.clone(), e.clone());
            }
        }
    }
    tracing::debug!(namespace = %r.namespace, secrets = ?r.secrets, registries = ?auths.keys().collect::<Vec<_>>(), "pod pull credentials read");
    Ok(serde_json::to_vec(&serde_json::json!({ "auths": auths })).expect("JSON"))
}
