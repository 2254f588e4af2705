//! Durations as users write them in the custom resources: `30s`, `5m`, `1h30m`, `7d`.
//!
//! Go's `time.ParseDuration` (and so CEL's `duration()`) has no day unit, and an expiry warning
//! is naturally counted in days, so the resources use this small format of their own. The
//! schema checks it with [`DURATION_PATTERN`]; [`parse_duration`] is the one parser.

use std::time::Duration;

/// The schema pattern of a duration: one or more `<digits><unit>` with units `s`, `m`, `h`, `d`.
pub const DURATION_PATTERN: &str = "^([0-9]+[smhd])+$";

/// Parses `30s`, `5m`, `1h30m`, `7d`, `1d12h`: one or more `<digits><unit>` terms, units `s`, `m`,
/// `h` and `d` (24 hours), summed. No spaces, signs or fractions; `0s` is zero.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    if input.is_empty() {
        return Err("empty duration (expected e.g. 30s, 5m, 1h30m, 7d)".into());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in input.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "invalid duration {input:?}: unexpected {c:?} (units are s, m, h and d, e.g. 1h30m)"
                ));
            }
        };
        if digits.is_empty() {
            return Err(format!("invalid duration {input:?}: unit {c:?} without a number before it"));
        }
        let term =
            digits.parse::<u64>().ok().and_then(|n| n.checked_mul(unit)).and_then(|secs| total.checked_add(secs));
        total = term.ok_or_else(|| format!("invalid duration {input:?}: too large"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("invalid duration {input:?}: {digits:?} has no unit (s, m, h or d)"));
    }
    Ok(Duration::from_secs(total))
}

/// The shortest string [`parse_duration`] reads back as `d` (whole seconds): `5m`, `1h30m`, `7d`.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [('d', 86_400), ('h', 3600), ('m', 60), ('s', 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_combinations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(129_600)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_durations_with_a_readable_reason() {
        for (bad, why) in [
            ("", "empty"),
            ("5", "has no unit"),
            ("m", "without a number"),
            ("5ms", "without a number"),
            ("1.5h", "unexpected '.'"),
            ("-5m", "unexpected '-'"),
            ("5 m", "unexpected ' '"),
            ("1w", "unexpected 'w'"),
            ("1h30", "has no unit"),
            ("99999999999999999999d", "too large"),
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn formatting_round_trips_through_the_parser() {
        for s in ["0s", "30s", "5m", "1h30m", "7d", "1d2h3m4s"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(format_duration(d), s);
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}
