//! Which contact attributes may reach a Case, and masking of card numbers in free text.
//!
//! Pure: no I/O, no environment. Configuration hands in the include and exclude patterns.
//!
//! docs/cases.md ("Sensitive caller data stays out of Cases"): contact attributes pass an include/exclude filter before
//! they reach a Case, and card numbers, PINs, SSNs and the like are excluded by default. The
//! filter sees attribute *names* only; [`mask_card_numbers`] is a second line of defence for
//! values and free text (a caller typing a card number where a flow expected something else).
//!
//! # Patterns
//! Glob patterns (`*` any run of characters, `?` one character), matched case-insensitively
//! by the `wildmatch` crate against the whole name. Attribute names come in every spelling
//! (`card_number`, `cardNumber`, `Card-Number`, `card.number`, `Card Number`), so a pattern
//! matches a name when either
//! - the pattern matches the name as given, or
//! - the pattern and the name, each with the separators `_`, `-`, `.` and whitespace removed,
//!   match (`*card_number*` and `*cardnumber*` are then the same pattern, and both catch all
//!   five spellings above).
//!
//! Removing separators can only make more names match, so an exclude pattern errs on the side
//! of dropping an attribute. Patterns are trimmed; an empty one is an error (usually a stray
//! comma), as is one made only of separators.

use std::borrow::Cow;
use std::fmt;

use wildmatch::WildMatch;

/// The attribute-name patterns excluded by default (see the module docs for how they match).
///
/// Written without separators, in lower case; each line's group is noted. PIN patterns match
/// at the end of a name (`*pin`) or as a known compound (`*pincode*`), never `*pin*`, which
/// would also drop `shipping`, `spinner` and `opinion`.
pub const DEFAULT_EXCLUDE: &[&str] = &[
    // Payment card numbers (PAN), expiry.
    "*cardnumber*",
    "*cardnum",
    "*cardno",
    "*ccnumber*",
    "*ccnum",
    "*ccno",
    "ccn",
    "*creditcard*",
    "*debitcard*",
    "pan",
    "*cardpan",
    "*pannumber*",
    "*primaryaccountnumber*",
    "*cardexp*",
    // Card security codes.
    "*cvv*",
    "*cvc*",
    "*cvn",
    "csc",
    "*cardcsc",
    "*securitycode*",
    "*cardverification*",
    // PINs.
    "*pin",
    "*pincode*",
    "*pinnumber*",
    // Passwords, passcodes, one-time codes, secrets, security answers.
    "*password*",
    "*passwd*",
    "*pwd",
    "*passcode*",
    "*passphrase*",
    "otp",
    "*otp",
    "*otpcode*",
    "*onetimecode*",
    "*verificationcode*",
    "*securityanswer*",
    "*secret*",
    "*token*",
    // Government identifiers: SSN, social security/insurance, national id, tax id, SIN, NINO,
    // passport, driving licence.
    "ssn",
    "*ssn",
    "ssn*",
    "*socialsecurity*",
    "*socialinsurance*",
    "sin",
    "*sinnumber*",
    "nino",
    "*nationalinsurance*",
    "*nationalid*",
    "*taxid*",
    "*taxnumber*",
    "*taxpayerid*",
    "tin",
    "*tinnumber*",
    "*passport*",
    "*driverslicense*",
    "*driverlicense*",
    "*drivinglicence*",
    // Dates of birth.
    "dob",
    "*dob",
    "*birthdate*",
    "*dateofbirth*",
    "*birthday*",
    // Bank accounts and routing numbers.
    "*accountnumber*",
    "*accountno",
    "*acctnumber*",
    "*acctnum",
    "*acctno",
    "*accno",
    "*bankaccount*",
    "iban",
    "*iban",
    "routing",
    "*routingnumber*",
    "*routingnum",
    "*routingno",
    "*sortcode*",
    "aba",
    "*abanumber*",
    "*abarouting*",
];

/// Which configured list a [`PatternError`] is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternList {
    /// The include patterns.
    Include,
    /// The exclude patterns.
    Exclude,
}

impl fmt::Display for PatternList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatternList::Include => "include",
            PatternList::Exclude => "exclude",
        })
    }
}

/// A configured attribute pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern is empty after trimming (usually a stray comma).
    #[error(
        "attribute {list} pattern {position} is empty; remove the stray comma or give a glob \
         such as *card*"
    )]
    Empty {
        /// Which list.
        list: PatternList,
        /// 1-based position in the list.
        position: usize,
    },
    /// The pattern has only separators, which matching ignores.
    #[error(
        "attribute {list} pattern {position} ({pattern:?}) has only separators (_ - . and \
         spaces), which matching ignores; give letters, digits, * or ?"
    )]
    OnlySeparators {
        /// Which list.
        list: PatternList,
        /// 1-based position in the list.
        position: usize,
        /// The pattern.
        pattern: String,
    },
    /// The pattern contains a control character (not shown: it may be a pasted value).
    #[error(
        "attribute {list} pattern {position} contains a control character; attribute names \
         never do, so check the configuration for a pasted value"
    )]
    ControlCharacter {
        /// Which list.
        list: PatternList,
        /// 1-based position in the list.
        position: usize,
    },
}

impl PatternError {
    /// The list the bad pattern is in.
    pub fn list(&self) -> PatternList {
        match self {
            PatternError::Empty { list, .. }
            | PatternError::OnlySeparators { list, .. }
            | PatternError::ControlCharacter { list, .. } => *list,
        }
    }
}

