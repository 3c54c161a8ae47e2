//! Secrets (agents' tokens, private-service secrets): compared in constant time, never
//! printed, and warned about when their files are readable by others.

pub mod file;

use std::fmt;

/// A token or secret: never printed, compared in constant time.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(text: impl Into<String>) -> Self {
        Secret(text.into())
    }

    /// Whether `offered` is this secret; the time taken does not depend on where they differ.
    pub fn matches(&self, offered: &str) -> bool {
        let (ours, theirs) = (self.0.as_bytes(), offered.as_bytes());
        let differ = ours
            .iter()
            .zip(theirs)
            .fold(ours.len() ^ theirs.len(), |acc, (a, b)| {
                acc | usize::from(a ^ b)
            });
        differ == 0
    }

    /// A fresh random token: 32 characters from 192 bits of the crypto provider's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 24];
        rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut bytes)
            .expect("the system's random source works");
        use base64::Engine;
        Secret(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The secret itself, to send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole_and_never_print() {
        let secret = Secret::new("s3cret");
        assert!(secret.matches("s3cret"));
        assert!(!secret.matches("s3cre"));
        assert!(!secret.matches("s3cret!"));
        assert!(!secret.matches("S3cret"));
        assert_eq!(format!("{secret:?}"), "<redacted>");
    }
}
