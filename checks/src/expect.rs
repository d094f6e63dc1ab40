//! Expectations a check places on an observed value, and the parameters
//! (thresholds) that operators can override.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A number written in a pack, or a reference to a parameter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Num {
    /// A literal.
    Literal(i64),
    /// `{ param = "name" }`.
    Param {
        /// The parameter's name.
        param: String,
    },
}

impl Num {
    /// The value, resolving a parameter reference.
    pub fn resolve(&self, params: &Params) -> Result<i64, String> {
        match self {
            Num::Literal(n) => Ok(*n),
            Num::Param { param } => params.int(param),
        }
    }

    /// The parameter this number refers to, if any.
    pub fn param_ref(&self) -> Option<&str> {
        match self {
            Num::Literal(_) => None,
            Num::Param { param } => Some(param),
        }
    }

    fn describe(&self, params: &Params) -> String {
        match (self, self.resolve(params)) {
            (Num::Param { param }, Ok(v)) => format!("{v} ({param})"),
            (_, Ok(v)) => v.to_string(),
            (Num::Param { param }, Err(_)) => format!("${param}"),
            (Num::Literal(n), Err(_)) => n.to_string(),
        }
    }
}

/// The parameters referred to by optional numbers of a probe.
pub fn param_refs<'a>(nums: impl IntoIterator<Item = &'a Option<Num>>) -> Vec<&'a str> {
    nums.into_iter()
        .flatten()
        .filter_map(Num::param_ref)
        .collect()
}

/// A word in a pack: configuration values are compared as text, without
/// regard to ASCII case (`yes`, `Yes` and `YES` mean the same to sshd,
/// systemd and login.defs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Word {
    /// Text.
    Text(String),
    /// A number written without quotes.
    Int(i64),
    /// A boolean written without quotes.
    Bool(bool),
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Word::Text(s) => f.write_str(s),
            Word::Int(n) => write!(f, "{n}"),
            Word::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl Word {
    fn matches(&self, observed: &str) -> bool {
        self.to_string().eq_ignore_ascii_case(observed.trim())
    }
}

/// A compiled regular expression from a pack. Compiled when the pack loads,
/// so a bad pattern is a pack error with its line, not a scan-time surprise.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::RegexBuilder::new(&s)
            .multi_line(true)
            .size_limit(1 << 20)
            .build()
            .map(Pattern)
            .map_err(|e| serde::de::Error::custom(format!("invalid regular expression: {e}")))
    }
}

/// What the observed value must satisfy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expect {
    /// Equal (ASCII case-insensitive).
    Equals(Word),
    /// Equal to one of these.
    OneOf(Vec<Word>),
    /// Equal to none of these.
    NoneOf(Vec<Word>),
    /// A number (or duration, in seconds) no greater than this.
    AtMost(Num),
    /// A number (or duration, in seconds) no smaller than this.
    AtLeast(Num),
    /// A number (or duration, in seconds) within `[min, max]`.
    Between([Num; 2]),
    /// Matches the regular expression.
    Matches(Pattern),
    /// Does not match the regular expression (a cipher list with no weak
    /// cipher in it).
    Lacks(Pattern),
    /// An octal mask whose bits must all be set (for `UMASK 027`).
    BitsSet(String),
}

/// Why an observed value could not be judged.
pub type JudgeError = String;

impl Expect {
    /// Whether `observed` satisfies the expectation.
    pub fn judge(&self, observed: &str, params: &Params) -> Result<bool, JudgeError> {
        Ok(match self {
            Expect::Equals(w) => w.matches(observed),
            Expect::OneOf(ws) => ws.iter().any(|w| w.matches(observed)),
            Expect::NoneOf(ws) => !ws.iter().any(|w| w.matches(observed)),
            Expect::AtMost(n) => number(observed)? <= n.resolve(params)?,
            Expect::AtLeast(n) => number(observed)? >= n.resolve(params)?,
            Expect::Between([lo, hi]) => {
                let v = number(observed)?;
                v >= lo.resolve(params)? && v <= hi.resolve(params)?
            }
            Expect::Matches(p) => p.0.is_match(observed),
            Expect::Lacks(p) => !p.0.is_match(observed),
            Expect::BitsSet(mask) => {
                let want = octal(mask)?;
                let have = octal(observed.trim())?;
                have & want == want
            }
        })
    }

