//! The admission decision: the images of an object, the policies that decide at admission in
//! its namespace and the verifiers' answers in; allowed or denied, with warnings, out. Pure.
//! Images are matched by the scanner's own planning ([`crate::scanner::plan_admission`]) and
//! several trust roots combined by its [`combine`], so a policy decides the same at the door
//! as on the watch.

use super::review::ContainerImage;
use crate::crd::{AdmissionMode, ImageTrustPolicySpec};
use crate::scanner::{ContainerPlan, VerifyKey, combine, is_failing, plan_admission};
use crate::verdict::Verdict;
use crate::verifier::Resolution;
use std::collections::{BTreeSet, HashMap};

/// A policy that decides at admission: its name and spec (mode `Warn` or `Enforce`).
#[derive(Debug, Clone)]
pub struct AdmissionPolicy<'a> {
    pub name: &'a str,
    pub spec: &'a ImageTrustPolicySpec,
}

/// For each (policy, image) pair, how the image is judged.
#[derive(Debug, Clone, Default)]
pub struct AdmissionPlan {
    pub items: Vec<(usize, usize, ContainerPlan)>,
}

impl AdmissionPlan {
    /// The distinct verifications to run.
    pub fn keys(&self) -> BTreeSet<VerifyKey> {
        self.items
            .iter()
            .flat_map(|(_, _, p)| match p {
                ContainerPlan::Verify { keys, .. } => keys.clone(),
                _ => vec![],
            })
            .collect()
    }
}

/// Plans every image under every policy whose mode is not `Off`.
pub fn plan(policies: &[AdmissionPolicy<'_>], images: &[ContainerImage]) -> AdmissionPlan {
    let mut out = AdmissionPlan::default();
    for (pi, p) in policies.iter().enumerate() {
        if p.spec.admission_mode() == AdmissionMode::Off {
            continue;
        }
        for (ii, c) in images.iter().enumerate() {
            out.items.push((pi, ii, plan_admission(p.spec, &c.image)));
        }
    }
    out
}

/// What one (policy, image) pair came to, for the answer and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOutcome {
    pub policy: String,
    pub image: String,
    pub verdict: Verdict,
    pub reason: String,
    pub effect: Effect,
}

/// What an outcome does to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    Allowed,
    Warned,
    Denied,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allowed => "allowed",
            Effect::Warned => "warned",
            Effect::Denied => "denied",
        }
    }
}

/// The answer to an AdmissionReview.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// One line a developer can act on, when the request is refused.
    pub denial: Option<String>,
    /// AdmissionReview warnings (kubectl prints them as `Warning: ...`).
    pub warnings: Vec<String>,
    pub outcomes: Vec<ImageOutcome>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.denial.is_none()
    }

    /// The request's overall effect: denied, else warned, else allowed.
    pub fn effect(&self) -> Effect {
        if self.denial.is_some() {
            Effect::Denied
        } else if self.warnings.is_empty() {
            Effect::Allowed
        } else {
            Effect::Warned
        }
    }
}

