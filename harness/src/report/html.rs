//! The suite as one self-contained HTML page (`--format html`): a summary
//! with a filter, then per scenario its drawing, expected against actual,
//! the stack at each drop, the timeline as a table (filterable by packet
//! and direction) and the scenario's YAML with its failing packets' lines
//! marked. No script, font or style is fetched: it opens from disk and as
//! a CI artifact. Everything comes from the report model.

use std::fmt::Write;

use serde_json::Value;

use super::model::{ScenarioReport, Status};

pub use crate::common::text::html_escape as esc;

const STYLE: &str = r"
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:12px 20px}
header h1{font-size:18px;margin:0 0 4px}
main{padding:12px 20px}
.counts span{margin-right:14px}
.pass{color:#1a7f37}.fail{color:#cf222e}.skip{color:#9a6700}.error{color:#8250df}
section.scenario{background:#fff;border:1px solid #d0d7de;border-radius:8px;margin:14px 0;padding:10px 16px;content-visibility:auto;contain-intrinsic-size:auto 1200px}
section.scenario h2{font-size:16px;margin:4px 0}
table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #d0d7de;padding:2px 6px;text-align:left;vertical-align:top;font-size:12px}
th{background:#f6f8fa}
pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px}
pre .hl{background:#ffebe9;display:inline-block;width:100%}
.ln{color:#8c959f;user-select:none}
svg.topology{background:#fff;max-width:100%;height:auto}
.ns-box{fill:#f6f8fa;stroke:#8c959f}.ns-name{font:600 13px system-ui}
.dev-box{fill:#fff;stroke:#57606a}.kind-bridge{fill:#ddf4ff}.kind-tap,.kind-tun{fill:#fff8c5}
.dev-name{font:600 12px system-ui}.dev-kind{font-weight:400;fill:#57606a}.dev-addr{font:11px ui-monospace,monospace;fill:#57606a}
.veth{fill:none;stroke:#57606a;stroke-width:2}.port,.lower{fill:none;stroke:#8c959f;stroke-dasharray:3 3}
.path polyline{fill:none;stroke-width:2.5;opacity:.85}.path.reply polyline{stroke-dasharray:7 4}
.hop{font:700 10px system-ui;fill:#fff;text-anchor:middle}
.drop-x{stroke:#cf222e;stroke-width:4}.drop-label{font:600 11px system-ui;fill:#cf222e}
.mismatch td.exp{color:#1a7f37}.mismatch td.act{color:#cf222e}
.hidden{display:none}
";

const SCRIPT: &str = r"
function filterSuite(){
 var q=document.getElementById('q').value.toLowerCase();
 var on={};document.querySelectorAll('input.st').forEach(function(c){on[c.value]=c.checked;});
 document.querySelectorAll('section.scenario').forEach(function(s){
  var show=on[s.dataset.status]&&s.dataset.name.toLowerCase().indexOf(q)>=0;
  s.classList.toggle('hidden',!show);
  var row=document.getElementById('row-'+s.id);if(row){row.classList.toggle('hidden',!show);}
 });
}
function filterSteps(sel){
 var v=sel.value;var t=document.getElementById(sel.dataset.table);
 t.querySelectorAll('tr[data-packet]').forEach(function(r){
  r.classList.toggle('hidden',v!=='all'&&r.dataset.packet+'/'+r.dataset.dir!==v);
 });
}
";

/// The whole suite's page. `source` gives a scenario file's text by its
/// path (for its YAML section), `None` to leave it out.
pub fn suite(
    title: &str,
    reports: &[ScenarioReport],
    source: &dyn Fn(&str) -> Option<String>,
) -> String {
    let mut o = String::new();
    let count = |s: Status| reports.iter().filter(|r| r.status == s).count();
    let total_ms: f64 = reports
        .iter()
        .filter_map(|r| r.timings_ms.as_ref())
        .map(|t| t.setup + t.attach + t.inject_to_verdict + t.teardown)
        .sum();
    o.push_str(&head(title));
    let _ = write!(
        o,
        "<header><h1>{t}</h1><div class=\"counts\"><span class=\"pass\">{} passed</span><span class=\"fail\">{} failed</span><span class=\"skip\">{} skipped</span><span class=\"error\">{} errors</span><span>{:.0} ms of stage time</span></div></header><main>",
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Skip),
        count(Status::Error),
        total_ms,
        t = esc(title),
    );
    o.push_str("<p><input id=\"q\" placeholder=\"filter by name\" oninput=\"filterSuite()\"> ");
    for s in [Status::Pass, Status::Fail, Status::Skip, Status::Error] {
        let _ = write!(
            o,
            "<label><input type=\"checkbox\" class=\"st\" value=\"{v}\" checked onchange=\"filterSuite()\"> {v}</label> ",
            v = s.as_str()
        );
    }
    o.push_str("</p><table class=\"summary\"><tr><th>status</th><th>scenario</th><th>file</th><th>ms</th></tr>");
    for (n, r) in reports.iter().enumerate() {
        let ms = r.timings_ms.as_ref().map_or(String::new(), |t| {
            format!("{:.1}", t.setup + t.attach + t.inject_to_verdict)
        });
        let _ = write!(
            o,
            "<tr id=\"row-s{n}\"><td class=\"{st}\">{st}</td><td><a href=\"#s{n}\">{}</a></td><td>{}</td><td>{ms}</td></tr>",
            esc(&r.name),
            esc(&r.path),
            st = r.status.as_str()
        );
    }
    o.push_str("</table>");
    for (n, r) in reports.iter().enumerate() {
        scenario(&mut o, &format!("s{n}"), r, source(&r.path).as_deref());
    }
    o.push_str("</main></body></html>\n");
    o
}

/// The start of a page, up to and including `<body>`: its title, style and
/// the filters' script (the matrix page shares them).
pub fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body>",
        esc(title)
    )
}

/// One scenario's section, `id` its anchor (unique in the page): the
/// drawing, verdicts, drops, timeline and, with `yaml`, its source.
pub fn scenario(o: &mut String, id: &str, r: &ScenarioReport, yaml: Option<&str>) {
    let st = r.status.as_str();
    let _ = write!(
        o,
        "<section class=\"scenario\" id=\"{id}\" data-status=\"{st}\" data-name=\"{name}\" data-path=\"{path}\"><h2><span class=\"{st}\">{}</span> {name}</h2><div>{path}</div>",
        st.to_uppercase(),
        path = esc(&r.path),
        name = esc(&r.name),
    );
    for (label, text) in [("skipped", &r.skipped), ("error", &r.error)] {
        if let Some(t) = text {
            let _ = write!(o, "<p class=\"{st}\">{label}: {}</p>", esc(t));
        }
    }
    if !r.topology.is_empty() {
        o.push_str(&super::svg::drawing(r));
    }
    verdicts(o, r);
    for u in &r.unchecked {
        let _ = write!(o, "<p class=\"skip\">not checkable here: {}</p>", esc(u));
    }
    for p in &r.trace_problems {
        let _ = write!(o, "<p class=\"fail\">trace: {}</p>", esc(p));
    }
    for p in &r.teardown_problems {
        let _ = write!(o, "<p class=\"fail\">teardown: {}</p>", esc(p));
    }
    drops(o, r);
    timeline(o, id, r);
    if let Some(y) = yaml {
        source(o, r, y);
    }
    o.push_str("</section>");
}

/// One failed expectation: whose (escaped), what happened (escaped), and
/// what was expected beside what the trace shows.
fn mismatch_row(o: &mut String, whose: &str, summary: &str, m: &crate::evaluate::Mismatch) {
    let _ = write!(
        o,
        "<tr><td>{whose}</td><td>{summary}</td><td>{}</td><td class=\"exp\">{}</td><td class=\"act\">{}</td></tr>",
        esc(&m.what),
        esc(&m.expected),
        esc(&m.actual)
    );
}

/// Per packet: what happened, and each failed expectation beside what
/// the trace shows.
fn verdicts(o: &mut String, r: &ScenarioReport) {
    if r.packets.is_empty() && r.counters.is_empty() {
        return;
    }
    o.push_str("<table class=\"mismatch\"><tr><th>packet</th><th>what happened</th><th>expectation</th><th>expected</th><th>actual</th></tr>");
    for p in &r.packets {
        let summary = esc(&p.facts.summary());
        if p.mismatches.is_empty() {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{summary}</td><td class=\"pass\">all held</td><td></td><td></td></tr>",
                esc(&p.name)
            );
        }
        for m in &p.mismatches {
            mismatch_row(o, &esc(&p.name), &summary, m);
        }
    }
    for m in &r.counters {
        mismatch_row(o, "counters", "", m);
    }
    o.push_str("</table>");
}

/// The kernel stack at each drop of a scenario packet.
fn drops(o: &mut String, r: &ScenarioReport) {
    for (i, p) in r.packets.iter().enumerate() {
        let Some(s) = super::svg::drop_step(r, i) else {
            continue;
        };
        let frames: Vec<&str> = s["stack"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let _ = write!(
            o,
            "<p><strong>{}</strong> dropped in {}/{}: {}</p><pre>{}</pre>",
            esc(&p.name),
            esc(s["ns"].as_str().unwrap_or("-")),
            esc(s["dev"].as_str().unwrap_or("-")),
            esc(&p.facts.summary()),
            esc(&frames.join("\n  <- "))
        );
        if let Some(h) = s["reason"].as_str().and_then(super::reason_hint) {
            let _ = write!(o, "<p>hint: {}</p>", esc(h));
        }
    }
}

/// One timeline step's detail column.
fn detail(s: &Value) -> String {
    if let Some(p) = s.get("program").filter(|p| !p.is_null()) {
        return format!(
            "program {} ({}) returned {}",
            p["program"].as_str().unwrap_or("?"),
            p["hook"].as_str().unwrap_or("?"),
            p["returned"].as_str().unwrap_or("?")
        );
    }
    if let Some(rt) = s.get("route").filter(|p| !p.is_null()) {
        return format!(
            "table {} {}->{}: {}{}",
            rt["table"],
            rt["src"].as_str().unwrap_or("?"),
            rt["dst"].as_str().unwrap_or("?"),
            rt["result"].as_str().unwrap_or("?"),
            s["route_dev"]
                .as_str()
                .map(|d| format!(" dev {d}"))
                .unwrap_or_default()
        );
    }
    match (s["reason"].as_str(), s["at"].as_str()) {
        (Some(r), Some(a)) => format!("{r} at {a}"),
        (None, Some(a)) => format!("at {a}"),
        (Some(r), None) => r.to_string(),
        (None, None) => String::new(),
    }
}

fn tuple(s: &Value) -> String {
    let p = &s["packet"];
    match (p["src"].as_str(), p["dst"].as_str()) {
        (Some(a), Some(b)) => format!(
            "{a}:{} -> {b}:{} proto {}",
            p["sport"], p["dport"], p["proto"]
        ),
        _ => "-".into(),
    }
}

fn timeline(o: &mut String, id: &str, r: &ScenarioReport) {
    if r.timeline.is_empty() {
        return;
    }
    let _ = write!(
        o,
        "<p>timeline: <select data-table=\"tl-{id}\" onchange=\"filterSteps(this)\"><option value=\"all\">every step</option>"
    );
    for (i, p) in r.packets.iter().enumerate() {
        for (dir, label) in [("fwd", ""), ("rev", " (reply)")] {
            let _ = write!(
                o,
                "<option value=\"{i}/{dir}\">{}{label}</option>",
                esc(&p.name)
            );
        }
    }
    let _ = write!(
        o,
        "</select></p><table id=\"tl-{id}\" class=\"timeline\"><tr><th>µs</th><th>packet</th><th>namespace</th><th>device</th><th>hook</th><th>headers</th><th>detail</th></tr>"
    );
    let t0 = r
        .timeline
        .first()
        .and_then(|s| s["ts_ns"].as_u64())
        .unwrap_or(0);
    for s in &r.timeline {
        let packet = s["packet_index"].as_u64();
        let reverse = s["reverse"].as_bool().unwrap_or(false);
        let name = packet
            .and_then(|i| r.packets.get(i as usize))
            .map_or("-".to_string(), |p| {
                format!("{}{}", p.name, if reverse { " (reply)" } else { "" })
            });
        let _ = write!(
            o,
            "<tr data-packet=\"{}\" data-dir=\"{}\"><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            packet.map_or("-".into(), |i| i.to_string()),
            if reverse { "rev" } else { "fwd" },
            s["ts_ns"].as_u64().unwrap_or(t0).saturating_sub(t0) as f64 / 1000.0,
            esc(&name),
            esc(s["ns"].as_str().unwrap_or("-")),
            esc(s["dev"].as_str().unwrap_or("-")),
            esc(s["hook"].as_str().unwrap_or("?")),
            esc(&tuple(s)),
            esc(&detail(s))
        );
    }
    o.push_str("</table>");
}

/// The scenario's YAML, numbered, the name lines of packets that failed
/// marked.
fn source(o: &mut String, r: &ScenarioReport, yaml: &str) {
    let failed: Vec<&str> = r
        .packets
        .iter()
        .filter(|p| !p.mismatches.is_empty())
        .map(|p| p.name.as_str())
        .collect();
    let single = r.packets.len() == 1 && !failed.is_empty();
    o.push_str("<details open><summary>scenario</summary><pre>");
    for (i, line) in yaml.lines().enumerate() {
        let t = line.trim_start();
        let mark = failed.iter().any(|n| {
            t.strip_prefix("- name:")
                .or_else(|| t.strip_prefix("name:"))
                .is_some_and(|v| v.trim().trim_matches('"') == *n)
        }) || (single && t.starts_with("expect:"));
        let _ = writeln!(
            o,
            "<span class=\"{}\"><span class=\"ln\">{:>4} </span>{}</span>",
            if mark { "hl" } else { "" },
            i + 1,
            esc(line)
        );
    }
    o.push_str("</pre></details>");
}

/// Test data: a failed two-namespace scenario, for this page's tests and
/// the matrix page's.
#[cfg(test)]
pub(crate) mod sample {
    use super::*;
    use crate::evaluate::{Facts, Mismatch, PacketVerdict};
    use crate::report::model::{DevReport, NsReport};

    fn dev(name: &str, kind: &str, peer: Option<&str>, addr: &str) -> DevReport {
        DevReport {
            name: name.into(),
            kind: kind.into(),
            addresses: vec![addr.into()],
            peer: peer.map(Into::into),
            master: None,
            lower: None,
        }
    }

    /// A failed scenario whose names carry markup: a client sends to a
    /// server, whose ingress drops it.
    pub(crate) fn report() -> ScenarioReport {
        let step = |hook: &str, ns: &str, dev: &str, t: u64| {
            serde_json::json!({
                "ts_ns": t, "skb": 16, "hook": hook, "ns": ns, "dev": dev,
                "packet_index": 0, "reverse": false, "life": 1,
                "reason": if hook == "kfree_skb" { serde_json::json!("TC_INGRESS") } else { serde_json::Value::Null },
                "at": if hook == "kfree_skb" { serde_json::json!("tcf_classify") } else { serde_json::Value::Null },
                "stack": ["kfree_skb_reason", "tcf_classify"],
                "packet": {"src": "192.0.2.1", "dst": "192.0.2.2", "sport": 1, "dport": 80, "proto": 6}
            })
        };
        ScenarioReport {
            packets: vec![PacketVerdict {
                name: "syn<script>".into(),
                facts: Facts {
                    skb: Some(16),
                    dropped: true,
                    reason: Some("TC_INGRESS".into()),
                    at: Some("tcf_classify".into()),
                    ..Facts::default()
                },
                mismatches: vec![Mismatch {
                    what: "fate".into(),
                    expected: "delivered".into(),
                    actual: "dropped".into(),
                }],
                path: vec![],
            }],
            timeline: vec![
                step("net_dev_start_xmit", "client", "eth0", 1000),
                step("netif_receive_skb", "server", "eth0", 2000),
                step("kfree_skb", "server", "eth0", 3000),
            ],
            topology: vec![
                NsReport {
                    name: "client".into(),
                    devices: vec![dev("eth0", "veth", Some("server/eth0"), "192.0.2.1/24")],
                },
                NsReport {
                    name: "server".into(),
                    devices: vec![dev("eth0", "veth", Some("client/eth0"), "192.0.2.2/24")],
                },
            ],
            ..ScenarioReport::new("drop <b>&\"'".into(), "s/x.yaml".into(), Status::Fail)
        }
    }
    /// `#x` links of `page` with no element of id `x`.
    pub(crate) fn dangling_links(page: &str) -> Vec<String> {
        let ids: std::collections::HashSet<&str> = page
            .split(" id=\"")
            .skip(1)
            .filter_map(|t| t.split('"').next())
            .collect();
        page.split("href=\"#")
            .skip(1)
            .filter_map(|t| t.split('"').next())
            .filter(|a| !ids.contains(a))
            .map(String::from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::sample::{dangling_links, report};
    use super::*;

    #[test]
    fn a_failed_scenario_is_drawn_with_its_namespaces_path_and_drop() {
        let yaml = "packets:\n  - name: syn<script>\n    inject: {}\n";
        let page = suite("t", &[report()], &|_| Some(yaml.to_string()));
        for ns in ["client", "server"] {
            assert!(
                page.contains(&format!("<g class=\"ns\" data-ns=\"{ns}\">")),
                "{ns}"
            );
        }
        // One veth line for the pair, not two.
        assert_eq!(page.matches("class=\"veth\"").count(), 1);
        // Two hops (client/eth0, server/eth0), numbered.
        assert!(page.contains("<polyline points="), "{page}");
        assert!(page.contains("class=\"hop\">2</text>"));
        // The drop, where and why: under the server's device box, whose
        // left edge is the second column's (24 + 240 + 100) plus 20.
        assert!(page.contains("<g class=\"drop\" data-packet=\"0\">"));
        assert!(
            page.contains("dropped,<tspan x=\"384\" dy=\"13\">TC_INGRESS at tcf_classify</tspan>"),
            "{page}"
        );
        // Expected against actual, and the failing packet's YAML line.
        assert!(page.contains("<td class=\"exp\">delivered</td><td class=\"act\">dropped</td>"));
        assert!(page.contains(
            "<span class=\"hl\"><span class=\"ln\">   2 </span>  - name: syn&lt;script&gt;</span>"
        ));
        assert_eq!(
            page.matches("<tr data-packet=\"0\" data-dir=\"fwd\">")
                .count(),
            3
        );
        // The summary's link opens the scenario's section.
        assert!(page.contains("href=\"#s0\""));
        assert!(
            dangling_links(&page).is_empty(),
            "{:?}",
            dangling_links(&page)
        );
    }

    #[test]
    fn packets_dropped_at_one_device_share_one_label() {
        // A second packet dropped where the first was: one mark, one label
        // naming both (two labels at one spot overlapped: firewall/
        // iptables-policy-or-rule's telnet and ssh).
        let mut r = report();
        let mut second = r.packets[0].clone();
        second.name = "ssh".into();
        r.packets.push(second);
        let mut steps: Vec<Value> = r.timeline.clone();
        for s in &mut steps {
            s["packet_index"] = 1.into();
        }
        r.timeline.extend(steps);
        let page = suite("t", &[r], &|_| None);
        assert_eq!(page.matches("<g class=\"drop\"").count(), 1, "{page}");
        assert!(page.contains("<g class=\"drop\" data-packet=\"0 1\">"));
        assert!(page.contains("syn&lt;script&gt;, ssh: dropped,<tspan x=\"384\" dy=\"13\">TC_INGRESS at tcf_classify</tspan></text>"), "{page}");
    }

    #[test]
    fn a_netfilter_drop_names_its_deciding_rule() {
        // The rule as the evaluation describes it: a legend line under the
        // drawing, the drop mark's tooltip and the packet's "what
        // happened", markup escaped in all three.
        let mut r = report();
        let rule = "inet fw input: rule `tcp dport 80 drop comment \"<web>\"` -> drop in server";
        r.packets[0].facts.dropped_by_rule = Some(rule.into());
        let page = suite("t", &[r], &|_| None);
        assert!(
            page.contains(&format!(
                "TC_INGRESS at tcf_classify</tspan></text><title>{}</title></g>",
                esc(rule)
            )),
            "{page}"
        );
        assert!(
            page.contains(&format!(
                "class=\"drop-label decided\">\u{2716} syn&lt;script&gt;: by {r}<title>{r}</title></text>",
                r = esc(rule)
            )),
            "{page}"
        );
        // One namespace row (216 px) and one legend line (16 + 8).
        assert!(
            page.contains("height=\"240\" viewBox=\"0 0 748 240\""),
            "{page}"
        );
        assert!(
            page.contains(&format!("at tcf_classify, by {}", esc(rule))),
            "{page}"
        );
    }

    #[test]
    fn a_route_decides_where_no_rule_did_and_long_ones_are_cut_to_the_drawing() {
        let mut r = report();
        // An IPv6 lookup with long addresses and a long namespace name.
        let route = "route table 100 2001:db8:aaaa:bbbb:cccc:dddd:eeee:1->2001:db8:ffff:eeee:dddd:cccc:bbbb:2: prohibit in upstream-router-one".to_string();
        r.packets[0].facts.dropped_by_route = Some(route.clone());
        let mut second = r.packets[0].clone();
        second.name = "ack".into();
        r.packets.push(second);
        let mut steps = r.timeline.clone();
        for s in &mut steps {
            s["packet_index"] = 1.into();
        }
        r.timeline.extend(steps);
        let page = suite("t", &[r], &|_| None);
        // Both packets dropped by the one route share a line, cut to the
        // drawing's 748 px (107 characters and the ellipsis) with the
        // whole route in its tooltip.
        assert_eq!(page.matches("drop-label decided").count(), 1, "{page}");
        let shown = crate::common::text::clip(
            &format!("\u{2716} syn<script>, ack: by {route}"),
            (748 - 48) * 2 / 13,
        );
        assert!(shown.ends_with('…'));
        assert!(
            page.contains(&format!("{}<title>{}</title>", esc(&shown), esc(&route))),
            "{page}"
        );
    }

    #[test]
    fn markup_in_names_is_escaped_everywhere() {
        let page = suite("<title>", &[report()], &|_| None);
        assert!(!page.contains("<b>"), "a scenario name became markup");
        assert!(!page.contains("<script>syn") && !page.contains("syn<script>"));
        assert!(page.contains("drop &lt;b&gt;&amp;&quot;&#39;"));
        assert!(page.contains("<title>&lt;title&gt;</title>"));
        // The only scripts are the page's own: none fetched.
        assert_eq!(page.matches("<script").count(), 1);
        assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
    }

    #[test]
    fn a_teardown_problem_is_shown_with_the_failure() {
        // Every expectation held; the CNI DEL failed, so the scenario did.
        let r = ScenarioReport {
            teardown_problems: vec!["CNI DEL of plugin `fake` failed: <gone>".into()],
            ..report()
        };
        let page = suite("t", &[r], &|_| None);
        assert!(
            page.contains(
                "<p class=\"fail\">teardown: CNI DEL of plugin `fake` failed: &lt;gone&gt;</p>"
            ),
            "{page}"
        );
    }
}
