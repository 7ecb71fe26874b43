//! The kernel matrix as one self-contained HTML page: a kernel x scenario
//! grid whose cells give the status and, open, the message (why it
//! failed or was skipped, and what that kernel could not check).

use std::fmt::Write;

use super::KernelResult;
use crate::report::html::esc;
use crate::report::model::Status;

/// The grid of `results` (one column per kernel, one row per scenario in
/// the order the first kernel ran them).
pub fn page(results: &[KernelResult]) -> String {
    let mut o = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>pktfate kernel matrix</title><style>body{font:14px system-ui,sans-serif;margin:20px}table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:3px 8px;vertical-align:top;font-size:12px}.pass{background:#dafbe1}.fail{background:#ffebe9}.skip{background:#fff8c5}.error{background:#fbefff}details p{max-width:40em;margin:2px 0}</style></head><body><h1>pktfate kernel matrix</h1><table><tr><th>scenario</th>",
    );
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
        for k in results {
            match k.scenarios.iter().find(|c| c.path == *path) {
                Some(c) if c.message.is_empty() => {
                    let _ = write!(o, "<td class=\"{s}\">{s}</td>", s = c.status.as_str());
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
                        "<td class=\"{s}\"><details{open}><summary>{s}</summary><p>{}</p></details></td>",
                        esc(&c.message),
                        s = c.status.as_str()
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
    o.push_str("</table></body></html>\n");
    o
}
