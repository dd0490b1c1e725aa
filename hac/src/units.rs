//! Binary sizes (`"8Gi"`), bit rates (`"1Gbps"`, or a bare number of
//! Gbps) and durations (`"10ms"`, `"5s"`). Pure string arithmetic: every conversion is checked, so a value too
//! large for a `u64` is an error, never a wrap.

use std::fmt;

/// 1 KiB in bytes.
pub const KIB: u64 = 1 << 10;
/// 1 MiB in bytes.
pub const MIB: u64 = 1 << 20;
/// 1 GiB in bytes.
pub const GIB: u64 = 1 << 30;
/// 1 TiB in bytes.
pub const TIB: u64 = 1 << 40;

/// 1 Kbps in bit/s (decimal: 1 Kbps = 1000 bit/s).
pub const KBPS: u64 = 1_000;
/// 1 Mbps in bit/s.
pub const MBPS: u64 = 1_000_000;
/// 1 Gbps in bit/s.
pub const GBPS: u64 = 1_000_000_000;

/// What a binary size looks like, for messages.
pub const SIZE_EXPECTED: &str = "a binary size such as \"512Mi\" or \"8Gi\"";
/// What a bit rate looks like, for messages.
pub const RATE_EXPECTED: &str =
    "a bit rate such as \"100Mbps\" or \"1Gbps\", or a bare number of Gbps such as 10";

const SIZE_UNITS: &[(&str, u64)] = &[
    ("Ki", KIB),
    ("Mi", MIB),
    ("Gi", GIB),
    ("Ti", TIB),
    ("KiB", KIB),
    ("MiB", MIB),
    ("GiB", GIB),
    ("TiB", TIB),
];

/// Decimal (SI) spellings people write for sizes, and the binary unit meant.
const DECIMAL_SIZE_UNITS: &[(&str, &str)] = &[
    ("k", "Ki"),
    ("K", "Ki"),
    ("kB", "Ki"),
    ("KB", "Ki"),
    ("M", "Mi"),
    ("MB", "Mi"),
    ("G", "Gi"),
    ("GB", "Gi"),
    ("T", "Ti"),
    ("TB", "Ti"),
];

const RATE_UNITS: &[(&str, u64)] = &[("Kbps", KBPS), ("Mbps", MBPS), ("Gbps", GBPS)];

/// What a duration looks like, for messages.
pub const DURATION_EXPECTED: &str = "a duration such as \"10ms\", \"5s\", \"2m\" or \"1h\"";

/// Duration units and their length in milliseconds, smallest first.
const DURATION_UNITS: &[(&str, u64)] = &[("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];

/// Why a size or rate string was rejected. `Display` gives the message shown
/// to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitError {
    /// Not of the form NUMBER UNIT at all (`"eight"`).
    Malformed {
        /// The text as written.
        text: String,
        /// What was expected, for the message.
        expected: &'static str,
    },
    /// A number with no unit (`"8"`).
    MissingUnit {
        /// The text as written.
        text: String,
        /// What was expected, for the message.
        expected: &'static str,
    },
    /// A decimal size unit where a binary one is required (`"8GB"`).
    DecimalUnit {
        /// The text as written.
        text: String,
        /// The same number with the binary unit (`"8Gi"`).
        suggestion: String,
    },
    /// A space between the number and the unit (`"8 Gi"`).
    SpaceBeforeUnit {
        /// The text as written.
        text: String,
        /// The same without the space (`"8Gi"`).
        suggestion: String,
    },
    /// A unit that is not accepted here (`"8Xi"`, `"1Tbps"`).
    UnknownUnit {
        /// The text as written.
        text: String,
        /// The unit as written.
        unit: String,
        /// The accepted units, for the message.
        accepted: &'static str,
    },
    /// A fractional size (`"1.5Gi"`); sizes are whole numbers of a unit.
    Fractional {
        /// The text as written.
        text: String,
    },
    /// A rate that is not a whole number of bit/s (`"0.0001Kbps"`).
    FractionalBits {
        /// The text as written.
        text: String,
    },
    /// Larger than 2^64 - 1 bytes or bit/s.
    TooLarge {
        /// The text as written.
        text: String,
    },
    /// Zero or negative where only positive values make sense.
    NotPositive {
        /// The text as written.
        text: String,
    },
    /// A fractional duration (`"1.5s"`); durations are whole numbers of a unit.
    FractionalDuration {
        /// The text as written.
        text: String,
    },
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { text, expected } => write!(f, "expected {expected}, found {text:?}"),
            Self::MissingUnit { text, expected } => {
                write!(f, "{text:?} has no unit; expected {expected}")
            }
            Self::DecimalUnit { text, suggestion } => write!(
                f,
                "{text:?} uses a decimal unit; binary units are expected, e.g. {suggestion:?} \
                 (accepted: Ki, Mi, Gi, Ti, or KiB, MiB, GiB, TiB)"
            ),
            Self::SpaceBeforeUnit { text, suggestion } => {
                write!(f, "{text:?} has a space before the unit; write it without one, e.g. {suggestion:?}")
            }
            Self::UnknownUnit { text, unit, accepted } => {
                write!(f, "unknown unit {unit:?} in {text:?}; accepted units: {accepted}")
            }
            Self::Fractional { text } => write!(
                f,
                "{text:?} is not a whole number; write it with a smaller unit (e.g. \"1536Mi\" \
                 rather than \"1.5Gi\")"
            ),
            Self::FractionalBits { text } => {
                write!(f, "{text:?} is not a whole number of bits per second")
            }
            Self::TooLarge { text } => write!(f, "{text:?} is too large"),
            Self::NotPositive { text } => write!(f, "{text:?} must be greater than zero"),
            Self::FractionalDuration { text } => write!(
                f,
                "{text:?} is not a whole number; write it with a smaller unit (e.g. \"1500ms\" \
                 rather than \"1.5s\")"
            ),
        }
    }
}

