//! Escaping for log fields that carry strings from outside (a request path, an agent's name, a
//! SOCKS5 hostname): such a string must never start a line of its own, move the cursor, or
//! bury the line under kilobytes.
//!
//! tracing's `%value` writes the value as it is, newlines included; `?value` of a `&str`
//! escapes but has no bound. Every log site that formats a value someone else chose wraps it
//! in [`Escaped`].

use std::fmt::{self, Display, Write};

/// The longest a logged string may be, in characters, before it is cut with `…`. Host names
/// are at most 253, so a real name, path or reason fits; a 64 KiB name takes one short line.
pub(crate) const MAX_LOGGED_CHARS: usize = 256;

/// A value shown with control characters, backslashes, double quotes and other non-printable
/// characters escaped (`\n`, `\"`, `\\`, `\u{1b}`, `\u{9b}`), and cut after
/// [`MAX_LOGGED_CHARS`] characters with `…`.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<T>(pub T);

impl<T: Display> Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = EscapingWriter {
            out: f,
            left: MAX_LOGGED_CHARS,
            cut: false,
        };
        write!(out, "{}", self.0)?;
        if out.cut {
            f.write_char('…')?;
        }
        Ok(())
    }
}

/// Writes escaped characters to `out` until `left` runs out, then drops the rest.
struct EscapingWriter<'a, 'b> {
    out: &'a mut fmt::Formatter<'b>,
    /// Characters of the value still to be shown.
    left: usize,
    /// Whether something was dropped.
    cut: bool,
}

impl Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for c in text.chars() {
            if self.left == 0 {
                self.cut = true;
                return Ok(());
            }
            self.left -= 1;
            match c {
                // Printable and harmless in a line; `escape_debug` would write `\'`.
                '\'' => self.out.write_char(c)?,
                // Backslash, quote, control characters (C0, DEL, C1), line and paragraph
                // separators, bidirectional overrides, zero-width and combining characters.
                _ => write!(self.out, "{}", c.escape_debug())?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_kept() {
        assert_eq!(
            Escaped("a\nFAKE \u{1b}[31m").to_string(),
            r"a\nFAKE \u{1b}[31m"
        );
        assert_eq!(Escaped("/ok/path").to_string(), "/ok/path");
    }

    #[test]
    fn escapes_what_could_forge_or_hide_a_line() {
        let cases = [
            ("plain-name_1.x", "plain-name_1.x"),
            ("a\nb\r\n", r"a\nb\r\n"),
            ("tab\there", r"tab\there"),
            ("\u{1b}[31mred", r"\u{1b}[31mred"),
            ("bell\u{7}nul\0del\u{7f}", r"bell\u{7}nul\0del\u{7f}"),
            ("csi\u{9b}2J", r"csi\u{9b}2J"),
            (
                "back\\slash \"quoted\" it's",
                r#"back\\slash \"quoted\" it's"#,
            ),
            ("line\u{2028}sep", r"line\u{2028}sep"),
            ("rtl\u{202e}txt.exe", r"rtl\u{202e}txt.exe"),
            ("zero\u{200b}width", r"zero\u{200b}width"),
            ("café ünïcode 日本", "café ünïcode 日本"),
        ];
        for (raw, expected) in cases {
            assert_eq!(Escaped(raw).to_string(), expected, "for {raw:?}");
        }
    }

    #[test]
    fn long_values_are_cut_with_a_marker() {
        let long = "x".repeat(64 * 1024);
        let shown = Escaped(&long).to_string();
        assert_eq!(shown, format!("{}…", "x".repeat(MAX_LOGGED_CHARS)));
        let exact = "y".repeat(MAX_LOGGED_CHARS);
        assert_eq!(Escaped(&exact).to_string(), exact, "exactly at the bound");
        let newlines = "\n".repeat(1000);
        let shown = Escaped(&newlines).to_string();
        assert_eq!(shown, format!("{}…", r"\n".repeat(MAX_LOGGED_CHARS)));
    }

    #[test]
    fn any_display_value_is_escaped_across_its_pieces() {
        let address = format_args!("{}:{}", "evil\nFAKE LOG", 80);
        assert_eq!(Escaped(address).to_string(), r"evil\nFAKE LOG:80");
        let error = std::io::Error::other("bad\u{1b}]0;title\u{7}");
        assert_eq!(Escaped(&error).to_string(), r"bad\u{1b}]0;title\u{7}");
    }

    #[test]
    fn no_output_has_a_control_character() {
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            let shown = Escaped(c).to_string();
            assert!(
                !shown.chars().any(char::is_control),
                "{c:?} shown as {shown:?}"
            );
        }
    }
}
