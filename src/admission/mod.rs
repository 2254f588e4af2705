//! The validating admission webhook: the same policies, trust roots and caches as the scans,
//! asked before a pod starts.
//!
//! [`review`] reads an AdmissionReview into the images to check (pure), [`decide`] plans them
//! with the scanner's matching and turns the verifiers' answers into allowed, denied and
//! warnings (pure); this module is the shell between them: it picks the policies that decide
//! at admission in the request's namespace, loads the trust roots this replica has not
//! loaded yet into the shared [`Context::roots`], and verifies within a budget. [`server`]
//! serves it over HTTPS and [`certs`] keeps its serving certificate.

pub mod certs;
pub mod decide;
pub mod review;
pub mod server;

use crate::controller::Context;
use crate::controller::roots::{TrustRootRuntime, unavailable, verify_all};
use crate::crd::AdmissionMode;
use crate::scanner::{VerifyKey, is_protected_namespace};
use crate::verdict::Verdict;
use crate::verifier::{Resolution, SignatureFormat};
use decide::{AdmissionPolicy, Decision};
use kube::ResourceExt;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default of `--webhook-timeout`: the budget of a cold verification, below the 10 s
/// `timeoutSeconds` of the webhook configuration.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(5);

/// Answers one AdmissionReview (a review without a request gets an invalid answer).
pub async fn answer(
    ctx: &Arc<Context>,
    budget: Duration,
    review: AdmissionReview<DynamicObject>,
) -> AdmissionReview<DynamicObject> {
    let started = Instant::now();
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(_) => return AdmissionResponse::invalid("an AdmissionReview without a request").into_review(),
    };
    let (decision, kind) = decide_request(ctx, budget, &request).await;
    ctx.metrics.record_admission(&kind, &decision, started.elapsed().as_secs_f64());
    let mut response = AdmissionResponse::from(&request);
    if !decision.warnings.is_empty() {
        response.warnings = Some(decision.warnings.clone());
    }
    if let Some(denial) = &decision.denial {
        // Kubernetes admission webhooks: "`status.message` ... is returned to the user"
        // (with `allowed: false`), and "warnings ... are returned to the requesting client".
        response = response.deny(denial);
        response.result.reason = "Forbidden".into();
        response.result.code = 403;
    }
    tracing::info!(
        kind = %kind, namespace = request.namespace.as_deref().unwrap_or(""), name = %request.name,
        effect = decision.effect().as_str(), seconds = started.elapsed().as_secs_f64(), "admission review"
    );
    response.into_review()
}

/// The decision on one request, and the kind it was about (for metrics and logs).
async fn decide_request(
    ctx: &Arc<Context>,
    budget: Duration,
    request: &AdmissionRequest<DynamicObject>,
) -> (Decision, String) {
    let kind = request.kind.kind.clone();
    let namespace = request.namespace.clone().unwrap_or_default();
    // Never match the operator's own namespace nor kube-system, so that the cluster cannot
    // lock itself out (the webhook configuration's namespaceSelector leaves them out too).
    if is_protected_namespace(&namespace, ctx.operator_namespace()) {
        return (Decision::default(), kind);
    }
    let images = match review::images_to_check(request) {
        Ok(images) => images,
        Err(e) => {
            tracing::warn!(reason = e.reason(), error = %e, "admission request not understood; admitted");
            return (Decision { warnings: vec![format!("trustwatch: {e}; not checked")], ..Default::default() }, kind);
        }
    };
    if images.is_empty() {
        return (Decision::default(), kind);
    }
    let labels = ctx.namespace_labels(&namespace);
    let selected: Vec<Arc<crate::crd::ImageTrustPolicy>> = ctx
        .policies
        .state()
        .into_iter()
        .filter(|p| p.spec.admission_mode() != AdmissionMode::Off && p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.spec.validate().is_ok())
        .filter(|p| p.spec.selects_namespace(&namespace, &labels, ctx.operator_namespace()))
        .collect();
    if selected.is_empty() {
        return (Decision::default(), kind);
    }
    let names: Vec<String> = selected.iter().map(|p| p.name_any()).collect();
    let policies: Vec<AdmissionPolicy<'_>> =
        selected.iter().zip(&names).map(|(p, name)| AdmissionPolicy { name, spec: &p.spec }).collect();
    let plan = decide::plan(&policies, &images);
    let answers = verify_within(ctx, plan.keys(), budget).await;
    (decide::decide(&policies, &images, &plan, &answers), kind)
}

/// Verifies `keys` with the shared trust roots, loading those this replica has not loaded yet.
/// What has no answer within `budget` is an outage (`AdmissionBudgetExceeded`); the
/// verification goes on in the background, so that a retry finds the trust data cached.
async fn verify_within(
    ctx: &Arc<Context>,
    keys: BTreeSet<VerifyKey>,
    budget: Duration,
) -> HashMap<VerifyKey, Resolution> {
    if keys.is_empty() {
        return HashMap::new();
    }
    let task = {
        let (ctx, keys) = (ctx.clone(), keys.clone());
        tokio::spawn(async move {
            let roots = roots_for(&ctx, &keys).await;
            let now = jiff::Timestamp::now();
            verify_all(&keys, &roots, now, false, Some(&ctx.metrics), &Default::default()).await
        })
    };
    match tokio::time::timeout(budget, task).await {
        Ok(Ok(answers)) => answers,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "admission verification task failed");
            unanswered(ctx, &keys, "VerificationFailed", "the verification did not complete").await
        }
        Err(_) => {
            let msg = format!(
                "no answer within the admission budget of {} s (the trust data is still being fetched; a retry may find it cached)",
                budget.as_secs_f64()
            );
            unanswered(ctx, &keys, "AdmissionBudgetExceeded", &msg).await
        }
    }
}

/// The trust roots `keys` need, loaded into the shared map when this replica has none yet
/// (a follower: only the leader reconciles TrustRoots).
async fn roots_for(ctx: &Arc<Context>, keys: &BTreeSet<VerifyKey>) -> HashMap<String, Arc<TrustRootRuntime>> {
    let names: BTreeSet<&str> = keys.iter().map(|k| k.trust_root.as_str()).collect();
    let mut out = HashMap::new();
    for name in names {
        let Some(tr) = ctx.trust_roots.get(&kube::runtime::reflector::ObjectRef::new(name)) else { continue };
        match crate::controller::trust_root::runtime_for(ctx, &tr).await {
            Ok(rt) => {
                out.insert(name.to_string(), rt);
            }
            Err(e) => tracing::warn!(trust_root = name, error = %e, "trust root cannot be loaded for admission"),
        }
    }
    out
}

/// An outage answer for every key.
async fn unanswered(
    ctx: &Context,
    keys: &BTreeSet<VerifyKey>,
    reason: &str,
    message: &str,
) -> HashMap<VerifyKey, Resolution> {
    let roots = ctx.roots.read().await;
    keys.iter()
        .map(|k| {
            let format = roots.get(&k.trust_root).map_or(SignatureFormat::default(), |r| r.kind());
            (k.clone(), unavailable(k, format, reason, Verdict::TrustDataUnavailable, message.to_string()))
        })
        .collect()
}
