//! A scenario drawn as SVG: namespaces as columns of devices, veth pairs
//! joined, bridge ports and lower devices bracketed, and each packet's
//! path over it as numbered hops (its reply dashed), the drop marked with
//! its reason and function, and under it all a legend of the rules or
//! routes that decided the drops. Made from the report model alone.

use std::fmt::Write;

use serde_json::Value;

use super::model::{NsReport, ScenarioReport};
use crate::common::text::html_escape as esc;

const COL_W: i64 = 240;
const GAP: i64 = 100;
const TOP: i64 = 56;
/// A device row: the box, then room for a two-line drop label under it.
const ROW_H: i64 = 84;
const DEV_H: i64 = 50;
const PAD: i64 = 24;
/// A legend line's height, under the namespaces.
const LEGEND_H: i64 = 16;
/// One colour per packet, in order (repeating past eight).
const COLOURS: [&str; 8] = [
    "#1f6feb", "#8250df", "#bf8700", "#1a7f37", "#cf222e", "#0a7ea4", "#953800", "#6e7781",
];

/// Where each device is drawn.
struct Layout<'a> {
    topo: &'a [NsReport],
}

impl Layout<'_> {
    fn col(&self, ns: &str) -> Option<usize> {
        self.topo.iter().position(|n| n.name == ns)
    }

    /// The device's box: x, y (top left).
    fn dev(&self, ns: &str, dev: &str) -> Option<(i64, i64)> {
        let c = self.col(ns)?;
        let row = self.topo[c].devices.iter().position(|d| d.name == dev)?;
        Some((x_of(c) + 20, TOP + 36 + row as i64 * ROW_H))
    }

    /// Where a hop at `ns/dev` is drawn: the device's centre, or the
    /// namespace's top when the device is not one drawn.
    fn hop(&self, ns: &str, dev: &str) -> Option<(i64, i64)> {
        // At the box's right end, clear of its name and addresses.
        if let Some((x, y)) = self.dev(ns, dev) {
            return Some((x + COL_W - 40 - 44, y + DEV_H / 2));
        }
        self.col(ns).map(|c| (x_of(c) + COL_W / 2, TOP + 18))
    }

    fn height(&self) -> i64 {
        let rows = self.topo.iter().map(|n| n.devices.len()).max().unwrap_or(0) as i64;
        TOP + 36 + rows.max(1) * ROW_H + 40
    }

    fn width(&self) -> i64 {
        // Room right of the last column for a drop's label.
        x_of(self.topo.len().max(1)) - GAP + PAD + 120
    }
}

fn x_of(col: usize) -> i64 {
    PAD + col as i64 * (COL_W + GAP)
}

/// The drawing of one scenario.
pub fn drawing(r: &ScenarioReport) -> String {
    let l = Layout { topo: &r.topology };
    let mut drops: Vec<Drop> = vec![];
    for (i, p) in r.packets.iter().enumerate() {
        drop_at(&mut drops, &l, r, i, &p.name);
    }
    let deciders: usize = drops.iter().map(|d| d.decisions.len()).sum();
    let (w, boxes) = (l.width(), l.height());
    // Under the boxes, one line per deciding rule or route.
    let h = boxes
        + if deciders > 0 {
            deciders as i64 * LEGEND_H + 8
        } else {
            0
        };
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="topology" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="topology of {}">"#,
        esc(&r.name)
    );
    o.push_str(
        r#"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>"#,
    );
    namespaces(&mut o, &l);
    links(&mut o, &l);
    for i in 0..r.packets.len() {
        for reverse in [false, true] {
            path(&mut o, &l, r, i, reverse);
        }
    }
    for d in &drops {
        drop_mark(&mut o, d);
    }
    legend(&mut o, &drops, boxes, w);
    o.push_str("</svg>");
    o
}

fn namespaces(o: &mut String, l: &Layout) {
    let h = l.height() - 20;
    for (c, ns) in l.topo.iter().enumerate() {
        let x = x_of(c);
        let _ = write!(
            o,
            r#"<g class="ns" data-ns="{n}"><rect x="{x}" y="{TOP}" width="{COL_W}" height="{}" rx="10" class="ns-box"/><text x="{}" y="{}" class="ns-name">{n}</text>"#,
            h - TOP,
            x + 12,
            TOP + 22,
            n = esc(&ns.name)
        );
        for d in &ns.devices {
            let Some((dx, dy)) = l.dev(&ns.name, &d.name) else {
                continue;
            };
            let addrs = d.addresses.join(" ");
            let _ = write!(
                o,
                r#"<g class="dev" data-dev="{n}"><rect x="{dx}" y="{dy}" width="{}" height="{DEV_H}" rx="6" class="dev-box kind-{k}"/><text x="{}" y="{}" class="dev-name">{n} <tspan class="dev-kind">{k}</tspan></text><text x="{}" y="{}" class="dev-addr">{a}</text></g>"#,
                COL_W - 40,
                dx + 8,
                dy + 20,
                dx + 8,
                dy + 38,
                n = esc(&d.name),
                k = esc(&d.kind),
                a = esc(&addrs),
            );
        }
        o.push_str("</g>");
    }
}

