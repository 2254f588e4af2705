//! The TrustRoot controller: turns each TrustRoot into a trust engine, refreshes the
//! repositories in use every refresh interval and reports them in status.

use super::roots::{ExternalInputs, StatusMark, TrustRootRuntime, build_trust_root, pem_key};
use super::status::{RootState, memory_from_status, trust_root_status, trust_root_status_changed};
use super::{Context, Error};
use crate::crd::condition::reasons;
use crate::crd::{API_VERSION, FIELD_MANAGER, SecretRef, TrustRoot, TrustRootSpec, TrustRootStatus};
use crate::engine::RepoView;
use crate::fetch::Credentials;
use crate::telemetry::repository_seconds_left;
use base64::Engine as _;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

pub async fn reconcile(tr: Arc<TrustRoot>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = refresh(&tr, &ctx).await;
    ctx.metrics.record_reconcile("trustroot", result.is_ok(), started.elapsed().as_secs_f64());
    result
}

pub fn error_policy(tr: Arc<TrustRoot>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(trust_root = %tr.name_any(), reason = error.reason(), %error, "trust root reconcile failed; retrying in 30s");
    Action::requeue(Duration::from_secs(30))
}

/// Username and password for `server` from a Secret with `username`/`password` keys or a
/// `.dockerconfigjson` (`auths.<host>.username/password` or `auth` = base64 "user:pass").
pub fn credentials_from_secret(data: &BTreeMap<String, ByteString>, server: &str) -> Result<Credentials, String> {
    let text = |k: &str| data.get(k).map(|b| String::from_utf8_lossy(&b.0).trim().to_string());
    if let (Some(username), Some(password)) = (text("username"), text("password")) {
        return Ok(Credentials { username, password });
    }
    let Some(cfg) = text(".dockerconfigjson") else {
        return Err("the Secret has neither username/password keys nor a .dockerconfigjson".into());
    };
    let cfg: serde_json::Value =
        serde_json::from_str(&cfg).map_err(|e| format!(".dockerconfigjson is not JSON: {e}"))?;
    let host = server.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
    let auths = cfg.get("auths").and_then(|a| a.as_object()).ok_or(".dockerconfigjson has no auths")?;
    let entry = auths
        .iter()
        .find(|(k, _)| k.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/') == host)
        .map(|(_, v)| v)
        .ok_or_else(|| format!(".dockerconfigjson has no entry for {host}"))?;
    let field = |k: &str| entry.get(k).and_then(|v| v.as_str()).map(str::to_string);
    if let (Some(username), Some(password)) = (field("username"), field("password")) {
        return Ok(Credentials { username, password });
    }
    let auth = field("auth").ok_or_else(|| format!(".dockerconfigjson entry for {host} has no credentials"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.as_bytes())
        .map_err(|e| format!("auth for {host} is not base64: {e}"))?;
    let decoded = String::from_utf8_lossy(&decoded).into_owned();
    let (u, p) = decoded.split_once(':').ok_or_else(|| format!("auth for {host} is not user:password"))?;
    Ok(Credentials { username: u.to_string(), password: p.to_string() })
}

/// Secrets are read only in the operator's namespace, or in a namespace the operator was
/// told to trust (`trustwatch run --secret-namespace`): a TrustRoot is cluster-scoped, and
/// whoever may create one must not be able to make the operator read any Secret.
fn check_secret_namespace(ctx: &Context, field: &str, namespace: &str) -> Result<(), String> {
    if namespace == ctx.operator_namespace() || ctx.config.secret_namespaces.iter().any(|n| n == namespace) {
        return Ok(());
    }
    Err(format!(
        "{field}: Secrets are read only in the operator's namespace ({}); move the Secret there, or start the operator with --secret-namespace {namespace} and grant it a Role to get Secrets in {namespace}",
        ctx.operator_namespace()
    ))
}

async fn read_secret(ctx: &Context, field: &str, r: &SecretRef) -> Result<BTreeMap<String, ByteString>, String> {
    check_secret_namespace(ctx, field, &r.namespace)?;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &r.namespace);
    let secret =
        api.get(&r.name).await.map_err(|e| format!("{field}: cannot read Secret {}/{}: {e}", r.namespace, r.name))?;
    Ok(secret.data.unwrap_or_default())
}

/// Reads what the spec references outside itself: credentials, and the PEM of keys and
/// certificates kept in ConfigMaps or Secrets of the operator's namespace.
async fn gather_inputs(ctx: &Context, spec: &TrustRootSpec) -> Result<ExternalInputs, String> {
    let mut inputs = ExternalInputs::default();
    if let Some(r) = &spec.auth_secret_ref {
        let data = read_secret(ctx, "spec.authSecretRef", r).await?;
        let server = spec.server.as_deref().unwrap_or_default();
        inputs.notary_credentials = Some(
            credentials_from_secret(&data, server).map_err(|e| format!("Secret {}/{}: {e}", r.namespace, r.name))?,
        );
    }
    if let Some(r) = spec.registry.as_ref().and_then(|a| a.auth_secret_ref.as_ref()) {
        let data = read_secret(ctx, "spec.registry.authSecretRef", r).await?;
        let cfg = data.get(".dockerconfigjson").ok_or_else(|| {
            format!(
                "Secret {}/{} has no .dockerconfigjson (create it with kubectl create secret docker-registry)",
                r.namespace, r.name
            )
        })?;
        inputs.registry_config = Some(cfg.0.clone());
    }
    let ns = ctx.operator_namespace().to_string();
    for (kind, name, key) in referenced_keys(spec) {
        let text = match kind {
            "ConfigMap" => {
                let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
                let cm = api.get(name).await.map_err(|e| format!("cannot read ConfigMap {ns}/{name}: {e}"))?;
                cm.data.unwrap_or_default().get(key).cloned()
            }
            _ => {
                let data =
                    read_secret(ctx, "secretKeyRef", &SecretRef { name: name.into(), namespace: ns.clone() }).await?;
                data.get(key).map(|b| String::from_utf8_lossy(&b.0).into_owned())
            }
        };
        let text = text.ok_or_else(|| format!("{kind} {ns}/{name} has no key {key:?}"))?;
        inputs.pem.insert(pem_key(kind, name, key), text);
    }
    Ok(inputs)
}

/// Every (kind, name, key) of a ConfigMap or Secret the spec's keys and certificates name.
fn referenced_keys(spec: &TrustRootSpec) -> Vec<(&'static str, &str, &str)> {
    type Refs<'a> = (&'a Option<crate::crd::KeyRef>, &'a Option<crate::crd::KeyRef>);
    let mut refs: Vec<Refs<'_>> = vec![];
    if let Some(c) = &spec.cosign {
        refs.extend(c.keys.iter().chain(&c.log_keys).map(|k| (&k.config_map_key_ref, &k.secret_key_ref)));
    }
    if let Some(n) = &spec.notation {
        let s = &n.trust_stores;
        refs.extend(
            s.ca.iter().chain(&s.signing_authority).chain(&s.tsa).map(|c| (&c.config_map_key_ref, &c.secret_key_ref)),
        );
    }
    let mut out = vec![];
    for (cm, sec) in refs {
        if let Some(r) = cm {
            out.push(("ConfigMap", r.name.as_str(), r.key.as_str()));
        }
        if let Some(r) = sec {
            out.push(("Secret", r.name.as_str(), r.key.as_str()));
        }
    }
    out
}

/// Reuses the runtime while spec and inputs are unchanged; otherwise builds a new one,
/// seeded with the trusted versions and signers its status remembers.
async fn ensure_runtime(
    ctx: &Context,
    tr: &TrustRoot,
    inputs: ExternalInputs,
) -> Result<Arc<TrustRootRuntime>, Vec<String>> {
    let name = tr.name_any();
    if let Some(rt) = ctx.roots.read().await.get(&name)
        && rt.spec == tr.spec
        && rt.inputs == inputs
    {
        rt.inputs_confirmed();
        return Ok(rt.clone());
    }
    let metrics = ctx.metrics.clone();
    let label = name.clone();
    let rt = build_trust_root(&name, &tr.spec, inputs, move |c| c.metrics = Some((metrics, label)))?;
    if let Some(engine) = rt.backend.notary() {
        for (gun, memory) in memory_from_status(tr.status.as_ref()) {
            engine.remember(&gun, memory).await;
            // Repositories in use before the restart stay in use.
            engine.repository_slot(&gun);
        }
    }
    let rt = Arc::new(rt);
    ctx.roots.write().await.insert(name.clone(), rt.clone());
    info!(trust_root = %name, kind = %tr.spec.kind(), "trust root loaded");
    Ok(rt)
}

/// The runtime of a TrustRoot, loaded now if this replica has none for its current spec: the
/// admission webhook answers on every replica, and only the leader reconciles TrustRoots.
/// The runtime goes into the shared [`Context::roots`], where scans find it too. The Secrets
/// and ConfigMaps it was built from are read again when [`TrustRootRuntime::inputs_due`], so
/// that a follower sees a key replaced or removed there as soon as the leader would.
pub async fn runtime_for(ctx: &Context, tr: &TrustRoot) -> Result<Arc<TrustRootRuntime>, String> {
    let name = tr.name_any();
    if let Some(rt) = ctx.roots.read().await.get(&name)
        && rt.spec == tr.spec
        && !rt.inputs_due()
    {
        return Ok(rt.clone());
    }
    tr.spec.validate().map_err(|es| es.join("; "))?;
    // Unreadable inputs are an outage for this request; the runtime stays due, so the next
    // request reads them again (the leader's refresh decides whether the root is invalid).
    let inputs = gather_inputs(ctx, &tr.spec).await?;
    ensure_runtime(ctx, tr, inputs).await.map_err(|es| es.join("; "))
}

async fn refresh(tr: &TrustRoot, ctx: &Context) -> Result<Action, Error> {
    let name = tr.name_any();
    let now = Timestamp::now();
    let api: Api<TrustRoot> = Api::all(ctx.client.clone());
    let runtime = match tr.spec.validate() {
        Err(es) => Err((reasons::INVALID_SPEC, es.join("; "))),
        Ok(()) => match gather_inputs(ctx, &tr.spec).await {
            Err(msg) => Err((reasons::AUTH_SECRET_INVALID, msg)),
            Ok(inputs) => ensure_runtime(ctx, tr, inputs).await.map_err(|es| (reasons::INVALID_SPEC, es.join("; "))),
        },
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err((reason, msg)) => {
            warn!(trust_root = %name, reason, message = %msg, "trust root not usable");
            ctx.roots.write().await.remove(&name);
            let status = trust_root_status(tr, RootState::Invalid(reason, msg), now);
            patch_status(&api, &name, tr.status.as_ref(), &status).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    ctx.metrics.set_warning_window(&name, runtime.expiry_warning.as_secs_f64());
    let retirement = runtime.retirement.as_ref().and_then(|r| {
        let at = format!("{}T00:00:00Z", r.date).parse::<Timestamp>().ok()?;
        Some((r.endpoint.as_str(), at.as_second() as f64))
    });
    let warning = crate::crd::parse_duration(&tr.spec.retirement_warning).unwrap_or_default().as_secs_f64();
    ctx.metrics.set_retirement(&name, retirement, warning);
    let Some(engine) = runtime.backend.notary() else {
        // Notation and cosign trust data lives in the registries, next to each image: it is
        // read when images are verified, at the policies' intervals.
        let expiries: Vec<crate::tuf::Expiry> = runtime
            .certificates
            .iter()
            .map(|(c, t)| crate::tuf::Expiry {
                role: format!("{} certificate", c.store),
                expires: *t,
                server_managed: false,
            })
            .collect();
        if !expiries.is_empty() {
            ctx.metrics.set_trust_expiries(&name, &expiries, now);
        }
        let status = trust_root_status(tr, RootState::Registry { runtime: &runtime }, now);
        patch_status(&api, &name, tr.status.as_ref(), &status).await?;
        return Ok(Action::requeue(runtime.refresh_interval));
    };
    let fresh_since = Instant::now().checked_sub(runtime.refresh_interval).unwrap_or_else(Instant::now);
    // Read before the views: a scan may move a repository to a new state after they are
    // collected, and a status built from them must not be taken for that newer one.
    let generation = engine.generation();
    // Repositories are refreshed side by side, as many at once as a scan verifies.
    let views: Vec<(String, RepoView)> = futures::stream::iter(engine.repositories())
        .map(|gun| async move {
            let view = engine.repository(&gun, now, fresh_since).await;
            (gun, view)
        })
        .buffered(super::roots::VERIFY_CONCURRENCY)
        .collect()
        .await;
    for (gun, view) in &views {
        ctx.metrics.record_refresh(&name, view.result.is_ok(), now.as_second() as f64);
        if let Err(e) = &view.result {
            warn!(trust_root = %name, gun = %gun, reason = e.reason(), error = %e, "trust data refresh failed");
        }
    }
    record_expiry_metrics(ctx, &name, &views, now);
    let resource_version = tr.resource_version().unwrap_or_default();
    if status_unchanged_since(&runtime, &resource_version, engine.generation()) {
        return Ok(Action::requeue(runtime.refresh_interval));
    }
    let status = trust_root_status(tr, RootState::Ready { runtime: &runtime, views: &views }, now);
    let written = patch_status(&api, &name, tr.status.as_ref(), &status).await?;
    let mark = StatusMark { resource_version: written.clone().unwrap_or(resource_version), generation };
    *runtime.status_mark.lock().expect("status mark poisoned") = Some(mark);
    if written.is_some() {
        // Trust data changed: policies re-verify now rather than at their next interval.
        let _ = ctx.rescan.unbounded_send(());
    }
    Ok(Action::requeue(runtime.refresh_interval))
}

/// Whether the status last built for this TrustRoot still stands: the object is the one it
/// was built for or written to (same resourceVersion), and no repository changed state since
/// before the views it was built from (`generation_now`, read after this refresh's views).
fn status_unchanged_since(runtime: &TrustRootRuntime, resource_version: &str, generation_now: u64) -> bool {
    let mark = runtime.status_mark.lock().expect("status mark poisoned");
    !resource_version.is_empty()
        && mark.as_ref().is_some_and(|m| m.resource_version == resource_version && m.generation == generation_now)
}

fn record_expiry_metrics(ctx: &Context, name: &str, views: &[(String, RepoView)], now: Timestamp) {
    let mut all = vec![];
    for (gun, v) in views {
        let Ok(repo) = &v.result else { continue };
        let expiries = repo.expiries();
        if let Some(left) = repository_seconds_left(&expiries, now) {
            ctx.metrics.set_repository_expiry(name, gun, left);
        }
        all.extend(expiries);
    }
    ctx.metrics.set_trust_expiries(name, &all, now);
}

/// Writes the status when it changed (refresh times aside); returns the resourceVersion
/// the write gave the object, or `None` when nothing was written.
async fn patch_status(
    api: &Api<TrustRoot>,
    name: &str,
    old: Option<&TrustRootStatus>,
    new: &TrustRootStatus,
) -> Result<Option<String>, Error> {
    if !trust_root_status_changed(old, new) {
        return Ok(None);
    }
    let body = json!({"apiVersion": API_VERSION, "kind": "TrustRoot", "status": new});
    let written = api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
    Ok(Some(written.resource_version().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect()
    }

    #[test]
    fn credentials_come_from_username_password_or_a_docker_config() {
        let c =
            credentials_from_secret(&data(&[("username", "ci"), ("password", "pw\n")]), "https://notary.example.com")
                .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("ci", "pw"));
        let cfg = r#"{"auths":{"notary.example.com:4443":{"auth":"Y2k6cHc="}}}"#;
        let c =
            credentials_from_secret(&data(&[(".dockerconfigjson", cfg)]), "https://notary.example.com:4443/").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("ci", "pw"));
        let err =
            credentials_from_secret(&data(&[(".dockerconfigjson", cfg)]), "https://other.example.com").unwrap_err();
        assert!(err.contains("no entry for other.example.com"), "{err}");
        assert!(credentials_from_secret(&data(&[]), "https://x").unwrap_err().contains("neither"));
    }
}
