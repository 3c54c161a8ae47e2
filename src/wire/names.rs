//! The names agents give, their own and their services': a length limit and a character set,
//! checked by the agent before it dials and by the gateway at the hello and at registration.
//! A name reaches logs, route names and error messages, so it must be short and inert.

/// The longest name, in bytes (all its characters are ASCII).
pub(crate) const MAX_NAME_BYTES: usize = 64;

/// The rule, as refusals state it.
pub const NAME_RULE: &str = "1-64 characters of A-Z a-z 0-9 - _ .";

/// Whether `c` may appear in a name.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Checks a name of kind `what` (`agent`, `service`): why not, in a sentence that does not
/// repeat the name.
///
/// ```
/// use wsgate::wire::names::check;
/// assert!(check("agent", "office-2.lan").is_ok());
/// assert_eq!(
///     check("agent", "evil\nname").unwrap_err(),
///     "agent name must be 1-64 characters of A-Z a-z 0-9 - _ ."
/// );
/// ```
pub fn check(what: &str, name: &str) -> Result<(), String> {
    if !name.is_empty() && name.len() <= MAX_NAME_BYTES && name.chars().all(allowed) {
        Ok(())
    } else {
        Err(format!("{what} name must be {NAME_RULE}"))
    }
}

/// `text` made into a name: characters outside the set become `-`, it is cut to
/// [`MAX_NAME_BYTES`], and an empty result is `fallback`. For names the agent derives (its
/// host name, a service's path), which must not make it fail.
pub(crate) fn sanitize(text: &str, fallback: &str) -> String {
    let name: String = text
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .take(MAX_NAME_BYTES)
        .collect();
    if name.is_empty() {
        fallback.to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_the_set_and_the_limit_pass_and_others_do_not() {
        let cases = [
            ("office", true),
            ("a", true),
            ("Office_2.lan-x", true),
            (&"x".repeat(MAX_NAME_BYTES), true),
            (&"x".repeat(MAX_NAME_BYTES + 1), false),
            ("", false),
            ("evil\nFAKE LOG", false),
            ("red\u{1b}[31m", false),
            ("two words", false),
            ("slash/name", false),
            ("café", false),
            ("quote\"", false),
        ];
        for (name, ok) in cases {
            assert_eq!(check("agent", name).is_ok(), ok, "for {name:?}");
        }
    }

    #[test]
    fn sanitized_names_always_pass() {
        let cases = [
            ("my host.local", "my-host.local"),
            ("api/v1", "api-v1"),
            ("*.example.com", "-.example.com"),
            ("", "fallback"),
            ("日本", "--"),
        ];
        for (text, expected) in cases {
            let name = sanitize(text, "fallback");
            assert_eq!(name, expected, "for {text:?}");
            assert!(check("agent", &name).is_ok(), "for {text:?}");
        }
        let long = sanitize(&"é".repeat(100), "x");
        assert_eq!(long.len(), MAX_NAME_BYTES);
        assert!(check("agent", &long).is_ok());
    }
}
