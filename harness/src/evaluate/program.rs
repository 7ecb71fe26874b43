//! `programs:` expectations against the runs of the scenario's own tc and
//! XDP programs traced for a packet.

use super::verdict::Mismatch;
use crate::collect::{Step, Timeline};
use crate::scenario::ProgramWant;

/// Whether run `s` is what `w` asks for.
fn matches(w: &ProgramWant, s: &Step) -> bool {
    s.ev.program
        .as_ref()
        .is_some_and(|r| w.names(&r.at) && w.returned.is_none_or(|c| c == r.returned))
}

/// The program runs of packet `i` (its replies when `reverse`), in order.
pub fn packet_runs(tl: &Timeline, i: usize, reverse: bool) -> Vec<&Step> {
    tl.steps
        .iter()
        .filter(|s| s.packet == Some(i) && s.reverse == reverse && s.ev.program.is_some())
        .collect()
}

/// Judges `want` (in order, others between) against the packet's runs.
pub fn judge_programs(
    want: &[ProgramWant],
    tl: &Timeline,
    i: usize,
    reverse: bool,
) -> Vec<Mismatch> {
    if want.is_empty() {
        return vec![];
    }
    let runs = packet_runs(tl, i, reverse);
    let what = if reverse {
        "reply programs"
    } else {
        "programs"
    };
    let mut rest = runs.iter();
    for w in want {
        if !rest.any(|s| matches(w, s)) {
            let earlier = runs.iter().any(|s| matches(w, s));
            let actual = if runs.is_empty() {
                "no run of the scenario's programs traced for this packet".to_string()
            } else {
                runs.iter()
                    .filter_map(|s| {
                        s.ev.program
                            .as_ref()
                            .map(crate::tracer::ProgramRun::describe)
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return vec![Mismatch {
                what: what.into(),
                expected: if earlier {
                    format!("{w} (after the runs before it)")
                } else {
                    w.to_string()
                },
                actual,
            }];
        }
    }
    vec![]
}