    /// The expectation in words, parameters resolved.
    pub fn describe(&self, params: &Params) -> String {
        let list = |ws: &[Word]| {
            ws.iter()
                .map(Word::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Expect::Equals(w) => w.to_string(),
            Expect::OneOf(ws) => format!("one of: {}", list(ws)),
            Expect::NoneOf(ws) => format!("none of: {}", list(ws)),
            Expect::AtMost(n) => format!("at most {}", n.describe(params)),
            Expect::AtLeast(n) => format!("at least {}", n.describe(params)),
            Expect::Between([a, b]) => {
                format!("between {} and {}", a.describe(params), b.describe(params))
            }
            Expect::Matches(p) => format!("matches /{}/", p.0.as_str()),
            Expect::Lacks(p) => format!("does not match /{}/", p.0.as_str()),
            Expect::BitsSet(m) => format!("mask with bits {m} set"),
        }
    }

    /// Parameters this expectation refers to.
    pub fn param_refs(&self) -> Vec<&str> {
        match self {
            Expect::AtMost(n) | Expect::AtLeast(n) => n.param_ref().into_iter().collect(),
            Expect::Between([a, b]) => a.param_ref().into_iter().chain(b.param_ref()).collect(),
            _ => Vec::new(),
        }
    }
}

fn octal(s: &str) -> Result<u32, JudgeError> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("`{s}` is not an octal mode"))
}

/// Reads a number, accepting the duration forms sshd (`5m`, `1h30m`) and
/// systemd (`15min`, `1h 30s`) use, in seconds.
pub fn number(s: &str) -> Result<i64, JudgeError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    // systemd's "no limit": larger than any threshold a check can set.
    if t.eq_ignore_ascii_case("infinity") {
        return Ok(i64::MAX);
    }
    parse_duration_secs(t).ok_or_else(|| format!("`{t}` is not a number or a duration"))
}

/// Parses a duration (`90m`, `1h30m`, `2d`, `15min`) into seconds.
pub fn parse_duration_secs(s: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let mult = match unit {
            "" | "s" | "S" | "sec" | "second" | "seconds" => 1,
            "m" | "M" | "min" | "minute" | "minutes" => 60,
            "h" | "H" | "hr" | "hour" | "hours" => 3600,
            "d" | "D" | "day" | "days" => 86400,
            "w" | "W" | "week" | "weeks" => 604800,
            // systemd.time(7): a month is 30.44 days, a year 365.25.
            "month" | "months" => 2_630_016,
            "y" | "year" | "years" => 31_557_600,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
        rest = rest[unit_len..].trim_start();
    }
    Some(total)
}

/// A parameter's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// An integer threshold.
    Int(i64),
    /// A word.
    Text(String),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(n) => write!(f, "{n}"),
            ParamValue::Text(s) => f.write_str(s),
        }
    }
}

/// The parameter values in force for a scan: pack defaults overlaid by the
/// operator's overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params(pub BTreeMap<String, ParamValue>);

impl Params {
    /// A text parameter as a list: its words, separated by commas or
    /// white space (empty when the parameter is unset).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.0
            .get(name)
            .map(|v| {
                v.to_string()
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An integer parameter.
    pub fn int(&self, name: &str) -> Result<i64, String> {
        match self.0.get(name) {
            Some(ParamValue::Int(n)) => Ok(*n),
            Some(ParamValue::Text(t)) => Err(format!("parameter `{name}` is `{t}`, not a number")),
            None => Err(format!("parameter `{name}` is not declared by any pack")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        let mut p = Params::default();
        p.0.insert("limit".into(), ParamValue::Int(900));
        p
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(number("300").unwrap(), 300);
        assert_eq!(number("5m").unwrap(), 300);
        assert_eq!(number("1h30m").unwrap(), 5400);
        assert_eq!(number("15min").unwrap(), 900);
        assert_eq!(number("1h 30s").unwrap(), 3630);
        assert!(number("soon").is_err());
        assert!(number("5parsecs").is_err());
    }

    #[test]
    fn judging_with_params() {
        let p = params();
        let e = Expect::Between([
            Num::Literal(1),
            Num::Param {
                param: "limit".into(),
            },
        ]);
        assert!(e.judge("300", &p).unwrap());
        assert!(e.judge("15m", &p).unwrap());
        assert!(!e.judge("0", &p).unwrap());
        assert!(!e.judge("901", &p).unwrap());
        assert!(e.judge("many", &p).is_err());
        assert_eq!(e.describe(&p), "between 1 and 900 (limit)");
        assert_eq!(e.param_refs(), ["limit"]);
        let e = Expect::OneOf(vec![
            Word::Text("no".into()),
            Word::Text("prohibit-password".into()),
        ]);
        assert!(e.judge("No", &p).unwrap());
        assert!(!e.judge("yes", &p).unwrap());
        assert!(Expect::BitsSet("027".into()).judge("077", &p).unwrap());
        assert!(!Expect::BitsSet("027".into()).judge("022", &p).unwrap());
        let missing = Expect::AtMost(Num::Param {
            param: "nope".into(),
        });
        assert!(missing.judge("1", &p).unwrap_err().contains("not declared"));
    }
}
