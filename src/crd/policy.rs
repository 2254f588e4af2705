//! `ImageTrustPolicy`: which images must be trusted, by which trust root and signers, and what
//! to do about the ones that are not.

use super::checks;
use super::duration::{DURATION_PATTERN, parse_duration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::core::{Selector, SelectorExt};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Default of `spec.interval`.
pub const DEFAULT_INTERVAL: &str = "5m";
/// Default of `spec.quarantineLimit`.
pub const DEFAULT_QUARANTINE_LIMIT: i32 = 20;
/// The shortest `spec.interval` the operator accepts.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Namespaces left out when `spec.namespaceSelector` is unset (besides the operator's own).
pub const DEFAULT_EXCLUDED_NAMESPACES: &[&str] = &["kube-system"];

pub fn default_interval() -> String {
    DEFAULT_INTERVAL.to_string()
}

pub fn default_quarantine_limit() -> i32 {
    DEFAULT_QUARANTINE_LIMIT
}

/// Which running images must be trusted, and what to do about the ones that are not.
// Every `printcolumn(..)` repeats `name`, `type_`, ...: not the duplicates clippy means.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "trustwatch.dev",
    version = "v1alpha1",
    kind = "ImageTrustPolicy",
    plural = "imagetrustpolicies",
    shortname = "itp",
    category = "trustwatch",
    status = "ImageTrustPolicyStatus",
    derive = "PartialEq",
    doc = "ImageTrustPolicy says which running images must be trusted, against which TrustRoot and signers, and what to do about the ones that are not. trustwatch re-verifies the digest every selected container runs at spec.interval, writes an ImageTrustReport per workload and, with action Quarantine, isolates the pods that fail.",
    printcolumn(name = "Action", type_ = "string", json_path = ".spec.action", description = "Audit or Quarantine"),
    printcolumn(name = "Pods", type_ = "integer", json_path = ".status.summary.pods", description = "Pods selected"),
    printcolumn(
        name = "Verified",
        type_ = "integer",
        json_path = ".status.summary.verified",
        description = "Containers running a trusted image"
    ),
    printcolumn(
        name = "Failing",
        type_ = "integer",
        json_path = ".status.summary.failing",
        description = "Containers running an image that failed verification"
    ),
    printcolumn(
        name = "Quarantined",
        type_ = "integer",
        json_path = ".status.summary.quarantined",
        description = "Pods quarantined"
    ),
    printcolumn(
        name = "Compliant",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Compliant\")].status",
        description = "Whether every selected container runs a trusted image"
    ),
    printcolumn(
        name = "Admission",
        type_ = "string",
        json_path = ".spec.admission.mode",
        description = "What the admission webhook does: Off (unset), Warn or Enforce"
    ),
    printcolumn(name = "Last Scan", type_ = "date", json_path = ".status.lastScanTime", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ImageTrustPolicySpec {
    /// The namespaces whose pods the policy checks. When unset, every namespace except
    /// kube-system and the namespace trustwatch runs in. An empty selector (`{}`) selects
    /// every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Which images must be trusted, and by whom. An image is matched by its normalized
    /// repository (`nginx` is `docker.io/library/nginx`; no tag or digest), and the most
    /// specific matching entry wins: the one with the most literal (non-`*`) characters, then
    /// the fewest wildcards, then the first listed. Images no entry matches are NotCovered.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["pattern".into()]))]
    #[schemars(length(min = 1, max = 256))]
    pub images: Vec<ImageRule>,

    /// What to do about a pod running an image that is not trusted. `Audit` (default): report
    /// it (ImageTrustReport, events, metrics). `Quarantine`: also label the pod
    /// `trustwatch.dev/quarantined=true` and isolate it with a NetworkPolicy that denies all
    /// its traffic; the pod keeps running so it can be inspected. A quarantined pod is
    /// released when it verifies again.
    #[serde(default)]
    pub action: PolicyAction,

    /// How often every selected container is re-verified, e.g. `1m`, `5m`, `1h` (units s, m, h,
    /// d; at least 10s). Pods are also verified when they start, and when annotated
    /// `trustwatch.dev/recheck`.
    #[serde(default = "default_interval")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub interval: String,

    /// What to do when the trust data cannot be fetched (TrustDataUnavailable). `Ignore`
    /// (default): report it, but neither count it as failing nor quarantine, since the image
    /// itself was not shown to be untrusted. `Fail`: treat it like any failed verification.
    #[serde(default)]
    pub on_unavailable: UnavailablePolicy,

    /// What to do with images that no entry of spec.images matches (NotCovered). `Ignore`
    /// (default): report them only. `Fail`: treat them as failing.
    #[serde(default)]
    pub unmatched_images: UnmatchedPolicy,

    /// The most pods quarantined in one scan. When more fail, only that many are quarantined
    /// and the condition QuarantineLimited is set, so that a key rotation gone wrong cannot
    /// isolate a whole cluster at once. 0 quarantines nothing.
    #[serde(default = "default_quarantine_limit")]
    #[schemars(range(min = 0, max = 10000))]
    pub quarantine_limit: i32,

    /// How long a failure must last before a pod is quarantined, e.g. `10m` (default `0s`:
    /// at once). A re-sign that lands a minute after a push, or a brief mismatch during a
    /// rollout, then never isolates anything. The failure is reported meanwhile, and the pod
    /// counts as pending in the report's quarantine status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub quarantine_after: Option<String>,

    /// With action Quarantine: decide everything, but label nothing and create no
    /// NetworkPolicy. Reports, events (`WouldQuarantine`) and status say which pods would be
    /// quarantined. Use it to try a policy on a live cluster.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,

    /// Whether the policy also decides at admission, before a pod starts: trustwatch's
    /// validating webhook (`trustwatch run --webhook-addr`) verifies the images of new and
    /// changed Pods and pod templates (Deployments, StatefulSets, DaemonSets, ReplicaSets,
    /// Jobs, CronJobs) with the same rules, trust roots and caches as the scans. When unset,
    /// admission is `Off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<AdmissionSpec>,
}

/// spec.admission: what the admission webhook does with the images this policy covers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionSpec {
    /// `Off` (default): the webhook ignores the policy. `Warn`: the object is admitted, and
    /// each image that is not trusted comes back as an admission warning, which kubectl
    /// prints. `Enforce`: the object is refused with one line naming the image, the verdict,
    /// the reason and the policy. An image whose trust data cannot be fetched in time
    /// follows spec.onUnavailable (`Ignore` admits it with a warning, `Fail` treats it as
    /// untrusted); images no entry matches follow spec.unmatchedImages.
    #[serde(default)]
    pub mode: AdmissionMode,

    /// With mode `Warn` or `Enforce`: trustwatch's mutating webhook (`POST /mutate`, the
    /// MutatingWebhookConfiguration `trustwatch`) rewrites each image this policy covers that
    /// is given by tag, `registry.example/app:v1`, to the digest it verified,
    /// `registry.example/app:v1@sha256:…`, so that what runs is what was verified. Only an
    /// image every policy that covers it trusts is pinned; images already given by digest,
    /// and images that are not trusted, are left alone (the validating webhook decides
    /// those). Pinning is best effort: when the webhook cannot answer, the object is stored
    /// by tag. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pin_digest: bool,
}

/// What the admission webhook does with a policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum AdmissionMode {
    #[default]
    Off,
    Warn,
    Enforce,
}

