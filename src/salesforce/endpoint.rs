//! Where credentials and tokens may be sent: validated Salesforce login and instance URLs.
//!
//! Pure: no I/O, no environment, no clock. Configuration hands in the texts and the extra
//! allowed domains; this module only parses and decides.
//!
//! The rules (docs/deploy.md, "Configuration reference", `SALESFORCE_ALLOWED_HOSTS`):
//! - Credentials go only to a [`LoginUrl`]: `https` to a host in a Salesforce domain (or one
//!   the operator added with `SALESFORCE_ALLOWED_HOSTS`), on the default port, with nothing but
//!   scheme and host. Plain `http` only to the exact loopback hosts `127.0.0.1`, `[::1]` and
//!   `localhost` (a local fake org), on any port.
//! - The bearer token goes only to an [`InstanceUrl`]: the same https rules; or, when the login
//!   URL is a loopback fake, exactly the fake's own origin (scheme, host and port).
//!
//! URLs are parsed with the `url` crate (the WHATWG URL Standard, the parser reqwest uses
//! itself), never checked by string prefix: `http://127.0.0.1:1@127.0.0.2:2` has the host
//! `127.0.0.2`, and `https://login.salesforce.com.evil.example` starts with the right text.
//! What is checked is the *parsed* URL, which is what the HTTP client connects to. The parser
//! normalises some spellings before we look, and we accept what they normalise to:
//! - leading and trailing spaces and control characters are dropped, and tabs and newlines
//!   anywhere are removed;
//! - `\` counts as `/` in http(s) URLs, so `https://login.salesforce.com\@evil.example` is the
//!   host `login.salesforce.com` with the path `/@evil.example` (refused: it has a path);
//! - hosts are lower-cased, percent-decoded and IDNA-mapped, so `LOGIN.Salesforce.COM` is
//!   `login.salesforce.com`, and a Unicode look-alike such as `ѕalesforce.com` (Cyrillic `ѕ`)
//!   becomes a punycode `xn--…` label, which is not a Salesforce domain;
//! - IPv4 shorthand denotes the address it spells: `127.1` and `0x7f.0.0.1` are `127.0.0.1`
//!   (accepted for a loopback fake, since that is where the client connects), while
//!   `[::ffff:127.0.0.1]` (IPv4-mapped IPv6) and `127.0.0.2` are other addresses (refused).
//!
//! A host with a trailing dot (`login.salesforce.com.`) is refused: it names the same DNS
//! zone, but TLS name checks and Salesforce's own host routing treat it as a different name, so
//! it would at best fail later with a confusing error.
//!
//! Error messages never contain a password, a query string or a fragment: a URL is shown with
//! those parts replaced by `[redacted]`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// The Salesforce domains a login or instance host may be in: the host equals one of these or
/// ends with `.` and one of these.
///
/// Sources (looked up with the search tool; Salesforce's own help page on the domains to
/// allow, `help.salesforce.com` `xcloud.setup_domains.htm`, is not in the stored corpus, so the
/// list is cross-checked against code that Salesforce and its community maintain):
/// - `forcedotcom/sfdx-core`, `SfdcUrl.isSalesforceDomain`, citing Salesforce knowledge article
///   000003652: `.salesforce.com`, `.force.com` (with `.content.force.com`, `.secure.force.com`)
///   and `.cloudforce.com`;
/// - `forcedotcom/sfdx-core` pull request #1335: adds `.salesforce.mil`, the Government Cloud
///   Plus My Domains such as `https://acme.my.salesforce.mil`;
/// - the Salesforce Inspector browser extension's org-domain list: `salesforce.com`,
///   `cloudforce.com`, `salesforce.mil`, `sfcrmproducts.cn` (orgs on Alibaba Cloud, My Domains
///   `*.my.sfcrmproducts.cn`), `force.com`, plus Setup and content domains.
///
/// The Setup and content domains of that list (`salesforce-setup.com`, `visualforce.com`,
/// `sfcrmapps.cn`, `cloudforce.mil`, `crmforce.mil`, ...) are not login or instance hosts in
/// any of these sources, so they are left out; an operator who needs one adds it with
/// `SALESFORCE_ALLOWED_HOSTS`.
pub const SALESFORCE_DOMAINS: &[&str] = &[
    "salesforce.com",
    "force.com",
    "salesforce.mil",
    "cloudforce.com",
    "sfcrmproducts.cn",
];

/// The environment variable that extends [`SALESFORCE_DOMAINS`]; named in error messages.
pub const ALLOWED_HOSTS_VARIABLE: &str = "SALESFORCE_ALLOWED_HOSTS";

/// The longest domain name DNS allows, in bytes (RFC 1035, 2.3.4).
const MAX_DOMAIN_LEN: usize = 253;
/// The longest DNS label, in bytes (RFC 1035, 2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// Which URL an [`EndpointError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlRole {
    /// The OAuth login URL, where credentials are sent (`SALESFORCE_LOGIN_URL`).
    Login,
    /// The `instance_url` of a token answer, where the bearer token and the data are sent.
    Instance,
}

impl UrlRole {
    /// What to tell an operator about plain http for this role.
    fn http_hint(self) -> &'static str {
        match self {
            UrlRole::Login => {
                "plain http is accepted only for a local fake org at 127.0.0.1, [::1] or \
                 localhost; use https://login.salesforce.com, https://test.salesforce.com or \
                 your My Domain"
            }
            UrlRole::Instance => {
                "plain http is accepted only when the login URL is a local fake org and the \
                 instance is that same origin"
            }
        }
    }
}

