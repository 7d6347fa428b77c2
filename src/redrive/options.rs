//! What a run redrives: the letter kinds (`--kinds`) and how long a received message stays
//! hidden (`--visibility-timeout`). Pure.

use std::time::Duration;

use super::RedriveError;
use crate::letter::LetterKind;

/// The letter kinds redriven unless `--kinds` says otherwise. `poison_record` is left out: a
/// record that could not be decoded cannot become a Case by being replayed.
pub const DEFAULT_KINDS: [LetterKind; 3] = [
    LetterKind::Parked,
    LetterKind::SalesforceRejected,
    LetterKind::CaseNotAccessible,
];

/// How long a received message stays hidden unless `--visibility-timeout` says otherwise: a
/// message that failed again comes back after this.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The letter kinds to redrive (`--kinds`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindFilter(Vec<LetterKind>);

impl Default for KindFilter {
    /// [`DEFAULT_KINDS`].
    fn default() -> Self {
        KindFilter(DEFAULT_KINDS.to_vec())
    }
}

impl KindFilter {
    /// Parses a comma-separated list of kind names (`parked,salesforce_rejected`).
    ///
    /// # Errors
    /// [`RedriveError::UnknownKind`] for a name that is not a kind, [`RedriveError::NoKinds`]
    /// for an empty list.
    pub fn parse(list: &str) -> Result<Self, RedriveError> {
        let mut kinds = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let kind = LetterKind::parse(name)
                .ok_or_else(|| RedriveError::UnknownKind(name.to_owned()))?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            return Err(RedriveError::NoKinds);
        }
        kinds.sort();
        Ok(KindFilter(kinds))
    }

    /// Whether letters of `kind` are redriven.
    pub fn contains(&self, kind: LetterKind) -> bool {
        self.0.contains(&kind)
    }

    /// The kinds, in declaration order.
    pub fn kinds(&self) -> &[LetterKind] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_filter_parses_lists_and_defaults_to_parked_and_rejected() {
        let default = KindFilter::default();
        assert!(default.contains(LetterKind::Parked));
        assert!(default.contains(LetterKind::SalesforceRejected));
        assert!(!default.contains(LetterKind::PoisonRecord));
        let all = KindFilter::parse("poison_record, parked,parked").unwrap();
        assert_eq!(all.kinds(), [LetterKind::PoisonRecord, LetterKind::Parked]);
        assert!(matches!(
            KindFilter::parse("parked,bogus"),
            Err(RedriveError::UnknownKind(k)) if k == "bogus"
        ));
        assert!(matches!(
            KindFilter::parse(" , "),
            Err(RedriveError::NoKinds)
        ));
    }
}
