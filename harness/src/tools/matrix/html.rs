//! The kernel matrix as one self-contained HTML page: a kernel x scenario
//! grid whose cells give the status and, open, the message (why it
//! failed or was skipped, and what that kernel could not check), and
//! link to that kernel's run of the scenario, drawn below the grid as
//! `run --format html` draws it.

use std::fmt::Write;

use super::KernelResult;
use crate::report::html::{self as page_html, esc};
use crate::report::model::Status;

/// Cell colours, over the suite page's style.
const STYLE: &str = "<style>table.grid td.pass{background:#dafbe1}table.grid td.fail{background:#ffebe9}table.grid td.skip{background:#fff8c5}table.grid td.error{background:#fbefff}table.grid details p{max-width:40em;margin:2px 0}</style>";

/// The anchor of kernel `k`'s run of its `j`th scenario.
fn anchor(k: usize, j: usize) -> String {
    format!("k{k}-s{j}")
}

/// The grid of `results` (one column per kernel, one row per scenario in
/// the order the first kernel ran them), then each kernel's scenario
/// sections; `source` gives a scenario file's text by its path.
pub fn page(results: &[KernelResult], source: &dyn Fn(&str) -> Option<String>) -> String {
    let mut o = page_html::head("pktfate kernel matrix");
    o.push_str(STYLE);
    o.push_str("<header><h1>pktfate kernel matrix</h1></header><main><table class=\"grid\"><tr><th>scenario</th>");
    for k in results {
        let _ = write!(
            o,
            "<th id=\"k-{}\">{}<br><small>{} · {:.0} s</small></th>",
            esc(&k.spec),
            esc(&k.kernel),
            esc(&k.backend),
            k.seconds
        );
    }
    o.push_str("</tr>");
    let mut paths: Vec<&str> = vec![];
    for k in results {
        for c in &k.scenarios {
            if !paths.contains(&c.path.as_str()) {
                paths.push(&c.path);
            }
        }
    }
    for (row, path) in paths.iter().enumerate() {
        let _ = write!(o, "<tr id=\"r{row}\"><td>{}</td>", esc(path));
        for (ki, k) in results.iter().enumerate() {
            // The status links to this kernel's run, when the guest sent it.
            let status = |s: Status| match k.reports.iter().position(|r| r.path == *path) {
                Some(j) => format!("<a href=\"#{}\">{}</a>", anchor(ki, j), s.as_str()),
                None => s.as_str().to_string(),
            };
            match k.scenarios.iter().find(|c| c.path == *path) {
                Some(c) if c.message.is_empty() => {
                    let _ = write!(
                        o,
                        "<td class=\"{}\">{}</td>",
                        c.status.as_str(),
                        status(c.status)
                    );
                }
                Some(c) => {
                    // Open by default where it failed: that is what the
                    // reader came for.
                    let open = if c.status == Status::Fail {
                        " open"
                    } else {
                        ""
                    };
                    let _ = write!(
                        o,
                        "<td class=\"{}\"><details{open}><summary>{}</summary><p>{}</p></details></td>",
                        c.status.as_str(),
                        status(c.status),
                        esc(&c.message),
                    );
                }
                None => {
                    let why = k.error.as_deref().unwrap_or("not run on this kernel");
                    let _ = write!(o, "<td class=\"error\">{}</td>", esc(why));
                }
            }
        }
        o.push_str("</tr>");
    }
    o.push_str("</table>");
    for (ki, k) in results.iter().enumerate() {
        if k.reports.is_empty() {
            continue;
        }
        let _ = write!(
            o,
            "<h2 id=\"kernel-{ki}\">{} <small>({}, {})</small></h2>",
            esc(&k.kernel),
            esc(&k.spec),
            esc(&k.backend)
        );
        for (j, r) in k.reports.iter().enumerate() {
            page_html::scenario(&mut o, &anchor(ki, j), r, source(&r.path).as_deref());
        }
    }
    o.push_str("</main></body></html>\n");
    o
}