impl fmt::Display for UrlRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlRole::Login => "the login URL (SALESFORCE_LOGIN_URL)",
            UrlRole::Instance => "the instance_url in Salesforce's token answer",
        })
    }
}

/// A part of a URL that a login or instance URL must not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlPart {
    /// A path other than `/`.
    Path,
    /// A `?query`.
    Query,
    /// A `#fragment`.
    Fragment,
}

impl fmt::Display for UrlPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlPart::Path => "path",
            UrlPart::Query => "query string",
            UrlPart::Fragment => "fragment",
        })
    }
}

/// Why a URL may not receive credentials or tokens, or why an allowed-domain entry is invalid.
///
/// Every message names the URL's role and says what to change. URLs in messages are redacted:
/// user info, query and fragment are shown as `[redacted]`, so a password never reaches a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The text does not parse as an absolute URL. The text itself is not repeated: it could
    /// hold a password.
    #[error(
        "{role} is not an absolute URL ({reason}); give scheme and host, such as \
         https://login.salesforce.com or https://acme.my.salesforce.com"
    )]
    NotAUrl {
        /// Which URL.
        role: UrlRole,
        /// What the URL parser objected to (it does not quote the input).
        reason: url::ParseError,
    },
    /// The scheme is not https (and the plain-http loopback exception does not apply).
    #[error("{role} {url} uses {scheme}:, but only https is allowed; {}", .role.http_hint())]
    NotHttps {
        /// Which URL.
        role: UrlRole,
        /// The URL, redacted.
        url: String,
        /// The scheme it uses.
        scheme: String,
    },
    /// The host is not in a Salesforce domain (nor in an operator-added one).
    #[error(
        "{role} has the host {host}, which is not in an allowed domain ({allowed}, or a \
         subdomain of one); if it is your org's own domain, add it to SALESFORCE_ALLOWED_HOSTS \
         (comma-separated domain names, e.g. crm.example.com or *.example.com)"
    )]
    HostNotAllowed {
        /// Which URL.
        role: UrlRole,
        /// The host as parsed (lower-case, punycode for international names, IP addresses in
        /// their canonical form).
        host: String,
        /// The allowed domains, comma-separated.
        allowed: String,
    },
    /// The host ends with a dot.
    #[error("{role} has the host {host}, which ends with a dot; remove the trailing dot")]
    TrailingDot {
        /// Which URL.
        role: UrlRole,
        /// The host as parsed.
        host: String,
    },
    /// The URL carries a user name or password before the host.
    #[error(
        "{role} {url} has a user name or password before the host; remove it (credentials \
         belong in the secret, never in a URL)"
    )]
    UserinfoPresent {
        /// Which URL, redacted.
        role: UrlRole,
        /// The URL, redacted.
        url: String,
    },
    /// An explicit port other than https's 443 on a Salesforce host.
    #[error(
        "{role} {url} names port {port}; Salesforce hosts are reached on the default https \
         port only, so remove :{port}"
    )]
    PortNotAllowed {
        /// Which URL.
        role: UrlRole,
        /// The URL, redacted.
        url: String,
        /// The port it names.
        port: u16,
    },
    /// The URL has a path, query or fragment.
    #[error(
        "{role} {url} has a {part}; give only scheme and host, such as \
         https://acme.my.salesforce.com (the client adds /services/... itself)"
    )]
    UnexpectedPart {
        /// Which URL.
        role: UrlRole,
        /// The URL, redacted.
        url: String,
        /// The part it should not have.
        part: UrlPart,
    },
    /// With a loopback (fake org) login URL, the instance URL is another origin.
    #[error(
        "the instance_url {instance} in the token answer is not the origin of the local fake \
         org's login URL {login}; a fake org must answer with its own scheme, host and port, \
         so that tests never leave this machine"
    )]
    OriginMismatch {
        /// The instance URL, redacted.
        instance: String,
        /// The login URL.
        login: String,
    },
    /// An entry of `SALESFORCE_ALLOWED_HOSTS` is not a domain name.
    #[error(
        "SALESFORCE_ALLOWED_HOSTS entry {entry} is not a domain name: {problem}; give bare \
         domain names such as crm.example.com, *.example.com or .example.com"
    )]
    InvalidAllowedHost {
        /// The entry, quoted (or a placeholder when it contains `@`, which could be a password).
        entry: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

/// The domains login and instance hosts may be in: [`SALESFORCE_DOMAINS`] plus the operator's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPolicy {
    /// Lower-case ASCII domains without a leading dot.
    domains: Vec<String>,
}

impl Default for HostPolicy {
    /// Only [`SALESFORCE_DOMAINS`].
    fn default() -> Self {
        HostPolicy {
            domains: SALESFORCE_DOMAINS.iter().map(|d| (*d).to_owned()).collect(),
        }
    }
}

