//! Time from the TSC, read at CPL3 without a VM exit; its frequency and the wall-clock epoch
//! come from the boot information.

/// Converts between TSC ticks and nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    tsc_khz: u64,
    wall_ns: u64,
    tsc_at_wall: u64,
}

impl Clock {
    /// A clock whose TSC runs at `tsc_khz` and read `tsc_at_wall` at `wall_ns` since the epoch.
    pub fn new(tsc_khz: u64, wall_ns: u64, tsc_at_wall: u64) -> Self {
        Clock { tsc_khz: tsc_khz.max(1), wall_ns, tsc_at_wall }
    }

    /// TSC ticks in a microsecond (at least 1).
    pub fn ticks_per_us(&self) -> u64 {
        (self.tsc_khz / 1000).max(1)
    }

    /// Nanoseconds spanned by `ticks` (exact to the tick, no overflow for ~580 years at 1 GHz).
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        (u128::from(ticks) * 1_000_000 / u128::from(self.tsc_khz)) as u64
    }

    /// Wall-clock time in ns since the Unix epoch at TSC value `tsc`.
    pub fn wall_ns_at(&self, tsc: u64) -> u64 {
        self.wall_ns.saturating_add(self.ticks_to_ns(tsc.wrapping_sub(self.tsc_at_wall)))
    }
}

/// Splits ns since the Unix epoch into a UTC `(year, month, day, hour, minute, second)`.
pub fn utc(unix_ns: u64) -> (u64, u64, u64, u64, u64, u64) {
    let secs = unix_ns / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (proleptic Gregorian), valid for all dates after 1970.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_ticks_to_ns() {
        let c = Clock::new(2_000_000, 0, 0); // 2 GHz
        assert_eq!(c.ticks_to_ns(2_000), 1_000);
        assert_eq!(c.ticks_to_ns(u64::MAX), (u128::from(u64::MAX) / 2) as u64);
        assert_eq!(c.ticks_per_us(), 2_000);
        assert_eq!(Clock::new(0, 0, 0).ticks_per_us(), 1);
    }

    #[test]
    fn wall_clock_advances_from_the_reference() {
        let c = Clock::new(1_000_000, 5_000_000_000, 100);
        assert_eq!(c.wall_ns_at(100), 5_000_000_000);
        assert_eq!(c.wall_ns_at(1_100), 5_000_001_000);
    }

    #[test]
    fn formats_utc_dates() {
        assert_eq!(utc(0), (1970, 1, 1, 0, 0, 0));
        // 2026-11-22T18:30:05Z
        assert_eq!(utc(1_795_372_205 * 1_000_000_000), (2026, 11, 22, 18, 30, 5));
        // 2024-02-29T23:59:59Z (leap day)
        assert_eq!(utc(1_709_251_199 * 1_000_000_000), (2024, 2, 29, 23, 59, 59));
    }
}