/// One compiled pattern: as written, and with separators removed (when that differs).
#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    as_written: WildMatch,
    without_separators: Option<WildMatch>,
}

impl Pattern {
    fn compile(text: &str, list: PatternList, position: usize) -> Result<Pattern, PatternError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PatternError::Empty { list, position });
        }
        if text.chars().any(char::is_control) {
            return Err(PatternError::ControlCharacter { list, position });
        }
        let stripped = strip_separators(text);
        if stripped.is_empty() {
            return Err(PatternError::OnlySeparators {
                list,
                position,
                pattern: text.to_owned(),
            });
        }
        Ok(Pattern {
            text: text.to_owned(),
            as_written: WildMatch::new_case_insensitive(text),
            without_separators: match stripped {
                Cow::Owned(s) => Some(WildMatch::new_case_insensitive(&s)),
                Cow::Borrowed(_) => None,
            },
        })
    }

    /// `stripped` is `name` with separators removed.
    fn matches(&self, name: &str, stripped: &str) -> bool {
        if self.as_written.matches(name) {
            return true;
        }
        let normal = self.without_separators.as_ref().unwrap_or(&self.as_written);
        normal.matches(stripped)
    }
}

/// Whether matching ignores `c` (see the module docs).
fn is_separator(c: char) -> bool {
    matches!(c, '_' | '-' | '.') || c.is_whitespace()
}

/// `text` without separators; borrowed when it has none.
fn strip_separators(text: &str) -> Cow<'_, str> {
    if text.chars().any(is_separator) {
        Cow::Owned(text.chars().filter(|c| !is_separator(*c)).collect())
    } else {
        Cow::Borrowed(text)
    }
}

fn compile_all<'a>(
    patterns: impl IntoIterator<Item = &'a str>,
    list: PatternList,
) -> Result<Vec<Pattern>, PatternError> {
    patterns
        .into_iter()
        .enumerate()
        .map(|(i, p)| Pattern::compile(p, list, i + 1))
        .collect()
}

/// Decides which contact attributes (by name) may be copied to a Case.
///
/// ```
/// use ctr_cases::privacy::AttributeFilter;
///
/// let filter = AttributeFilter::default();
/// assert!(filter.allows("intent"));
/// assert!(filter.allows("shipping"));
/// assert!(!filter.allows("Card-Number"));
/// assert!(!filter.allows("customerPin"));
/// ```
#[derive(Debug)]
pub struct AttributeFilter {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
    /// Decisions made so far, by name: a contact center's flows set the same few attribute
    /// names on every contact, and a decision runs every pattern (this is on the hot path).
    decided: std::sync::Mutex<std::collections::HashMap<String, bool>>,
}

/// Most names [`AttributeFilter::allows`] remembers; past that it decides without remembering.
const MAX_REMEMBERED: usize = 4096;

impl Clone for AttributeFilter {
    fn clone(&self) -> Self {
        AttributeFilter {
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            decided: Default::default(),
        }
    }
}

/// Two filters are equal when they hold the same patterns in the same order.
impl PartialEq for AttributeFilter {
    fn eq(&self, other: &Self) -> bool {
        let texts = |p: &[Pattern]| p.iter().map(|p| p.text.clone()).collect::<Vec<_>>();
        texts(&self.include) == texts(&other.include)
            && texts(&self.exclude) == texts(&other.exclude)
    }
}

impl Eq for AttributeFilter {}

impl Default for AttributeFilter {
    /// Include every attribute except those matching [`DEFAULT_EXCLUDE`].
    fn default() -> Self {
        AttributeFilter::with_default_excludes(&[], &[])
            .expect("DEFAULT_EXCLUDE holds only valid patterns (tested)")
    }
}

impl AttributeFilter {
    /// A filter with exactly these patterns: an attribute is allowed when it matches an
    /// `include` pattern (an empty `include` allows every name) and no `exclude` pattern.
    /// [`DEFAULT_EXCLUDE`] is not added; see [`AttributeFilter::with_default_excludes`].
    ///
    /// # Errors
    /// [`PatternError`] for the first empty, separator-only or control-character pattern.
    pub fn new(include: &[String], exclude: &[String]) -> Result<AttributeFilter, PatternError> {
        Ok(AttributeFilter {
            include: compile_all(include.iter().map(String::as_str), PatternList::Include)?,
            exclude: compile_all(exclude.iter().map(String::as_str), PatternList::Exclude)?,
            decided: Default::default(),
        })
    }

    /// Like [`AttributeFilter::new`], with [`DEFAULT_EXCLUDE`] excluded as well as
    /// `extra_exclude`, so an operator can add exclusions without restating the defaults.
    ///
    /// # Errors
    /// [`PatternError`] as for [`AttributeFilter::new`]; positions in the exclude list count
    /// `extra_exclude` only.
    pub fn with_default_excludes(
        include: &[String],
        extra_exclude: &[String],
    ) -> Result<AttributeFilter, PatternError> {
        let mut filter = AttributeFilter::new(include, extra_exclude)?;
        let defaults = compile_all(DEFAULT_EXCLUDE.iter().copied(), PatternList::Exclude)?;
        filter.exclude.extend(defaults);
        Ok(filter)
    }