impl HostPolicy {
    /// [`SALESFORCE_DOMAINS`] plus `extra` (the entries of `SALESFORCE_ALLOWED_HOSTS`).
    ///
    /// Each entry is trimmed and must be a domain name of at least two labels of letters,
    /// digits and inner hyphens (international names are accepted and stored as punycode),
    /// optionally written with a leading `*.` or `.`, which mean the same as the bare name: the
    /// domain and its subdomains. Blank entries (a stray comma) are skipped. Entries are
    /// compared case-insensitively.
    ///
    /// # Errors
    /// [`EndpointError::InvalidAllowedHost`] for the first entry with a scheme, a port, a path,
    /// user info, a wildcard anywhere but a leading `*.`, a trailing dot, a single label (`com`
    /// would allow every .com host), an IP address, or characters DNS does not allow.
    pub fn with_extra(extra: &[String]) -> Result<HostPolicy, EndpointError> {
        let mut policy = HostPolicy::default();
        for entry in extra {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let domain = normalise_allowed_domain(entry).map_err(|problem| {
                EndpointError::InvalidAllowedHost {
                    entry: quote_entry(entry),
                    problem,
                }
            })?;
            if !policy.domains.contains(&domain) {
                policy.domains.push(domain);
            }
        }
        Ok(policy)
    }

    /// Whether `host` (a DNS name, not an IP address) is one of the allowed domains or a
    /// subdomain of one. Case-insensitive; a trailing dot never matches.
    pub fn allows(&self, host: &str) -> bool {
        if host.is_empty() || host.ends_with('.') {
            return false;
        }
        self.domains.iter().any(|domain| {
            if host.len() == domain.len() {
                return host.eq_ignore_ascii_case(domain);
            }
            // `host` ends with "." + domain: compare the tail, then the dot before it.
            host.len() > domain.len()
                && host.is_char_boundary(host.len() - domain.len())
                && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
                && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
        })
    }

    /// The allowed domains, Salesforce's first.
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.domains.iter().map(String::as_str)
    }

    fn allowed_list(&self) -> String {
        self.domains.join(", ")
    }
}

/// Checks one `SALESFORCE_ALLOWED_HOSTS` entry (already trimmed, not empty) and returns it as a
/// lower-case ASCII domain without a leading dot.
fn normalise_allowed_domain(entry: &str) -> Result<String, &'static str> {
    if entry.contains("://") {
        return Err("it has a scheme (leave out https://)");
    }
    if entry.contains('@') {
        return Err("it has user info (an @)");
    }
    if entry.contains('/') || entry.contains('\\') {
        return Err("it has a path");
    }
    if entry.contains(':') || entry.contains('[') {
        return Err("it has a port or is an IPv6 address");
    }
    let name = entry
        .strip_prefix("*.")
        .or_else(|| entry.strip_prefix('.'))
        .unwrap_or(entry);
    if name.contains('*') {
        return Err("a wildcard is allowed only as a leading *.");
    }
    if name.ends_with('.') {
        return Err("it ends with a dot");
    }
    if !name.is_ascii() {
        // International names: the same IDNA mapping the URL parser applies to hosts, so the
        // entry compares equal to what a URL with that host parses to.
        return match Host::parse(name) {
            Ok(Host::Domain(ascii)) => check_dns_name(&ascii).map(|()| ascii),
            Ok(_) => Err("it is an IP address"),
            Err(_) => Err("it is not a valid international domain name"),
        };
    }
    let lower = name.to_ascii_lowercase();
    check_dns_name(&lower)?;
    Ok(lower)
}

/// Letters, digits and inner hyphens in 1–63 byte labels, at least two labels, at most 253
/// bytes, and a last label that is not all digits (that would be an IPv4 address).
fn check_dns_name(name: &str) -> Result<(), &'static str> {
    if name.len() > MAX_DOMAIN_LEN {
        return Err("it is longer than 253 characters");
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err("it is a single label; give at least a registered domain such as example.com");
    }
    for label in &labels {
        if label.is_empty() {
            return Err("it has an empty label (two dots in a row)");
        }
        if label.len() > MAX_LABEL_LEN {
            return Err("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("it has characters other than letters, digits, hyphens and dots");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label starts or ends with a hyphen");
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("it is an IP address");
    }
    Ok(())
}

/// An entry for an error message: quoted, unless it contains `@` (possibly `user:password@`).
fn quote_entry(entry: &str) -> String {
    if entry.contains('@') {
        "[an entry with @, not shown]".to_owned()
    } else {
        format!("{entry:?}")
    }
}

/// A URL for a message: scheme, host, port and path, with user info, query and fragment shown
/// only as `[redacted]`.
fn redact(url: &Url) -> String {
    let mut shown = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        shown.push_str("[redacted]@");
    }
    shown.push_str(url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    if url.query().is_some() {
        shown.push_str("?[redacted]");
    }
    if url.fragment().is_some() {
        shown.push_str("#[redacted]");
    }
    shown
}

