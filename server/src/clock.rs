//! Wall-clock time as the protocol writes it: RFC 3339 strings in UTC.

/// `t` as RFC 3339 (the epoch if it cannot be formatted, which `time` only
/// refuses for years outside 0..=9999).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// Now, as RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}