    /// Whether the attribute `name` may reach a Case.
    pub fn allows(&self, name: &str) -> bool {
        let mut decided = self.decided.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&allowed) = decided.get(name) {
            return allowed;
        }
        let allowed = self.decide(name);
        if decided.len() < MAX_REMEMBERED {
            decided.insert(name.to_owned(), allowed);
        }
        allowed
    }

    fn decide(&self, name: &str) -> bool {
        let stripped = strip_separators(name);
        let included =
            self.include.is_empty() || self.include.iter().any(|p| p.matches(name, &stripped));
        included && !self.exclude.iter().any(|p| p.matches(name, &stripped))
    }

    /// An allowed attribute's value as it may reach a Case: when it is the JSON text of an
    /// object or array (a flow can store structured data in one attribute), the keys this
    /// filter excludes are removed at every depth; then card numbers are masked.
    ///
    /// ```
    /// use ctr_cases::privacy::AttributeFilter;
    ///
    /// let filter = AttributeFilter::default();
    /// assert_eq!(
    ///     filter.redact_value(r#"{"brand":"visa","cvv":"123"}"#),
    ///     r#"{"brand":"visa"}"#
    /// );
    /// assert_eq!(filter.redact_value("4111 1111 1111 1111"), "**** **** **** 1111");
    /// ```
    pub fn redact_value<'a>(&self, value: &'a str) -> Cow<'a, str> {
        let structured = matches!(value.trim_start().as_bytes().first(), Some(b'{' | b'['));
        if structured
            && let Ok(mut parsed) = serde_json::from_str::<serde_json::Value>(value)
            && self.prune(&mut parsed)
        {
            let pruned = parsed.to_string();
            return Cow::Owned(mask_card_numbers(&pruned).into_owned());
        }
        mask_card_numbers(value)
    }

    /// Removes the keys this filter excludes from `value` at every depth; whether any was.
    fn prune(&self, value: &mut serde_json::Value) -> bool {
        match value {
            serde_json::Value::Object(map) => {
                let before = map.len();
                map.retain(|key, _| self.allows(key));
                let mut changed = map.len() != before;
                for nested in map.values_mut() {
                    changed |= self.prune(nested);
                }
                changed
            }
            serde_json::Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, item| self.prune(item) | changed),
            _ => false,
        }
    }

    /// The first exclude pattern that matches `name`: which rule dropped an attribute (tests).
    #[cfg(test)]
    fn excluded_by(&self, name: &str) -> Option<&str> {
        let stripped = strip_separators(name);
        self.exclude
            .iter()
            .find(|p| p.matches(name, &stripped))
            .map(|p| p.text.as_str())
    }

    /// The include patterns, trimmed, as configured (tests).
    #[cfg(test)]
    fn include_patterns(&self) -> impl Iterator<Item = &str> {
        self.include.iter().map(|p| p.text.as_str())
    }

    /// The exclude patterns, trimmed, including the defaults where they apply (tests).
    #[cfg(test)]
    fn exclude_patterns(&self) -> impl Iterator<Item = &str> {
        self.exclude.iter().map(|p| p.text.as_str())
    }
}

/// The fewest digits of a payment card number (ISO/IEC 7812 allows 8 to 19; issued cards in
/// practice have 13 or more).
const MIN_CARD_DIGITS: usize = 13;
/// The most digits of a payment card number (ISO/IEC 7812).
const MAX_CARD_DIGITS: usize = 19;
/// The digits left visible, as on a receipt (PCI DSS allows the last four).
const VISIBLE_DIGITS: usize = 4;
/// The most digits of an E.164 phone number (ITU-T E.164), which a run after `+` may have.
const MAX_E164_DIGITS: usize = 15;
/// The most separator characters between two digit groups of one typed number.
pub const MAX_SEPARATORS: usize = 3;
/// The length of a textual UUID (8-4-4-4-12).
const UUID_LEN: usize = 36;

/// Replaces card numbers in `text` by asterisks, except their last four digits.
///
/// A *digit run* is a maximal sequence of ASCII digits in which digit groups may be separated by
/// one to [`MAX_SEPARATORS`] separator characters (space, `.`, `-`, `/`, `_`, in any mix), as
/// people type `4111 1111 1111 1111`, `4111-1111-1111-1111`, `4111.1111.1111.1111` or
/// `4111 / 1111 / 1111 / 1111`. A newline, a tab or any other character ends a run, and so does
/// a `+`, which starts a new one.
/// A run is masked when some sequence of its whole groups has 13 to 19 digits and passes the
/// Luhn check; then every digit of the run except its last four becomes `*`, and separators
/// stay (`4111 1111 1111 1111` → `**** **** **** 1111`; `Order 12 4111 1111 1111 1111` →
/// `Order ** **** **** **** 1111`). So at most four digits of a run stay visible, whatever
/// surrounds the card number in it.
///
/// Left alone:
/// - runs with no such sequence: fewer than 13 digits (`15555550147`), one contiguous block
///   of more than 19, or no Luhn-valid sequence;
/// - a run right after `+` with at most 15 digits: an E.164 phone number (`+8613812345678`),
///   which can have 13 to 15. A longer run after `+` (`+4111111111111111`) is no phone number
///   and is checked like any other;
/// - a run glued to a letter on either side (`id4111…`, a Salesforce record id): an
///   identifier, not a typed number;
/// - UUIDs (`6f3c1c2e-…`, Amazon Connect ContactIds), even all-digit ones.
///
/// Borrows `text` (no allocation) when nothing is masked.
pub fn mask_card_numbers(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut masked: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let word_start = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if b.is_ascii_hexdigit() && word_start && is_uuid_at(bytes, i) {
            i += UUID_LEN;
            continue;
        }
        if !b.is_ascii_digit() {
            i += 1;
            continue;
        }
        let end = digit_run_end(bytes, i);
        let before = i.checked_sub(1).map(|k| bytes[k]);
        let after = bytes.get(end).copied();
        let glued = before.is_some_and(|c| c.is_ascii_alphabetic())
            || after.is_some_and(|c| c.is_ascii_alphabetic());
        let phone = before == Some(b'+') && digit_count(&bytes[i..end]) <= MAX_E164_DIGITS;
        if !glued && !phone && has_card_sequence(&bytes[i..end]) {
            let out = masked.get_or_insert_with(|| String::with_capacity(text.len()));
            // `i`, `copied` and `end` sit next to ASCII bytes, so they are char boundaries.
            out.push_str(&text[copied..i]);
            mask_run(&text[i..end], out);
            copied = end;
        }
        i = end;
    }
    match masked {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
    }
}

