//! Salesforce's field sizes, and cutting a text to one on a character boundary.

/// Salesforce field sizes (characters) for standard Case text fields.
const FIELD_LIMITS: &[(&str, usize)] = &[
    ("Subject", 255),
    ("Description", 32_000),
    ("SuppliedPhone", 40),
    ("SuppliedName", 80),
    ("SuppliedEmail", 80),
    ("SuppliedCompany", 80),
    ("Origin", 40),
    ("Status", 40),
    ("Priority", 40),
    ("Reason", 40),
    ("Type", 40),
];

/// Text fields of unknown size (custom fields) are capped at the largest Salesforce text area.
const DEFAULT_LIMIT: usize = 131_072;

/// The size (characters) of Case field `name`: the standard field's, else [`DEFAULT_LIMIT`].
pub(super) fn field_limit(name: &str) -> usize {
    FIELD_LIMITS
        .iter()
        .find(|(f, _)| *f == name)
        .map_or(DEFAULT_LIMIT, |(_, l)| *l)
}

/// Truncates `text` so that its length in UTF-16 code units (how Salesforce counts) is at most
/// `limit`, cutting on a character boundary and ending with `…` when it had to cut.
///
/// ```
/// use ctr_cases::case::truncate;
/// assert_eq!(truncate("Dropped call", 255), "Dropped call");
/// assert_eq!(truncate("Dropped call", 8), "Dropped…");
/// assert_eq!(truncate("José😀", 5), "José…"); // the emoji would need 2 units
/// ```
pub fn truncate(text: &str, limit: usize) -> String {
    // A UTF-8 text never has more UTF-16 units than bytes: short texts need no counting.
    if text.len() <= limit || text.encode_utf16().count() <= limit {
        return text.to_owned();
    }
    let budget = limit.saturating_sub(1);
    let mut used = 0;
    let mut out = String::new();
    for c in text.chars() {
        used += c.len_utf16();
        if used > budget {
            break;
        }
        out.push(c);
    }
    if limit > 0 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_counts_utf16_units() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        // An emoji is two UTF-16 units: it must not be split or overflow the limit.
        let t = truncate("a😀😀😀", 4);
        assert!(t.encode_utf16().count() <= 4, "{t}");
        assert_eq!(t, "a😀…");
        assert_eq!(truncate("abc", 0), "");
        // More bytes than the limit, but few enough UTF-16 units: kept whole.
        assert_eq!(truncate("José", 4), "José");
    }
}
