//! The verdict vocabulary shared by the engine, the CLI, the operator, reports and metrics.
//!
//! The strings are a contract: they appear in `trustwatch verify -o json`, in
//! `ImageTrustReport.status.containers[].verdict`, in conditions and in metric labels.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What trustwatch concluded about one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Verdict {
    /// The digest is signed by the required roles and every role is valid.
    Verified,
    /// Verified, but a role whose keys people hold (root, targets, a delegation, a certificate)
    /// expires within the warning window.
    ExpiringSoon,
    /// No trust data for the repository, or no target for the tag or digest.
    Unsigned,
    /// The digest given (or running) is not the digest signed for the tag.
    DigestDrift,
    /// A required signer has no delegation or did not sign the digest.
    SignerMissing,
    /// The signer's role or key was removed, or its signatures come only from revoked keys.
    SignerRevoked,
    /// A role in the chain has expired.
    TrustDataExpired,
    /// Signatures or thresholds do not hold, or the root is not signed by the pinned keys.
    SignatureInvalid,
    /// Hash or length mismatch, rollback, or inconsistent metadata.
    Tampered,
    /// The trust data could not be fetched: network, TLS, authentication, server errors, timeouts.
    TrustDataUnavailable,
    /// No policy pattern covers the image (operator only).
    NotCovered,
}

impl Verdict {
    pub const ALL: [Verdict; 11] = [
        Verdict::Verified,
        Verdict::ExpiringSoon,
        Verdict::Unsigned,
        Verdict::DigestDrift,
        Verdict::SignerMissing,
        Verdict::SignerRevoked,
        Verdict::TrustDataExpired,
        Verdict::SignatureInvalid,
        Verdict::Tampered,
        Verdict::TrustDataUnavailable,
        Verdict::NotCovered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Verified => "Verified",
            Verdict::ExpiringSoon => "ExpiringSoon",
            Verdict::Unsigned => "Unsigned",
            Verdict::DigestDrift => "DigestDrift",
            Verdict::SignerMissing => "SignerMissing",
            Verdict::SignerRevoked => "SignerRevoked",
            Verdict::TrustDataExpired => "TrustDataExpired",
            Verdict::SignatureInvalid => "SignatureInvalid",
            Verdict::Tampered => "Tampered",
            Verdict::TrustDataUnavailable => "TrustDataUnavailable",
            Verdict::NotCovered => "NotCovered",
        }
    }

    /// True when the image may run: `Verified` and `ExpiringSoon`.
    pub fn is_trusted(self) -> bool {
        matches!(self, Verdict::Verified | Verdict::ExpiringSoon)
    }

    /// Severity used to pick the worst verdict of a workload or policy (higher is worse).
    pub fn severity(self) -> u8 {
        match self {
            Verdict::Verified => 0,
            Verdict::NotCovered => 1,
            Verdict::ExpiringSoon => 2,
            Verdict::TrustDataUnavailable => 3,
            Verdict::Unsigned => 4,
            Verdict::SignerMissing => 5,
            Verdict::TrustDataExpired => 6,
            Verdict::DigestDrift => 7,
            Verdict::SignerRevoked => 8,
            Verdict::SignatureInvalid => 9,
            Verdict::Tampered => 10,
        }
    }

    /// The worst of several verdicts; `None` for an empty set.
    pub fn worst(verdicts: impl IntoIterator<Item = Verdict>) -> Option<Verdict> {
        verdicts.into_iter().max_by_key(|v| v.severity())
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| format!("unknown verdict {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_strings_round_trip_through_serde_and_from_str() {
        for v in Verdict::ALL {
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.as_str()));
            assert_eq!(v.as_str().parse::<Verdict>().unwrap(), v);
        }
    }

    #[test]
    fn worst_verdict_prefers_tampering_over_expiry_warnings() {
        let w = Verdict::worst([Verdict::Verified, Verdict::ExpiringSoon, Verdict::Tampered]);
        assert_eq!(w, Some(Verdict::Tampered));
        assert_eq!(Verdict::worst([]), None);
    }
}