impl std::error::Error for UnitError {}

/// Parses a binary size such as `"512Mi"`, `"8Gi"` or `"8GiB"` into bytes.
///
/// A unit is required (`Ki`, `Mi`, `Gi`, `Ti`, or the same with a trailing
/// `B`); decimal units (`"8GB"`) are rejected with a hint, fractions are
/// rejected, and overflow is an error.
pub fn parse_binary_size(text: &str) -> Result<u64, UnitError> {
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(UnitError::Malformed { text: text.to_owned(), expected: SIZE_EXPECTED });
    }
    if unit.is_empty() {
        return Err(UnitError::MissingUnit { text: text.to_owned(), expected: SIZE_EXPECTED });
    }
    space_before_unit(text, number, unit)?;
    if let Some(rest) = unit.strip_prefix('.')
        && rest.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(UnitError::Fractional { text: text.to_owned() });
    }
    let Some(&(_, multiplier)) = SIZE_UNITS.iter().find(|(name, _)| *name == unit) else {
        if let Some((_, binary)) = DECIMAL_SIZE_UNITS.iter().find(|(name, _)| *name == unit) {
            return Err(UnitError::DecimalUnit {
                text: text.to_owned(),
                suggestion: format!("{number}{binary}"),
            });
        }
        return Err(UnitError::UnknownUnit {
            text: text.to_owned(),
            unit: unit.to_owned(),
            accepted: "Ki, Mi, Gi, Ti (or KiB, MiB, GiB, TiB)",
        });
    };
    let too_large = || UnitError::TooLarge { text: text.to_owned() };
    let count: u64 = number.parse().map_err(|_| too_large())?;
    count.checked_mul(multiplier).ok_or_else(too_large)
}

/// Parses a bit rate such as `"100Mbps"`, `"1Gbps"` or `"2.5Gbps"` into bit/s.
///
/// Units are decimal (1 Kbps = 1000 bit/s) and required; the result must be a
/// positive whole number of bit/s.
pub fn parse_bit_rate(text: &str) -> Result<u64, UnitError> {
    let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    if number.is_empty() || !number.starts_with(|c: char| c.is_ascii_digit()) {
        if text.starts_with('-') {
            return Err(UnitError::NotPositive { text: text.to_owned() });
        }
        return Err(UnitError::Malformed { text: text.to_owned(), expected: RATE_EXPECTED });
    }
    if unit.is_empty() {
        return Err(UnitError::MissingUnit { text: text.to_owned(), expected: RATE_EXPECTED });
    }
    space_before_unit(text, number, unit)?;
    let Some(&(_, multiplier)) = RATE_UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(UnitError::UnknownUnit {
            text: text.to_owned(),
            unit: unit.to_owned(),
            accepted: "Kbps, Mbps, Gbps",
        });
    };
    scale_decimal(text, number, multiplier)
}

/// Parses a duration such as `"10ms"`, `"5s"`, `"2m"` or `"1h"` into
/// milliseconds.
///
/// A whole number followed by a unit (`ms`, `s`, `m`, `h`, case-sensitive);
/// fractions, a missing unit and overflow are errors.
pub fn parse_duration_ms(text: &str) -> Result<u64, UnitError> {
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        if text.starts_with('-') {
            return Err(UnitError::NotPositive { text: text.to_owned() });
        }
        return Err(UnitError::Malformed { text: text.to_owned(), expected: DURATION_EXPECTED });
    }
    if unit.is_empty() {
        return Err(UnitError::MissingUnit { text: text.to_owned(), expected: DURATION_EXPECTED });
    }
    space_before_unit(text, number, unit)?;
    if let Some(rest) = unit.strip_prefix('.')
        && rest.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(UnitError::FractionalDuration { text: text.to_owned() });
    }
    let Some(&(_, multiplier)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(UnitError::UnknownUnit {
            text: text.to_owned(),
            unit: unit.to_owned(),
            accepted: "ms, s, m, h",
        });
    };
    let too_large = || UnitError::TooLarge { text: text.to_owned() };
    let count: u64 = number.parse().map_err(|_| too_large())?;
    count.checked_mul(multiplier).ok_or_else(too_large)
}