/// One entry of spec.images.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.trustRoot) != (has(self.trustRoots) && size(self.trustRoots) > 0)").message("set either trustRoot or trustRoots (one or more names)"))]
#[x_kube(validation = Rule::new("!has(self.require) || (has(self.trustRoots) && size(self.trustRoots) > 0)").message("require applies to trustRoots"))]
pub struct ImageRule {
    /// A glob on the normalized repository, e.g. `docker.io/library/nginx`,
    /// `registry.example.com/team/*` or `ghcr.io/acme/**`. `*` matches within one path segment,
    /// `**` (a whole segment) matches any number of segments; `**` alone matches every image.
    #[x_kube(validation = Rule::new("!self.contains('//') && !self.startsWith('/') && !self.endsWith('/') && !self.contains('***')").message("must be a repository path such as registry.example.com/team/*, without empty segments"))]
    #[schemars(length(min = 1, max = 512), pattern("^[a-z0-9._:/*-]+$"))]
    pub pattern: String,

    /// The name of the TrustRoot that vouches for the matching images (of any kind: Notary
    /// v1, Notation or cosign). Set this or trustRoots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub trust_root: Option<String>,

    /// Several TrustRoots, e.g. the Notary v1 one and its Notation or cosign successor during a
    /// migration. Each verifies the running digest on its own; the report lists every result
    /// ("DCT: Verified, Notation: Unsigned") and spec.images[].require combines them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(length(max = 8), inner(length(min = 1, max = 253)))]
    pub trust_roots: Vec<String>,

