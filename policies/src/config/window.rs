//! Budget windows: UTC, calendar-aligned. A window is `[start, end)` in
//! unix milliseconds; a month is its calendar month (28 to 31 days).

use crate::util::time::{civil_from_days, days_from_civil};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Minute,
    Hour,
    Day,
    Month,
}

const DAY_MS: u64 = 86_400_000;

impl Window {
    pub fn name(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    /// The window holding `now_ms`: its start and its end (exclusive).
    pub fn bounds(self, now_ms: u64) -> (u64, u64) {
        let fixed = |len: u64| {
            let start = now_ms - now_ms % len;
            (start, start.saturating_add(len))
        };
        match self {
            Window::Minute => fixed(60_000),
            Window::Hour => fixed(3_600_000),
            Window::Day => fixed(DAY_MS),
            Window::Month => {
                let (y, m, _) = civil_from_days(now_ms / DAY_MS);
                let start = days_from_civil(y, m, 1) * DAY_MS;
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (start, days_from_civil(ny, nm, 1) * DAY_MS)
            }
        }
    }

    /// Whole seconds from `now_ms` to the window's end, at least 1: what
    /// `Retry-After` says to a request refused for want of room.
    pub fn retry_after_s(self, now_ms: u64) -> u64 {
        let (_, end) = self.bounds(now_ms);
        end.saturating_sub(now_ms).div_ceil(1000).max(1)
    }
}

#[cfg(test)]
#[path = "window_tests.rs"]
mod tests;
