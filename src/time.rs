//! The clock, truncated to microseconds so SQLite (nanoseconds) and
//! PostgreSQL (microseconds) store and return the same instants.

use chrono::{DateTime, NaiveDate, Timelike, Utc};

/// Now, to the microsecond.
pub fn now() -> DateTime<Utc> {
    truncate(Utc::now())
}

/// `t` truncated to the microsecond.
pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// Today's date in UTC: consent dates may not be later.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}