    /// How trustRoots combine: `AnyOf` (default): trusted when any of them verifies the digest.
    /// `AllOf`: every one must (e.g. DCT and Notation both, until the migration is done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require: Option<Require>,

    /// Delegations that must each have signed the running digest, e.g. `releases` (the same as
    /// `targets/releases`) or `targets/qa`. When empty, the image is resolved as
    /// `docker trust` does: `targets/releases` first, then `targets`, then other delegations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[schemars(length(max = 32), inner(length(min = 1, max = 255), pattern("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")))]
    pub signers: Vec<String>,
}

/// How several trust roots of one image rule combine.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, schemars::JsonSchema,
)]
pub enum Require {
    #[default]
    AnyOf,
    AllOf,
}

impl ImageRule {
    /// The rule's trust roots, in order: `trustRoot`, or `trustRoots`.
    pub fn roots(&self) -> Vec<&str> {
        match &self.trust_root {
            Some(r) => vec![r.as_str()],
            None => self.trust_roots.iter().map(String::as_str).collect(),
        }
    }
}

/// What to do about untrusted images.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum PolicyAction {
    #[default]
    Audit,
    Quarantine,
}

/// What to do when trust data is unavailable.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum UnavailablePolicy {
    #[default]
    Ignore,
    Fail,
}

/// What to do with images no pattern matches.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum UnmatchedPolicy {
    #[default]
    Ignore,
    Fail,
}

/// What the last scan found.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageTrustPolicyStatus {
    /// `Ready`: the spec is valid and its trust roots are ready. `Compliant`: every selected
    /// container runs a trusted image. `QuarantineLimited`: the last scan wanted to
    /// quarantine more pods than spec.quarantineLimit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The metadata.generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Counts from the last scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<PolicySummary>,

    /// When the last scan completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_time: Option<Time>,
}