/// Veth pairs (once each), bridge ports to their bridge, upper devices
/// to their lower one.
fn links(o: &mut String, l: &Layout) {
    for ns in l.topo {
        for d in &ns.devices {
            let Some((x, y)) = l.dev(&ns.name, &d.name) else {
                continue;
            };
            let mid = y + DEV_H / 2;
            if let Some((pns, pdev)) = d.peer.as_deref().and_then(|p| p.split_once('/')) {
                let here = (ns.name.as_str(), d.name.as_str());
                if let (Some((px, py)), true) = (l.dev(pns, pdev), here < (pns, pdev)) {
                    let pmid = py + DEV_H / 2;
                    let (ax, bx) = match px.cmp(&x) {
                        std::cmp::Ordering::Greater => (x + COL_W - 40, px),
                        std::cmp::Ordering::Less => (x, px + COL_W - 40),
                        std::cmp::Ordering::Equal => (x, px),
                    };
                    let bend = if px == x { -30 } else { 0 };
                    let _ = write!(
                        o,
                        r#"<path class="veth" d="M{ax},{mid} C{},{mid} {},{pmid} {bx},{pmid}"/>"#,
                        i64::midpoint(ax, bx) + bend,
                        i64::midpoint(ax, bx) + bend,
                    );
                }
            }
            for (other, class, side) in [(&d.master, "port", 0), (&d.lower, "lower", 1)] {
                if let Some((ox, oy)) = other.as_deref().and_then(|m| l.dev(&ns.name, m)) {
                    let edge = if side == 0 { x - 8 } else { x + COL_W - 32 };
                    let (ex, sx) = if side == 0 {
                        (ox, x)
                    } else {
                        (ox + COL_W - 40, x + COL_W - 40)
                    };
                    let _ = write!(
                        o,
                        r#"<path class="{class}" d="M{sx},{mid} L{edge},{mid} L{edge},{} L{ex},{}"/>"#,
                        oy + DEV_H / 2,
                        oy + DEV_H / 2,
                    );
                }
            }
        }
    }
}

/// The places (ns, dev) a packet's steps went through, in the order it
/// first reached each: a veth's transmit completing after the peer
/// received would otherwise draw the pair back and forth.
pub fn hops(r: &ScenarioReport, packet: usize, reverse: bool) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![];
    for s in steps_of(r, packet, reverse) {
        let (Some(ns), Some(dev)) = (s["ns"].as_str(), s["dev"].as_str()) else {
            continue;
        };
        if ns == "-" || ns.starts_with("ns:") {
            continue;
        }
        let place = (ns.to_string(), dev.to_string());
        if !out.contains(&place) {
            out.push(place);
        }
    }
    out
}

/// The timeline steps of one packet, one way.
pub fn steps_of(r: &ScenarioReport, packet: usize, reverse: bool) -> impl Iterator<Item = &Value> {
    r.timeline.iter().filter(move |s| {
        s["packet_index"].as_u64() == Some(packet as u64) && s["reverse"].as_bool() == Some(reverse)
    })
}

fn path(o: &mut String, l: &Layout, r: &ScenarioReport, i: usize, reverse: bool) {
    let colour = COLOURS[i % COLOURS.len()];
    // Packets side by side, the reply just below its packet.
    let (dx, dy) = ((i as i64 % 4) * 10, if reverse { 9 } else { -9 });
    let points: Vec<(i64, i64)> = hops(r, i, reverse)
        .iter()
        .filter_map(|(ns, dev)| l.hop(ns, dev))
        .map(|(x, y)| (x + dx, y + dy))
        .collect();
    if points.is_empty() {
        return;
    }
    let d: Vec<String> = points.iter().map(|(x, y)| format!("{x},{y}")).collect();
    let _ = write!(
        o,
        r#"<g class="path{}" data-packet="{i}"><polyline points="{}" stroke="{colour}" marker-end="url(#arrow)"/>"#,
        if reverse { " reply" } else { "" },
        d.join(" ")
    );
    for (n, (x, y)) in points.iter().enumerate() {
        let _ = write!(
            o,
            r#"<circle cx="{x}" cy="{y}" r="8" fill="{colour}"/><text x="{x}" y="{}" class="hop">{}</text>"#,
            y + 3,
            n + 1
        );
    }
    o.push_str("</g>");
}

