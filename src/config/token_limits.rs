//! What an agent token may claim: service names, path prefixes and host patterns
//! (`[[agents.token]]`); a token without limits may claim anything free within the gateway's
//! own claim rules (`matching::claim_rules`, `[agents] hosts`).

use crate::{
    matching::{
        HostPattern,
        claim_rules::{HostRefusal, canonical_host, covers},
        normalize_prefix, strip_prefix,
    },
    wire::{Expose, Service},
};

/// The limits of one token; `None` means no limit of that kind.
#[derive(Debug, Clone, Default)]
pub struct TokenLimits {
    /// Service names it may register.
    pub names: Option<Vec<String>>,
    /// Path prefixes under which it may expose services.
    pub paths: Option<Vec<String>>,
    /// Host patterns its exposed hosts must fall under.
    pub hosts: Option<Vec<HostPattern>>,
    /// Whether the token's agents may connect out through the gateway's `[egress]`.
    pub egress: bool,
}

/// Why a token's limits refuse a claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// The token may not register a service of this name.
    #[error("this token may not register a service named {name:?} (allowed: {})", allowed.join(", "))]
    Name {
        /// The service's name.
        name: String,
        /// The names the token may register.
        allowed: Vec<String>,
    },
    /// The path lies under none of the token's prefixes.
    #[error("this token may not expose {path} (allowed: {})", allowed.join(", "))]
    Path {
        /// The path claimed, canonical.
        path: String,
        /// The token's prefixes.
        allowed: Vec<String>,
    },
    /// The host lies under none of the token's patterns.
    #[error("this token may not expose host {host} (allowed: {})", joined(allowed))]
    Host {
        /// The host claimed, canonical.
        host: HostPattern,
        /// The token's patterns.
        allowed: Vec<HostPattern>,
    },
    /// The path is not a path prefix.
    #[error("{0}")]
    BadPath(String),
    /// The host is no host name an agent may claim.
    #[error(transparent)]
    BadHost(#[from] HostRefusal),
}

impl TokenLimits {
    /// Whether a service may be registered with this token; why not, otherwise.
    pub fn allow(&self, service: &Service) -> Result<(), TokenRefusal> {
        if let Some(names) = self.names.as_ref().filter(|n| !n.contains(&service.name)) {
            return Err(TokenRefusal::Name {
                name: service.name.clone(),
                allowed: names.clone(),
            });
        }
        match &service.expose {
            Expose::Path(path) => self.allow_path(path),
            Expose::Host(host) => self.allow_host(host),
            Expose::Port(_) | Expose::Private(_) => Ok(()),
        }
    }

    fn allow_path(&self, path: &str) -> Result<(), TokenRefusal> {
        let Some(paths) = &self.paths else {
            return Ok(());
        };
        let path = normalize_prefix(path).map_err(TokenRefusal::BadPath)?;
        if paths
            .iter()
            .any(|prefix| strip_prefix(prefix, &path).is_some())
        {
            Ok(())
        } else {
            Err(TokenRefusal::Path {
                path,
                allowed: paths.clone(),
            })
        }
    }

    /// Whether the token's host patterns cover the host claim `host`; a wildcard claim must
    /// be covered whole (`*.a.office.example.com` under `*.office.example.com`).
    fn allow_host(&self, host: &str) -> Result<(), TokenRefusal> {
        let Some(hosts) = &self.hosts else {
            return Ok(());
        };
        let claim = canonical_host(host)?;
        if hosts.iter().any(|pattern| covers(pattern, &claim)) {
            Ok(())
        } else {
            Err(TokenRefusal::Host {
                host: claim,
                allowed: hosts.clone(),
            })
        }
    }
}

/// Host patterns as the refusal lists them.
fn joined(patterns: &[HostPattern]) -> String {
    let shown: Vec<String> = patterns.iter().map(ToString::to_string).collect();
    shown.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, expose: Expose) -> Service {
        Service {
            name: name.into(),
            local: "http://127.0.0.1:1".into(),
            expose,
        }
    }

    #[test]
    fn limits_hold_names_paths_and_hosts() {
        let limits = TokenLimits {
            names: Some(vec!["api".into(), "vnc".into()]),
            paths: Some(vec!["/office".into()]),
            hosts: Some(vec![HostPattern::parse("*.office.example.com").unwrap()]),
            egress: false,
        };
        assert!(
            limits
                .allow(&service("api", Expose::Path("/office/api".into())))
                .is_ok()
        );
        assert!(
            limits
                .allow(&service("api", Expose::Path("/office".into())))
                .is_ok()
        );
        assert!(
            limits
                .allow(&service("api", Expose::Path("/officer".into())))
                .is_err()
        );
        assert!(
            limits
                .allow(&service("db", Expose::Path("/office/db".into())))
                .is_err()
        );
        assert!(
            limits
                .allow(&service(
                    "vnc",
                    Expose::Host("vnc.office.example.com".into())
                ))
                .is_ok()
        );
        assert!(
            limits
                .allow(&service("vnc", Expose::Host("*.office.example.com".into())))
                .is_ok()
        );
        assert!(
            limits
                .allow(&service("vnc", Expose::Host("vnc.example.com".into())))
                .is_err()
        );
        assert!(
            limits
                .allow(&service(
                    "vnc",
                    Expose::Host("VNC.Office.example.com.".into())
                ))
                .is_ok(),
            "a host is compared canonical: lowercase, no trailing dot"
        );
        assert!(
            limits
                .allow(&service("vnc", Expose::Host("*.example.com".into())))
                .is_err(),
            "a wildcard around the allowed pattern"
        );
        let refused = limits.allow(&service("db", Expose::Path("/office/db".into())));
        let Err(TokenRefusal::Name { name, allowed }) = refused else {
            panic!("{refused:?}");
        };
        assert_eq!((name.as_str(), allowed.len()), ("db", 2));
        let refused = limits.allow(&service("api", Expose::Host("api.example.com".into())));
        assert_eq!(
            refused.unwrap_err().to_string(),
            "this token may not expose host api.example.com (allowed: *.office.example.com)"
        );
        assert!(
            TokenLimits::default()
                .allow(&service("any", Expose::Path("/".into())))
                .is_ok()
        );
    }
}