/// Decides a request from its plan and the verifiers' answers (a missing answer is an outage).
pub fn decide(
    policies: &[AdmissionPolicy<'_>],
    images: &[ContainerImage],
    plan: &AdmissionPlan,
    answers: &HashMap<VerifyKey, Resolution>,
) -> Decision {
    let mut out = Decision::default();
    let mut denials = vec![];
    for (pi, ii, p) in &plan.items {
        let (policy, image) = (&policies[*pi], &images[*ii]);
        let judged = judge(p, &image.image, answers);
        // An outage follows spec.onUnavailable and an image no entry matches
        // spec.unmatchedImages, as in a scan.
        let failing = is_failing(policy.spec, judged.verdict);
        if judged.verdict == Verdict::NotCovered && !failing {
            continue;
        }
        let line = refusal_line(policy.name, &image.image, &judged);
        let effect = match (failing, policy.spec.admission_mode()) {
            (true, AdmissionMode::Enforce) => {
                denials.push(line);
                Effect::Denied
            }
            (true, _) => {
                out.warnings.push(line);
                Effect::Warned
            }
            (false, _) if matches!(judged.verdict, Verdict::TrustDataUnavailable | Verdict::ExpiringSoon) => {
                out.warnings.push(line);
                Effect::Warned
            }
            (false, _) => Effect::Allowed,
        };
        out.outcomes.push(ImageOutcome {
            policy: policy.name.to_string(),
            image: image.image.clone(),
            verdict: judged.verdict,
            reason: judged.reason.clone(),
            effect,
        });
    }
    if let Some(first) = denials.first() {
        out.denial = Some(match denials.len() {
            1 => first.clone(),
            n => format!("{first} (and {} more refused image{})", n - 1, if n == 2 { "" } else { "s" }),
        });
    }
    out
}

/// The verdict one plan item comes to.
pub(super) fn judge(p: &ContainerPlan, image: &str, answers: &HashMap<VerifyKey, Resolution>) -> Judged {
    match p {
        ContainerPlan::Verify { keys, require } => {
            let got: Vec<Resolution> = keys
                .iter()
                .map(|k| {
                    answers.get(k).cloned().unwrap_or_else(|| {
                        let msg = format!("TrustRoot {} gave no answer", k.trust_root);
                        Resolution::unparsed(Default::default(), image, Verdict::TrustDataUnavailable, "NoAnswer", msg)
                    })
                })
                .collect();
            let r = &got[combine(*require, &got)];
            let mut j = Judged {
                verdict: r.verdict,
                reason: r.reason.clone(),
                message: r.message.clone(),
                digest: r.digest.clone(),
            };
            // Images named by a tag are resolved by each trust root on its own: trusted
            // answers that name different digests saw the tag move between them, and none
            // of them can say what will run.
            let digests: BTreeSet<&str> =
                got.iter().filter(|r| r.verdict.is_trusted()).filter_map(|r| r.digest.as_deref()).collect();
            if j.verdict.is_trusted() && digests.len() > 1 {
                let list: Vec<&str> = digests.into_iter().collect();
                j = Judged {
                    verdict: Verdict::DigestDrift,
                    reason: "TagMoved".into(),
                    message: format!("the tag named different digests while it was verified ({})", list.join(", ")),
                    digest: None,
                };
            }
            j
        }
        ContainerPlan::NotCovered { .. } => Judged {
            verdict: Verdict::NotCovered,
            reason: "NotCovered".into(),
            message: "no entry of spec.images matches the image".into(),
            digest: None,
        },
        ContainerPlan::Invalid { message } => Judged {
            verdict: Verdict::Unsigned,
            reason: "InvalidImageReference".into(),
            message: message.clone(),
            digest: None,
        },
        ContainerPlan::Undetermined { reason, message } => Judged {
            verdict: Verdict::TrustDataUnavailable,
            reason: reason.to_string(),
            message: message.clone(),
            digest: None,
        },
    }
}

#[derive(Debug, Clone)]
pub(super) struct Judged {
    pub verdict: Verdict,
    pub reason: String,
    pub message: String,
    /// The digest the verdict is about (the one a tag resolved to).
    pub digest: Option<String>,
}

/// `trustwatch: image registry.example/app:v1 (sha256:ab12cd34ef56…) is Unsigned under
/// ImageTrustPolicy prod: NoSignature: no cosign signature found; sign it or change the policy`.
fn refusal_line(policy: &str, image: &str, j: &Judged) -> String {
    let digest = match &j.digest {
        Some(d) if !image.contains(d.as_str()) => format!(" ({})", short_digest(d)),
        _ => String::new(),
    };
    let message: String = j.message.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = crate::controller::policy::truncate(&message, 300);
    format!(
        "trustwatch: image {image}{digest} is {} under ImageTrustPolicy {policy}: {}: {message}; {}",
        j.verdict,
        j.reason,
        hint(j.verdict)
    )
}

/// `sha256:` and the first 12 hex digits.
fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}…", &hex[..12]),
        _ => d.to_string(),
    }
}

