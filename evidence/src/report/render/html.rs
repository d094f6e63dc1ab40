//! One self-contained HTML page for auditors: no external assets, readable
//! without scripts, printable to PDF (the one inline script opens every
//! drill-down before printing).

use std::fmt::Write;

use super::{Context, EVIDENCED, Verification, overall, ratio};
use crate::report::{ControlReport, Kind};

const STYLE: &str = r#"
:root{--ok:#1b7a3a;--bad:#b3261e;--warn:#9a6700;--mute:#5f6368;--line:#d0d7de}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#1f2328}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:1px solid var(--line);padding-bottom:.25rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid var(--line);padding:.3rem .45rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
.meta td:first-child{width:14rem;color:var(--mute)}
.s{display:inline-block;padding:0 .4rem;border-radius:.6rem;font-size:.85em;white-space:nowrap;border:1px solid currentColor}
.conformant,.pass{color:var(--ok)}.nonconformant,.fail,.error{color:var(--bad)}.stale,.no_evidence,.no_hosts{color:var(--warn)}.manual,.excluded,.not_applicable{color:var(--mute)}
.verdict{padding:.75rem 1rem;border-radius:.4rem;border:2px solid;margin:1rem 0}.verdict.ok{border-color:var(--ok)}.verdict.bad{border-color:var(--bad)}.verdict.none{border-color:var(--warn)}
details{margin:.35rem 0;border:1px solid var(--line);border-radius:.3rem;padding:.3rem .6rem}summary{cursor:pointer}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em;word-break:break-all}
footer{margin-top:2rem;border-top:1px solid var(--line);padding-top:.5rem;color:var(--mute);font-size:.85em}
@media print{body{margin:0;max-width:none;font-size:11px}details{border:none;padding:0}summary{font-weight:600}tr,details{break-inside:avoid}h2{break-after:avoid}}
"#;

/// Renders the page.
pub fn render(ctx: &Context<'_>) -> String {
    let r = ctx.report;
    let mut h = String::with_capacity(64 * 1024 + r.controls.len() * r.hosts.len() * 400);
    let title = match (&soa_title(ctx), &r.scope.selector) {
        (t, Some(sel)) => format!("{t} — hosts {sel}"),
        (t, None) => t.clone(),
    };
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(&format!("Evidence report: {title}"))
    );
    let _ = writeln!(h, "<h1>Evidence report: {}</h1>", esc(&title));
    header(&mut h, ctx);
    verification(&mut h, ctx);
    themes(&mut h, ctx);
    soa_table(&mut h, ctx);
    drill_down(&mut h, ctx);
    exclusions(&mut h, ctx);
    hosts(&mut h, ctx);
    footer(&mut h, ctx);
    h.push_str("<script>addEventListener('beforeprint',()=>document.querySelectorAll('details').forEach(d=>d.open=true))</script>\n</body></html>\n");
    h
}

fn soa_title(ctx: &Context<'_>) -> String {
    let r = ctx.report;
    let org = r.soa.parse().ok().and_then(|s| s.organisation.or(s.title));
    match org {
        Some(o) => format!("{o}, SoA version {}", r.soa.version),
        None => format!("SoA version {}", r.soa.version),
    }
}

fn header(h: &mut String, ctx: &Context<'_>) {
    let r = ctx.report;
    h.push_str("<table class=\"meta\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(h, "<tr><td>{k}</td><td>{v}</td></tr>");
    };
    row("States as of", esc(&r.period.at));
    row(
        "Evidence accepted from",
        esc(r
            .period
            .from
            .as_deref()
            .unwrap_or("any time up to the report's time")),
    );
    row(
        "Scope",
        esc(&format!(
            "{}; {}",
            r.scope
                .selector
                .as_deref()
                .map_or("all hosts".to_string(), |s| format!("hosts with {s}")),
            if r.scope.controls.is_empty() {
                "every control of the SoA".to_string()
            } else {
                format!("controls {}", r.scope.controls.join(", "))
            }
        )),
    );
    row(
        "Statement of Applicability",
        format!(
            "version {}, imported {} by {} ({}), <code>sha256:{}</code>",
            r.soa.version,
            esc(&r.soa.imported_at),
            esc(&r.soa.imported_by),
            esc(&r.soa.format),
            esc(&r.soa.sha256)
        ),
    );
    row("Hosts", r.summary.hosts.to_string());
    row(
        "Collector",
        format!(
            "{} (annexa {}), generated {}",
            esc(&r.collector.origin),
            esc(&r.collector.version),
            esc(&r.generated_at)
        ),
    );
    row("Report id", format!("<code>{}</code>", esc(&r.id)));
    h.push_str("</table>\n");
}

