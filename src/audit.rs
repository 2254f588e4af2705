//! `trustwatch audit`: the operator's decide code, offline. TrustRoot and ImageTrustPolicy
//! manifests as users apply them, pods as `kubectl get pods -A -o json` prints them; out come
//! the ImageTrustReports the operator would write.

use crate::controller::roots::{TrustRootRuntime, build_trust_root, verify_all};
use crate::controller::status::memory_from_status;
use crate::crd::{ImageTrustPolicy, ImageTrustReport, ImageTrustReportSpec, TrustRoot};
use crate::fetch::Credentials;
use crate::scanner::pods::{CachedPod, OwnerIndex, PodView, pod_view};
use crate::scanner::{DecideInput, ScanOutcome, decide, plan};
use crate::verdict::Verdict;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What the manifests and the pod list hold.
#[derive(Default)]
pub struct AuditInput {
    pub trust_roots: Vec<TrustRoot>,
    pub policies: Vec<ImageTrustPolicy>,
    pub pods: Vec<CachedPod>,
    pub owners: OwnerIndex,
    pub namespace_labels: HashMap<String, BTreeMap<String, String>>,
}

/// Parses JSON or (multi-document) YAML into a flat list of objects, unwrapping `List`s.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    let trimmed = text.trim_start();
    let docs: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        match serde_json::from_str::<Value>(text).map_err(|e| format!("invalid JSON: {e}"))? {
            Value::Array(items) => items,
            v => vec![v],
        }
    } else {
        serde_saphyr::from_multiple::<Value>(text).map_err(|e| format!("invalid YAML: {e}"))?
    };
    let mut out = vec![];
    for d in docs {
        if d.is_null() {
            continue;
        }
        let kind = d.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind == "List" || kind.ends_with("List") {
            out.extend(d.get("items").and_then(Value::as_array).cloned().unwrap_or_default());
        } else {
            out.push(d);
        }
    }
    Ok(out)
}