/// What a developer can do about a verdict.
fn hint(v: Verdict) -> &'static str {
    match v {
        Verdict::Unsigned => "sign it or change the policy",
        Verdict::SignerMissing => "have the required signers sign it, or change the policy",
        Verdict::SignerRevoked => "re-sign it with a key that is not revoked",
        Verdict::DigestDrift => "pin the image by digest, or re-sign the tag",
        Verdict::TrustDataExpired => "re-sign it: the trust data it rests on has expired",
        Verdict::SignatureInvalid | Verdict::Tampered => "re-sign it; ask the security team if you did not change it",
        Verdict::TrustDataUnavailable => "retry later; spec.onUnavailable decides what an outage does",
        Verdict::NotCovered => "add an entry for it to spec.images, or set spec.unmatchedImages to Ignore",
        Verdict::ExpiringSoon => "admitted; re-sign it before the signature expires",
        Verdict::Verified => "admitted",
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::image::ImageRef;
    use crate::verifier::SignatureFormat;
    use serde_json::json;

    pub(in crate::admission) fn spec(extra: serde_json::Value) -> ImageTrustPolicySpec {
        let mut base = json!({
            "images": [
                {"pattern": "registry.example/team/**", "trustRoot": "corp"},
                {"pattern": "registry.example/team/both", "trustRoots": ["dct", "corp"], "require": "AllOf"}
            ],
            "admission": {"mode": "Enforce"}
        });
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    pub(in crate::admission) fn images(list: &[&str]) -> Vec<ContainerImage> {
        list.iter()
            .enumerate()
            .map(|(n, i)| ContainerImage {
                container: "containers[app]".into(),
                image: i.to_string(),
                pointer: format!("/spec/containers/{n}/image"),
            })
            .collect()
    }

    pub(in crate::admission) const DIGEST: &str =
        "sha256:ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12";

    /// The answers of the verifiers: `root -> (verdict, reason, digest)` for every key.
    pub(in crate::admission) fn answers(
        plan: &AdmissionPlan,
        by_root: &[(&str, Verdict, &str, Option<&str>)],
    ) -> HashMap<VerifyKey, Resolution> {
        plan.keys()
            .into_iter()
            .filter_map(|k| {
                let (_, v, reason, digest) = by_root.iter().find(|(r, ..)| *r == k.trust_root)?;
                let image = ImageRef::parse(&k.image).unwrap();
                let mut r = Resolution::new(SignatureFormat::Cosign, &image, *v, *reason, "no cosign signature found");
                r.digest = digest.map(str::to_string);
                Some((k, r))
            })
            .collect()
    }

    fn run(spec: &ImageTrustPolicySpec, imgs: &[&str], by_root: &[(&str, Verdict, &str, Option<&str>)]) -> Decision {
        let policies = [AdmissionPolicy { name: "prod", spec }];
        let imgs = images(imgs);
        let plan = plan(&policies, &imgs);
        decide(&policies, &imgs, &plan, &answers(&plan, by_root))
    }

    #[test]
    fn an_unsigned_image_is_refused_in_one_line_naming_image_digest_verdict_reason_and_policy() {
        let d = run(
            &spec(json!({})),
            &["registry.example/team/app:v1"],
            &[("corp", Verdict::Unsigned, "NoSignature", Some(DIGEST))],
        );
        assert_eq!(
            d.denial.as_deref(),
            Some(
                "trustwatch: image registry.example/team/app:v1 (sha256:ab12cd34ef56…) is Unsigned under ImageTrustPolicy prod: NoSignature: no cosign signature found; sign it or change the policy"
            )
        );
        assert_eq!(d.effect(), Effect::Denied);
        assert_eq!(d.outcomes[0].effect, Effect::Denied);
    }

    #[test]
    fn warn_admits_with_the_same_line_as_a_warning_and_off_decides_nothing() {
        let unsigned = [("corp", Verdict::Unsigned, "NoSignature", None)];
        let d = run(&spec(json!({"admission": {"mode": "Warn"}})), &["registry.example/team/app:v1"], &unsigned);
        assert!(d.allowed());
        assert_eq!(d.warnings.len(), 1);
        assert!(
            d.warnings[0].starts_with("trustwatch: image registry.example/team/app:v1 is Unsigned"),
            "{:?}",
            d.warnings
        );
        let off = run(&spec(json!({"admission": {"mode": "Off"}})), &["registry.example/team/app:v1"], &unsigned);
        assert_eq!(off, Decision::default());
        let unset = run(&spec(json!({"admission": null})), &["registry.example/team/app:v1"], &unsigned);
        assert_eq!(unset, Decision::default());
    }

    #[test]
    fn a_verified_image_is_admitted_without_a_word() {
        let d = run(
            &spec(json!({})),
            &["registry.example/team/app:v1"],
            &[("corp", Verdict::Verified, "Verified", Some(DIGEST))],
        );
        assert_eq!((d.allowed(), d.warnings.len(), d.effect()), (true, 0, Effect::Allowed));
    }

    #[test]
    fn an_outage_follows_on_unavailable() {
        let out = [("corp", Verdict::TrustDataUnavailable, "RegistryUnreachable", None)];
        let d = run(&spec(json!({})), &["registry.example/team/app:v1"], &out);
        assert!(d.allowed(), "Ignore admits an outage");
        assert!(d.warnings[0].contains("is TrustDataUnavailable under ImageTrustPolicy prod: RegistryUnreachable"));
        let d = run(&spec(json!({"onUnavailable": "Fail"})), &["registry.example/team/app:v1"], &out);
        assert!(!d.allowed(), "Fail refuses an outage");
        // No answer at all (the budget ran out) is an outage too, never a refusal by itself.
        let d = run(&spec(json!({})), &["registry.example/team/app:v1"], &[]);
        assert!(d.allowed() && d.outcomes[0].verdict == Verdict::TrustDataUnavailable, "{d:?}");
    }

    #[test]
    fn images_no_entry_matches_follow_unmatched_images() {
        let d = run(&spec(json!({})), &["docker.io/library/nginx:1"], &[]);
        assert_eq!(d, Decision::default());
        let d = run(&spec(json!({"unmatchedImages": "Fail"})), &["docker.io/library/nginx:1"], &[]);
        assert!(d.denial.unwrap().contains("is NotCovered under ImageTrustPolicy prod: NotCovered"));
    }

    #[test]
    fn all_of_needs_every_root_and_a_tag_that_moved_between_them_is_refused() {
        let both = "registry.example/team/both:v1";
        let d = run(
            &spec(json!({})),
            &[both],
            &[("dct", Verdict::Verified, "Verified", Some(DIGEST)), ("corp", Verdict::Unsigned, "NoSignature", None)],
        );
        assert!(d.denial.unwrap().contains("is Unsigned"));
        let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let d = run(
            &spec(json!({})),
            &[both],
            &[
                ("dct", Verdict::Verified, "Verified", Some(DIGEST)),
                ("corp", Verdict::Verified, "Verified", Some(other)),
            ],
        );
        let denial = d.denial.unwrap();
        assert!(denial.contains("is DigestDrift") && denial.contains("TagMoved"), "{denial}");
        let d = run(
            &spec(json!({})),
            &[both],
            &[
                ("dct", Verdict::Verified, "Verified", Some(DIGEST)),
                ("corp", Verdict::Verified, "Verified", Some(DIGEST)),
            ],
        );
        assert!(d.allowed());
    }

    #[test]
    fn several_refused_images_still_make_one_line() {
        let d = run(
            &spec(json!({})),
            &["registry.example/team/a:v1", "registry.example/team/b:v1", "registry.example/team/c:v1"],
            &[("corp", Verdict::Unsigned, "NoSignature", None)],
        );
        let denial = d.denial.unwrap();
        assert!(!denial.contains('\n'));
        assert!(denial.contains("team/a:v1") && denial.ends_with("(and 2 more refused images)"), "{denial}");
    }

    #[test]
    fn a_digest_the_image_names_is_not_repeated() {
        let image = format!("registry.example/team/app@{DIGEST}");
        let d = run(&spec(json!({})), &[&image], &[("corp", Verdict::Unsigned, "NoSignature", Some(DIGEST))]);
        assert!(d.denial.unwrap().starts_with(&format!("trustwatch: image {image} is Unsigned")));
    }
}
