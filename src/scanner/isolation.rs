//! Does a quarantine actually isolate? NetworkPolicies are additive: a pod selected by any
//! policy that allows some traffic gets that traffic, whatever trustwatch's deny-all says
//! ("If any policy or policies apply to a given pod for a given direction, the connections
//! allowed in that direction from that pod is the union of what the applicable policies
//! allow" — Kubernetes NetworkPolicy documentation). And no NetworkPolicy applies to a pod
//! that uses the host's network namespace.

use super::pods::PodView;
use crate::controller::QUARANTINE_NETWORK_POLICY;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::core::{Selector, SelectorExt};

/// The parts of a NetworkPolicy that decide whether it lets traffic through to a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicyView {
    pub namespace: String,
    pub name: String,
    /// `spec.podSelector`, or `None` when it cannot be evaluated (then assume it selects).
    pub pod_selector: Option<Selector>,
    /// The policy restricts ingress and lists at least one ingress rule (so allows some).
    pub allows_ingress: bool,
    pub allows_egress: bool,
}

impl NetworkPolicyView {
    pub fn from_resource(np: &NetworkPolicy) -> NetworkPolicyView {
        let spec = np.spec.clone().unwrap_or_default();
        let types: Vec<String> = spec.policy_types.clone().unwrap_or_else(|| {
            // "If this field is not specified, it will default based on the existence of
            // ingress or egress rules": Ingress always, Egress when egress rules exist.
            let mut t = vec!["Ingress".to_string()];
            if spec.egress.is_some() {
                t.push("Egress".to_string());
            }
            t
        });
        let has = |t: &str| types.iter().any(|x| x == t);
        NetworkPolicyView {
            namespace: np.metadata.namespace.clone().unwrap_or_default(),
            name: np.metadata.name.clone().unwrap_or_default(),
            pod_selector: Selector::try_from(spec.pod_selector.clone().unwrap_or_default()).ok(),
            allows_ingress: has("Ingress") && spec.ingress.as_ref().is_some_and(|r| !r.is_empty()),
            allows_egress: has("Egress") && spec.egress.as_ref().is_some_and(|r| !r.is_empty()),
        }
    }
}

/// Why a quarantined pod is not isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsolationGap {
    HostNetwork,
    AllowedBy { policy: String, ingress: bool, egress: bool },
}

impl IsolationGap {
    pub fn reason(&self) -> &'static str {
        match self {
            IsolationGap::HostNetwork => crate::crd::condition::reasons::HOST_NETWORK,
            IsolationGap::AllowedBy { .. } => crate::crd::condition::reasons::ALLOWED_BY_OTHER_POLICY,
        }
    }

    pub fn describe(&self, pod: &str) -> String {
        match self {
            IsolationGap::HostNetwork => {
                format!(
                    "pod {pod} uses the host network: no NetworkPolicy applies to it, so quarantine does not isolate it"
                )
            }
            IsolationGap::AllowedBy { policy, ingress, egress } => {
                let dirs = match (ingress, egress) {
                    (true, true) => "ingress and egress",
                    (true, false) => "ingress",
                    _ => "egress",
                };
                format!(
                    "NetworkPolicy {policy} allows {dirs} for pod {pod}: NetworkPolicies add up, so quarantine does not isolate it"
                )
            }
        }
    }
}

/// The gaps in a quarantined pod's isolation, given the other NetworkPolicies of its
/// namespace.
pub fn isolation_gaps(pod: &PodView, policies: &[NetworkPolicyView]) -> Vec<IsolationGap> {
    if pod.host_network {
        return vec![IsolationGap::HostNetwork];
    }
    policies
        .iter()
        .filter(|np| np.namespace == pod.namespace && np.name != QUARANTINE_NETWORK_POLICY)
        .filter(|np| np.allows_ingress || np.allows_egress)
        .filter(|np| np.pod_selector.as_ref().is_none_or(|s| s.matches(&pod.labels)))
        .map(|np| IsolationGap::AllowedBy {
            policy: np.name.clone(),
            ingress: np.allows_ingress,
            egress: np.allows_egress,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn np(name: &str, spec: serde_json::Value) -> NetworkPolicyView {
        let np: NetworkPolicy =
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "app"}, "spec": spec})).unwrap();
        NetworkPolicyView::from_resource(&np)
    }

    fn pod(labels: &[(&str, &str)], host_network: bool) -> PodView {
        PodView {
            namespace: "app".into(),
            name: "web-1".into(),
            uid: "u".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            quarantine_reason: None,
            recheck: None,
            workload: super::super::pods::Workload {
                kind: "Pod".into(),
                name: "web-1".into(),
                api_version: "v1".into(),
                uid: None,
            },
            containers: vec![],
            host_network,
            pull: Default::default(),
        }
    }

    #[test]
    fn an_allow_policy_selecting_the_pod_defeats_the_deny_all() {
        let allow = np("allow-web", json!({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]}));
        let other = np("allow-db", json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{}]}));
        let deny = np("deny-all", json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}));
        let gaps = isolation_gaps(&pod(&[("app", "web")], false), &[allow, other, deny]);
        assert_eq!(gaps, vec![IsolationGap::AllowedBy { policy: "allow-web".into(), ingress: true, egress: false }]);
    }

    #[test]
    fn host_network_pods_are_never_isolated_and_our_own_policy_is_no_gap() {
        assert_eq!(isolation_gaps(&pod(&[], true), &[]), vec![IsolationGap::HostNetwork]);
        let ours = np(QUARANTINE_NETWORK_POLICY, json!({"podSelector": {}, "egress": [{}]}));
        assert!(isolation_gaps(&pod(&[], false), &[ours]).is_empty());
    }
}
