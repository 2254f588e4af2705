//! Trust roots at run time: a `TrustRoot` spec turned into a trust engine, and the
//! verifications of a scan plan run against the engines (shared by the operator and
//! `trustwatch audit`).

use crate::crd::TrustRootSpec;
use crate::engine::{Resolution, ResolveOptions, TrustEngine};
use crate::fetch::{Credentials, NotaryHttp, ServerConfig};
use crate::image::ImageRef;
use crate::scanner::VerifyKey;
use crate::tuf::{Anchors, PinnedKey};
use crate::verdict::Verdict;
use crate::verifier::SignatureFormat;
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many verifications run at once.
pub const VERIFY_CONCURRENCY: usize = 16;

/// A trust root ready to verify.
pub struct TrustRootRuntime {
    pub name: String,
    pub credentials: Option<Credentials>,
    /// The spec it was built from: a changed spec means a new runtime (and a fresh trust state).
    pub spec: TrustRootSpec,
    pub engine: TrustEngine<NotaryHttp>,
    pub expiry_warning: SignedDuration,
    pub refresh_interval: Duration,
    pub pinned_key_ids: Vec<String>,
}

/// Builds the runtime of a trust root. Errors name the field to fix.
pub fn build_trust_root(
    name: &str,
    spec: &TrustRootSpec,
    credentials: Option<Credentials>,
    tweak: impl FnOnce(&mut ServerConfig),
) -> Result<TrustRootRuntime, Vec<String>> {
    spec.validate()?;
    let mut pinned = vec![];
    let mut errors = vec![];
    for (i, k) in spec.root_keys.iter().enumerate() {
        match PinnedKey::from_pem(&k.name, &k.public_key) {
            Ok(p) => pinned.push(p),
            Err(e) => errors.push(format!("spec.rootKeys[{i}].publicKey: {e}")),
        }
    }
    let Some(server) = &spec.server else {
        return Err(vec!["spec: only Notary v1 trust roots (spec.server) are wired in yet".into()]);
    };
    let mut config = ServerConfig::new(server);
    config.ca_pem = spec.ca_bundle.clone();
    config.credentials = credentials;
    tweak(&mut config);
    let config_credentials = config.credentials.clone();
    let http = match NotaryHttp::new(config) {
        Ok(h) => Some(h),
        Err(e) => {
            errors.push(format!("spec: {e}"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let expiry_warning =
        SignedDuration::try_from(spec.expiry_warning_period()).unwrap_or(SignedDuration::from_hours(168));
    let pinned_key_ids = pinned.iter().map(|p| p.canonical_id.clone()).collect();
    let anchors = Anchors { pinned, revoked: spec.revoked_keys.iter().cloned().collect() };
    Ok(TrustRootRuntime {
        name: name.to_string(),
        credentials: config_credentials,
        spec: spec.clone(),
        engine: TrustEngine::new(http.expect("checked above"), anchors),
        expiry_warning,
        refresh_interval: spec.refresh_period(),
        pinned_key_ids,
    })
}

/// Runs every verification of a plan, at most [`VERIFY_CONCURRENCY`] at once. Trust data is
/// refreshed when older than the trust root's refresh interval (so a scan of many pods costs
/// one refresh per repository), or always when `force` is set.
pub async fn verify_all(
    keys: &BTreeSet<VerifyKey>,
    roots: &HashMap<String, Arc<TrustRootRuntime>>,
    now: Timestamp,
    force: bool,
    metrics: Option<&crate::telemetry::Metrics>,
) -> HashMap<VerifyKey, Resolution> {
    let started = Instant::now();
    futures::stream::iter(keys.iter().cloned())
        .map(|key| async move {
            let t = Instant::now();
            let r = verify_one(&key, roots, now, force, started).await;
            if let Some(m) = metrics {
                m.record_verification(&key.trust_root, r.verdict, t.elapsed().as_secs_f64());
            }
            (key, r)
        })
        .buffer_unordered(VERIFY_CONCURRENCY)
        .collect()
        .await
}

async fn verify_one(
    key: &VerifyKey,
    roots: &HashMap<String, Arc<TrustRootRuntime>>,
    now: Timestamp,
    force: bool,
    started: Instant,
) -> Resolution {
    let image = match ImageRef::parse(&key.image) {
        Ok(i) => i,
        Err(e) => {
            return unavailable(key, "InvalidImageReference", Verdict::Unsigned, e);
        }
    };
    let Some(root) = roots.get(&key.trust_root) else {
        return unavailable(
            key,
            "TrustRootNotReady",
            Verdict::TrustDataUnavailable,
            format!(
                "TrustRoot {:?} does not exist or is not ready (kubectl describe troot {})",
                key.trust_root, key.trust_root
            ),
        );
    };
    let fresh_since =
        if force { started } else { Instant::now().checked_sub(root.refresh_interval).unwrap_or(started) };
    let opts = ResolveOptions { signers: key.signers.clone(), now, expiry_warning: root.expiry_warning };
    root.engine.verify(&image, &opts, fresh_since).await
}

fn unavailable(key: &VerifyKey, reason: &str, verdict: Verdict, message: String) -> Resolution {
    match ImageRef::parse(&key.image) {
        Ok(image) => Resolution::new(SignatureFormat::NotaryV1, &image, verdict, reason, message),
        Err(_) => Resolution::unparsed(SignatureFormat::NotaryV1, &key.image, verdict, reason, message),
    }
}