fn verification(h: &mut String, ctx: &Context<'_>) {
    h.push_str("<h2 id=\"verification\">Verification</h2>\n");
    match ctx.verification {
        Verification::Unchecked => h.push_str(
            "<div class=\"verdict none\" data-verdict=\"unchecked\"><strong>Not verified.</strong> This page was rendered without the collector's key. Check the signed report offline with <code>annexa verify report REPORT --collector-key KEY</code>.</div>\n",
        ),
        Verification::Checked { key, outcome } if outcome.ok() => {
            let _ = writeln!(
                h,
                "<div class=\"verdict ok\" data-verdict=\"verified\"><strong>Verified</strong> against collector key <code>{}</code>: the collector's signature, {} agent-signed envelopes and their inclusion proofs in the checkpoint of size {}, every agent key against its enrollment record, and every one of {} states recomputed from the evidence and the SoA.</div>",
                esc(key),
                outcome.envelopes,
                outcome.checkpoint_size,
                outcome.cells.values().sum::<u64>()
            );
        }
        Verification::Checked { key, outcome } => {
            let _ = write!(
                h,
                "<div class=\"verdict bad\" data-verdict=\"failed\"><strong>Verification failed</strong> against collector key <code>{}</code>: {} problems. Do not rely on this report.<ul>",
                esc(key),
                outcome.problem_count
            );
            for p in &outcome.problems {
                let _ = write!(h, "<li>{}</li>", esc(p));
            }
            h.push_str("</ul></div>\n");
        }
    }
}

fn badge(state: &str) -> String {
    format!(
        "<span class=\"s {state}\">{}</span>",
        state.replace('_', " ")
    )
}