/// Counts from the last scan of a policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicySummary {
    /// Pods selected.
    #[serde(default)]
    pub pods: i32,
    /// Containers (init and regular) in the selected pods.
    #[serde(default)]
    pub containers: i32,
    /// Containers running a trusted image (Verified or ExpiringSoon).
    #[serde(default)]
    pub verified: i32,
    /// Containers whose image failed verification, as spec.onUnavailable and
    /// spec.unmatchedImages count it.
    #[serde(default)]
    pub failing: i32,
    /// Containers whose image is trusted but a role it rests on expires within the trust
    /// root's expiryWarning.
    #[serde(default)]
    pub expiring_soon: i32,
    /// Pods currently quarantined by this policy.
    #[serde(default)]
    pub quarantined: i32,
    /// Failing pods waiting out spec.quarantineAfter.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pending_quarantine: i32,
    /// Failing pods a dry run would quarantine (spec.dryRun).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub would_quarantine: i32,
    /// The migration off Docker Content Trust: containers whose running digest depends on
    /// Notary v1 alone, has a Notation or cosign signature that verifies, or one that fails.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub notary_v1_only: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub successor_verified: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub successor_failing: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl ImageTrustPolicySpec {
    /// Checks what the schema cannot: the image patterns, trust root and signer names, the
    /// interval, the namespace selector. Returns every problem, each prefixed with its field
    /// path.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if let Some(sel) = &self.namespace_selector
            && let Err(e) = Selector::try_from(sel.clone())
        {
            errors.push(format!("spec.namespaceSelector: {}", e.0));
        }
        if self.images.is_empty() {
            errors.push("spec.images: at least one entry is required".into());
        }
        for (i, rule) in self.images.iter().enumerate() {
            if let Err(e) = check_pattern(&rule.pattern) {
                errors.push(format!("spec.images[{i}].pattern: {e}"));
            }
            match (&rule.trust_root, rule.trust_roots.is_empty()) {
                (Some(_), false) | (None, true) => {
                    errors.push(format!("spec.images[{i}]: set either trustRoot or trustRoots"))
                }
                _ => {}
            }
            for r in rule.roots() {
                if let Err(e) = checks::dns_subdomain(r) {
                    errors.push(format!("spec.images[{i}].trustRoot: {e}"));
                }
            }
            if let Some(dup) = checks::first_duplicate(rule.trust_roots.iter().map(String::as_str)) {
                errors.push(format!("spec.images[{i}].trustRoots: {dup:?} is listed twice"));
            }
            for (j, s) in rule.signers.iter().enumerate() {
                if let Err(e) = check_signer(s) {
                    errors.push(format!("spec.images[{i}].signers[{j}]: {e}"));
                }
            }
        }
        if let Some(dup) = checks::first_duplicate(self.images.iter().map(|r| r.pattern.as_str())) {
            errors.push(format!("spec.images: the pattern {dup:?} is listed twice"));
        }
        match parse_duration(&self.interval) {
            Ok(d) if d < MIN_INTERVAL => {
                errors.push(format!("spec.interval: {:?} is shorter than the minimum of 10s", self.interval))
            }
            Ok(_) => {}
            Err(e) => errors.push(format!("spec.interval: {e}")),
        }
        if let Some(after) = &self.quarantine_after
            && let Err(e) = parse_duration(after)
        {
            errors.push(format!("spec.quarantineAfter: {e}"));
        }
        if self.quarantine_limit < 0 {
            errors.push(format!("spec.quarantineLimit: must not be negative, got {}", self.quarantine_limit));
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// `spec.admission.mode` (`Off` when unset).
    pub fn admission_mode(&self) -> AdmissionMode {
        self.admission.as_ref().map(|a| a.mode).unwrap_or_default()
    }

    /// `spec.admission.pinDigest`, in effect only when the policy decides at admission.
    pub fn pins_digest(&self) -> bool {
        self.admission.as_ref().is_some_and(|a| a.pin_digest && a.mode != AdmissionMode::Off)
    }

    /// `spec.quarantineAfter` (zero when unset or invalid: [`Self::validate`] reports that).
    pub fn quarantine_grace(&self) -> Duration {
        self.quarantine_after.as_deref().and_then(|d| parse_duration(d).ok()).unwrap_or_default()
    }

    /// `spec.interval`, or its default when it does not parse ([`Self::validate`] reports that).
    pub fn interval_period(&self) -> Duration {
        parse_duration(&self.interval).unwrap_or_else(|_| parse_duration(DEFAULT_INTERVAL).expect("valid default"))
    }

    /// The entry of spec.images that governs a normalized repository (`ImageRef::gun()`, e.g. `docker.io/library/nginx`,
    /// no tag or digest): the most specific matching pattern, the first listed on a tie; `None`
    /// when no pattern matches (the image is NotCovered).
    pub fn rule_for(&self, repository: &str) -> Option<&ImageRule> {
        let mut best: Option<&ImageRule> = None;
        for rule in self.images.iter().filter(|r| pattern_matches(&r.pattern, repository)) {
            if best.is_none_or(|b| specificity(&rule.pattern) > specificity(&b.pattern)) {
                best = Some(rule);
            }
        }
        best
    }

    /// Whether the policy applies to a namespace. Without a namespaceSelector, every namespace
    /// but [`DEFAULT_EXCLUDED_NAMESPACES`] and `operator_namespace` is selected; an invalid
    /// selector selects nothing.
    pub fn selects_namespace(&self, name: &str, labels: &BTreeMap<String, String>, operator_namespace: &str) -> bool {
        match &self.namespace_selector {
            None => name != operator_namespace && !DEFAULT_EXCLUDED_NAMESPACES.contains(&name),
            Some(sel) => Selector::try_from(sel.clone()).is_ok_and(|s| s.matches(labels)),
        }
    }
}

