//! Human-friendly units in the config file: durations (`"10s"`) and sizes (`"16MiB"`).

use std::{fmt, str::FromStr, time::Duration};

/// The longest duration a config may name: beyond it "never" is what is meant, and deadlines
/// computed from larger values would overflow the clock.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration written as a number and a unit: `"250ms"`, `"10s"`, `"5m"`, `"1h"`.
///
/// ```
/// use wsgate::units::HumanDuration;
/// let d: HumanDuration = "1500ms".parse().unwrap();
/// assert_eq!(d.0, std::time::Duration::from_millis(1500));
/// assert!("10 parsecs".parse::<HumanDuration>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

/// A size in bytes written as a number and an optional unit: `"512"`, `"64KiB"`, `"16MiB"`.
///
/// ```
/// use wsgate::units::ByteSize;
/// assert_eq!("16MiB".parse::<ByteSize>().unwrap().0, 16 << 20);
/// assert_eq!("1kb".parse::<ByteSize>().unwrap().0, 1000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// Why a unit value did not parse; the text says what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError(String);

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnitError {}

/// Splits `"16MiB"` into `(16, "MiB")`; the number may have a fraction.
fn split_number(text: &str) -> Option<(f64, &str)> {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let number = text[..end].parse::<f64>().ok()?;
    Some((number, text[end..].trim()))
}

impl FromStr for HumanDuration {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expected = || {
            UnitError(format!(
                "expected a duration such as \"10s\", \"250ms\", \"5m\" or \"1h\", found {text:?}"
            ))
        };
        let (number, unit) = split_number(text).ok_or_else(expected)?;
        let seconds = match unit {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return Err(expected()),
        };
        if seconds > MAX_DURATION.as_secs_f64() {
            return Err(UnitError(format!(
                "{text:?} is too long: durations are at most 365 days"
            )));
        }
        Duration::try_from_secs_f64(seconds)
            .map(HumanDuration)
            .map_err(|_| expected())
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expected = || {
            UnitError(format!(
                "expected a size such as \"65536\", \"64KiB\" or \"16MiB\", found {text:?}"
            ))
        };
        let (number, unit) = split_number(text).ok_or_else(expected)?;
        let scale: f64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "kb" => 1e3,
            "mb" => 1e6,
            "gb" => 1e9,
            "kib" => 1024.0,
            "mib" => 1024.0 * 1024.0,
            "gib" => 1024.0 * 1024.0 * 1024.0,
            _ => return Err(expected()),
        };
        Ok(ByteSize((number * scale) as u64))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        let cases = [
            ("10s", 10_000),
            ("250ms", 250),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("0.5s", 500),
        ];
        for (text, millis) in cases {
            let parsed: HumanDuration = text.parse().unwrap();
            assert_eq!(parsed.0, Duration::from_millis(millis), "{text}");
        }
    }

    #[test]
    fn durations_without_unit_are_rejected() {
        let err = "10".parse::<HumanDuration>().unwrap_err();
        assert!(err.to_string().contains("expected a duration"), "{err}");
    }

    #[test]
    fn sizes_parse_with_units() {
        let cases = [
            ("512", 512),
            ("64KiB", 65_536),
            ("16MiB", 16 << 20),
            ("2kb", 2000),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<ByteSize>().unwrap().0, bytes, "{text}");
        }
        assert!("16 parsecs".parse::<ByteSize>().is_err());
    }
}