/// Whether a textual UUID (8-4-4-4-12 hex digits, either case) starts at `at` and is not
/// followed by another letter or digit.
fn is_uuid_at(bytes: &[u8], at: usize) -> bool {
    let Some(candidate) = bytes.get(at..at + UUID_LEN) else {
        return false;
    };
    let shaped = candidate.iter().enumerate().all(|(k, b)| match k {
        8 | 13 | 18 | 23 => *b == b'-',
        _ => b.is_ascii_hexdigit(),
    });
    shaped
        && !bytes
            .get(at + UUID_LEN)
            .is_some_and(u8::is_ascii_alphanumeric)
}

/// Whether `b` may separate the digit groups of a typed number (never a newline).
fn is_group_separator(b: u8) -> bool {
    matches!(b, b' ' | b'.' | b'-' | b'/' | b'_')
}

/// The end of the digit run starting at `start` (a digit): digit groups, separated by one to
/// [`MAX_SEPARATORS`] separator characters.
fn digit_run_end(bytes: &[u8], start: usize) -> usize {
    let mut end = start;
    loop {
        while bytes.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        let separators = bytes[end..]
            .iter()
            .take(MAX_SEPARATORS + 1)
            .take_while(|b| is_group_separator(**b))
            .count();
        let joined = (1..=MAX_SEPARATORS).contains(&separators)
            && bytes.get(end + separators).is_some_and(u8::is_ascii_digit);
        if !joined {
            return end;
        }
        end += separators;
    }
}

/// The number of ASCII digits in `bytes`.
fn digit_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| b.is_ascii_digit()).count()
}

/// Whether some sequence of whole digit groups of `run` has 13–19 digits and passes Luhn.
fn has_card_sequence(run: &[u8]) -> bool {
    if digit_count(run) < MIN_CARD_DIGITS {
        return false;
    }
    let mut first = 0;
    while first < run.len() {
        let mut digits = 0;
        let mut group = first;
        loop {
            let group_end = group + group_len(&run[group..]);
            digits += group_end - group;
            if digits > MAX_CARD_DIGITS {
                break;
            }
            if digits >= MIN_CARD_DIGITS && luhn_valid(&run[first..group_end]) {
                return true;
            }
            if group_end >= run.len() {
                break;
            }
            group = next_group(run, group_end);
        }
        first = next_group(run, first + group_len(&run[first..]));
    }
    false
}

/// Where the digit group after position `from` (a separator, or the end) of `run` starts.
fn next_group(run: &[u8], from: usize) -> usize {
    from + run[from..]
        .iter()
        .take_while(|b| !b.is_ascii_digit())
        .count()
}

/// The number of digits at the start of `bytes`.
fn group_len(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// The Luhn (mod 10) check over the ASCII digits of `digits`, ignoring separators.
fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for b in digits.iter().rev().filter(|b| b.is_ascii_digit()) {
        let mut d = u32::from(b - b'0');
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
    }
    sum.is_multiple_of(10)
}