/// Renders milliseconds in the largest unit that divides them exactly
/// (`"60s"`, `"10ms"`, `"2m"`).
pub fn format_duration_ms(ms: u64) -> String {
    for &(name, size) in DURATION_UNITS.iter().rev() {
        if ms != 0 && ms.is_multiple_of(size) {
            return format!("{}{name}", ms / size);
        }
    }
    format!("{ms}ms")
}

fn space_before_unit(text: &str, number: &str, unit: &str) -> Result<(), UnitError> {
    let trimmed = unit.trim_start();
    if trimmed.len() != unit.len() && !trimmed.is_empty() {
        return Err(UnitError::SpaceBeforeUnit {
            text: text.to_owned(),
            suggestion: format!("{number}{trimmed}"),
        });
    }
    Ok(())
}

/// A bare integer in a rate field means Gbps.
pub fn gbps_from_integer(value: i128) -> Result<u64, UnitError> {
    let text = value.to_string();
    if value <= 0 {
        return Err(UnitError::NotPositive { text });
    }
    u64::try_from(value).ok().and_then(|v| v.checked_mul(GBPS)).ok_or(UnitError::TooLarge { text })
}

/// A bare float in a rate field means Gbps. `literal` is the float as
/// written in TOML (`"2.5"`, `"1e1"`, `"inf"`); plain decimals are converted
/// exactly, exponent forms via `f64` rounded to the nearest bit/s.
pub fn gbps_from_float(literal: &str) -> Result<u64, UnitError> {
    let unsigned = literal.strip_prefix('+').unwrap_or(literal);
    if unsigned.starts_with('-') {
        return Err(UnitError::NotPositive { text: literal.to_owned() });
    }
    if !unsigned.is_empty() && unsigned.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return scale_decimal(literal, unsigned, GBPS);
    }
    let value: f64 = unsigned
        .parse()
        .map_err(|_| UnitError::Malformed { text: literal.to_owned(), expected: RATE_EXPECTED })?;
    if value.is_nan() {
        return Err(UnitError::Malformed { text: literal.to_owned(), expected: RATE_EXPECTED });
    }
    let bps = (value * GBPS as f64).round();
    // 2^64 as f64 is exact; anything at or above it does not fit.
    if bps >= 18_446_744_073_709_551_616.0 {
        return Err(UnitError::TooLarge { text: literal.to_owned() });
    }
    if bps < 1.0 {
        return Err(UnitError::NotPositive { text: literal.to_owned() });
    }
    // In range [1, 2^64) and integral, so the cast is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bps as u64)
}

/// `number` is digits with at most one '.', starting with a digit; returns
/// `number * multiplier` exactly, or an error when it is not a positive whole
/// number or does not fit.
fn scale_decimal(text: &str, number: &str, multiplier: u64) -> Result<u64, UnitError> {
    let malformed = || UnitError::Malformed { text: text.to_owned(), expected: RATE_EXPECTED };
    let too_large = || UnitError::TooLarge { text: text.to_owned() };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return Err(malformed());
    }
    // Trailing zeros in the fraction change nothing; more than 19 significant
    // fractional digits cannot yield whole bits with a multiplier <= 10^9.
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 19 {
        return Err(UnitError::FractionalBits { text: text.to_owned() });
    }
    let whole: u128 = whole
        .trim_start_matches('0')
        .parse()
        .or_else(|_| if whole.chars().all(|c| c == '0') { Ok(0) } else { Err(too_large()) })?;
    let scale = 10u128.pow(u32::try_from(fraction.len()).map_err(|_| malformed())?);
    let fraction_value: u128 =
        if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| malformed())? };
    let numerator = whole
        .checked_mul(scale)
        .and_then(|v| v.checked_add(fraction_value))
        .and_then(|v| v.checked_mul(u128::from(multiplier)))
        .ok_or_else(too_large)?;
    if !numerator.is_multiple_of(scale) {
        return Err(UnitError::FractionalBits { text: text.to_owned() });
    }
    let value = u64::try_from(numerator / scale).map_err(|_| too_large())?;
    if value == 0 {
        return Err(UnitError::NotPositive { text: text.to_owned() });
    }
    Ok(value)
}

/// Renders a byte count in the largest binary unit that divides it exactly
/// (`"8Gi"`), or as plain bytes (`"1000 bytes"`).
pub fn format_binary_size(bytes: u64) -> String {
    for (name, size) in [("Ti", TIB), ("Gi", GIB), ("Mi", MIB), ("Ki", KIB)] {
        if bytes != 0 && bytes.is_multiple_of(size) {
            return format!("{}{name}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}
