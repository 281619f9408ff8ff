//! Sizes (`512M`, `2GB`, `1.5G`), CPU counts (`0.5`), durations (`500ms`,
//! `10s`, `1.5m`). Pure.
//!
//! Both parsers do exact decimal arithmetic on integers: no floats, so `NaN`,
//! `inf` and `1e3` are simply not numbers, and `1.5G` is exactly 1.5 GiB.
//! Errors are short reasons; the caller adds the option name and the value.

/// More fraction digits than this cannot change a size by even one byte in a
/// way anyone means; the bound also keeps `10^digits` inside a `u64`.
const MAX_FRACTION_DIGITS: usize = 18;

/// One core in the unit `parse_cpus` returns.
const MILLIS_PER_CPU: u64 = 1000;
const MIN_MILLICPUS: u64 = 10;
const MAX_MILLICPUS: u64 = 1024 * MILLIS_PER_CPU;

/// A decimal number split at its point: `1.25` is `{ whole: 1, fraction: 25, fraction_digits: 2 }`.
struct Decimal {
    whole: u64,
    fraction: u64,
    fraction_digits: u32,
}

impl Decimal {
    fn is_zero(&self) -> bool {
        self.whole == 0 && self.fraction == 0
    }

    /// `self * multiplier`, rounded down; `None` on overflow of a `u64`.
    fn times(&self, multiplier: u64) -> Option<u64> {
        let whole = self.whole.checked_mul(multiplier)?;
        let scale = 10u128.pow(self.fraction_digits);
        // fraction < 10^18 and multiplier <= 2^40 here, so the product fits a u128;
        // the quotient is below `multiplier`, so it fits a u64.
        let part = u128::from(self.fraction) * u128::from(multiplier) / scale;
        whole.checked_add(u64::try_from(part).ok()?)
    }
}

/// `digits[.digits]` or `.digits`; a sign, spaces or an exponent make it not a number.
fn parse_decimal(text: &str) -> Result<Decimal, DecimalError> {
    let (whole_text, fraction_text) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole_text) {
        return Err(DecimalError::NotANumber);
    }
    let fraction_text = fraction_text.unwrap_or("");
    if !all_digits(fraction_text) || (whole_text.is_empty() && fraction_text.is_empty()) {
        return Err(DecimalError::NotANumber);
    }
    if text.ends_with('.') {
        return Err(DecimalError::NotANumber);
    }
    // Leading zeros in the fraction matter; trailing ones do not and may be many.
    let fraction_text = fraction_text.trim_end_matches('0');
    if fraction_text.len() > MAX_FRACTION_DIGITS {
        return Err(DecimalError::TooPrecise);
    }
    let whole = if whole_text.is_empty() {
        0
    } else {
        whole_text
            .parse::<u64>()
            .map_err(|_| DecimalError::TooLarge)?
    };
    let fraction = if fraction_text.is_empty() {
        0
    } else {
        fraction_text
            .parse::<u64>()
            .map_err(|_| DecimalError::NotANumber)?
    };
    Ok(Decimal {
        whole,
        fraction,
        // At most MAX_FRACTION_DIGITS, checked above.
        fraction_digits: u32::try_from(fraction_text.len())
            .map_err(|_| DecimalError::TooPrecise)?,
    })
}

enum DecimalError {
    NotANumber,
    TooLarge,
    TooPrecise,
}

