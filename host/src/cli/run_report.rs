//! `opshost runs show ID --html FILE`: one self-contained HTML page of a run, for a change
//! ticket. A timeline of every host call of the upgrade, rollback and resumes (from the run's
//! `*-calls.json`) with the downtime window marked, each call's duration and outcome, the
//! backups (databases, sizes, rows, checksums, and the restores that verified them), what
//! changed, the plan as confirmed and what a rollback does. No script, no external resource.

use crate::bindings::Plan;
use crate::ops::runs::RunMeta;
use crate::runtime::{calls::Effect, record::CallRecord};
use crate::text::stamp;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// The downtime band's colour: the browser test looks for it in the screenshot.
pub const DOWNTIME_RGB: (u8, u8, u8) = (0xf2, 0xa6, 0x9c);

/// One operation's calls, in the order they ran.
struct Part {
    name: &'static str,
    calls: Vec<CallRecord>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn human_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
    }
}

/// `2026-11-26 12:34:56 UTC`.
fn when(ms: u64) -> String {
    let s = stamp(ms);
    format!("{}-{}-{} {}:{}:{} UTC", &s[0..4], &s[4..6], &s[6..8], &s[9..11], &s[11..13], &s[13..15])
}

fn ok(c: &CallRecord) -> bool {
    c.outcome.get("error").is_none()
}

/// The downtime of an upgrade as the calls show it: from the first stop (or removal) of a
/// container to the end of the first health check answering healthy after it, else to the last
/// call. `None` when nothing was stopped.
fn downtime(calls: &[CallRecord]) -> Option<(u64, u64)> {
    let first = calls.iter().position(|c| (c.call == "docker.stop" || c.call == "docker.remove") && ok(c) && c.started_ms > 0)?;
    let start = calls[first].started_ms;
    let end = calls[first..]
        .iter()
        .find(|c| c.call == "console.health" && c.outcome.get("ok") == Some(&Value::Bool(true)))
        .or_else(|| calls.last())
        .map(|c| c.started_ms + c.ms)?;
    Some((start, end.max(start)))
}

