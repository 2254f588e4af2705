//! Several trust roots for one image: how their answers combine (`AnyOf`, `AllOf`), and where
//! the running digest stands in the migration off Docker Content Trust.

use crate::crd::{MigrationState, Require};
use crate::engine::Resolution;
use crate::verdict::Verdict;
use crate::verifier::SignatureFormat;
use std::borrow::Borrow;

/// The index of the answer that decides the verdict.
///
/// - `AnyOf`: the best trusted answer. With none trusted, an outage of any root decides (it
///   might have verified: an outage is never read as a failure of the image), else the worst
///   failure.
/// - `AllOf`: every root must trust the digest; the first ExpiringSoon (or the first answer)
///   when they all do, else the worst failure, and an outage only when nothing else failed.
pub fn combine<R: Borrow<Resolution>>(require: Require, answers: &[R]) -> usize {
    let verdicts = || answers.iter().map(|r| r.borrow().verdict).enumerate();
    let worst_failure = || {
        verdicts()
            .filter(|(_, v)| !v.is_trusted() && *v != Verdict::TrustDataUnavailable)
            .max_by_key(|(_, v)| v.severity())
            .map(|(i, _)| i)
    };
    let outage = || verdicts().find(|(_, v)| *v == Verdict::TrustDataUnavailable).map(|(i, _)| i);
    match require {
        Require::AnyOf => verdicts()
            .filter(|(_, v)| v.is_trusted())
            .min_by_key(|(_, v)| v.severity())
            .map(|(i, _)| i)
            .or_else(outage)
            .or_else(worst_failure)
            .unwrap_or(0),
        Require::AllOf => {
            if verdicts().all(|(_, v)| v.is_trusted()) {
                verdicts().find(|(_, v)| *v == Verdict::ExpiringSoon).map(|(i, _)| i).unwrap_or(0)
            } else {
                worst_failure().or_else(outage).unwrap_or(0)
            }
        }
    }
}

/// Where the running digest stands in the migration, from every trust root's answer; `None`
/// when no Notary v1 trust root is involved and no successor signature was found.
pub fn migration_state<R: Borrow<Resolution>>(answers: &[R]) -> Option<MigrationState> {
    let answers = || answers.iter().map(|r| r.borrow());
    let successors = || answers().filter(|r| r.format != SignatureFormat::NotaryV1);
    let has_dct = answers().any(|r| r.format == SignatureFormat::NotaryV1);
    // A successor signature "exists but fails" when it was found and did not verify: not when
    // there is none (Unsigned), nor when it could not be looked at (TrustDataUnavailable).
    let exists_but_fails = |v: Verdict| {
        !v.is_trusted() && !matches!(v, Verdict::Unsigned | Verdict::TrustDataUnavailable | Verdict::NotCovered)
    };
    if successors().any(|r| r.verdict.is_trusted()) {
        Some(MigrationState::SuccessorVerified)
    } else if successors().any(|r| exists_but_fails(r.verdict)) {
        Some(MigrationState::SuccessorFailing)
    } else if has_dct {
        Some(MigrationState::NotaryV1Only)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageRef;

    fn answer(format: SignatureFormat, verdict: Verdict) -> Resolution {
        let image = ImageRef::parse("registry.example.com/app:v1").unwrap();
        Resolution::new(format, &image, verdict, verdict.to_string(), "")
    }

    use SignatureFormat::*;
    use Verdict::*;

    #[test]
    fn any_of_trusts_one_verifying_root_and_never_reads_an_outage_as_a_failure() {
        let a = [answer(NotaryV1, Unsigned), answer(Notation, Verified)];
        assert_eq!(combine(Require::AnyOf, &a), 1);
        let a = [answer(NotaryV1, TrustDataUnavailable), answer(Notation, Unsigned)];
        assert_eq!(a[combine(Require::AnyOf, &a)].verdict, TrustDataUnavailable);
        let a = [answer(NotaryV1, Unsigned), answer(Cosign, SignatureInvalid)];
        assert_eq!(a[combine(Require::AnyOf, &a)].verdict, SignatureInvalid);
    }

    #[test]
    fn all_of_needs_every_root_and_reports_the_worst_failure() {
        let a = [answer(NotaryV1, Verified), answer(Notation, Unsigned)];
        assert_eq!(a[combine(Require::AllOf, &a)].verdict, Unsigned);
        let a = [answer(NotaryV1, Verified), answer(Notation, ExpiringSoon)];
        assert_eq!(a[combine(Require::AllOf, &a)].verdict, ExpiringSoon);
        let a = [answer(NotaryV1, TrustDataUnavailable), answer(Notation, Verified)];
        assert_eq!(a[combine(Require::AllOf, &a)].verdict, TrustDataUnavailable);
    }

    #[test]
    fn the_migration_view_tells_dct_alone_from_a_successor_that_verifies_or_fails() {
        assert_eq!(migration_state(&[answer(NotaryV1, Verified)]), Some(MigrationState::NotaryV1Only));
        let a = [answer(NotaryV1, Verified), answer(Notation, Unsigned)];
        assert_eq!(migration_state(&a), Some(MigrationState::NotaryV1Only));
        let a = [answer(NotaryV1, Verified), answer(Cosign, Verified)];
        assert_eq!(migration_state(&a), Some(MigrationState::SuccessorVerified));
        let a = [answer(NotaryV1, Verified), answer(Notation, SignatureInvalid)];
        assert_eq!(migration_state(&a), Some(MigrationState::SuccessorFailing));
        assert_eq!(migration_state(&[answer(Cosign, Verified)]), Some(MigrationState::SuccessorVerified));
        assert_eq!(migration_state(&[answer(Cosign, Unsigned)]), None);
    }
}