/// Parses `text` and checks what every login or instance URL must satisfy: an http(s)
/// scheme, no user info, no path beyond `/`, no query, no fragment.
fn parse_origin_only(text: &str, role: UrlRole) -> Result<Url, EndpointError> {
    let url = Url::parse(text).map_err(|reason| EndpointError::NotAUrl { role, reason })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(EndpointError::NotHttps {
            role,
            url: redact(&url),
            scheme: url.scheme().to_owned(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointError::UserinfoPresent {
            role,
            url: redact(&url),
        });
    }
    let part = if url.query().is_some() {
        Some(UrlPart::Query)
    } else if url.fragment().is_some() {
        Some(UrlPart::Fragment)
    } else if !matches!(url.path(), "" | "/") {
        Some(UrlPart::Path)
    } else {
        None
    };
    if let Some(part) = part {
        return Err(EndpointError::UnexpectedPart {
            role,
            url: redact(&url),
            part,
        });
    }
    Ok(url)
}

/// The https rules: scheme https, a DNS host in an allowed domain, the default port.
fn check_https_salesforce(
    url: &Url,
    role: UrlRole,
    policy: &HostPolicy,
) -> Result<(), EndpointError> {
    if url.scheme() != "https" {
        return Err(EndpointError::NotHttps {
            role,
            url: redact(url),
            scheme: url.scheme().to_owned(),
        });
    }
    match url.host() {
        Some(Host::Domain(host)) if host.ends_with('.') => {
            return Err(EndpointError::TrailingDot {
                role,
                host: host.to_owned(),
            });
        }
        Some(Host::Domain(host)) if policy.allows(host) => {}
        // An IP address, or a domain outside the policy.
        _ => {
            return Err(EndpointError::HostNotAllowed {
                role,
                host: url.host_str().unwrap_or_default().to_owned(),
                allowed: policy.allowed_list(),
            });
        }
    }
    // `port()` is None for the scheme's default, so `:443` spelled out is accepted.
    if let Some(port) = url.port() {
        return Err(EndpointError::PortNotAllowed {
            role,
            url: redact(url),
            port,
        });
    }
    Ok(())
}

/// Whether the parsed host is exactly one of the loopback names a fake org may use.
fn is_loopback_host(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Ipv4(ip)) => ip == Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        Some(Host::Domain(name)) => name == "localhost",
        None => false,
    }
}

/// The URL's text without the trailing `/` the parser adds to an empty path.
fn without_trailing_slash(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// A login URL that may receive credentials: an https Salesforce host, or a loopback fake org.
///
/// ```
/// use ctr_cases::salesforce::endpoint::{HostPolicy, LoginUrl};
///
/// let policy = HostPolicy::default();
/// let login = LoginUrl::parse("https://acme.my.salesforce.com/", &policy).unwrap();
/// assert_eq!(login.as_str(), "https://acme.my.salesforce.com");
/// assert_eq!(
///     login.token_url().as_str(),
///     "https://acme.my.salesforce.com/services/oauth2/token"
/// );
/// assert!(LoginUrl::parse("http://127.0.0.1:1@127.0.0.2:2", &policy).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginUrl {
    url: Url,
    text: String,
    loopback: bool,
}

impl LoginUrl {
    /// Parses and checks a login URL (see the module docs for the rules).
    ///
    /// # Errors
    /// The [`EndpointError`] variant that says what is wrong: not a URL, user info, a path,
    /// query or fragment, not https, a host outside `policy`, a trailing dot, or a port.
    pub fn parse(text: &str, policy: &HostPolicy) -> Result<LoginUrl, EndpointError> {
        let role = UrlRole::Login;
        let url = parse_origin_only(text, role)?;
        let loopback = url.scheme() == "http" && is_loopback_host(url.host());
        if !loopback {
            check_https_salesforce(&url, role, policy)?;
        }
        Ok(LoginUrl {
            text: without_trailing_slash(&url),
            url,
            loopback,
        })
    }

    /// The URL without a trailing slash, e.g. `https://login.salesforce.com`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed URL (its path is `/`).
    pub fn as_url(&self) -> &Url {
        &self.url
    }

    /// The host, e.g. `login.salesforce.com`, `127.0.0.1` or `[::1]`.
    pub fn host_str(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The origin (scheme, host, port), for comparing with an instance URL.
    pub fn origin(&self) -> url::Origin {
        self.url.origin()
    }

    /// Whether this is a plain-http loopback fake org.
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }

    /// The OAuth token endpoint: `{login}/services/oauth2/token`.
    pub fn token_url(&self) -> Url {
        let mut url = self.url.clone();
        url.set_path("/services/oauth2/token");
        url
    }

    /// The default `aud` claim of a JWT bearer assertion for this login URL.
    ///
    /// Salesforce expects `https://test.salesforce.com` for sandboxes (`test.salesforce.com`
    /// and enhanced-domain sandbox My Domains, `*.sandbox.my.salesforce.com`) and
    /// `https://login.salesforce.com` for production, including production My Domains on
    /// salesforce.com (Salesforce's "OAuth 2.0 JWT Bearer Flow for
    /// Server-to-Server Integration" help page; the same split as `SfdcUrl.getJwtAudienceUrl`
    /// in forcedotcom/sfdx-core). Any other host (an Experience Cloud site on force.com, a
    /// Government Cloud or operator-added domain, a loopback fake) is its own audience, as in
    /// the `client::default_jwt_audience` this replaces; `SALESFORCE_JWT_AUDIENCE` overrides
    /// it where that is wrong.
    pub fn jwt_audience(&self) -> String {
        let host = self.host_str();
        let on_salesforce_com = host == "salesforce.com" || host.ends_with(".salesforce.com");
        if host == "test.salesforce.com" || host.ends_with(".sandbox.my.salesforce.com") {
            "https://test.salesforce.com".to_owned()
        } else if !self.loopback && on_salesforce_com {
            "https://login.salesforce.com".to_owned()
        } else {
            self.text.clone()
        }
    }
}