/// A pattern is a `/`-separated repository path of lowercase segments where `*` stands for
/// any characters within a segment and a segment `**` for any number of segments. A `:` (a
/// registry port) may only appear in the first segment, and tags or digests are not part of it.
fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("must not be empty".into());
    }
    if pattern.contains('@') {
        return Err(format!("{pattern:?}: patterns match repositories; remove the digest"));
    }
    for (i, seg) in pattern.split('/').enumerate() {
        if seg.is_empty() {
            return Err(format!("{pattern:?} has an empty path segment"));
        }
        if seg.contains("**") && seg != "**" {
            return Err(format!(
                "{pattern:?}: '**' must be a whole path segment (use '*' within a segment), found {seg:?}"
            ));
        }
        if seg.contains(':') && i > 0 {
            return Err(format!("{pattern:?}: patterns match repositories; remove the tag {seg:?}"));
        }
        if let Some(c) = seg.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-*:".contains(*c))) {
            return Err(format!(
                "{pattern:?}: {c:?} is not allowed (lowercase letters, digits, '.', '_', '-', '*', '/')"
            ));
        }
    }
    Ok(())
}

/// A delegation name: `releases` or `targets/releases`, `/`-separated segments of letters,
/// digits, `_`, `.` and `-`.
fn check_signer(signer: &str) -> Result<(), String> {
    let ok = !signer.is_empty()
        && signer
            .split('/')
            .all(|seg| !seg.is_empty() && seg.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
    if ok { Ok(()) } else { Err(format!("{signer:?} is not a delegation name such as releases or targets/releases")) }
}

/// Whether a glob pattern (see [`ImageRule::pattern`]) matches a normalized repository such as
/// `docker.io/library/nginx`.
pub fn pattern_matches(pattern: &str, repository: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    let repo: Vec<&str> = repository.split('/').collect();
    segments_match(&pat, &repo)
}

fn segments_match(pat: &[&str], repo: &[&str]) -> bool {
    match pat.split_first() {
        None => repo.is_empty(),
        // `**` takes zero or more segments.
        Some((&"**", rest)) => (0..=repo.len()).any(|skip| segments_match(rest, &repo[skip..])),
        Some((seg, rest)) => match repo.split_first() {
            Some((r, repo_rest)) => wildcard_match(seg.as_bytes(), r.as_bytes()) && segments_match(rest, repo_rest),
            None => false,
        },
    }
}

/// `*` matches any run of characters (within one segment: the caller splits on `/`).
fn wildcard_match(pat: &[u8], s: &[u8]) -> bool {
    match pat.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|skip| wildcard_match(rest, &s[skip..])),
        Some((c, rest)) => s.split_first().is_some_and(|(d, s_rest)| c == d && wildcard_match(rest, s_rest)),
    }
}