impl AuditInput {
    /// Sorts objects by kind. Unknown kinds are ignored; malformed known kinds are errors.
    pub fn add(&mut self, source: &str, docs: Vec<Value>) -> Result<(), String> {
        for d in docs {
            let kind = d.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
            let name = d.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?").to_string();
            let bad = |e: serde_json::Error| format!("{source}: {kind} {name:?}: {e}");
            match kind.as_str() {
                "TrustRoot" => self.trust_roots.push(serde_json::from_value(d).map_err(bad)?),
                "ImageTrustPolicy" => self.policies.push(serde_json::from_value(d).map_err(bad)?),
                "Pod" => self.pods.push(serde_json::from_value(d).map_err(bad)?),
                "ReplicaSet" | "Job" => {
                    let meta: ObjectMeta =
                        serde_json::from_value(d.get("metadata").cloned().unwrap_or_default()).map_err(bad)?;
                    self.owners.extend(&kind, [&meta]);
                }
                "Namespace" => {
                    let meta: ObjectMeta =
                        serde_json::from_value(d.get("metadata").cloned().unwrap_or_default()).map_err(bad)?;
                    self.namespace_labels.insert(name, meta.labels.unwrap_or_default());
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The result of auditing every policy.
pub struct AuditResult {
    pub reports: Vec<ImageTrustReport>,
    pub outcomes: Vec<(String, ScanOutcome)>,
}

impl AuditResult {
    /// True when every covered container is trusted (exit code 0).
    pub fn compliant(&self) -> bool {
        self.outcomes.iter().all(|(_, o)| o.summary.failing == 0)
    }

    /// True when every covered container has a Notation or cosign signature that verifies
    /// (`trustwatch audit --migration` exits 0).
    pub fn migrated(&self) -> bool {
        self.outcomes.iter().all(|(_, o)| o.summary.notary_v1_only == 0 && o.summary.successor_failing == 0)
    }
}

/// The migration view off Docker Content Trust, for people: one line per workload container,
/// what each trust root said, then the retiring Notary endpoints the cluster still depends on.
pub fn migration_table(result: &AuditResult, roots: &HashMap<String, Arc<TrustRootRuntime>>, now: Timestamp) -> String {
    let header = ["NAMESPACE", "WORKLOAD", "CONTAINER", "PODS", "MIGRATION", "TRUST ROOTS"];
    let mut rows: Vec<Vec<String>> = vec![];
    let mut alone: BTreeMap<String, u64> = BTreeMap::new();
    for r in &result.reports {
        let s = r.status.clone().unwrap_or_default();
        let w = s.workload.clone().map(|w| format!("{}/{}", w.kind, w.name)).unwrap_or_default();
        for c in &s.containers {
            let Some(m) = c.migration else { continue };
            let said = if c.trust_roots.is_empty() {
                format!("{}: {}", c.format.map(|f| f.display_name()).unwrap_or("-"), c.verdict)
            } else {
                c.trust_roots
                    .iter()
                    .map(|t| format!("{}: {}", t.format.display_name(), t.verdict))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if m == crate::crd::MigrationState::NotaryV1Only {
                let root = c
                    .trust_roots
                    .iter()
                    .find(|t| t.format == crate::verifier::SignatureFormat::NotaryV1)
                    .map(|t| t.name.clone())
                    .or(c.trust_root.clone());
                if let Some(root) = root {
                    *alone.entry(root).or_default() += c.pods as u64;
                }
            }
            rows.push(vec![
                r.metadata.namespace.clone().unwrap_or_default(),
                w.clone(),
                c.container.clone(),
                c.pods.to_string(),
                m.as_str().to_string(),
                said,
            ]);
        }
    }
    let mut out = render_table(&header, &rows);
    let (mut only, mut verified, mut failing) = (0, 0, 0);
    for (_, o) in &result.outcomes {
        only += o.summary.notary_v1_only;
        verified += o.summary.successor_verified;
        failing += o.summary.successor_failing;
    }
    out.push_str(&format!(
        "\ncontainers: {only} depend on Notary v1 alone, {verified} have a Notation or cosign signature that verifies, {failing} have one that fails\n"
    ));
    for (root, pods) in &alone {
        if let Some(r) = roots.get(root).and_then(|rt| rt.retirement.clone()) {
            let days = format!("{}T00:00:00Z", r.date)
                .parse::<Timestamp>()
                .map(|t| t.duration_since(now).as_secs() / 86_400)
                .unwrap_or_default();
            out.push_str(&format!(
                "{pods} container(s) depend on {} (trust root {root}) alone: it stops serving on {} ({days} days). {}\n",
                r.endpoint, r.date, r.source
            ));
        }
    }
    out
}

fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let fmt_row = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = fmt_row(header.iter().map(|s| s.to_string()).collect());
    out.push('\n');
    for r in rows {
        out.push_str(&fmt_row(r.clone()));
        out.push('\n');
    }
    out
}

/// Builds the trust roots; `authSecretRef` credentials come from the environment offline.
pub fn build_roots(
    input: &AuditInput,
    credentials: Option<Credentials>,
) -> Result<HashMap<String, Arc<TrustRootRuntime>>, Vec<String>> {
    let mut roots = HashMap::new();
    let mut errors = vec![];
    for tr in &input.trust_roots {
        let name = tr.metadata.name.clone().unwrap_or_default();
        let creds = tr.spec.auth_secret_ref.as_ref().and(credentials.clone());
        let inputs = crate::controller::roots::ExternalInputs { notary_credentials: creds, ..Default::default() };
        match build_trust_root(&name, &tr.spec, inputs, |_| {}) {
            Ok(rt) => {
                roots.insert(name, Arc::new(rt));
            }
            Err(es) => errors.extend(es.into_iter().map(|e| format!("TrustRoot {name}: {e}"))),
        }
    }
    for p in &input.policies {
        let name = p.metadata.name.clone().unwrap_or_default();
        if let Err(es) = p.spec.validate() {
            errors.extend(es.into_iter().map(|e| format!("ImageTrustPolicy {name}: {e}")));
        }
    }
    if errors.is_empty() { Ok(roots) } else { Err(errors) }
}

/// Runs every policy over the pods its namespace selector selects.
pub async fn run_audit(
    input: &AuditInput,
    roots: &HashMap<String, Arc<TrustRootRuntime>>,
    operator_namespace: &str,
    now: Timestamp,
) -> AuditResult {
    // What the operator remembers in TrustRoot status (trusted versions and signers), when the
    // manifests carry it (`kubectl get troot -o yaml`): the audit then judges rollbacks, removed
    // signers and vanished trust data as the operator would.
    for tr in &input.trust_roots {
        let name = tr.metadata.name.clone().unwrap_or_default();
        if let Some(engine) = roots.get(&name).and_then(|rt| rt.backend.notary()) {
            for (gun, memory) in memory_from_status(tr.status.as_ref()) {
                engine.remember(&gun, memory).await;
            }
        }
    }
    let views: Vec<PodView> = input
        .pods
        .iter()
        .filter(|p| !crate::scanner::pods::is_finished(p))
        .map(|p| pod_view(p, &input.owners))
        .collect();
    let warnings = roots.iter().map(|(n, r)| (n.clone(), r.expiry_warning)).collect();
    let empty = BTreeMap::new();
    let mut result = AuditResult { reports: vec![], outcomes: vec![] };
    for policy in &input.policies {
        let name = policy.metadata.name.clone().unwrap_or_default();
        let selected: Vec<PodView> = views
            .iter()
            .filter(|p| {
                let labels = input.namespace_labels.get(&p.namespace).unwrap_or(&empty);
                policy.spec.selects_namespace(&p.namespace, labels, operator_namespace)
            })
            .cloned()
            .collect();
        let plan = plan(&policy.spec, &selected, &Default::default());
        let results = verify_all(&plan.keys(), roots, now, true, None, &Default::default()).await;
        let outcome = decide(&DecideInput {
            policy: &name,
            spec: &policy.spec,
            pods: &selected,
            plan: &plan,
            results: &results,
            warnings: &warnings,
            previous: &HashMap::new(),
            previous_scan: None,
            history: &HashMap::new(),
            network_policies: &[],
            cluster_quarantined: 0,
            max_quarantined: u32::MAX,
            operator_namespace,
            now,
        });
        for r in &outcome.reports {
            let mut report = ImageTrustReport::new(&r.name, ImageTrustReportSpec {});
            report.metadata.namespace = Some(r.namespace.clone());
            report.metadata.labels =
                Some(BTreeMap::from([(crate::crd::POLICY_LABEL.to_string(), crate::crd::policy_label_value(&name))]));
            report.status = Some(r.status.clone());
            result.reports.push(report);
        }
        result.outcomes.push((name, outcome));
    }
    result
}

/// The audit as a table for people: one line per report, then the failing containers.
pub fn table(result: &AuditResult) -> String {
    let mut out = String::new();
    let header = ["NAMESPACE", "NAME", "WORKLOAD", "POLICY", "VERDICT", "VERIFIED", "FAILING"];
    let rows: Vec<Vec<String>> = result
        .reports
        .iter()
        .map(|r| {
            let s = r.status.clone().unwrap_or_default();
            let w = s.workload.clone().map(|w| format!("{}/{}", w.kind, w.name)).unwrap_or_default();
            let sum = s.summary.unwrap_or_default();
            vec![
                r.metadata.namespace.clone().unwrap_or_default(),
                r.metadata.name.clone().unwrap_or_default(),
                w,
                s.policy.clone().unwrap_or_default(),
                s.verdict.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                sum.verified.to_string(),
                sum.failing.to_string(),
            ]
        })
        .collect();
    out.push_str(&render_table(&header, &rows));
    let mut failing = vec![];
    for r in &result.reports {
        let s = r.status.clone().unwrap_or_default();
        for c in &s.containers {
            if !c.verdict.is_trusted() && c.verdict != Verdict::NotCovered {
                let pods = match c.pods {
                    1 => c.sample_pods.join(","),
                    n => format!("{} (+{} pods)", c.sample_pods.first().cloned().unwrap_or_default(), n - 1),
                };
                failing.push(format!(
                    "  {}/{} {}: {} ({}) {}",
                    r.metadata.namespace.clone().unwrap_or_default(),
                    pods,
                    c.container,
                    c.verdict,
                    c.reason,
                    c.message
                ));
            }
        }
    }
    if !failing.is_empty() {
        out.push_str("\nNot verified:\n");
        out.push_str(&failing.join("\n"));
        out.push('\n');
    }
    for (policy, o) in &result.outcomes {
        out.push_str(&format!(
            "\npolicy {policy}: {} pods, {} containers, {} verified, {} failing, {} expiring soon\n",
            o.summary.pods, o.summary.containers, o.summary.verified, o.summary.failing, o.summary.expiring_soon
        ));
    }
    out
}
