use super::*;
use crate::util::time::parse_rfc3339;

fn at(s: &str) -> u64 {
    parse_rfc3339(s).unwrap_or(0) * 1000
}

#[test]
fn windows_are_calendar_aligned_in_utc() {
    let now = at("2026-12-03T07:55:12Z") + 345;
    assert_eq!(Window::Minute.bounds(now), (at("2026-12-03T07:55:00Z"), at("2026-12-03T07:56:00Z")));
    assert_eq!(Window::Hour.bounds(now), (at("2026-12-03T07:00:00Z"), at("2026-12-03T08:00:00Z")));
    assert_eq!(Window::Day.bounds(now), (at("2026-12-03T00:00:00Z"), at("2026-12-04T00:00:00Z")));
    assert_eq!(Window::Month.bounds(now), (at("2026-12-01T00:00:00Z"), at("2027-01-01T00:00:00Z")));
}

#[test]
fn months_have_28_to_31_days() {
    let days = |s: &str| {
        let (start, end) = Window::Month.bounds(at(s));
        (end - start) / 86_400_000
    };
    assert_eq!(days("2026-02-14T00:00:00Z"), 28);
    assert_eq!(days("2028-02-29T23:59:59Z"), 29);
    assert_eq!(days("2100-02-10T00:00:00Z"), 28, "2100 is not a leap year");
    assert_eq!(days("2000-02-10T00:00:00Z"), 29, "2000 is");
    assert_eq!(days("2026-04-30T12:00:00Z"), 30);
    assert_eq!(days("2026-01-31T23:59:59Z"), 31);
}

#[test]
fn the_edges_belong_to_the_window_they_start() {
    let midnight = at("2026-12-04T00:00:00Z");
    assert_eq!(Window::Day.bounds(midnight).0, midnight, "the first millisecond opens the new day");
    assert_eq!(Window::Day.bounds(midnight - 1).1, midnight, "the last one closes the old");
    let new_year = at("2027-01-01T00:00:00Z");
    assert_eq!(Window::Month.bounds(new_year - 1), (at("2026-12-01T00:00:00Z"), new_year));
    assert_eq!(Window::Month.bounds(new_year).0, new_year);
}

#[test]
fn retry_after_counts_whole_seconds_to_the_end() {
    let now = at("2026-12-03T23:59:58Z") + 1;
    assert_eq!(Window::Day.retry_after_s(now), 2, "1.999 s rounds up");
    assert_eq!(Window::Minute.retry_after_s(at("2026-12-03T10:00:59Z") + 999), 1);
    assert_eq!(Window::Month.retry_after_s(at("2026-12-31T00:00:00Z")), 86_400);
}