/// How specific a pattern is: more literal characters first, then fewer `**`, then fewer `*`.
fn specificity(pattern: &str) -> (usize, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>) {
    let literal = pattern.chars().filter(|c| *c != '*').count();
    let globstars = pattern.split('/').filter(|s| *s == "**").count();
    let stars = pattern.matches('*').count();
    (literal, std::cmp::Reverse(globstars), std::cmp::Reverse(stars))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(patterns: &[&str]) -> ImageTrustPolicySpec {
        ImageTrustPolicySpec {
            namespace_selector: None,
            images: patterns
                .iter()
                .map(|p| ImageRule {
                    pattern: p.to_string(),
                    trust_root: Some("hub".into()),
                    trust_roots: vec![],
                    require: None,
                    signers: vec![],
                })
                .collect(),
            action: PolicyAction::Audit,
            interval: default_interval(),
            on_unavailable: UnavailablePolicy::Ignore,
            unmatched_images: UnmatchedPolicy::Ignore,
            quarantine_limit: DEFAULT_QUARANTINE_LIMIT,
            quarantine_after: None,
            dry_run: false,
            admission: None,
        }
    }

    #[test]
    fn glob_patterns_on_repositories_are_accepted() {
        let s = spec(&[
            "docker.io/library/nginx",
            "registry.example.com:5000/team/*",
            "ghcr.io/acme/**",
            "**",
            "ghcr.io/*/app-*",
        ]);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn patterns_with_tags_digests_or_partial_double_stars_are_rejected() {
        for (bad, why) in [
            ("ghcr.io/acme/app:v1", "remove the tag"),
            ("ghcr.io/acme/app@sha256:00", "remove the digest"),
            ("ghcr.io/acme/app**", "whole path segment"),
            ("ghcr.io//app", "empty path segment"),
            ("GHCR.io/app", "'G' is not allowed"),
        ] {
            let errs = spec(&[bad]).validate().expect_err(bad);
            assert!(errs[0].starts_with("spec.images[0].pattern: ") && errs[0].contains(why), "{bad}: {errs:?}");
        }
    }

    #[test]
    fn star_stays_within_a_segment_and_double_star_spans_segments() {
        assert!(pattern_matches("docker.io/library/nginx", "docker.io/library/nginx"));
        assert!(!pattern_matches("docker.io/library/nginx", "docker.io/library/nginx-extra"));
        assert!(pattern_matches("ghcr.io/acme/*", "ghcr.io/acme/app"));
        assert!(!pattern_matches("ghcr.io/acme/*", "ghcr.io/acme/team/app"));
        assert!(pattern_matches("ghcr.io/acme/**", "ghcr.io/acme/team/app"));
        assert!(pattern_matches("ghcr.io/acme/**", "ghcr.io/acme/app"));
        assert!(!pattern_matches("ghcr.io/acme/**", "ghcr.io/other/app"));
        assert!(pattern_matches("ghcr.io/*/app-*", "ghcr.io/acme/app-web"));
        assert!(pattern_matches("**/nginx", "docker.io/library/nginx"));
        assert!(pattern_matches("**", "registry.example.com:5000/a/b/c"));
    }

    #[test]
    fn the_most_specific_matching_entry_wins() {
        let mut s = spec(&["**", "ghcr.io/acme/**", "ghcr.io/acme/*", "ghcr.io/acme/app"]);
        s.images[3].trust_root = Some("exact".into());
        assert_eq!(s.rule_for("ghcr.io/acme/app").unwrap().pattern, "ghcr.io/acme/app");
        assert_eq!(s.rule_for("ghcr.io/acme/web").unwrap().pattern, "ghcr.io/acme/*");
        assert_eq!(s.rule_for("ghcr.io/acme/team/web").unwrap().pattern, "ghcr.io/acme/**");
        assert_eq!(s.rule_for("docker.io/library/nginx").unwrap().pattern, "**");
        assert!(spec(&["ghcr.io/**"]).rule_for("docker.io/library/nginx").is_none());
    }

    #[test]
    fn default_namespace_selection_skips_kube_system_and_the_operator() {
        let s = spec(&["**"]);
        let none = BTreeMap::new();
        assert!(s.selects_namespace("default", &none, "trustwatch-system"));
        assert!(!s.selects_namespace("kube-system", &none, "trustwatch-system"));
        assert!(!s.selects_namespace("trustwatch-system", &none, "trustwatch-system"));
    }

    #[test]
    fn a_namespace_selector_replaces_the_default_exclusions() {
        let mut s = spec(&["**"]);
        s.namespace_selector = Some(LabelSelector {
            match_labels: Some([("trust".to_string(), "on".to_string())].into()),
            ..Default::default()
        });
        let on = BTreeMap::from([("trust".to_string(), "on".to_string())]);
        assert!(s.selects_namespace("kube-system", &on, "trustwatch-system"));
        assert!(!s.selects_namespace("default", &BTreeMap::new(), "trustwatch-system"));
        s.namespace_selector = Some(LabelSelector::default());
        assert!(s.selects_namespace("kube-system", &BTreeMap::new(), "trustwatch-system"));
    }
}