/// The multiplier for a unit suffix, any case: none or `B` = bytes, `K`/`KB`/`KiB` ... `T`/`TB`/`TiB`.
/// All are powers of 1024, as `docker --memory` and `free` mean them.
fn unit_multiplier(unit: &str) -> Option<u64> {
    let unit = unit.to_ascii_uppercase();
    let prefix = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    // `IB` alone and `B` alone both leave an empty prefix: bytes. Reject `iB`.
    if prefix.is_empty() {
        return (unit.is_empty() || unit == "B").then_some(1);
    }
    let shift = match prefix {
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    Some(1u64 << shift)
}

/// A size in bytes: `1024`, `512M`, `512MB`, `2G`, `1.5g`, `1TiB`. Powers of 1024.
///
/// A fraction is rounded down to whole bytes; a fraction of a plain byte count
/// (`1.5`) is rejected. Zero, negatives, overflow and anything else are errors.
pub fn parse_size(s: &str) -> Result<u64, String> {
    if s.starts_with('-') {
        return Err("must be positive".to_string());
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err("not a size".to_string());
    }
    let multiplier = unit_multiplier(unit).ok_or_else(|| "not a size".to_string())?;
    let decimal = parse_decimal(number).map_err(|e| match e {
        DecimalError::NotANumber | DecimalError::TooPrecise => "not a size".to_string(),
        DecimalError::TooLarge => "too large".to_string(),
    })?;
    if multiplier == 1 && decimal.fraction != 0 {
        return Err("not a whole number of bytes".to_string());
    }
    let bytes = decimal
        .times(multiplier)
        .ok_or_else(|| "too large".to_string())?;
    if bytes == 0 {
        return Err("must be positive".to_string());
    }
    Ok(bytes)
}

/// A CPU count in thousandths of a core: `0.5` is 500, `2` is 2000.
///
/// Digits past the third decimal are dropped. Accepts 0.01 to 1024 cores.
pub fn parse_cpus(s: &str) -> Result<u32, String> {
    if s.starts_with('-') {
        return Err("must be positive".to_string());
    }
    let decimal = parse_decimal(s).map_err(|e| match e {
        DecimalError::NotANumber => "not a number".to_string(),
        DecimalError::TooLarge => "must be at most 1024".to_string(),
        DecimalError::TooPrecise => "too many decimal places".to_string(),
    })?;
    if decimal.is_zero() {
        return Err("must be positive".to_string());
    }
    let millis = decimal
        .times(MILLIS_PER_CPU)
        .filter(|&m| m <= MAX_MILLICPUS)
        .ok_or_else(|| "must be at most 1024".to_string())?;
    if millis < MIN_MILLICPUS {
        return Err("must be at least 0.01".to_string());
    }
    u32::try_from(millis).map_err(|_| "must be at most 1024".to_string())
}

/// A duration: a number with a unit `ms`, `s`, `m` or `h` (`500ms`, `10s`,
/// `1.5m`, `2h`); a bare number counts seconds. Fractions of a millisecond are
/// dropped. Zero is allowed (the caller decides what it means).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    if s.starts_with('-') {
        return Err("must not be negative".to_string());
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60 * 1000,
        "h" => 60 * 60 * 1000,
        _ => return Err("not a duration".to_string()),
    };
    let decimal = parse_decimal(number).map_err(|e| match e {
        DecimalError::NotANumber | DecimalError::TooPrecise => "not a duration".to_string(),
        DecimalError::TooLarge => "too long".to_string(),
    })?;
    // A year is more than any sandbox should wait for; the bound also keeps
    // every deadline computed from it far from overflowing.
    const MAX_MILLIS: u64 = 366 * 24 * 60 * 60 * 1000;
    let millis = decimal
        .times(millis_per_unit)
        .filter(|&ms| ms <= MAX_MILLIS)
        .ok_or_else(|| "too long (at most a year)".to_string())?;
    Ok(std::time::Duration::from_millis(millis))
}

/// A duration as `parse_duration` reads it back: `10s`, `500ms`, `2m`.
pub fn format_duration(duration: std::time::Duration) -> String {
    let millis = duration.as_millis();
    match millis {
        0 => "0s".to_string(),
        m if m % 60_000 == 0 => format!("{}m", m / 60_000),
        m if m % 1000 == 0 => format!("{}s", m / 1000),
        m => format!("{m}ms"),
    }
}

/// The shortest exact spelling of a size that `parse_size` reads back: `1G`, `1536M`, `100`.
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        let multiplier = 1u64 << shift;
        if bytes != 0 && bytes % multiplier == 0 {
            return format!("{}{unit}", bytes / multiplier);
        }
    }
    bytes.to_string()
}