fn themes(h: &mut String, ctx: &Context<'_>) {
    h.push_str(
        "<h2 id=\"summary\">Summary by theme</h2>\n<table><tr><th>Theme</th><th>Controls</th>",
    );
    for s in EVIDENCED {
        let _ = write!(h, "<th>{}</th>", s.as_str().replace('_', " "));
    }
    h.push_str("<th>Manual</th><th>Excluded</th></tr>\n");
    let s = &ctx.report.summary;
    for t in &s.themes {
        let _ = write!(
            h,
            "<tr data-theme=\"{}\"><td>{}</td><td class=\"n\">{}</td>",
            esc(&t.theme),
            esc(&t.theme),
            t.controls
        );
        for st in EVIDENCED {
            let _ = write!(
                h,
                "<td class=\"n\">{}</td>",
                t.cells.get(&st).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            h,
            "<td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            t.manual, t.excluded
        );
    }
    let _ = write!(
        h,
        "<tr><th>All</th><th class=\"n\">{}</th>",
        ctx.report.controls.len()
    );
    for st in EVIDENCED {
        let _ = write!(
            h,
            "<th class=\"n\">{}</th>",
            s.cells.get(&st).copied().unwrap_or(0)
        );
    }
    let _ = writeln!(
        h,
        "<th class=\"n\">{}</th><th class=\"n\">{}</th></tr></table>\n<p>Counts are (host, control) pairs for controls with automated checks; manual and excluded count controls.</p>",
        s.controls.get(&Kind::Manual).copied().unwrap_or(0),
        s.controls.get(&Kind::Excluded).copied().unwrap_or(0)
    );
}

fn soa_table(h: &mut String, ctx: &Context<'_>) {
    h.push_str("<h2 id=\"soa\">Statement of Applicability with status</h2>\n<table><tr><th>Control</th><th>Title</th><th>Applicable</th><th>Implementation</th><th>Status</th><th>Hosts</th><th>Justification</th></tr>\n");
    for c in &ctx.report.controls {
        let status = overall(c);
        let hosts = match c.kind {
            Kind::Automated => esc(&ratio(c)),
            Kind::Manual => "needs other evidence".into(),
            Kind::Excluded => "—".into(),
        };
        let _ = writeln!(
            h,
            "<tr data-control=\"{}\" data-status=\"{status}\"><td><a href=\"#c-{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{hosts}</td><td>{}</td></tr>",
            esc(c.id.as_str()),
            esc(c.id.as_str()),
            esc(c.id.as_str()),
            esc(&c.title),
            if c.applicable { "yes" } else { "no" },
            esc(c.implementation.as_deref().unwrap_or("")),
            badge(status),
            esc(&c.justification)
        );
    }
    h.push_str("</table>\n");
}

fn drill_down(h: &mut String, ctx: &Context<'_>) {
    h.push_str("<h2 id=\"controls\">Controls, hosts and observed values</h2>\n");
    for c in ctx
        .report
        .controls
        .iter()
        .filter(|c| c.kind == Kind::Automated)
    {
        control_detail(h, ctx, c);
    }
    let manual: Vec<&ControlReport> = ctx
        .report
        .controls
        .iter()
        .filter(|c| c.kind == Kind::Manual)
        .collect();
    if !manual.is_empty() {
        h.push_str("<h2 id=\"manual\">Controls needing other evidence</h2>\n<p>Applicable controls that no automated check covers: their evidence comes from elsewhere (procedures, records, interviews).</p>\n<table><tr><th>Control</th><th>Title</th><th>Owner</th><th>Justification</th></tr>\n");
        for c in manual {
            let _ = writeln!(
                h,
                "<tr data-manual=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(c.id.as_str()),
                esc(c.id.as_str()),
                esc(&c.title),
                esc(&c.owner),
                esc(&c.justification)
            );
        }
        h.push_str("</table>\n");
    }
}

fn control_detail(h: &mut String, ctx: &Context<'_>, c: &ControlReport) {
    let _ = writeln!(
        h,
        "<details id=\"c-{}\"><summary><strong>{}</strong> {} — {} {}</summary>\n<p>Checks: {}</p>\n<table><tr><th>Host</th><th>State</th><th>Check</th><th>Result</th><th>Expected</th><th>Observed</th><th>Sources</th><th>Envelope</th></tr>",
        esc(c.id.as_str()),
        esc(c.id.as_str()),
        esc(&c.title),
        badge(overall(c)),
        esc(&ratio(c)),
        c.checks
            .iter()
            .map(|x| format!("<code>{}</code>", esc(x.as_str())))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for hs in &c.hosts {
        let results = ctx.hosts.get(hs.agent.as_str());
        let rows = c.checks.len().max(1);
        let host_cells = format!(
            "<td rowspan=\"{rows}\">{}<br><code>{}</code></td><td rowspan=\"{rows}\">{}{}</td>",
            esc(ctx.hostname(hs.agent.as_str())),
            esc(hs.agent.as_str()),
            badge(hs.state.as_str()),
            hs.detail
                .reason
                .as_deref()
                .map(|r| format!("<br><small>{}</small>", esc(r)))
                .unwrap_or_default()
        );
        let _ = write!(
            h,
            "<tr data-cell=\"{}|{}\">{host_cells}",
            esc(c.id.as_str()),
            esc(hs.agent.as_str())
        );
        if c.checks.is_empty() {
            h.push_str("<td colspan=\"6\"></td></tr>\n");
            continue;
        }
        for (i, check) in c.checks.iter().enumerate() {
            if i > 0 {
                h.push_str("<tr>");
            }
            match results.and_then(|r| r.results.get(check)) {
                Some((res, seq, index)) => {
                    let sources = res
                        .sources
                        .iter()
                        .map(|s| {
                            let mut t = esc(&s.path);
                            if let Some(l) = s.line {
                                let _ = write!(t, ":{l}");
                            }
                            if let Some(d) = &s.sha256 {
                                let _ = write!(
                                    t,
                                    " <span class=\"mono\">sha256:{}</span>",
                                    esc(prefix(d, 16))
                                );
                            }
                            t
                        })
                        .collect::<Vec<_>>()
                        .join("<br>");
                    let _ = writeln!(
                        h,
                        "<td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{sources}</td><td>seq {seq}, log {index}</td></tr>",
                        esc(check.as_str()),
                        badge(res.status.as_str()),
                        esc(res.expected.as_deref().unwrap_or("")),
                        esc(res.observed.as_deref().unwrap_or(&res.message)),
                    );
                }
                None => {
                    let _ = writeln!(
                        h,
                        "<td><code>{}</code></td><td colspan=\"5\">no result</td></tr>",
                        esc(check.as_str())
                    );
                }
            }
        }
    }
    h.push_str("</table></details>\n");
}

fn exclusions(h: &mut String, ctx: &Context<'_>) {
    h.push_str("<h2 id=\"exclusions\">Exclusions</h2>\n");
    let excluded: Vec<&ControlReport> = ctx
        .report
        .controls
        .iter()
        .filter(|c| c.kind == Kind::Excluded)
        .collect();
    if excluded.is_empty() {
        h.push_str("<p>The SoA excludes no control in scope.</p>\n");
        return;
    }
    h.push_str(
        "<table><tr><th>Control</th><th>Title</th><th>Justification for exclusion</th></tr>\n",
    );
    for c in excluded {
        let _ = writeln!(
            h,
            "<tr data-excluded=\"{}\"><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(c.id.as_str()),
            esc(c.id.as_str()),
            esc(&c.title),
            esc(&c.justification)
        );
    }
    h.push_str("</table>\n");
}

fn hosts(h: &mut String, ctx: &Context<'_>) {
    h.push_str("<h2 id=\"hosts\">Hosts</h2>\n<table><tr><th>Host</th><th>Operating system</th><th>Labels</th><th>Agent key</th><th>Newest evidence</th></tr>\n");
    for host in &ctx.report.hosts {
        let a = ctx.agents.get(host.agent.as_str()).copied();
        let newest = ctx
            .hosts
            .get(host.agent.as_str())
            .and_then(|r| r.newest.as_ref());
        let os = newest
            .and_then(|p| p.scan.host.os_name.clone())
            .unwrap_or_default();
        let labels = a
            .map(|a| {
                a.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let evidence = match (host.evidence.last(), &host.withheld) {
            (Some(e), _) => format!(
                "seq {} accepted {}, log index {}",
                e.sequence,
                esc(&e.accepted_at),
                e.log_index
            ),
            (None, Some(w)) => format!(
                "seq {} removed by retention at {}",
                w.sequence,
                esc(&w.pruned_at)
            ),
            (None, None) => "none in the period".into(),
        };
        let _ = writeln!(
            h,
            "<tr data-host=\"{}\"><td>{}<br><code>{}</code></td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{evidence}</td></tr>",
            esc(host.agent.as_str()),
            esc(ctx.hostname(host.agent.as_str())),
            esc(host.agent.as_str()),
            esc(&os),
            esc(&labels),
            esc(a.map_or("", |a| prefix(&a.key_id, 16))),
        );
    }
    h.push_str("</table>\n");
}

fn footer(h: &mut String, ctx: &Context<'_>) {
    let cp = crate::note::Note::parse(&ctx.report.checkpoint)
        .ok()
        .and_then(|n| crate::note::Checkpoint::parse_text(&n.text).ok());
    let _ = writeln!(
        h,
        "<footer>Report digest <code>sha256:{}</code> · checkpoint {} · signed by <code>{}</code></footer>",
        esc(ctx.digest),
        cp.map_or_else(
            || "unreadable".to_string(),
            |c| format!(
                "<code>{}</code> size {} root <code>{}</code>",
                esc(&c.origin),
                c.size,
                crate::encoding::hex(&c.root)
            )
        ),
        esc(&ctx.report.collector.key)
    );
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_cannot_become_markup() {
        assert_eq!(
            super::esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}

/// The first `n` characters of an identifier shown in short. Digests and
/// key ids come from agents: cutting at a byte offset could split a
/// character and panic.
fn prefix(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod prefix_tests {
    #[test]
    fn a_short_form_never_splits_a_character() {
        assert_eq!(
            super::prefix("0123456789abcdef0123", 16),
            "0123456789abcdef"
        );
        assert_eq!(super::prefix("aéééééééééééééééééé", 3), "aéé");
        assert_eq!(super::prefix("ab", 16), "ab");
    }
}
