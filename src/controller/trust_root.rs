//! The TrustRoot controller: turns each TrustRoot into a trust engine, refreshes the
//! repositories in use every refresh interval and reports them in status.

use super::roots::{TrustRootRuntime, build_trust_root};
use super::status::{RootState, memory_from_status, trust_root_status, trust_root_status_changed};
use super::{Context, Error};
use crate::crd::condition::reasons;
use crate::crd::{API_VERSION, FIELD_MANAGER, SecretRef, TrustRoot, TrustRootStatus};
use crate::engine::RepoView;
use crate::fetch::Credentials;
use crate::telemetry::repository_seconds_left;
use base64::Engine as _;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
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

async fn read_credentials(ctx: &Context, r: &SecretRef, server: &str) -> Result<Credentials, String> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &r.namespace);
    let secret = api.get(&r.name).await.map_err(|e| format!("cannot read Secret {}/{}: {e}", r.namespace, r.name))?;
    credentials_from_secret(&secret.data.unwrap_or_default(), server)
        .map_err(|e| format!("Secret {}/{}: {e}", r.namespace, r.name))
}

/// Reuses the runtime while spec and credentials are unchanged; otherwise builds a new one,
/// seeded with the trusted versions and signers its status remembers.
async fn ensure_runtime(
    ctx: &Context,
    tr: &TrustRoot,
    credentials: Option<Credentials>,
) -> Result<Arc<TrustRootRuntime>, Vec<String>> {
    let name = tr.name_any();
    if let Some(rt) = ctx.roots.read().await.get(&name) {
        if rt.spec == tr.spec && rt.credentials == credentials {
            return Ok(rt.clone());
        }
    }
    let metrics = ctx.metrics.clone();
    let label = name.clone();
    let rt = build_trust_root(&name, &tr.spec, credentials, move |c| c.metrics = Some((metrics, label)))?;
    for (gun, memory) in memory_from_status(tr.status.as_ref()) {
        rt.engine.remember(&gun, memory).await;
        // Repositories in use before the restart stay in use.
        rt.engine.repository_slot(&gun);
    }
    let rt = Arc::new(rt);
    ctx.roots.write().await.insert(name.clone(), rt.clone());
    info!(trust_root = %name, kind = %tr.spec.kind(), "trust root loaded");
    Ok(rt)
}

async fn refresh(tr: &TrustRoot, ctx: &Context) -> Result<Action, Error> {
    let name = tr.name_any();
    let now = Timestamp::now();
    let api: Api<TrustRoot> = Api::all(ctx.client.clone());
    let credentials = match &tr.spec.auth_secret_ref {
        None => Ok(None),
        Some(r) => read_credentials(ctx, r, tr.spec.server.as_deref().unwrap_or_default()).await.map(Some),
    };
    let runtime = match credentials {
        Err(msg) => Err((reasons::AUTH_SECRET_INVALID, msg)),
        Ok(c) => ensure_runtime(ctx, tr, c).await.map_err(|es| (reasons::INVALID_SPEC, es.join("; "))),
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

    let fresh_since = Instant::now().checked_sub(runtime.refresh_interval).unwrap_or_else(Instant::now);
    let mut views: Vec<(String, RepoView)> = vec![];
    for gun in runtime.engine.repositories() {
        let view = runtime.engine.repository(&gun, now, fresh_since).await;
        ctx.metrics.record_refresh(&name, view.result.is_ok(), now.as_second() as f64);
        if let Err(e) = &view.result {
            warn!(trust_root = %name, gun = %gun, reason = e.reason(), error = %e, "trust data refresh failed");
        }
        views.push((gun, view));
    }
    record_expiry_metrics(ctx, &name, &runtime, &views, now);
    let status =
        trust_root_status(tr, RootState::Ready { pinned_key_ids: &runtime.pinned_key_ids, views: &views }, now);
    let changed = patch_status(&api, &name, tr.status.as_ref(), &status).await?;
    if changed {
        // Trust data changed: policies re-verify now rather than at their next interval.
        let _ = ctx.rescan.unbounded_send(());
    }
    Ok(Action::requeue(runtime.refresh_interval))
}

fn record_expiry_metrics(
    ctx: &Context,
    name: &str,
    rt: &TrustRootRuntime,
    views: &[(String, RepoView)],
    now: Timestamp,
) {
    ctx.metrics.set_warning_window(name, rt.expiry_warning.as_secs_f64());
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

/// Writes the status when it changed (refresh times aside); returns whether it did.
async fn patch_status(
    api: &Api<TrustRoot>,
    name: &str,
    old: Option<&TrustRootStatus>,
    new: &TrustRootStatus,
) -> Result<bool, Error> {
    if !trust_root_status_changed(old, new) {
        return Ok(false);
    }
    let body = json!({"apiVersion": API_VERSION, "kind": "TrustRoot", "status": new});
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body)).await?;
    Ok(true)
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
