//! What routes match on, in canonical form: host patterns, a request's authority, path
//! prefixes and the normalisation of request paths. Shared by the config (which checks what
//! it is given), the router and the tunnel's claim rules.

pub mod authority;
pub mod claim_rules;
pub mod path;

use std::fmt;

pub use authority::{Authority, HostError};
pub use path::{PathError, lenient_readings, normalize_path};

/// A host pattern: exact (`vnc.example.com`) or a wildcard (`*.example.com`), case-insensitive.
///
/// ```
/// use wsgate::matching::HostPattern;
/// let wild = HostPattern::parse("*.Example.com").unwrap();
/// assert!(wild.matches("a.example.com"));
/// assert!(!wild.matches("example.com"));
/// assert!(HostPattern::parse("vnc.example.com").unwrap().matches("VNC.example.com"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// The whole host name, lowercase.
    Exact(String),
    /// The suffix after `*`, lowercase, starting with a dot.
    Wildcard(String),
}

impl HostPattern {
    /// Parses a pattern from the config, in the canonical form requests are matched in:
    /// lowercase and one trailing dot dropped (`App.test.` is `app.test`, as a request's
    /// `Host: app.test.` is); labels may not be empty (`a..b`, `.a`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.to_ascii_lowercase();
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        let valid = |name: &str| {
            name.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        };
        match name.strip_prefix('*') {
            Some(suffix) if suffix.starts_with('.') && valid(&suffix[1..]) => {
                Ok(HostPattern::Wildcard(suffix.to_string()))
            }
            None if valid(name) => Ok(HostPattern::Exact(name.to_string())),
            _ => Err(format!(
                "expected a host name such as \"vnc.example.com\" or \"*.example.com\", found {text:?}"
            )),
        }
    }

    /// Whether a request's host (port already removed) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host.eq_ignore_ascii_case(name),
            HostPattern::Wildcard(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }

    /// Higher is more specific: exact beats any wildcard, a longer wildcard a shorter one.
    pub(crate) fn specificity(&self) -> usize {
        match self {
            HostPattern::Exact(_) => usize::MAX,
            HostPattern::Wildcard(suffix) => suffix.len(),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// A path prefix (from the config or an agent's claim) in canonical form: the form
/// [`normalize_path`] gives requests, so that the prefix can match them, without its trailing
/// `/` (except the root). A prefix written any other way (`/a//b`, `/%61dmin`, `/a/./b`) is
/// refused, naming the canonical form, rather than rewritten: a route means what is written.
///
/// ```
/// use wsgate::matching::normalize_prefix;
/// assert_eq!(normalize_prefix("/chat/").unwrap(), "/chat");
/// assert_eq!(normalize_prefix("/").unwrap(), "/");
/// assert!(normalize_prefix("/%61dmin").unwrap_err().contains("write \"/admin\""));
/// assert!(normalize_prefix("/a/../..").is_err());
/// ```
pub fn normalize_prefix(path: &str) -> Result<String, String> {
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return Err(format!(
            "expected a path starting with \"/\" and no query, found {path:?}"
        ));
    }
    let normal = normalize_path(path).map_err(|error| {
        format!("expected a path that requests can take, found {path:?}: {error}")
    })?;
    let canonical = trim_trailing_slashes(&normal);
    if canonical != trim_trailing_slashes(path) {
        return Err(format!(
            "expected a path in the canonical form requests are matched in, found {path:?}: \
             write {canonical:?}"
        ));
    }
    Ok(canonical.to_string())
}

/// `/a/` → `/a`; `///` → `/`.
fn trim_trailing_slashes(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    }
}

/// The rest of `path` after `prefix` if the prefix matches on a segment boundary.
///
/// ```
/// use wsgate::matching::strip_prefix;
/// assert_eq!(strip_prefix("/chat", "/chat/x"), Some("/x"));
/// assert_eq!(strip_prefix("/chat", "/chat"), Some(""));
/// assert_eq!(strip_prefix("/chat", "/chatter"), None);
/// assert_eq!(strip_prefix("/", "/any/thing"), Some("/any/thing"));
/// ```
pub fn strip_prefix<'p>(prefix: &str, path: &'p str) -> Option<&'p str> {
    if prefix == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}