impl fmt::Display for LoginUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An instance URL (from a token answer) that may receive the bearer token and Case data.
///
/// ```
/// use ctr_cases::salesforce::endpoint::{HostPolicy, InstanceUrl, LoginUrl};
///
/// let policy = HostPolicy::default();
/// let login = LoginUrl::parse("https://login.salesforce.com", &policy).unwrap();
/// let instance = InstanceUrl::parse("https://acme.my.salesforce.com", &login, &policy).unwrap();
/// assert_eq!(
///     instance.join("/services/data/v62.0/limits"),
///     "https://acme.my.salesforce.com/services/data/v62.0/limits"
/// );
/// assert!(InstanceUrl::parse("https://evil.example", &login, &policy).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceUrl {
    url: Url,
    text: String,
}

impl InstanceUrl {
    /// Parses and checks the `instance_url` of a token answer obtained from `login`.
    ///
    /// With an https login URL the instance must pass the same https rules (any allowed host:
    /// a production login answers with the org's My Domain). With a loopback fake login URL it
    /// must be exactly the fake's origin; an https Salesforce instance is refused too, so a
    /// fake can never send a test to the real network.
    ///
    /// # Errors
    /// The [`EndpointError`] variant that says what is wrong; [`EndpointError::OriginMismatch`]
    /// for a loopback login whose instance is any other origin.
    pub fn parse(
        text: &str,
        login: &LoginUrl,
        policy: &HostPolicy,
    ) -> Result<InstanceUrl, EndpointError> {
        let role = UrlRole::Instance;
        let url = parse_origin_only(text, role)?;
        if login.is_loopback() {
            if url.origin() != login.origin() {
                return Err(EndpointError::OriginMismatch {
                    instance: redact(&url),
                    login: login.as_str().to_owned(),
                });
            }
        } else {
            check_https_salesforce(&url, role, policy)?;
        }
        Ok(InstanceUrl {
            text: without_trailing_slash(&url),
            url,
        })
    }

    /// The URL without a trailing slash, e.g. `https://acme.my.salesforce.com`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed URL (its path is `/`).
    pub fn as_url(&self) -> &Url {
        &self.url
    }

    /// The origin (scheme, host, port).
    pub fn origin(&self) -> url::Origin {
        self.url.origin()
    }

    /// A data URL on this instance: `path` should start with `/services/data/`. Whatever it
    /// is, the result stays on this origin: a missing leading `/` is added, so a path such as
    /// `@evil.example/x` cannot turn into user info and move the request to another host.
    pub fn join(&self, path: &str) -> String {
        let mut joined = String::with_capacity(self.text.len() + path.len() + 1);
        joined.push_str(&self.text);
        if !path.starts_with('/') {
            joined.push('/');
        }
        joined.push_str(path);
        joined
    }
}