/// Appends `run` to `out` with every digit but the last four replaced by `*`.
fn mask_run(run: &str, out: &mut String) {
    let total = run.bytes().filter(u8::is_ascii_digit).count();
    let mut seen = 0;
    for c in run.chars() {
        if c.is_ascii_digit() {
            seen += 1;
            out.push(if seen + VISIBLE_DIGITS > total {
                c
            } else {
                '*'
            });
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    // ---- AttributeFilter ----

    /// A ContactId in the middle of a text is an id, not a card number, even when its digits
    /// would pass as one.
    #[test]
    fn a_uuid_after_a_space_is_not_masked() {
        let id = "41111111-1111-1111-1111-111111111111";
        let text = format!("call {id} back");
        assert_eq!(mask_card_numbers(&text), text.as_str());
        let glued = format!("x{id}");
        assert_eq!(mask_card_numbers(&glued), glued.as_str(), "glued to a word");
    }

    #[test]
    fn filters_are_equal_only_with_the_same_includes_and_excludes() {
        let filter = |include: &[&str], exclude: &[&str]| {
            AttributeFilter::new(&strings(include), &strings(exclude)).unwrap()
        };
        assert_eq!(filter(&["a*"], &["b*"]), filter(&["a*"], &["b*"]));
        assert_ne!(filter(&["a*"], &["b*"]), filter(&["a*"], &["c*"]));
        assert_ne!(filter(&["a*"], &["b*"]), filter(&["c*"], &["b*"]));
    }

    #[test]
    fn decisions_are_remembered_up_to_a_bound() {
        let filter = AttributeFilter::default();
        let remembered = |f: &AttributeFilter| f.decided.lock().unwrap().len();
        assert!(filter.allows("intent"));
        assert_eq!(remembered(&filter), 1);
        for n in 0..MAX_REMEMBERED + 10 {
            filter.allows(&format!("attribute{n}"));
        }
        assert_eq!(remembered(&filter), MAX_REMEMBERED);
        assert!(
            filter.allows("attribute5000"),
            "a forgotten name is still decided"
        );
    }

    #[test]
    fn excluded_keys_are_removed_inside_arrays_of_every_item() {
        let filter = AttributeFilter::default();
        assert_eq!(
            filter.redact_value(r#"[{"cvv":"123","brand":"visa"},{"cvv":"456"}]"#),
            r#"[{"brand":"visa"},{}]"#
        );
        assert_eq!(
            filter.redact_value(r#"[{"cvv":"123"},{"brand":"visa"}]"#),
            r#"[{},{"brand":"visa"}]"#
        );
        let untouched = r#"[ {"brand":"visa"} ]"#;
        assert!(matches!(filter.redact_value(untouched), Cow::Borrowed(v) if v == untouched));
    }

    #[test]
    fn default_excludes_are_valid_patterns() {
        assert!(compile_all(DEFAULT_EXCLUDE.iter().copied(), PatternList::Exclude).is_ok());
        for pattern in DEFAULT_EXCLUDE {
            assert_eq!(
                *pattern,
                strip_separators(pattern),
                "defaults are written without separators"
            );
            assert_eq!(
                *pattern,
                pattern.to_ascii_lowercase(),
                "defaults are lower case"
            );
        }
    }

    #[test]
    fn default_filter_drops_sensitive_names() {
        let filter = AttributeFilter::default();
        for name in [
            // Card numbers.
            "cardNumber",
            "card_number",
            "Card-Number",
            "card.number",
            "Card Number",
            "CARDNUMBER",
            "creditCardNumber",
            "customer_card_no",
            "cardNo",
            "ccNumber",
            "cc_num",
            "ccn",
            "PAN",
            "pan_number",
            "cardPan",
            "primaryAccountNumber",
            "creditCard",
            "debit_card",
            "cardExpiry",
            "card_exp_date",
            // Security codes.
            "cvv",
            "CVV2",
            "cardCvv",
            "cvc",
            "cvn",
            "csc",
            "card_csc",
            "securityCode",
            "card_security_code",
            "cardVerificationValue",
            // PINs.
            "pin",
            "PIN",
            "pinCode",
            "pin_code",
            "customerPin",
            "atmPin",
            "atm-pin",
            "card_pin",
            "pinNumber",
            "userPIN",
            // Passwords, passcodes, OTPs, secrets.
            "password",
            "userPassword",
            "new_password",
            "passwd",
            "pwd",
            "userPwd",
            "passcode",
            "Passcode",
            "passphrase",
            "otp",
            "OTP",
            "smsOtp",
            "otp_code",
            "oneTimeCode",
            "verificationCode",
            "securityAnswer",
            "clientSecret",
            "authToken",
            "access_token",
            // Government identifiers.
            "ssn",
            "SSN",
            "customerSsn",
            "ssnLast4",
            "ssn_last_four",
            "socialSecurityNumber",
            "social_insurance_number",
            "sin",
            "SIN",
            "sinNumber",
            "nino",
            "NINO",
            "nationalInsuranceNumber",
            "nationalId",
            "national_identity_number",
            "taxId",
            "tax_id",
            "taxNumber",
            "taxpayerId",
            "tin",
            "passportNumber",
            "driversLicense",
            "driver_license_number",
            // Dates of birth.
            "dob",
            "DOB",
            "customerDob",
            "birthDate",
            "birth_date",
            "dateOfBirth",
            "date_of_birth",
            "birthday",
            // Bank accounts and routing numbers.
            "accountNumber",
            "account_number",
            "bankAccountNumber",
            "accountNo",
            "acctNo",
            "acct_num",
            "acctNumber",
            "accNo",
            "bankAccount",
            "iban",
            "IBAN",
            "customerIban",
            "routing",
            "routingNumber",
            "routing_no",
            "sortCode",
            "sort_code",
            "aba",
            "ABA",
            "abaNumber",
            "aba_routing",
        ] {
            assert!(
                !filter.allows(name),
                "{name} should be excluded (matched by {:?})",
                filter.excluded_by(name)
            );
        }
    }

    #[test]
    fn default_filter_keeps_harmless_names() {
        let filter = AttributeFilter::default();
        for name in [
            "intent",
            "language",
            "queueName",
            "shipping",
            "shippingAddress",
            "shipping_method",
            "spinner",
            "opinion",
            "pinned",
            "isPinned",
            "pineapple",
            "reason",
            "greetingPlayed",
            "VirtualAgentStatus",
            "ctrCasesCaseId",
            "caseId",
            "sfContactId",
            "contactId",
            "accountType",
            "accountId",
            "acctType",
            "routingProfile",
            "RoutingProfileName",
            "businessName",
            "companyName",
            "customerName",
            "description",
            "topic",
            "timeSpan",
            "japan",
            "abandoned",
            "database",
            "robot",
            "destination",
            "passengerCount",
            "callbackNumber",
            "orderNumber",
            "priority",
            "agentId",
            "channel",
        ] {
            assert!(
                filter.allows(name),
                "{name} should be kept (matched by {:?})",
                filter.excluded_by(name)
            );
        }
    }

    #[test]
    fn one_pattern_catches_every_separator_spelling() {
        for pattern in [
            "*card_number*",
            "*cardNumber*",
            "*card-number*",
            "*card number*",
        ] {
            let filter = AttributeFilter::new(&[], &strings(&[pattern])).unwrap();
            for name in [
                "card_number",
                "cardNumber",
                "Card-Number",
                "card.number",
                "Card Number",
                "customer_card_number_last4",
            ] {
                assert!(!filter.allows(name), "{pattern} should exclude {name}");
            }
            assert!(filter.allows("cardType"), "{pattern}");
        }
    }

    #[test]
    fn question_mark_matches_one_character_as_written() {
        let filter = AttributeFilter::new(&[], &strings(&["card?no"])).unwrap();
        assert!(!filter.allows("card_no"));
        assert!(!filter.allows("CARD-NO"));
        assert!(filter.allows("cardno"), "? needs one character");
        assert!(filter.allows("card__no"));
    }

    #[test]
    fn include_list_limits_names_and_exclude_wins() {
        let filter = AttributeFilter::with_default_excludes(
            &strings(&["customer*", "intent"]),
            &strings(&["customerNotes"]),
        )
        .unwrap();
        assert!(filter.allows("intent"));
        assert!(filter.allows("Intent"));
        assert!(filter.allows("customerType"));
        assert!(
            filter.allows("customer_type"),
            "include matches separator-free too"
        );
        assert!(!filter.allows("language"), "not included");
        assert!(
            !filter.allows("customerPin"),
            "included, but a default exclude"
        );
        assert!(!filter.allows("customer_notes"), "an extra exclude");
        assert_eq!(filter.excluded_by("customer_notes"), Some("customerNotes"));
        assert_eq!(filter.excluded_by("customerPin"), Some("*pin"));
        assert_eq!(filter.excluded_by("intent"), None);
    }

    #[test]
    fn new_does_not_add_the_defaults() {
        let everything = AttributeFilter::new(&[], &[]).unwrap();
        assert!(everything.allows("cardNumber"));
        assert_eq!(everything.exclude_patterns().count(), 0);
        let default = AttributeFilter::default();
        assert_eq!(default.exclude_patterns().count(), DEFAULT_EXCLUDE.len());
        assert_eq!(default.include_patterns().count(), 0);
    }

    #[test]
    fn star_excludes_everything() {
        let filter = AttributeFilter::new(&[], &strings(&["*"])).unwrap();
        assert!(!filter.allows("intent"));
        assert!(!filter.allows(""));
    }

    #[test]
    fn patterns_are_trimmed() {
        let filter = AttributeFilter::new(&strings(&["  intent "]), &[]).unwrap();
        assert!(filter.allows("intent"));
        assert_eq!(filter.include_patterns().collect::<Vec<_>>(), ["intent"]);
    }

    #[test]
    fn bad_patterns_are_reported_with_their_position() {
        let err = AttributeFilter::new(&strings(&["intent", " "]), &[]).unwrap_err();
        assert_eq!(
            err,
            PatternError::Empty {
                list: PatternList::Include,
                position: 2
            }
        );
        assert!(
            err.to_string().contains("include pattern 2 is empty"),
            "{err}"
        );

        let err = AttributeFilter::new(&[], &strings(&["_-."])).unwrap_err();
        assert!(matches!(
            err,
            PatternError::OnlySeparators {
                list: PatternList::Exclude,
                position: 1,
                ..
            }
        ));

        let err = AttributeFilter::new(&[], &strings(&["ok", "4111\u{0}x"])).unwrap_err();
        assert!(matches!(
            err,
            PatternError::ControlCharacter {
                list: PatternList::Exclude,
                position: 2
            }
        ));
        assert!(!err.to_string().contains("4111"), "{err}");

        let err = AttributeFilter::with_default_excludes(&[], &strings(&[""])).unwrap_err();
        assert!(matches!(err, PatternError::Empty { position: 1, .. }));
    }

    // ---- mask_card_numbers ----

    fn masked(text: &str) -> String {
        mask_card_numbers(text).into_owned()
    }

    fn unchanged(text: &str) {
        let out = mask_card_numbers(text);
        assert!(
            matches!(out, Cow::Borrowed(_)),
            "{text:?} should be left alone, got {out:?}"
        );
    }

    #[test]
    fn test_numbers_pass_luhn() {
        for card in [
            "4111111111111111",
            "378282246310005",
            "5555555555554444",
            "6011111111111117",
            "4222222222222",
            "3530111333300000",
            "4000000000000000006",
            "36227206271667",
        ] {
            assert!(luhn_valid(card.as_bytes()), "{card}");
        }
        assert!(!luhn_valid(b"4111111111111112"));
        assert!(luhn_valid(b"4111 1111-1111 1111"), "separators are skipped");
    }

    #[test]
    fn contiguous_card_numbers_keep_the_last_four() {
        assert_eq!(masked("4111111111111111"), "************1111");
        assert_eq!(masked("378282246310005"), "***********0005");
        assert_eq!(masked("4222222222222"), "*********2222");
        assert_eq!(masked("4000000000000000006"), "***************0006");
        assert_eq!(
            masked("my card is 5555555555554444, thanks"),
            "my card is ************4444, thanks"
        );
    }

    #[test]
    fn grouped_card_numbers_keep_their_separators() {
        assert_eq!(masked("4111 1111 1111 1111"), "**** **** **** 1111");
        assert_eq!(masked("4111-1111-1111-1111"), "****-****-****-1111");
        assert_eq!(masked("4111 1111-1111 1111"), "**** ****-**** 1111");
        assert_eq!(masked("3782 822463 10005"), "**** ****** *0005");
        assert_eq!(masked("(4111 1111 1111 1111)"), "(**** **** **** 1111)");
        assert_eq!(masked("4111111111111111-"), "************1111-");
    }

    // See: issue "A contact writes only its own Case", item 5.
    #[test]
    fn common_separators_and_short_separator_runs_join_groups() {
        assert_eq!(masked("4111.1111.1111.1111"), "****.****.****.1111");
        assert_eq!(masked("4111/1111/1111/1111"), "****/****/****/1111");
        assert_eq!(masked("4111_1111_1111_1111"), "****_****_****_1111");
        // Until the issue above, a double space split the run into 4 + 12 and left it alone.
        assert_eq!(masked("4111  1111 1111 1111"), "****  **** **** 1111");
        assert_eq!(
            masked("4111 - 1111 - 1111 - 1111"),
            "**** - **** - **** - 1111"
        );
        // Four separators, a newline or a tab end the run: the groups stand alone.
        unchanged("4111    1111    1111    1111");
        unchanged("4111\n1111\n1111\n1111");
        unchanged("4111\t1111\t1111\t1111");
    }

    #[test]
    fn a_run_after_plus_longer_than_e164_is_masked() {
        assert_eq!(masked("+4111111111111111"), "+************1111");
        assert_eq!(masked("+4111 1111 1111 1111"), "+**** **** **** 1111");
        // A phone number followed by a card number is one run of 27 digits: not a phone number.
        assert_eq!(
            masked("+1 555 555 0147 4111 1111 1111 1111"),
            "+* *** *** **** **** **** **** 1111"
        );
        // A + starts a run: digits before it do not join the phone number after it.
        unchanged("12 +8613812345678");
        unchanged("12+8613812345678");
    }

    #[test]
    fn every_card_in_a_text_is_masked_and_text_around_is_kept() {
        assert_eq!(
            masked("Karte: 4111 1111 1111 1111 – oder 6011111111111117 ✓"),
            "Karte: **** **** **** 1111 – oder ************1117 ✓"
        );
    }

    #[test]
    fn numbers_next_to_a_card_do_not_hide_it() {
        // The whole run is masked but its last four digits, so the card never shows.
        assert_eq!(
            masked("Order 12 4111 1111 1111 1111"),
            "Order ** **** **** **** 1111"
        );
        assert_eq!(
            masked("4111 1111 1111 1111 12 26"),
            "**** **** **** **** 12 26"
        );
    }

    #[test]
    fn non_luhn_and_short_runs_are_left_alone() {
        unchanged("4111111111111112");
        unchanged("4111 1111 1111 1112");
        unchanged("ref 411111111111"); // 12 digits
        unchanged("41111111111111111111"); // 20 contiguous digits
        unchanged("on 2024-03-12 at 10:15, 3 items");
        unchanged("");
        unchanged("no digits at all");
    }

    #[test]
    fn phone_numbers_are_left_alone() {
        unchanged("+15555550147");
        unchanged("call +1 555 555 0147 please");
        unchanged("5555550147");
        // 13 digits that happen to pass Luhn: the + makes it an E.164 phone number.
        assert!(luhn_valid(b"8613812345678"));
        unchanged("+8613812345678");
        assert_eq!(
            masked("8613812345678"),
            "*********5678",
            "without +, masked"
        );
    }

    #[test]
    fn contact_ids_and_record_ids_are_left_alone() {
        unchanged("6f3c1c2e-4b5a-4d3e-9a8b-1234567890ab");
        unchanged("contact 6F3C1C2E-4B5A-4D3E-9A8B-1234567890AB ended");
        // The tail "1234-567890123452" is a Luhn-valid 16-digit sequence; it is inside a UUID.
        assert!(luhn_valid(b"1234567890123452"));
        unchanged("abcdefab-cdef-abcd-1234-567890123452");
        // An all-digit UUID whose last two groups pass Luhn.
        assert!(luhn_valid(b"1234123456789011"));
        unchanged("12345678-1234-1234-1234-123456789011");
        // Glued to letters: part of an identifier (a Salesforce id here), not a typed number.
        assert!(luhn_valid(b"500500000012348"));
        unchanged("500500000012348AAQ");
        unchanged("id4111111111111111");
        unchanged("4111111111111111x");
        // Apart from letters by spaces, the same digits are a typed card number.
        assert_eq!(masked("x 4111111111111111 y"), "x ************1111 y");
    }

    /// A card number opening a long free text, where a UUID would end (36 bytes on) at a
    /// separator or at the end, is no UUID: only the UUID's shape exempts it.
    #[test]
    fn a_card_number_where_a_uuid_could_end_is_masked() {
        let text = "4111111111111111 please call me back!";
        assert_eq!(text.as_bytes()[36], b'!');
        assert_eq!(masked(text), "************1111 please call me back!");
        let text = "4111 1111 1111 1111 was charged once";
        assert_eq!(text.len(), 36);
        assert_eq!(masked(text), "**** **** **** 1111 was charged once");
    }

    /// `body` followed by the check digit that makes it pass Luhn.
    fn with_check_digit(body: &str) -> String {
        (0..10)
            .map(|d| format!("{body}{d}"))
            .find(|n| luhn_valid(n.as_bytes()))
            .expect("one of ten check digits passes")
    }

    fn group(number: &str, sep: Option<char>) -> String {
        let Some(sep) = sep else {
            return number.to_owned();
        };
        let mut out = String::new();
        for (i, c) in number.chars().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push(sep);
            }
            out.push(c);
        }
        out
    }

    proptest! {
        #[test]
        fn masking_changes_only_digits_to_stars(text in any::<String>()) {
            let out = mask_card_numbers(&text);
            prop_assert_eq!(out.len(), text.len());
            for (a, b) in text.bytes().zip(out.bytes()) {
                prop_assert!(a == b || (a.is_ascii_digit() && b == b'*'));
            }
            if out == text {
                prop_assert!(matches!(out, Cow::Borrowed(_)));
            }
        }

        #[test]
        fn masking_is_idempotent(text in "[0-9 a-f+./_\n-]{0,60}") {
            let once = mask_card_numbers(&text).into_owned();
            prop_assert_eq!(mask_card_numbers(&once).into_owned(), once.clone());
        }

        #[test]
        fn fewer_than_thirteen_digits_are_never_masked(text in "[0-9 a-z+-]{0,40}") {
            prop_assume!(text.bytes().filter(u8::is_ascii_digit).count() < MIN_CARD_DIGITS);
            prop_assert!(matches!(mask_card_numbers(&text), Cow::Borrowed(_)));
        }

        #[test]
        fn generated_cards_are_masked_anywhere(
            body in "[1-9][0-9]{11,17}",
            sep in prop::option::of(prop::sample::select(vec![' ', '-'])),
            before in "([a-z]{1,8}[ :,(])?",
            after in "([ .,)!][a-z ]{0,8})?",
        ) {
            let card = with_check_digit(&body);
            let shown = group(&card, sep);
            let text = format!("{before}{shown}{after}");
            let out = mask_card_numbers(&text).into_owned();
            let digits: String = out.chars().filter(|c| c.is_ascii_digit() || *c == '*').collect();
            let stars = card.len() - VISIBLE_DIGITS;
            prop_assert_eq!(&digits[..stars], "*".repeat(stars));
            prop_assert_eq!(&digits[stars..], &card[stars..]);
            prop_assert!(out.starts_with(&before) && out.ends_with(&after), "{}", out);
        }

        /// Cards of every length, with any of the separators (one to three, mixed) between any
        /// digits, are masked down to their last four digits.
        #[test]
        fn cards_with_any_separators_are_masked(
            body in "[1-9][0-9]{11,17}",
            gaps in prop::collection::vec(prop::option::of("[ ./_-]{1,3}"), 18),
            before in "([a-z]{1,8}[ :,(])?",
            after in "([ ,)!][a-z ]{0,8})?",
        ) {
            let card = with_check_digit(&body);
            let mut shown = String::new();
            for (i, digit) in card.chars().enumerate() {
                if i > 0 && let Some(gap) = &gaps[i - 1] {
                    shown.push_str(gap);
                }
                shown.push(digit);
            }
            let text = format!("{before}{shown}{after}");
            let out = mask_card_numbers(&text).into_owned();
            let digits: String = out.chars().filter(|c| c.is_ascii_digit() || *c == '*').collect();
            let stars = card.len() - VISIBLE_DIGITS;
            prop_assert_eq!(&digits[..stars], "*".repeat(stars), "{}", out);
            prop_assert_eq!(&digits[stars..], &card[stars..]);
            let kept: String = text.chars().filter(|c| !c.is_ascii_digit()).collect();
            let kept_out: String = out.chars().filter(|c| !c.is_ascii_digit() && *c != '*').collect();
            prop_assert_eq!(kept, kept_out);
        }

        /// A card after `+` is masked (it is longer than any E.164 number); a number of at most
        /// 15 digits after `+` is a phone number and stays, whatever separates its digits.
        #[test]
        fn plus_exempts_only_e164_lengths(
            card_body in "[1-9][0-9]{14,17}",
            phone in "[1-9]([ .-]?[0-9]){0,14}",
        ) {
            let card = with_check_digit(&card_body);
            let out = mask_card_numbers(&format!("+{card}")).into_owned();
            let stars = card.len() - VISIBLE_DIGITS;
            prop_assert_eq!(&out[1..=stars], "*".repeat(stars));
            prop_assert!(digit_count(phone.as_bytes()) <= MAX_E164_DIGITS);
            let text = format!("call +{phone} now");
            prop_assert!(matches!(mask_card_numbers(&text), Cow::Borrowed(_)), "{}", text);
        }

        /// More than three separators, or a newline anywhere in them, keep 4-digit groups apart.
        #[test]
        fn long_or_newline_gaps_do_not_join_groups(
            body in "[1-9][0-9]{14}",
            gap in prop::sample::select(vec!["    ", "\n", " \n", "-\n-", "./_- ", "\r\n"]),
        ) {
            let card = with_check_digit(&body);
            let groups: Vec<&str> = (0..4).map(|k| &card[4 * k..4 * k + 4]).collect();
            let text = groups.join(gap);
            prop_assert!(matches!(mask_card_numbers(&text), Cow::Borrowed(_)), "{:?}", text);
        }

        #[test]
        fn non_luhn_contiguous_numbers_are_left_alone(body in "[1-9][0-9]{11,17}") {
            let card = with_check_digit(&body);
            let last = card.as_bytes()[card.len() - 1] - b'0';
            let wrong = format!("{}{}", &card[..card.len() - 1], (last + 1) % 10);
            let text = format!("ref {wrong} end");
            prop_assert!(matches!(mask_card_numbers(&text), Cow::Borrowed(_)));
        }
    }
}
