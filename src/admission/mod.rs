//! The validating admission webhook: the same policies, trust roots and caches as the scans,
//! asked before a pod starts.
//!
//! [`review`] reads an AdmissionReview into the images to check (pure), [`decide`] plans them
//! with the scanner's matching and turns the verifiers' answers into allowed, denied and
//! warnings (pure); this module is the shell between them: it picks the policies that decide
//! at admission in the request's namespace, loads the trust roots this replica has not
//! loaded yet into the shared [`Context::roots`], and verifies within a budget. [`server`]
//! serves it over HTTPS and [`certs`] keeps its serving certificate. The mutating webhook
//! ([`mutate`], `spec.admission.pinDigest`) shares every step up to the answers and then
//! pins, through [`pin`], the tags it trusts to their digests.

pub mod certs;
pub mod decide;
pub mod pin;
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

/// Answers the request of one AdmissionReview to the validating webhook.
pub async fn answer(
    ctx: &Arc<Context>,
    budget: Duration,
    request: AdmissionRequest<DynamicObject>,
) -> AdmissionReview<DynamicObject> {
    let started = Instant::now();
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

/// The request of a review (`None` for a review without one: answer it [`invalid`]).
pub fn request_of(review: AdmissionReview<DynamicObject>) -> Option<AdmissionRequest<DynamicObject>> {
    review.try_into().ok()
}

/// The answer to a review without a request.
pub fn invalid() -> AdmissionReview<DynamicObject> {
    AdmissionResponse::invalid("an AdmissionReview without a request").into_review()
}

/// The decision on one request, and the kind it was about (for metrics and logs).
async fn decide_request(
    ctx: &Arc<Context>,
    budget: Duration,
    request: &AdmissionRequest<DynamicObject>,
) -> (Decision, String) {
    let kind = request.kind.kind.clone();
    let decision = match judge_request(ctx, budget, request, |_, images| images.to_vec()).await {
        Ok(Some(j)) => decide::decide(&j.policies(), &j.images, &j.plan, &j.answers),
        Ok(None) => Decision::default(),
        Err(e) => Decision { warnings: vec![format!("trustwatch: {e}; not checked")], ..Default::default() },
    };
    (decision, kind)
}

/// A request's images planned under the policies that decide at admission in its namespace,
/// and the verifiers' answers.
struct Judging {
    selected: Vec<Arc<crate::crd::ImageTrustPolicy>>,
    names: Vec<String>,
    images: Vec<review::ContainerImage>,
    plan: decide::AdmissionPlan,
    answers: HashMap<VerifyKey, Resolution>,
}

impl Judging {
    fn policies(&self) -> Vec<AdmissionPolicy<'_>> {
        self.selected.iter().zip(&self.names).map(|(p, name)| AdmissionPolicy { name, spec: &p.spec }).collect()
    }
}

/// The shared step of both webhooks: the namespace protections, the policies selected, the
/// images `pick` keeps of the request's, their plan, and their verification within `budget`.
/// `None` when there is nothing to judge.
async fn judge_request(
    ctx: &Arc<Context>,
    budget: Duration,
    request: &AdmissionRequest<DynamicObject>,
    pick: impl Fn(&[AdmissionPolicy<'_>], &[review::ContainerImage]) -> Vec<review::ContainerImage>,
) -> Result<Option<Judging>, review::ReviewError> {
    let namespace = request.namespace.clone().unwrap_or_default();
    // Never match the operator's own namespace nor kube-system, so that the cluster cannot
    // lock itself out (the webhook configuration's namespaceSelector leaves them out too).
    if is_protected_namespace(&namespace, ctx.operator_namespace()) {
        return Ok(None);
    }
    let images = review::images_to_check(request).inspect_err(|e| {
        tracing::warn!(reason = e.reason(), error = %e, "admission request not understood; admitted");
    })?;
    if images.is_empty() {
        return Ok(None);
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
        return Ok(None);
    }
    let names: Vec<String> = selected.iter().map(|p| p.name_any()).collect();
    let mut j = Judging { selected, names, images: vec![], plan: Default::default(), answers: HashMap::new() };
    let policies = j.policies();
    let images = pick(&policies, &images);
    if images.is_empty() {
        return Ok(None);
    }
    let plan = decide::plan(&policies, &images);
    drop(policies);
    j.answers = verify_within(ctx, plan.keys(), budget).await;
    (j.images, j.plan) = (images, plan);
    Ok(Some(j))
}

/// Answers one AdmissionReview of the mutating webhook (`spec.admission.pinDigest`).
///
/// Kubernetes, "Admission Control in Kubernetes": "The admission control process proceeds in
/// two phases. In the first phase, mutating admission controllers are run. In the second
/// phase, validating admission controllers are run." So the validating webhook judges the
/// image this one pinned. "Dynamic Admission Control": "When allowing a request, a mutating admission webhook may optionally
/// modify the incoming object as well. This is done using the `patch` and `patchType` fields
/// in the response. The only currently supported `patchType` is `JSONPatch`. [...] For
/// `patchType: JSONPatch`, the `patch` field contains a base64-encoded array of JSON patch
/// operations." (kube's `with_patch` sets `patchType` and the JSON is base64 on the wire.)
/// With `reinvocationPolicy: IfNeeded` "the webhook will be called at least one additional
/// time as part of the admission evaluation if the object being admitted is modified by
/// other admission plugins after the initial webhook call": an image another webhook set
/// by tag is pinned then, and one already by digest is left alone, so a second call is a
/// no-op. The answer always allows: refusing is the validating webhook's job.
pub async fn mutate(
    ctx: &Arc<Context>,
    budget: Duration,
    request: AdmissionRequest<DynamicObject>,
) -> AdmissionReview<DynamicObject> {
    let started = Instant::now();
    let kind = request.kind.kind.clone();
    let pins = match judge_request(ctx, budget, &request, pin::candidates).await {
        Ok(Some(j)) => pin::pins(&j.policies(), &j.images, &j.plan, &j.answers),
        Ok(None) | Err(_) => vec![],
    };
    ctx.metrics.record_pinning(&kind, &pins, started.elapsed().as_secs_f64());
    let response = AdmissionResponse::from(&request);
    for p in &pins {
        tracing::info!(
            kind = %kind, namespace = request.namespace.as_deref().unwrap_or(""), name = %request.name,
            container = %p.container, from = %p.from, to = %p.to, "image pinned to its verified digest"
        );
    }
    if pins.is_empty() {
        return response.into_review();
    }
    match response.clone().with_patch(pin::patch(&pins)) {
        Ok(patched) => patched.into_review(),
        Err(e) => {
            tracing::error!(error = %e, "the pinning patch cannot be serialized; admitted unchanged");
            response.into_review()
        }
    }
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
