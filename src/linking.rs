//! Linking a Case to the caller's Salesforce Contact: which Contact Ids are valid, how a
//! caller's number becomes a phone search, and when a search result is a match.
//!
//! Pure: no I/O. The Salesforce client runs the searches (batched: one Composite call holds up
//! to 25); this module decides what to search for and what the answers mean.
//!
//! The matching rule (README "Customer linking"): a caller number in E.164 form (`+15555550147`,
//! as Amazon Connect writes `CustomerEndpoint.Address`) is searched in the Contacts' phone fields
//! as its digits with the country code (`15555550147`), its national number (`5555550147`) and,
//! outside the North American plan, the national number with a trunk `0` (`020 7946 0958` for
//! `+442079460958`). Salesforce's phone search compares digits, whatever the punctuation people
//! typed ("+1 (555) 555-0147", "555-555-0147", "(555) 555 0147" all match). The Case is linked
//! only when exactly one Contact matches; none or several leave it unlinked.

use serde::Deserialize;

/// A Contact (and its Account) a Case is linked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The Contact's Id (`003…`).
    pub contact_id: String,
    /// Its Account's Id (`001…`), when it has one.
    pub account_id: Option<String>,
}

/// Whether `id` looks like a Salesforce Contact Id: 15 or 18 letters and digits, key prefix
/// `003`. A data dip's attribute that is not one is ignored.
pub fn is_contact_id(id: &str) -> bool {
    is_record_id(id, "003")
}

/// Whether `id` looks like a Salesforce Account Id (`001…`).
pub fn is_account_id(id: &str) -> bool {
    is_record_id(id, "001")
}

fn is_record_id(id: &str, prefix: &str) -> bool {
    matches!(id.len(), 15 | 18)
        && id.starts_with(prefix)
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Two-digit country calling codes (ITU-T E.164; codes are prefix-free, so a number's code is
/// the first of 1, 2 or 3 digits that is assigned). One-digit codes are 1 and 7.
const TWO_DIGIT_CODES: [&str; 44] = [
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47",
    "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65",
    "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
];

/// The phone-search terms for a caller's number, or `None` when it is not an E.164 number
/// (`+` then 8 to 15 digits): such a caller is not looked up.
///
/// ```
/// use ctr_cases::linking::search_terms;
/// assert_eq!(search_terms("+15555550147").unwrap(), ["15555550147", "5555550147"]);
/// assert_eq!(
///     search_terms("+442079460958").unwrap(),
///     ["442079460958", "2079460958", "02079460958"]
/// );
/// assert_eq!(search_terms("anonymous"), None);
/// ```
pub fn search_terms(address: &str) -> Option<Vec<String>> {
    let digits = address.trim().strip_prefix('+')?;
    if !(8..=15).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return None;
    }
    let code_len = if digits.starts_with('1') || digits.starts_with('7') {
        1
    } else if TWO_DIGIT_CODES.contains(&&digits[..2]) {
        2
    } else {
        3
    };
    let national = &digits[code_len..];
    let mut terms = vec![digits.to_owned(), national.to_owned()];
    // The North American plan has no trunk 0 (its trunk prefix 1 is the full number).
    if code_len != 1 || digits.starts_with('7') {
        terms.push(format!("0{national}"));
    }
    Some(terms)
}

/// The SOSL search for a caller's terms: any of them in any phone field of a Contact.
/// The terms are digits only, so nothing needs escaping.
pub fn phone_search(terms: &[String]) -> String {
    format!(
        "FIND {{{}}} IN PHONE FIELDS RETURNING Contact(Id, AccountId)",
        terms.join(" OR ")
    )
}

/// One search hit.
#[derive(Debug, Deserialize)]
struct Hit {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "AccountId", default)]
    account_id: Option<String>,
}

/// The link a search answer (`{"searchRecords":[{"Id","AccountId"}…]}`) gives: the Contact when
/// exactly one distinct Contact matched, else `None`.
pub fn link_from_search(answer: &serde_json::Value) -> Option<Link> {
    let records = answer.get("searchRecords").unwrap_or(answer).as_array()?;
    let mut hits: Vec<Hit> = records
        .iter()
        .filter_map(|r| serde_json::from_value(r.clone()).ok())
        .filter(|h: &Hit| is_contact_id(&h.id))
        .collect();
    hits.sort_by(|a, b| a.id.cmp(&b.id));
    hits.dedup_by(|a, b| a.id == b.id);
    match hits.as_slice() {
        [only] => Some(Link {
            contact_id: only.id.clone(),
            account_id: only.account_id.clone().filter(|a| is_account_id(a)),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_become_digit_terms_with_and_without_their_country_code() {
        assert_eq!(
            search_terms("+4915112345678").unwrap(),
            ["4915112345678", "15112345678", "015112345678"]
        );
        assert_eq!(
            search_terms("+35312345678").unwrap(),
            ["35312345678", "12345678", "012345678"]
        );
        assert_eq!(
            search_terms("+79161234567").unwrap(),
            ["79161234567", "9161234567", "09161234567"]
        );
        for bad in [
            "5555550147",
            "+1555",
            "+1 555 555 0147",
            "+0123456789",
            "",
            "+1234567890123456",
        ] {
            assert_eq!(search_terms(bad), None, "{bad}");
        }
    }

    #[test]
    fn search_names_every_term() {
        let terms = search_terms("+15555550147").unwrap();
        assert_eq!(
            phone_search(&terms),
            "FIND {15555550147 OR 5555550147} IN PHONE FIELDS RETURNING Contact(Id, AccountId)"
        );
    }

    #[test]
    fn only_exactly_one_contact_links() {
        let one = json!({"searchRecords": [
            {"attributes": {"type": "Contact"}, "Id": "003000000000001AAA", "AccountId": "001000000000001AAA"}]});
        assert_eq!(
            link_from_search(&one),
            Some(Link {
                contact_id: "003000000000001AAA".into(),
                account_id: Some("001000000000001AAA".into())
            })
        );
        let same_twice = json!({"searchRecords": [{"Id": "003000000000001AAA"}, {"Id": "003000000000001AAA", "AccountId": null}]});
        assert_eq!(link_from_search(&same_twice).unwrap().account_id, None);
        let two =
            json!({"searchRecords": [{"Id": "003000000000001AAA"}, {"Id": "003000000000002AAA"}]});
        assert_eq!(link_from_search(&two), None);
        assert_eq!(link_from_search(&json!({"searchRecords": []})), None);
        assert!(is_contact_id("003000000000001") && !is_contact_id("001000000000001"));
    }

    #[test]
    fn an_account_id_that_is_not_one_is_not_linked() {
        for odd in ["003000000000009AAA", "001-not-an-id", "001"] {
            let answer = json!({"searchRecords": [{"Id": "003000000000001AAA", "AccountId": odd}]});
            let link = link_from_search(&answer).unwrap();
            assert_eq!(link.contact_id, "003000000000001AAA");
            assert_eq!(link.account_id, None, "{odd}");
        }
        assert!(is_account_id("001000000000001") && is_account_id("001000000000001AAA"));
    }
}
