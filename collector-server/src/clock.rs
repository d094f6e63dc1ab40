//! Time as the collector records it: RFC 3339 UTC strings and Unix seconds.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Now, Unix seconds.
pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// RFC 3339 as Unix seconds (the conformity rules' parser).
pub use annexa_checks::conformity::parse_time as parse_rfc3339;

/// An RFC 3339 time in the form the collector records (UTC, `Z`), and its
/// Unix seconds, so that it compares with recorded times as text.
pub fn normalize_rfc3339(s: &str) -> Option<(String, i64)> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .ok()?
        .to_offset(time::UtcOffset::UTC);
    Some((t.format(&Rfc3339).ok()?, t.unix_timestamp()))
}

/// A query parameter's RFC 3339 time, normalised ([`normalize_rfc3339`]),
/// or the message that names the parameter and what is wrong.
pub fn time_param(name: &str, v: &str) -> Result<(String, i64), String> {
    normalize_rfc3339(v).ok_or_else(|| {
        format!("`{name}`: `{v}` is not an RFC 3339 time such as 2026-11-23T12:00:00Z")
    })
}

/// Parses durations like `1h`, `30m`, `7d`, `90s` (for token lifetimes).
pub fn parse_ttl(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 30m, 1h or 7d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("`{s}` is not a duration such as 30m, 1h or 7d")),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("`{s}` is out of range"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_compare_as_recorded() {
        let (s, unix) = super::normalize_rfc3339("2026-11-23T12:00:00+01:00").unwrap();
        assert_eq!(s, "2026-11-23T11:00:00Z");
        assert_eq!(super::rfc3339(unix), s);
        assert!(super::normalize_rfc3339("yesterday").is_none());
    }

    #[test]
    fn ttl() {
        assert_eq!(super::parse_ttl("1h").unwrap(), 3600);
        assert_eq!(super::parse_ttl("7d").unwrap(), 604800);
        assert!(super::parse_ttl("1y").is_err());
        assert!(super::parse_ttl("h").is_err());
        assert!(super::parse_ttl("0s").is_err());
    }
}
