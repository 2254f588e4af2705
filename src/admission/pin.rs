//! The mutating half of admission (`spec.admission.pinDigest`): the images of an object, the
//! policies that decide at admission and the verifiers' answers in; the images to pin, and
//! the JSONPatch that pins them, out. Pure. The verdicts are the validating webhook's own
//! ([`super::decide::judge`]), so an image is pinned only to a digest that webhook trusts.
//!
//! The form written is `repository:tag@sha256:…`, the tag kept beside the digest (as
//! Kyverno's `mutateDigest` and Google's Digester write it), rather than `repository@sha256:…`
//! (what policy-controller writes):
//! - the container runtime pulls by the digest alone when both are given (the distribution
//!   reference grammar, `name[:tag][@digest]`), so what runs is exactly what was verified;
//! - people and dashboards still see which release runs;
//! - trustwatch's parser keeps both ([`crate::image::ImageRef`]), and the scans and the
//!   validating webhook then check that the tag is still signed for that very digest (a
//!   Notary v1 tag re-signed elsewhere shows as DigestDrift, as for a pod started by tag);
//! - an image already given by digest is never touched, so a second call changes nothing
//!   (Kubernetes asks mutating webhooks to be idempotent).

use super::decide::{AdmissionPlan, AdmissionPolicy, judge};
use super::review::ContainerImage;
use crate::image::{ImageRef, parse_digest};
use crate::scanner::{VerifyKey, is_failing};
use crate::verdict::Verdict;
use crate::verifier::Resolution;
use std::collections::{BTreeSet, HashMap};

/// One image to pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Where it is, for people: `containers[app]`.
    pub container: String,
    /// Its JSON pointer in the object.
    pub pointer: String,
    /// The image as written, by tag.
    pub from: String,
    /// The image by the verified digest: `from` (with `:latest` when it named no tag) and
    /// `@sha256:…`.
    pub to: String,
    /// The policies with pinDigest that cover it.
    pub policies: Vec<String>,
}