impl fmt::Display for InstanceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HostPolicy {
        HostPolicy::default()
    }

    fn login(text: &str) -> Result<LoginUrl, EndpointError> {
        LoginUrl::parse(text, &policy())
    }

    fn ok_login(text: &str) -> LoginUrl {
        login(text).unwrap_or_else(|e| panic!("{text:?} should be accepted: {e}"))
    }

    fn instance(text: &str, login_text: &str) -> Result<InstanceUrl, EndpointError> {
        InstanceUrl::parse(text, &ok_login(login_text), &policy())
    }

    fn host_not_allowed(result: Result<LoginUrl, EndpointError>) -> String {
        match result {
            Err(EndpointError::HostNotAllowed { host, .. }) => host,
            other => panic!("expected HostNotAllowed, got {other:?}"),
        }
    }

    // ---- HostPolicy ----

    #[test]
    fn salesforce_hosts_and_subdomains_are_allowed() {
        let p = policy();
        for host in [
            "salesforce.com",
            "login.salesforce.com",
            "test.salesforce.com",
            "acme.my.salesforce.com",
            "acme--uat.sandbox.my.salesforce.com",
            "acme.lightning.force.com",
            "acme.my.salesforce.mil",
            "acme.my.sfcrmproducts.cn",
            "demo.cloudforce.com",
            "LOGIN.SALESFORCE.COM",
        ] {
            assert!(p.allows(host), "{host}");
        }
    }

    #[test]
    fn look_alike_hosts_are_not_allowed() {
        let p = policy();
        for host in [
            "salesforce.com.evil.example",
            "login.salesforce.com.evil.example",
            "evilsalesforce.com",
            "salesforce.co",
            "salesforcecom",
            "xn--salesforce-9kb.com",
            "login.salesforce.com.",
            "127.0.0.1",
            "",
            ".",
            "com",
            "force.com.cn",
        ] {
            assert!(!p.allows(host), "{host}");
        }
    }

    #[test]
    fn extra_domains_are_normalised_and_matched() {
        let extra = [
            " CRM.Example.com ".to_owned(),
            "*.corp.example".to_owned(),
            ".partner.example".to_owned(),
            String::new(),
            "  ".to_owned(),
            "crm.example.com".to_owned(),
        ];
        let p = HostPolicy::with_extra(&extra).unwrap();
        assert!(p.allows("crm.example.com"));
        assert!(p.allows("sso.crm.example.com"));
        assert!(p.allows("corp.example"), "*.x means x and its subdomains");
        assert!(p.allows("a.b.corp.example"));
        assert!(p.allows("partner.example"));
        assert!(!p.allows("example.com"));
        assert!(!p.allows("evilcorp.example"));
        assert!(p.allows("login.salesforce.com"), "the defaults stay");
        assert_eq!(
            p.domains().filter(|d| *d == "crm.example.com").count(),
            1,
            "duplicates are kept once"
        );
    }

    #[test]
    fn extra_international_domain_is_stored_as_punycode() {
        let p = HostPolicy::with_extra(&["bücher.example".to_owned()]).unwrap();
        assert!(p.allows("xn--bcher-kva.example"));
        assert!(p.allows("crm.xn--bcher-kva.example"));
        let login = LoginUrl::parse("https://crm.bücher.example", &p).unwrap();
        assert_eq!(login.host_str(), "crm.xn--bcher-kva.example");
    }

    #[test]
    fn invalid_extra_domains_are_refused_with_the_reason() {
        for (entry, fragment) in [
            ("https://crm.example.com", "scheme"),
            ("crm.example.com:8443", "port"),
            ("crm.example.com/path", "path"),
            ("*crm.example.com", "wildcard"),
            ("crm.*.example.com", "wildcard"),
            ("*.*.example.com", "wildcard"),
            ("com", "single label"),
            ("*.com", "single label"),
            ("crm.example.com.", "dot"),
            ("10.0.0.1", "IP address"),
            ("[::1]", "IPv6"),
            ("crm..example.com", "empty label"),
            ("crm_example.com", "characters"),
            ("-crm.example.com", "hyphen"),
        ] {
            let err = HostPolicy::with_extra(&[entry.to_owned()]).unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, EndpointError::InvalidAllowedHost { .. }),
                "{entry}: {err:?}"
            );
            assert!(text.contains(fragment), "{entry}: {text}");
            assert!(text.contains(ALLOWED_HOSTS_VARIABLE), "{text}");
        }
    }

    #[test]
    fn invalid_extra_domain_with_password_is_not_echoed() {
        let err = HostPolicy::with_extra(&["https://user:hunter2@crm.example.com".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("scheme"), "{err}");
    }

    // ---- LoginUrl: accepted forms ----

    #[test]
    fn https_salesforce_login_urls_are_accepted_and_trimmed() {
        for (text, shown) in [
            (
                "https://login.salesforce.com",
                "https://login.salesforce.com",
            ),
            (
                "https://login.salesforce.com/",
                "https://login.salesforce.com",
            ),
            ("https://test.salesforce.com", "https://test.salesforce.com"),
            (
                "https://acme.my.salesforce.com/",
                "https://acme.my.salesforce.com",
            ),
            (
                "https://acme--uat.sandbox.my.salesforce.com",
                "https://acme--uat.sandbox.my.salesforce.com",
            ),
            (
                "https://login.salesforce.com:443",
                "https://login.salesforce.com",
            ),
            (
                "HTTPS://LOGIN.SalesForce.COM",
                "https://login.salesforce.com",
            ),
        ] {
            let login = ok_login(text);
            assert_eq!(login.as_str(), shown, "{text}");
            assert_eq!(login.to_string(), shown);
            assert!(!login.is_loopback());
        }
    }

    #[test]
    fn token_url_is_under_the_login_host() {
        assert_eq!(
            ok_login("https://acme.my.salesforce.com/")
                .token_url()
                .as_str(),
            "https://acme.my.salesforce.com/services/oauth2/token"
        );
        assert_eq!(
            ok_login("http://127.0.0.1:8080").token_url().as_str(),
            "http://127.0.0.1:8080/services/oauth2/token"
        );
    }

    /// The cases of the old `client::default_jwt_audience`, which this replaces.
    #[test]
    fn jwt_audience_follows_login_host() {
        for (text, audience) in [
            (
                "https://login.salesforce.com",
                "https://login.salesforce.com",
            ),
            (
                "https://acme.my.salesforce.com/",
                "https://login.salesforce.com",
            ),
            (
                "https://acme--uat.sandbox.my.salesforce.com",
                "https://test.salesforce.com",
            ),
            ("https://test.salesforce.com", "https://test.salesforce.com"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            (
                "https://acme.my.site.force.com",
                "https://acme.my.site.force.com",
            ),
            (
                "https://acme.my.salesforce.mil",
                "https://acme.my.salesforce.mil",
            ),
            ("http://localhost:9000", "http://localhost:9000"),
        ] {
            assert_eq!(ok_login(text).jwt_audience(), audience, "{text}");
        }
    }

    #[test]
    fn url_normalisations_are_judged_after_parsing() {
        // Spaces around, tabs and newlines inside, and percent-escapes in the host are
        // removed by the parser: the client connects to login.salesforce.com.
        for text in [
            "  https://login.salesforce.com  ",
            "\thttps://login.sales\tforce.com\n",
            "https://login.sales\nforce.com",
            "https://login%2Esalesforce.com",
            "https:\\\\login.salesforce.com",
            "https://login\u{FF0E}salesforce\u{FF0E}com",
        ] {
            assert_eq!(
                ok_login(text).host_str(),
                "login.salesforce.com",
                "{text:?}"
            );
        }
    }

    // ---- LoginUrl: the tricks ----

    #[test]
    fn userinfo_tricks_are_refused() {
        for text in [
            "https://login.salesforce.com@evil.example",
            "https://login.salesforce.com:443@evil.example",
            "https://user:pw@login.salesforce.com",
            "http://127.0.0.1:1@127.0.0.2:2",
            "http://127.0.0.1@evil.example",
            "https://login.salesforce.com%2f@evil.example",
        ] {
            assert!(
                matches!(login(text), Err(EndpointError::UserinfoPresent { .. })),
                "{text}: {:?}",
                login(text)
            );
        }
    }

    #[test]
    fn userinfo_password_is_redacted_in_the_message() {
        let err = login("https://admin:s3cr3t-pw@login.salesforce.com/?sid=00Dtoken#frag")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
        assert!(!err.contains("admin"), "{err}");
        assert!(!err.contains("00Dtoken"), "{err}");
        assert!(err.contains("[redacted]@login.salesforce.com"), "{err}");
    }

    #[test]
    fn unparseable_text_is_not_echoed() {
        let err = login("https://user:s3cr3t@[not-an-ip").unwrap_err();
        assert!(matches!(err, EndpointError::NotAUrl { .. }), "{err:?}");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        for text in [
            "",
            "login.salesforce.com",
            "https://",
            "//login.salesforce.com",
        ] {
            assert!(
                matches!(login(text), Err(EndpointError::NotAUrl { .. })),
                "{text:?}"
            );
        }
    }

    #[test]
    fn look_alike_login_hosts_are_refused() {
        assert_eq!(
            host_not_allowed(login("https://login.salesforce.com.evil.example")),
            "login.salesforce.com.evil.example"
        );
        assert_eq!(
            host_not_allowed(login("https://evilsalesforce.com")),
            "evilsalesforce.com"
        );
        // Cyrillic "ѕ" (U+0455) and Greek omicron: the parser turns them into punycode.
        let cyrillic = host_not_allowed(login("https://login.\u{0455}alesforce.com"));
        assert!(cyrillic.starts_with("login.xn--"), "{cyrillic}");
        let greek = host_not_allowed(login("https://login.salesf\u{03BF}rce.com"));
        assert!(greek.starts_with("login.xn--"), "{greek}");
        // Spelled as punycode directly.
        assert!(matches!(
            login("https://xn--lgin-salesforce-ijb.com"),
            Err(EndpointError::HostNotAllowed { .. })
        ));
        // The backslash ends the host: login.salesforce.com with a path, not evil.example.
        assert!(matches!(
            login("https://login.salesforce.com\\@evil.example"),
            Err(EndpointError::UnexpectedPart {
                part: UrlPart::Path,
                ..
            })
        ));
        let text = "https://evil.example\\.salesforce.com";
        assert_eq!(Url::parse(text).unwrap().host_str(), Some("evil.example"));
        assert!(login(text).is_err());
    }

    #[test]
    fn host_not_allowed_names_the_host_and_the_variable() {
        let err = login("https://crm.example.com").unwrap_err().to_string();
        assert!(err.contains("crm.example.com"), "{err}");
        assert!(err.contains(ALLOWED_HOSTS_VARIABLE), "{err}");
        assert!(err.contains("salesforce.com"), "{err}");
        let extended = HostPolicy::with_extra(&["crm.example.com".to_owned()]).unwrap();
        assert!(LoginUrl::parse("https://crm.example.com", &extended).is_ok());
    }

    #[test]
    fn trailing_dot_host_is_refused() {
        assert!(matches!(
            login("https://login.salesforce.com."),
            Err(EndpointError::TrailingDot { .. })
        ));
        assert!(matches!(
            login("http://localhost.:8080"),
            Err(EndpointError::NotHttps { .. })
        ));
    }

    #[test]
    fn ip_address_https_hosts_are_refused() {
        for text in [
            "https://127.0.0.1",
            "https://[::1]",
            "https://13.108.0.1",
            "https://0x7f.0.0.1",
        ] {
            assert!(
                matches!(login(text), Err(EndpointError::HostNotAllowed { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn explicit_ports_on_salesforce_hosts_are_refused() {
        for (text, port) in [
            ("https://login.salesforce.com:8443", 8443),
            ("https://login.salesforce.com:80", 80),
            ("https://login.salesforce.com:0", 0),
        ] {
            match login(text) {
                Err(EndpointError::PortNotAllowed { port: p, .. }) => assert_eq!(p, port),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn paths_queries_and_fragments_are_refused() {
        for (text, part) in [
            (
                "https://login.salesforce.com/services/oauth2/token",
                UrlPart::Path,
            ),
            ("https://login.salesforce.com/x/", UrlPart::Path),
            ("https://login.salesforce.com?x=1", UrlPart::Query),
            ("https://login.salesforce.com/?", UrlPart::Query),
            ("https://login.salesforce.com#top", UrlPart::Fragment),
            ("http://127.0.0.1:8080/fake", UrlPart::Path),
        ] {
            match login(text) {
                Err(EndpointError::UnexpectedPart { part: p, .. }) => assert_eq!(p, part),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn plain_http_is_refused_outside_exact_loopback() {
        for text in [
            "http://login.salesforce.com",
            "http://127.0.0.2",
            "http://127.0.0.2:8080",
            "http://localhost.evil.example",
            "http://localhost.",
            "http://0.0.0.0:8080",
            "http://[::ffff:127.0.0.1]",
            "http://[::ffff:127.0.0.2]",
            "http://[::2]",
            "http://10.0.0.1",
            "ftp://login.salesforce.com",
            "file:///etc/passwd",
            "ws://127.0.0.1:8080",
        ] {
            assert!(
                matches!(login(text), Err(EndpointError::NotHttps { .. })),
                "{text}: {:?}",
                login(text)
            );
        }
        let err = login("http://login.salesforce.com")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("127.0.0.1"),
            "the message explains the exception: {err}"
        );
    }

    #[test]
    fn exact_loopback_http_is_a_fake_org() {
        for (text, shown) in [
            ("http://127.0.0.1", "http://127.0.0.1"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            ("http://[::1]:9000", "http://[::1]:9000"),
            ("http://[0:0:0:0:0:0:0:1]", "http://[::1]"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("http://LOCALHOST:3000", "http://localhost:3000"),
            // IPv4 shorthand and hex spell 127.0.0.1 itself: that is where the client goes.
            ("http://127.1:8080", "http://127.0.0.1:8080"),
            ("http://0x7f.0.0.1", "http://127.0.0.1"),
            ("http://2130706433", "http://127.0.0.1"),
            ("http://127.0.0.1.:8080", "http://127.0.0.1:8080"),
        ] {
            let login = ok_login(text);
            assert!(login.is_loopback(), "{text}");
            assert_eq!(login.as_str(), shown, "{text}");
        }
    }

    // ---- InstanceUrl ----

    #[test]
    fn instance_on_salesforce_is_accepted_for_https_login() {
        let i = instance(
            "https://acme.my.salesforce.com/",
            "https://login.salesforce.com",
        )
        .unwrap();
        assert_eq!(i.as_str(), "https://acme.my.salesforce.com");
        assert_eq!(i.to_string(), "https://acme.my.salesforce.com");
        let sandbox = instance(
            "https://acme--uat.sandbox.my.salesforce.com",
            "https://test.salesforce.com",
        );
        assert!(sandbox.is_ok());
    }

    #[test]
    fn instance_on_another_host_is_refused() {
        for text in [
            "https://evil.example",
            "https://acme.my.salesforce.com.evil.example",
            "https://evilsalesforce.com",
            "https://13.108.0.1",
        ] {
            assert!(
                matches!(
                    instance(text, "https://login.salesforce.com"),
                    Err(EndpointError::HostNotAllowed {
                        role: UrlRole::Instance,
                        ..
                    })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn instance_tricks_are_refused_for_https_login() {
        let login_text = "https://login.salesforce.com";
        assert!(matches!(
            instance("http://acme.my.salesforce.com", login_text),
            Err(EndpointError::NotHttps { .. })
        ));
        assert!(matches!(
            instance("http://127.0.0.1:8080", login_text),
            Err(EndpointError::NotHttps { .. })
        ));
        assert!(matches!(
            instance("https://acme.my.salesforce.com:8443", login_text),
            Err(EndpointError::PortNotAllowed { .. })
        ));
        assert!(matches!(
            instance("https://acme.my.salesforce.com@evil.example", login_text),
            Err(EndpointError::UserinfoPresent { .. })
        ));
        assert!(matches!(
            instance("https://acme.my.salesforce.com/services/data", login_text),
            Err(EndpointError::UnexpectedPart { .. })
        ));
        assert!(matches!(
            instance("https://acme.my.salesforce.com.", login_text),
            Err(EndpointError::TrailingDot { .. })
        ));
        assert!(matches!(
            instance("yourorg.my.salesforce.com", login_text),
            Err(EndpointError::NotAUrl { .. })
        ));
    }

    #[test]
    fn loopback_login_requires_the_same_origin() {
        let fake = "http://127.0.0.1:8080";
        let same = instance("http://127.0.0.1:8080/", fake).unwrap();
        assert_eq!(same.as_str(), "http://127.0.0.1:8080");
        for other in [
            "http://127.0.0.1:8081",
            "http://127.0.0.1",
            "http://127.0.0.2:8080",
            "http://localhost:8080",
            "http://[::1]:8080",
            "https://127.0.0.1:8080",
            "https://acme.my.salesforce.com",
            "https://login.salesforce.com",
        ] {
            assert!(
                matches!(
                    instance(other, fake),
                    Err(EndpointError::OriginMismatch { .. })
                ),
                "{other}: {:?}",
                instance(other, fake)
            );
        }
        // The generic rules still apply first.
        assert!(matches!(
            instance("http://x:y@127.0.0.1:8080", fake),
            Err(EndpointError::UserinfoPresent { .. })
        ));
    }

    #[test]
    fn join_builds_data_urls_on_the_instance() {
        let i = instance(
            "https://acme.my.salesforce.com",
            "https://login.salesforce.com",
        )
        .unwrap();
        assert_eq!(
            i.join("/services/data/v62.0/composite/sobjects/Case/ContactId__c"),
            "https://acme.my.salesforce.com/services/data/v62.0/composite/sobjects/Case/ContactId__c"
        );
        let fake = instance("http://[::1]:9000", "http://[::1]:9000").unwrap();
        assert_eq!(
            fake.join("/services/data/v62.0/limits"),
            "http://[::1]:9000/services/data/v62.0/limits"
        );
    }

    #[test]
    fn join_never_leaves_the_instance_origin() {
        let i = instance(
            "https://acme.my.salesforce.com",
            "https://login.salesforce.com",
        )
        .unwrap();
        for path in [
            "@evil.example/services/data/v62.0",
            ":pw@evil.example/",
            "//evil.example/services/data",
            "\\\\evil.example/services/data",
            ".evil.example/services/data",
            "",
        ] {
            let joined = Url::parse(&i.join(path)).unwrap();
            assert_eq!(joined.origin(), i.origin(), "{path:?} gave {joined}");
            assert_eq!(joined.username(), "", "{path:?}");
        }
    }
}
