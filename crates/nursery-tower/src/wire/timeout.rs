//! The `grpc-timeout` value: `TimeoutValue TimeoutUnit`, 1 to 8 ASCII digits then one of
//! `H M S m u n` (hours, minutes, seconds, milliseconds, microseconds, nanoseconds).

use std::time::Duration;

/// A `grpc-timeout` (or configured header) value that does not follow the gRPC format.
///
/// ```
/// use nursery_tower::{parse_grpc_timeout, TimeoutParseError};
///
/// assert_eq!(parse_grpc_timeout("-5S"), Err(TimeoutParseError::NotDigits));
/// assert_eq!(parse_grpc_timeout("123456789m"), Err(TimeoutParseError::TooManyDigits));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeoutParseError {
    /// The value is empty or has no digits before its unit.
    #[error("empty timeout value (expected 1 to 8 digits and a unit)")]
    Empty,
    /// More than the 8 digits the spec allows.
    #[error("timeout value has more than 8 digits")]
    TooManyDigits,
    /// A character other than an ASCII digit before the unit (a sign, a space, a dot).
    #[error("timeout value has a character that is not an ASCII digit")]
    NotDigits,
    /// The last character is not one of `H M S m u n`.
    #[error("unknown timeout unit (expected one of H M S m u n)")]
    UnknownUnit,
}

/// Parses a `grpc-timeout` value exactly as the gRPC spec defines it: 1 to 8 ASCII digits, then
/// one unit character `H`, `M`, `S`, `m`, `u` or `n`. Anything else is an error, never a panic;
/// the largest value (`99999999H`, about 11 400 years) is representable.
///
/// ```
/// use std::time::Duration;
/// use nursery_tower::parse_grpc_timeout;
///
/// assert_eq!(parse_grpc_timeout("200m"), Ok(Duration::from_millis(200)));
/// assert_eq!(parse_grpc_timeout("1H"), Ok(Duration::from_secs(3600)));
/// assert!(parse_grpc_timeout("1.5S").is_err());
/// ```
pub fn parse_grpc_timeout(value: &str) -> Result<Duration, TimeoutParseError> {
    let bytes = value.as_bytes();
    let Some((&unit, digits)) = bytes.split_last() else {
        return Err(TimeoutParseError::Empty);
    };
    if digits.is_empty() {
        return Err(if unit.is_ascii_digit() {
            TimeoutParseError::UnknownUnit
        } else {
            TimeoutParseError::Empty
        });
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(TimeoutParseError::NotDigits);
    }
    if digits.len() > 8 {
        return Err(TimeoutParseError::TooManyDigits);
    }
    // At most 8 digits: fits a u64 with room to multiply by 3600.
    let n = digits
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    Ok(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return Err(TimeoutParseError::UnknownUnit),
    })
}

const MAX_VALUE: u128 = 99_999_999;

/// Writes `timeout` as a `grpc-timeout` value in the finest unit whose value fits in 8 digits,
/// rounding *down*, so the receiver never sees a later deadline than the sender's. Timeouts
/// beyond `99999999H` are written as `99999999H`.
///
/// ```
/// use std::time::Duration;
/// use nursery_tower::{format_grpc_timeout, parse_grpc_timeout};
///
/// assert_eq!(format_grpc_timeout(Duration::from_millis(150)), "150000u");
/// assert_eq!(format_grpc_timeout(Duration::from_millis(50)), "50000000n");
/// assert_eq!(format_grpc_timeout(Duration::from_nanos(1_234_567_891)), "1234567u");
/// let d = Duration::from_secs(7 * 86_400);
/// assert!(parse_grpc_timeout(&format_grpc_timeout(d)).unwrap() <= d);
/// ```
pub fn format_grpc_timeout(timeout: Duration) -> String {
    let nanos = timeout.as_nanos();
    const UNITS: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per, unit) in UNITS {
        let value = nanos / per;
        if value <= MAX_VALUE {
            return format!("{value}{unit}");
        }
    }
    format!("{MAX_VALUE}H")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit() {
        for (text, want) in [
            ("3H", Duration::from_secs(3 * 3600)),
            ("3M", Duration::from_secs(180)),
            ("3S", Duration::from_secs(3)),
            ("3m", Duration::from_millis(3)),
            ("3u", Duration::from_micros(3)),
            ("3n", Duration::from_nanos(3)),
            ("0n", Duration::ZERO),
            ("00000001S", Duration::from_secs(1)),
            ("99999999H", Duration::from_secs(99_999_999 * 3600)),
        ] {
            assert_eq!(parse_grpc_timeout(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn malformed() {
        use TimeoutParseError::*;
        for (text, want) in [
            ("", Empty),
            ("S", Empty),
            ("5", UnknownUnit),
            ("12", UnknownUnit),
            ("5s", UnknownUnit),
            ("5 S", NotDigits),
            ("-5S", NotDigits),
            ("+5S", NotDigits),
            ("1.5S", NotDigits),
            ("５S", NotDigits),
            ("123456789S", TooManyDigits),
            ("99999999999999999999999H", TooManyDigits),
            ("5SS", NotDigits),
            ("5é", NotDigits),
        ] {
            assert_eq!(parse_grpc_timeout(text), Err(want), "{text:?}");
        }
    }

    #[test]
    fn format_rounds_down_and_round_trips() {
        for nanos in [
            0u64,
            1,
            999,
            99_999_999,
            100_000_001,
            1_999_999_999,
            86_400_000_000_123,
            u64::MAX,
        ] {
            let d = Duration::from_nanos(nanos);
            let text = format_grpc_timeout(d);
            let back = parse_grpc_timeout(&text).unwrap();
            assert!(back <= d, "{text} > {d:?}");
        }
        assert_eq!(format_grpc_timeout(Duration::MAX), "99999999H");
        assert_eq!(
            format_grpc_timeout(Duration::from_nanos(100_000_001)),
            "100000u"
        );
    }
}