/// The images worth verifying for pinning: those given by tag, when some policy pins at all.
pub fn candidates(policies: &[AdmissionPolicy<'_>], images: &[ContainerImage]) -> Vec<ContainerImage> {
    if !policies.iter().any(|p| p.spec.pins_digest()) {
        return vec![];
    }
    images.iter().filter(|c| ImageRef::parse(&c.image).is_ok_and(|r| r.digest.is_none())).cloned().collect()
}

/// The images to pin: given by tag, covered by a policy with pinDigest, and trusted by every
/// policy that judges them, all naming one digest. Anything else (an untrusted verdict, an
/// outage, a tag that named different digests, no digest in the answer) is left as written.
pub fn pins(
    policies: &[AdmissionPolicy<'_>],
    images: &[ContainerImage],
    plan: &AdmissionPlan,
    answers: &HashMap<VerifyKey, Resolution>,
) -> Vec<Pin> {
    images
        .iter()
        .enumerate()
        .filter_map(|(ii, image)| {
            let parsed = ImageRef::parse(&image.image).ok()?;
            if parsed.digest.is_some() {
                return None;
            }
            let mut pinning = vec![];
            let mut digests = BTreeSet::new();
            for (pi, _, p) in plan.items.iter().filter(|(_, i, _)| *i == ii) {
                let policy = &policies[*pi];
                let judged = judge(p, &image.image, answers);
                if judged.verdict == Verdict::NotCovered && !is_failing(policy.spec, judged.verdict) {
                    continue;
                }
                if !judged.verdict.is_trusted() {
                    return None;
                }
                digests.insert(parse_digest(judged.digest.as_deref()?).ok()?);
                if policy.spec.pins_digest() {
                    pinning.push(policy.name.to_string());
                }
            }
            if pinning.is_empty() || digests.len() != 1 {
                return None;
            }
            let digest = digests.pop_first()?;
            let names_tag = image.image.rsplit('/').next().is_some_and(|last| last.contains(':'));
            let tag = if names_tag { "" } else { ":latest" };
            Some(Pin {
                container: image.container.clone(),
                pointer: image.pointer.clone(),
                from: image.image.clone(),
                to: format!("{}{tag}@{digest}", image.image),
                policies: pinning,
            })
        })
        .collect()
}

/// The JSONPatch (RFC 6902) that pins: one `replace` per image. No `test` guard: the API
/// server applies the patch to the very object it sent, and a patch that fails to apply is
/// an error of the request, which a best-effort webhook must never cause.
pub fn patch(pins: &[Pin]) -> json_patch::Patch {
    let ops: Vec<serde_json::Value> =
        pins.iter().map(|p| serde_json::json!({"op": "replace", "path": p.pointer, "value": p.to})).collect();
    serde_json::from_value(serde_json::Value::Array(ops)).expect("a valid JSON patch")
}

#[cfg(test)]
mod tests {
    use super::super::decide::{plan, tests::*};
    use super::*;
    use crate::crd::ImageTrustPolicySpec;
    use serde_json::json;

    fn run_pins(
        specs: &[(&str, &ImageTrustPolicySpec)],
        imgs: &[&str],
        by_root: &[(&str, Verdict, &str, Option<&str>)],
    ) -> Vec<Pin> {
        let policies: Vec<AdmissionPolicy<'_>> =
            specs.iter().map(|(name, spec)| AdmissionPolicy { name, spec }).collect();
        let imgs = images(imgs);
        let candidates = candidates(&policies, &imgs);
        let plan = plan(&policies, &candidates);
        pins(&policies, &candidates, &plan, &answers(&plan, by_root))
    }

    fn pinning() -> ImageTrustPolicySpec {
        spec(json!({"admission": {"mode": "Enforce", "pinDigest": true}}))
    }

    const VERIFIED: (&str, Verdict, &str, Option<&str>) = ("corp", Verdict::Verified, "Verified", Some(DIGEST));

    #[test]
    fn a_verified_tag_is_pinned_to_its_digest_with_the_tag_kept() {
        let p = pinning();
        let got = run_pins(&[("prod", &p)], &["registry.example/team/app:v1"], &[VERIFIED]);
        assert_eq!(
            got,
            [Pin {
                container: "containers[app]".into(),
                pointer: "/spec/containers/0/image".into(),
                from: "registry.example/team/app:v1".into(),
                to: format!("registry.example/team/app:v1@{DIGEST}"),
                policies: vec!["prod".into()],
            }]
        );
        // What is written parses back to the tag and the digest.
        let back = ImageRef::parse(&got[0].to).unwrap();
        assert_eq!((back.tag.as_deref(), back.digest.as_deref()), (Some("v1"), Some(DIGEST)));
        assert_eq!(
            serde_json::to_value(patch(&got)).unwrap(),
            json!([{"op": "replace", "path": "/spec/containers/0/image", "value": got[0].to}])
        );
        // No tag means latest, and says so.
        let got = run_pins(&[("prod", &p)], &["registry.example/team/app"], &[VERIFIED]);
        assert_eq!(got[0].to, format!("registry.example/team/app:latest@{DIGEST}"));
    }

    #[test]
    fn only_a_trusted_tag_under_a_pinning_policy_is_pinned() {
        let p = pinning();
        let image = ["registry.example/team/app:v1"];
        for (verdict, reason) in [
            (Verdict::Unsigned, "NoSignature"),
            (Verdict::TrustDataUnavailable, "RegistryUnreachable"),
            (Verdict::SignerRevoked, "SignerRevoked"),
        ] {
            let got = run_pins(&[("prod", &p)], &image, &[("corp", verdict, reason, Some(DIGEST))]);
            assert_eq!(got, [], "{verdict}");
        }
        // A trusted answer without a digest, or no answer at all: nothing to pin to.
        assert_eq!(run_pins(&[("prod", &p)], &image, &[("corp", Verdict::Verified, "Verified", None)]), []);
        assert_eq!(run_pins(&[("prod", &p)], &image, &[]), []);
        // pinDigest unset, or mode Off: never pinned.
        let plain = spec(json!({}));
        assert_eq!(run_pins(&[("prod", &plain)], &image, &[VERIFIED]), []);
        let off = spec(json!({"admission": {"mode": "Off", "pinDigest": true}}));
        assert_eq!(run_pins(&[("prod", &off)], &image, &[VERIFIED]), []);
        // An image no entry covers.
        assert_eq!(run_pins(&[("prod", &p)], &["docker.io/library/nginx:1"], &[VERIFIED]), []);
    }

    #[test]
    fn an_image_by_digest_is_left_alone() {
        let p = pinning();
        let by_digest = format!("registry.example/team/app:v1@{DIGEST}");
        assert_eq!(run_pins(&[("prod", &p)], &[&by_digest], &[VERIFIED]), []);
        let by_digest = format!("registry.example/team/app@{DIGEST}");
        assert_eq!(run_pins(&[("prod", &p)], &[&by_digest], &[VERIFIED]), []);
        // Not only because they are no candidates: pins itself leaves them alone.
        let policies = [AdmissionPolicy { name: "prod", spec: &p }];
        let imgs = images(&[&by_digest]);
        let plan = plan(&policies, &imgs);
        assert_eq!(pins(&policies, &imgs, &plan, &answers(&plan, &[VERIFIED])), []);
    }

    #[test]
    fn every_policy_that_judges_the_image_must_trust_it_and_agree_on_the_digest() {
        let p = pinning();
        let image = ["registry.example/team/both:v1"];
        // AllOf over two roots: one unsigned is not trusted.
        let unsigned = ("dct", Verdict::Unsigned, "NoSignature", None);
        assert_eq!(run_pins(&[("prod", &p)], &image, &[VERIFIED, unsigned]), []);
        // Two roots that named different digests: the tag moved, nothing is pinned.
        let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let moved = ("dct", Verdict::Verified, "Verified", Some(other));
        assert_eq!(run_pins(&[("prod", &p)], &image, &[VERIFIED, moved]), []);
        let agreed = ("dct", Verdict::Verified, "Verified", Some(DIGEST));
        assert_eq!(run_pins(&[("prod", &p)], &image, &[VERIFIED, agreed]).len(), 1);
        // Another policy (in Warn, not pinning) that finds it unsigned vetoes the pin.
        let warn = spec(json!({"images": [{"pattern": "registry.example/**", "trustRoot": "other"}],
            "admission": {"mode": "Warn"}}));
        let unsigned_other = ("other", Verdict::Unsigned, "NoSignature", None);
        let single = ["registry.example/team/app:v1"];
        assert_eq!(run_pins(&[("prod", &p), ("warn", &warn)], &single, &[VERIFIED, unsigned_other]), []);
        let verified_other = ("other", Verdict::Verified, "Verified", Some(DIGEST));
        let got = run_pins(&[("prod", &p), ("warn", &warn)], &single, &[VERIFIED, verified_other]);
        assert_eq!(got[0].policies, ["prod"]);
    }

    #[test]
    fn template_pointers_are_patched_for_each_pinned_container() {
        let pins = vec![
            Pin {
                container: "initContainers[migrate]".into(),
                pointer: "/spec/template/spec/initContainers/0/image".into(),
                from: "a:1".into(),
                to: format!("a:1@{DIGEST}"),
                policies: vec![],
            },
            Pin {
                container: "containers[app]".into(),
                pointer: "/spec/template/spec/containers/1/image".into(),
                from: "b:1".into(),
                to: format!("b:1@{DIGEST}"),
                policies: vec![],
            },
        ];
        let mut object = json!({"spec": {"template": {"spec": {
            "initContainers": [{"name": "migrate", "image": "a:1"}],
            "containers": [{"name": "side", "image": "c:1"}, {"name": "app", "image": "b:1"}]}}}});
        json_patch::patch(&mut object, &patch(&pins)).unwrap();
        let spec = &object["spec"]["template"]["spec"];
        assert_eq!(spec["initContainers"][0]["image"], format!("a:1@{DIGEST}"));
        assert_eq!(spec["containers"][0]["image"], "c:1");
        assert_eq!(spec["containers"][1]["image"], format!("b:1@{DIGEST}"));
    }
}