/// Thousandths of a core as `parse_cpus` reads them: `1`, `0.5`, `1.25`.
pub fn format_cpus(millicpus: u32) -> String {
    let whole = millicpus / 1000;
    let fraction = millicpus % 1000;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:03}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1 << 10;
    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;
    const T: u64 = 1 << 40;

    #[test]
    fn sizes_in_every_spelling() {
        let cases: &[(&str, u64)] = &[
            ("1024", 1024),
            ("1", 1),
            ("1b", 1),
            ("512B", 512),
            ("1K", K),
            ("1kb", K),
            ("1KiB", K),
            ("512M", 512 * M),
            ("512MB", 512 * M),
            ("512mb", 512 * M),
            ("512Mb", 512 * M),
            ("2G", 2 * G),
            ("2GB", 2 * G),
            ("2g", 2 * G),
            ("2gib", 2 * G),
            ("1.5G", G + G / 2),
            ("1.50G", G + G / 2),
            (".5G", G / 2),
            ("0.5K", 512),
            ("0.1K", 102),
            ("1T", T),
            ("3TB", 3 * T),
            ("007M", 7 * M),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_sizes() {
        let cases: &[(&str, &str)] = &[
            ("", "not a size"),
            ("M", "not a size"),
            ("12QB", "not a size"),
            ("12 M", "not a size"),
            (" 12M", "not a size"),
            ("12M ", "not a size"),
            ("1.2.3M", "not a size"),
            ("1.M", "not a size"),
            (".", "not a size"),
            ("1e3", "not a size"),
            ("NaN", "not a size"),
            ("inf", "not a size"),
            ("+5M", "not a size"),
            ("5MM", "not a size"),
            ("5iB", "not a size"),
            ("0x10", "not a size"),
            ("١٢M", "not a size"),
            ("-1G", "must be positive"),
            ("-0", "must be positive"),
            ("0", "must be positive"),
            ("0G", "must be positive"),
            ("0.0000000001K", "must be positive"),
            ("1.5", "not a whole number of bytes"),
            ("18446744073709551616", "too large"),
            ("99999999999999999999999999G", "too large"),
            ("16777216T", "too large"),
            ("0.1234567890123456789G", "not a size"),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_size(text), Err(want.to_string()), "{text:?}");
        }
    }

    #[test]
    fn size_limits() {
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_size("16777215T"), Ok(16_777_215 * T));
        // Trailing zeros beyond the precision bound are harmless.
        assert_eq!(parse_size("1.500000000000000000000000G"), Ok(G + G / 2));
    }

    #[test]
    fn cpus() {
        let cases: &[(&str, u32)] = &[
            ("1", 1000),
            ("2", 2000),
            ("0.5", 500),
            (".5", 500),
            ("1.25", 1250),
            ("0.01", 10),
            ("0.0109", 10),
            ("1024", 1_024_000),
            ("1024.000", 1_024_000),
            ("3.14159", 3141),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_cpus(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_cpus() {
        let cases: &[(&str, &str)] = &[
            ("", "not a number"),
            ("abc", "not a number"),
            ("NaN", "not a number"),
            ("nan", "not a number"),
            ("inf", "not a number"),
            ("infinity", "not a number"),
            ("1e3", "not a number"),
            ("1.", "not a number"),
            ("+1", "not a number"),
            (" 1", "not a number"),
            ("1 ", "not a number"),
            ("2c", "not a number"),
            ("0", "must be positive"),
            ("0.000", "must be positive"),
            ("-1", "must be positive"),
            ("-0.5", "must be positive"),
            ("0.009", "must be at least 0.01"),
            ("0.0001", "must be at least 0.01"),
            ("1024.001", "must be at most 1024"),
            ("1025", "must be at most 1024"),
            ("18446744073709551615", "must be at most 1024"),
            ("99999999999999999999999", "must be at most 1024"),
            ("1.1234567890123456789", "too many decimal places"),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_cpus(text), Err(want.to_string()), "{text:?}");
        }
    }
    #[test]
    fn durations() {
        use std::time::Duration;
        let ms = Duration::from_millis;
        for (text, want) in [
            ("500ms", ms(500)),
            ("10s", ms(10_000)),
            ("10", ms(10_000)),
            ("1.5", ms(1500)),
            ("2m", ms(120_000)),
            ("1.5m", ms(90_000)),
            ("2h", ms(7_200_000)),
            ("0", ms(0)),
            ("0.0001s", ms(0)),
            (".25s", ms(250)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in [
            "", "s", "-1s", "1x", "1 s", "1S", "1.s", "1e3", "10sec", "inf",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("367d").is_err());
        assert!(parse_duration("8785h").is_err());
        assert!(parse_duration("99999999999999999999").is_err());
        for text in ["10s", "500ms", "2m", "0s", "1500ms"] {
            let duration = parse_duration(text).unwrap_or_default();
            assert_eq!(format_duration(duration), text);
        }
    }

    #[test]
    fn formats_read_back() {
        assert_eq!(format_size(1 << 30), "1G");
        assert_eq!(format_size(512 << 20), "512M");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(format_size(3 << 40), "3T");
        assert_eq!(format_size(100), "100");
        assert_eq!(format_size(0), "0");
        assert_eq!(format_cpus(1000), "1");
        assert_eq!(format_cpus(500), "0.5");
        assert_eq!(format_cpus(1250), "1.25");
        assert_eq!(format_cpus(10), "0.01");
        for bytes in [1, 1023, 1024, 1 << 20, (1 << 30) + 1, u64::MAX] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }
        for millis in [10, 333, 500, 1000, 1_024_000] {
            assert_eq!(parse_cpus(&format_cpus(millis)), Ok(millis));
        }
    }
}