fn short(v: &Value, max: usize) -> String {
    let s = match v {
        Value::Object(m) if m.is_empty() => String::new(),
        v => v.to_string(),
    };
    if s.chars().count() <= max {
        s
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// The page. `rollback_words`: what `runs show` says of the run (how to go on, or undo it).
pub fn render(meta: &RunMeta, run_dir: &Path, rollback_words: &[String]) -> String {
    let mut parts = Vec::new();
    for (name, file) in [
        ("upgrade", "upgrade-calls.json"),
        ("resumed upgrade", "resume-upgrade-calls.json"),
        ("rollback", "rollback-calls.json"),
        ("resumed rollback", "resume-rollback-calls.json"),
    ] {
        let calls: Vec<CallRecord> = std::fs::read_to_string(run_dir.join(file)).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        if !calls.is_empty() {
            parts.push(Part { name, calls });
        }
    }
    let plan: Option<Plan> = std::fs::read_to_string(run_dir.join("plan.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
    let timed: Vec<&CallRecord> = parts.iter().flat_map(|p| p.calls.iter()).filter(|c| c.started_ms > 0 && !c.replayed).collect();
    let t0 = timed.iter().map(|c| c.started_ms).min().unwrap_or(meta.started_ms);
    let t1 = timed.iter().map(|c| c.started_ms + c.ms).max().unwrap_or(meta.finished_ms.unwrap_or(t0)).max(t0 + 1);
    let span = (t1 - t0) as f64;
    let upgrade_calls: Vec<CallRecord> = parts.iter().filter(|p| p.name.ends_with("upgrade")).flat_map(|p| p.calls.clone()).collect();
    let down = downtime(&upgrade_calls);

    let mut h = String::new();
    let title = format!("opshost run {} — {} {} → {}", meta.id, meta.product, meta.source, meta.target);
    let (r, g, b) = DOWNTIME_RGB;
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{t}</title><style>
body{{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}}
h1{{font-size:20px}} h2{{font-size:16px;margin-top:28px;border-bottom:1px solid #ccc}}
table{{border-collapse:collapse}} td,th{{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}}
.num{{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}} td:nth-child(3){{white-space:nowrap}} .err{{color:#b00020}} .mono{{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}}
.status-ok{{color:#0a7a2f;font-weight:600}} .status-bad{{color:#b00020;font-weight:600}}
.legend span{{display:inline-block;width:14px;height:10px;margin:0 4px 0 14px;vertical-align:middle}}
</style></head><body>
<h1>{t}</h1>"#,
        t = esc(&title)
    );
    let good = matches!(meta.status, crate::ops::runs::RunStatus::Upgraded | crate::ops::runs::RunStatus::RolledBack);
    let _ = write!(
        h,
        r#"<table id="summary"><tr><th>status</th><td class="{}">{}</td></tr><tr><th>product</th><td>{} {} → {}</td></tr><tr><th>plugin</th><td>{} <span class="mono">{}</span></td></tr><tr><th>started</th><td>{}</td></tr><tr><th>finished</th><td>{}</td></tr>"#,
        if good { "status-ok" } else { "status-bad" },
        esc(meta.status.words()),
        esc(&meta.product),
        esc(&meta.source),
        esc(&meta.target),
        esc(&meta.plugin),
        esc(&meta.plugin_hash),
        when(meta.started_ms),
        meta.finished_ms.map(when).unwrap_or_else(|| "—".into()),
    );
    if let Some((s, e)) = down {
        let _ = write!(h, r#"<tr><th>downtime</th><td id="downtime">{} (from {} to {})</td></tr>"#, human_ms(e - s), when(s), when(e));
    }
    if let Some(e) = &meta.error {
        let _ = write!(h, r#"<tr><th>error</th><td class="err">{}</td></tr>"#, esc(e));
    }
    h.push_str("</table>");

    // The timeline: one lane per operation, a bar per call.
    let width = 1100.0;
    let lane = 34.0;
    let height = 30.0 + lane * parts.len().max(1) as f64;
    let x = |ms: u64| 120.0 + (ms.saturating_sub(t0)) as f64 / span * (width - 130.0);
    let _ = write!(
        h,
        r#"<h2>Timeline ({} from first to last call)</h2><svg id="timeline" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" font-size="12">"#,
        human_ms(t1 - t0)
    );
    if let Some((s, e)) = down {
        let _ = write!(
            h,
            r##"<rect id="downtime-band" x="{:.1}" y="0" width="{:.1}" height="{height}" fill="rgb({r},{g},{b})"><title>downtime {}</title></rect><text x="{:.1}" y="12" fill="#7a1c10">downtime {}</text>"##,
            x(s),
            (x(e) - x(s)).max(2.0),
            human_ms(e - s),
            x(s) + 3.0,
            human_ms(e - s)
        );
    }
    for (i, p) in parts.iter().enumerate() {
        let y = 22.0 + lane * i as f64;
        let _ = write!(h, r#"<text x="0" y="{:.1}">{}</text>"#, y + 14.0, esc(p.name));
        for c in p.calls.iter().filter(|c| c.started_ms > 0 && !c.replayed) {
            let colour = if !ok(c) {
                "#c62828"
            } else if c.effect == Effect::Read {
                "#9e9e9e"
            } else {
                "#1e5aa8"
            };
            let _ = write!(
                h,
                r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="20" fill="{colour}"><title>#{} {} {} {}</title></rect>"#,
                x(c.started_ms),
                (c.ms as f64 / span * (width - 130.0)).max(1.5),
                c.seq,
                esc(&c.call),
                human_ms(c.ms),
                esc(&short(&c.args, 120))
            );
        }
    }
    let _ = write!(
        h,
        r#"</svg><div class="legend"><span style="background:#1e5aa8"></span>change<span style="background:#9e9e9e"></span>read<span style="background:#c62828"></span>failed<span style="background:rgb({r},{g},{b})"></span>downtime: from the first container stopped to the first healthy answer after it</div>"#
    );

    // Backups and their restores.
    h.push_str(r#"<h2>Backups</h2><table id="backups"><tr><th>backup</th><th>database</th><th class="num">size</th><th class="num">tables</th><th class="num">rows</th><th>checksum</th><th>restored and verified</th></tr>"#);
    let all: Vec<&CallRecord> = parts.iter().flat_map(|p| p.calls.iter()).collect();
    let backups_of = |c: &CallRecord| crate::capabilities::sql::backups_in_outcome(&c.outcome);
    let mut any = false;
    for c in all.iter().filter(|c| c.call.starts_with("sql.dump-database") && ok(c)) {
        for b in backups_of(c) {
            any = true;
            let name = b["name"].as_str().unwrap_or("");
            let restored = all
                .iter()
                .filter(|r| r.call.starts_with("sql.restore-database") && ok(r))
                .flat_map(|r| backups_of(r))
                .find(|r| r["name"].as_str() == Some(name))
                .map(|r| if r["checksum"] == b["checksum"] { "yes, checksum equal".to_string() } else { format!("checksum {}", r["checksum"]) })
                .unwrap_or_else(|| "not restored".into());
            let _ = write!(
                h,
                r#"<tr><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="mono">{}</td><td>{}</td></tr>"#,
                esc(name),
                esc(b["database"].as_str().unwrap_or("")),
                indicatif::BinaryBytes(b["bytes"].as_u64().unwrap_or(0)),
                b["tables"],
                b["rows"],
                esc(b["checksum"].as_str().unwrap_or("")),
                esc(&restored)
            );
        }
    }
    if !any {
        h.push_str(r#"<tr><td colspan="7">no backup was taken</td></tr>"#);
    }
    h.push_str("</table>");

    // What changed, then what a rollback does.
    h.push_str(r#"<h2>What changed</h2><table id="changes"><tr><th>#</th><th>operation</th><th>at</th><th class="num">took</th><th>call</th><th>on</th><th>outcome</th></tr>"#);
    for p in &parts {
        for c in p.calls.iter().filter(|c| c.effect != Effect::Read) {
            let outcome = match c.outcome.get("error") {
                Some(e) => format!(r#"<span class="err">{}: {}</span>"#, esc(e["kind"].as_str().unwrap_or("")), esc(e["message"].as_str().unwrap_or(""))),
                None => "ok".into(),
            };
            let _ = write!(
                h,
                r#"<tr><td class="num">{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td><td class="mono">{}</td><td>{outcome}</td></tr>"#,
                c.seq,
                p.name,
                if c.started_ms > 0 { format!("+{}", human_ms(c.started_ms.saturating_sub(t0))) } else { "replayed".into() },
                human_ms(c.ms),
                esc(&c.call),
                esc(&short(&c.args, 160)),
            );
        }
    }
    h.push_str("</table>");
    if let Some(plan) = &plan {
        h.push_str(r#"<h2>The plan as confirmed</h2><ol id="plan">"#);
        for s in &plan.steps {
            let _ = write!(h, "<li><b>{}</b> {} {}</li>", esc(&s.title), if s.changes { "[changes]" } else { "[read-only]" }, esc(&s.detail));
        }
        h.push_str(r#"</ol><h2>What a rollback does</h2><ol id="rollback">"#);
        for s in &plan.rollback {
            let _ = write!(h, "<li><b>{}</b> {}</li>", esc(&s.title), esc(&s.detail));
        }
        h.push_str("</ol>");
    }
    h.push_str(r#"<h2>Where it stands</h2><ul id="next">"#);
    for w in rollback_words {
        let _ = write!(h, "<li>{}</li>", esc(w));
    }
    h.push_str("</ul>");

    // Every call, for the one who has to find the slow one.
    h.push_str(r#"<h2>Every host call</h2><table id="calls"><tr><th>#</th><th>operation</th><th>at</th><th class="num">took</th><th>call</th><th>arguments</th><th>outcome</th></tr>"#);
    for p in &parts {
        for c in &p.calls {
            let outcome = match c.outcome.get("error") {
                Some(e) => format!(r#"<span class="err">{}</span>"#, esc(e["kind"].as_str().unwrap_or(""))),
                None => esc(&short(c.outcome.get("ok").unwrap_or(&Value::Null), 80)),
            };
            let _ = write!(
                h,
                r#"<tr><td class="num">{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td><td class="mono">{}</td><td class="mono">{outcome}</td></tr>"#,
                c.seq,
                p.name,
                if c.started_ms > 0 && !c.replayed { format!("+{}", human_ms(c.started_ms.saturating_sub(t0))) } else { "replayed".into() },
                human_ms(c.ms),
                esc(&c.call),
                esc(&short(&c.args, 160)),
            );
        }
    }
    let _ = writeln!(h, "</table><p>Written by opshost {} at {}.</p></body></html>", env!("CARGO_PKG_VERSION"), when(crate::text::now_ms()));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(call: &str, at: u64, ms: u64, outcome: Value) -> CallRecord {
        CallRecord {
            seq: 0,
            call: call.into(),
            effect: if call.contains("stop") { Effect::IdempotentWrite } else { Effect::Read },
            args: Value::Null,
            outcome,
            injected: false,
            replayed: false,
            ms,
            started_ms: at,
        }
    }

    #[test]
    fn downtime_runs_from_the_first_stop_to_the_first_healthy_answer() {
        let calls = vec![
            call("console.health", 1000, 5, serde_json::json!({"ok": true})),
            call("docker.stop", 2000, 300, serde_json::json!({"ok": null})),
            call("console.health", 5000, 10, serde_json::json!({"ok": false})),
            call("console.health", 8000, 20, serde_json::json!({"ok": true})),
            call("console.set-parameter", 9000, 5, serde_json::json!({"ok": null})),
        ];
        assert_eq!(downtime(&calls), Some((2000, 8020)));
        assert_eq!(downtime(&calls[..1]), None, "nothing stopped, no downtime");
        assert!(esc("<a href=\"x\">&</a>") == "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
    }
}