/// The step that ended packet `i` as a drop, if it was dropped: a free
/// with a reason, or a program's drop of a frame with no skb.
pub fn drop_step(r: &ScenarioReport, i: usize) -> Option<&Value> {
    let dropped = r.packets.get(i).is_some_and(|p| p.facts.dropped);
    if !dropped {
        return None;
    }
    steps_of(r, i, false).filter(|s| is_drop(s)).last()
}

fn is_drop(s: &Value) -> bool {
    match s["hook"].as_str() {
        Some("kfree_skb") => true,
        Some("prog_return") => {
            s["skb"].as_u64() == Some(0)
                && matches!(
                    s["program"]["returned"].as_str(),
                    Some("XDP_DROP" | "XDP_ABORTED")
                )
        }
        _ => false,
    }
}

/// The drops at one device: one mark, one label naming each packet.
struct Drop {
    at: (i64, i64),
    packets: Vec<usize>,
    names: Vec<String>,
    whats: Vec<String>,
    /// The deciding rules or routes whole, each with the packets it
    /// dropped here, for the legend and the mark's tooltip.
    decisions: Vec<(String, Vec<String>)>,
}

/// Adds packet `i`'s drop, if it was dropped, to the drop at its device
/// (packets dropped at the same place share a label, not overlap).
fn drop_at(drops: &mut Vec<Drop>, l: &Layout, r: &ScenarioReport, i: usize, name: &str) {
    let Some(s) = drop_step(r, i) else {
        return;
    };
    let (ns, dev) = (
        s["ns"].as_str().unwrap_or("-"),
        s["dev"].as_str().unwrap_or("-"),
    );
    let Some((x, y)) = l.hop(ns, dev) else {
        return;
    };
    let what = match r.packets[i].facts.dropped_by.as_deref() {
        Some(by) if s["hook"] == "prog_return" => by.to_string(),
        _ => format!(
            "{} at {}",
            s["reason"].as_str().unwrap_or("?"),
            s["at"].as_str().unwrap_or("?")
        ),
    };
    // The deciding rule or route goes in the legend: a third label line
    // here runs into the device below.
    let facts = &r.packets[i].facts;
    let decision = facts
        .dropped_by_rule
        .clone()
        .or_else(|| facts.dropped_by_route.clone());
    let at = (x, y);
    if !drops.iter().any(|d| d.at == at) {
        drops.push(Drop {
            at,
            packets: vec![],
            names: vec![],
            whats: vec![],
            decisions: vec![],
        });
    }
    let d = drops
        .iter_mut()
        .find(|d| d.at == at)
        .expect("there is a drop at `at`");
    d.packets.push(i);
    d.names.push(name.to_string());
    if !d.whats.contains(&what) {
        d.whats.push(what);
    }
    if let Some(w) = decision {
        match d.decisions.iter_mut().find(|(x, _)| *x == w) {
            Some((_, names)) => names.push(name.to_string()),
            None => d.decisions.push((w, vec![name.to_string()])),
        }
    }
}

fn drop_mark(o: &mut String, d: &Drop) {
    let (x, y) = d.at;
    let lx = x + 44 - (COL_W - 40);
    // Clear of its device box above and of the next one below.
    let ly = y + (DEV_H / 2) + 14;
    let packets: Vec<String> = d.packets.iter().map(ToString::to_string).collect();
    let _ = write!(
        o,
        r#"<g class="drop" data-packet="{}"><path d="M{},{} l14,14 M{},{} l-14,14" class="drop-x"/><text x="{lx}" y="{ly}" class="drop-label">{}: dropped,"#,
        packets.join(" "),
        x - 7,
        y - 7,
        x + 7,
        y - 7,
        esc(&d.names.join(", ")),
    );
    for w in &d.whats {
        let _ = write!(o, r#"<tspan x="{lx}" dy="13">{}</tspan>"#, esc(w));
    }
    o.push_str("</text>");
    if !d.decisions.is_empty() {
        let whole: Vec<&str> = d.decisions.iter().map(|(w, _)| w.as_str()).collect();
        let _ = write!(o, "<title>{}</title>", esc(&whole.join("\n")));
    }
    o.push_str("</g>");
}

/// Under the namespaces, what decided each drop: `✖ packet: by rule`, cut
/// to the drawing's width (whole in the line's tooltip).
fn legend(o: &mut String, drops: &[Drop], top: i64, width: i64) {
    // About 6.5 px a character in the label's 11 px font.
    let room = ((width - 2 * PAD) * 2 / 13).max(20) as usize;
    let mut y = top + 2;
    for (what, names) in drops.iter().flat_map(|d| &d.decisions) {
        let line = format!("\u{2716} {}: by {what}", names.join(", "));
        let shown = crate::common::text::clip(&line, room);
        let _ = write!(
            o,
            r#"<text x="{PAD}" y="{y}" class="drop-label decided">{}<title>{}</title></text>"#,
            esc(&shown),
            esc(what)
        );
        y += LEGEND_H;
    }
}
