//! `annexa status`: the collector's conformity answers as tables. Reads the
//! JSON of /v1/conformity (docs/api.md) loosely, so that a newer collector's
//! extra fields do not break an older CLI.

use std::io::{self, Write};

use serde_json::Value;

const STATES: [(&str, &str); 7] = [
    ("conformant", "OK"),
    ("nonconformant", "FAIL"),
    ("stale", "STALE"),
    ("no_evidence", "NOEV"),
    ("error", "ERR"),
    ("manual", "MAN"),
    ("excluded", "EXCL"),
];

/// Whether the answer shows anything nonconformant.
pub fn any_nonconformant(v: &Value) -> bool {
    let counted = |c: &Value| c["nonconformant"].as_u64().unwrap_or(0) > 0;
    counted(&v["totals"]) || counted(&v["counts"])
}

fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// One line saying why a cell is in its state.
pub fn why(detail: &Value) -> String {
    let mut parts = Vec::new();
    for f in detail["failing"].as_array().into_iter().flatten() {
        let check = f["check"].as_str().unwrap_or("?");
        match f["observed"].as_str() {
            Some(o) => parts.push(format!("{check} failed (observed {o})")),
            None => parts.push(format!("{check} failed")),
        }
    }
    let list = |key: &str| -> Vec<String> {
        detail[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    };
    let errors = list("errors");
    if !errors.is_empty() {
        parts.push(format!("could not run: {}", errors.join(", ")));
    }
    let missing = list("missing");
    if !missing.is_empty() {
        parts.push(format!("no result: {}", missing.join(", ")));
    }
    if let Some(r) = detail["reason"].as_str() {
        parts.push(r.to_string());
    }
    parts.join("; ")
}

fn counts_line(counts: &Value) -> String {
    STATES
        .iter()
        .map(|(k, _)| format!("{k} {}", counts[k].as_u64().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders any of the three answers.
pub fn render(out: &mut dyn Write, v: &Value) -> io::Result<()> {
    let version = v["soa_version"].as_i64().unwrap_or(0);
    if v.get("hosts").is_some_and(Value::is_array) {
        // One control across the fleet.
        writeln!(
            out,
            "{} {} (SoA version {version})",
            v["control"].as_str().unwrap_or(""),
            v["title"].as_str().unwrap_or("")
        )?;
        writeln!(out, "evidence from: {}", join(&v["checks"]))?;
        writeln!(out, "{}\n", counts_line(&v["counts"]))?;
        writeln!(out, "{:<28} {:<14} {:<21} WHY", "HOST", "STATE", "SINCE")?;
        for c in v["hosts"].as_array().into_iter().flatten() {
            row(out, c["hostname"].as_str().unwrap_or(""), c)?;
        }
    } else if v.get("host").is_some() {
        writeln!(
            out,
            "{} ({}) against SoA version {version}; newest evidence {}",
            v["hostname"].as_str().unwrap_or(""),
            v["host"].as_str().unwrap_or(""),
            v["evidence_at"].as_str().unwrap_or("never")
        )?;
        writeln!(out, "{}\n", counts_line(&v["counts"]))?;
        writeln!(out, "{:<28} {:<14} {:<21} WHY", "CONTROL", "STATE", "SINCE")?;
        for c in v["controls"].as_array().into_iter().flatten() {
            let label = format!(
                "{} {}",
                c["control"].as_str().unwrap_or(""),
                c["title"].as_str().unwrap_or("")
            );
            row(out, &label, c)?;
        }
    } else {
        writeln!(
            out,
            "{} hosts against SoA version {version} (ISO/IEC 27001:{}), {}",
            v["hosts"].as_u64().unwrap_or(0),
            v["edition"].as_str().unwrap_or("?"),
            v["generated_at"].as_str().unwrap_or("")
        )?;
        write!(out, "{:<10} {:<40}", "CONTROL", "TITLE")?;
        for (_, short) in STATES {
            write!(out, " {short:>5}")?;
        }
        writeln!(out)?;
        for c in v["controls"].as_array().into_iter().flatten() {
            write!(
                out,
                "{:<10} {:<40}",
                c["control"].as_str().unwrap_or(""),
                trunc(c["title"].as_str().unwrap_or(""), 40)
            )?;
            for (k, _) in STATES {
                write!(out, " {:>5}", c["counts"][k].as_u64().unwrap_or(0))?;
            }
            writeln!(out)?;
        }
        write!(out, "{:<10} {:<40}", "TOTAL", "")?;
        for (k, _) in STATES {
            write!(out, " {:>5}", v["totals"][k].as_u64().unwrap_or(0))?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn join(v: &Value) -> String {
    let items: Vec<&str> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if items.is_empty() {
        "no automated check (manual)".into()
    } else {
        items.join(", ")
    }
}

fn row(out: &mut dyn Write, label: &str, c: &Value) -> io::Result<()> {
    writeln!(
        out,
        "{:<28} {:<14} {:<21} {}",
        trunc(label, 28),
        c["state"].as_str().unwrap_or("?"),
        c["since"].as_str().unwrap_or("-"),
        why(&c["detail"])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_cells() {
        let d = serde_json::json!({"failing": [{"check": "ssh.x", "observed": "900"}], "missing": ["a", "b"]});
        assert_eq!(why(&d), "ssh.x failed (observed 900); no result: a, b");
        assert!(any_nonconformant(
            &serde_json::json!({"totals": {"nonconformant": 2}})
        ));
        assert!(!any_nonconformant(
            &serde_json::json!({"counts": {"nonconformant": 0}})
        ));
    }
}
