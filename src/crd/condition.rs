//! Status conditions (the standard `metav1.Condition` shape) and their vocabulary.
//!
//! Conditions are keyed by `type`; `lastTransitionTime` moves only when `status` changes, so a
//! controller can recompute every condition on every pass and still tell "nothing changed"
//! from a transition (see [`set_condition`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types.
pub mod types {
    /// TrustRoot: the server answered and the pinned keys anchor every repository in use.
    /// ImageTrustPolicy: the spec is valid and its trust roots exist.
    pub const READY: &str = "Ready";
    /// ImageTrustPolicy: every selected container runs a trusted image.
    pub const COMPLIANT: &str = "Compliant";
    /// ImageTrustPolicy: the last scan wanted to quarantine more pods than `quarantineLimit`
    /// (per scan) or `--max-quarantined` (for the whole cluster) allows.
    pub const QUARANTINE_LIMITED: &str = "QuarantineLimited";
    /// TrustRoot: its Notary server is a known retiring endpoint.
    pub const ENDPOINT_RETIRING: &str = "EndpointRetiring";
    /// ImageTrustPolicy: some quarantined pods are not isolated (hostNetwork, or another
    /// NetworkPolicy allows their traffic).
    pub const QUARANTINE_INEFFECTIVE: &str = "QuarantineIneffective";
}

/// Condition statuses.
pub mod status {
    pub const TRUE: &str = "True";
    pub const FALSE: &str = "False";
    pub const UNKNOWN: &str = "Unknown";
}

/// Condition reasons shared by the controllers (PascalCase, stable: they are also event
/// reasons and metric labels).
pub mod reasons {
    /// The spec failed [`TrustRootSpec::validate`](super::super::TrustRootSpec::validate) or
    /// [`ImageTrustPolicySpec::validate`](super::super::ImageTrustPolicySpec::validate).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Every check of the condition holds.
    pub const READY: &str = "Ready";
    /// Trust data could not be fetched (network, TLS, authentication, server errors).
    pub const TRUST_DATA_UNAVAILABLE: &str = "TrustDataUnavailable";
    /// A policy names a TrustRoot that does not exist or is not ready.
    pub const TRUST_ROOT_NOT_READY: &str = "TrustRootNotReady";
    /// The auth Secret is missing or has neither `username`/`password` nor `.dockerconfigjson`.
    pub const AUTH_SECRET_INVALID: &str = "AuthSecretInvalid";
    /// Every selected container is verified.
    pub const ALL_VERIFIED: &str = "AllVerified";
    /// At least one selected container failed verification.
    pub const VERIFICATION_FAILED: &str = "VerificationFailed";
    /// No scan has completed yet.
    pub const PENDING: &str = "Pending";
    /// More pods failed than `quarantineLimit` allows quarantining in one scan.
    pub const LIMIT_REACHED: &str = "LimitReached";
    /// The number of pods to quarantine was within `quarantineLimit`.
    pub const WITHIN_LIMIT: &str = "WithinLimit";
    /// The cluster-wide cap of quarantined pods (`--max-quarantined`) is reached.
    pub const CLUSTER_LIMIT_REACHED: &str = "ClusterLimitReached";
    /// Every quarantined pod is isolated by the deny-all NetworkPolicy.
    pub const ISOLATED: &str = "Isolated";
    /// A quarantined pod uses the host network: NetworkPolicies do not apply to it.
    pub const HOST_NETWORK: &str = "HostNetwork";
    /// Another NetworkPolicy allows traffic to or from a quarantined pod.
    pub const ALLOWED_BY_OTHER_POLICY: &str = "AllowedByOtherNetworkPolicy";
    /// Some reports could not be written (the others were).
    pub const REPORT_WRITE_FAILED: &str = "ReportWriteFailed";
    /// The Notary v1 endpoint has an announced end of service.
    pub const NOTARY_V1_RETIRING: &str = "NotaryV1Retiring";
    /// No end of service is known for the endpoint.
    pub const NOT_RETIRING: &str = "NotRetiring";
    /// The policy is being deleted: its pods are released.
    pub const DELETING: &str = "Deleting";
}

/// A condition with `status` `True` or `False`.
pub fn new_condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if ok { status::TRUE } else { status::FALSE }.to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation,
        last_transition_time: now,
    }
}

/// The condition of that type, if any.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of that type exists with status `True`.
pub fn is_condition_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == status::TRUE)
}

/// Inserts or replaces the condition of `new.type_`, keeping the old `lastTransitionTime` when
/// the status did not change. Returns true when anything other than that timestamp changed,
/// i.e. when the status is worth patching.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            let changed = *old != new;
            *old = new;
            changed
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn setting_the_same_status_keeps_the_transition_time_and_reports_no_change() {
        let mut conds = vec![];
        assert!(set_condition(&mut conds, new_condition(types::READY, true, reasons::READY, "ok", Some(1), at(10))));
        assert!(!set_condition(&mut conds, new_condition(types::READY, true, reasons::READY, "ok", Some(1), at(20))));
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, at(10));
    }

    #[test]
    fn a_status_flip_moves_the_transition_time() {
        let mut conds = vec![new_condition(types::COMPLIANT, true, reasons::ALL_VERIFIED, "", None, at(10))];
        let changed = set_condition(
            &mut conds,
            new_condition(types::COMPLIANT, false, reasons::VERIFICATION_FAILED, "2 failing", None, at(20)),
        );
        assert!(changed);
        assert_eq!(conds[0].last_transition_time, at(20));
        assert!(!is_condition_true(&conds, types::COMPLIANT));
        assert!(find_condition(&conds, types::READY).is_none());
    }

    #[test]
    fn a_new_message_with_the_same_status_is_a_change_but_not_a_transition() {
        let mut conds = vec![new_condition(types::READY, false, reasons::INVALID_SPEC, "a", None, at(10))];
        assert!(set_condition(
            &mut conds,
            new_condition(types::READY, false, reasons::INVALID_SPEC, "b", None, at(20))
        ));
        assert_eq!(conds[0].last_transition_time, at(10));
        assert_eq!(conds[0].message, "b");
    }
}
