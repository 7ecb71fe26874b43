//! Running many scenarios and reporting on them as a suite: in parallel,
//! as text, JSON lines or `JUnit` XML.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

use crate::report;
use crate::runner::{self, Outcome, RunError};

/// One scenario's result.
pub struct SuiteResult {
    /// The file.
    pub path: PathBuf,
    /// What happened.
    pub outcome: Result<Outcome, RunError>,
}

impl SuiteResult {
    /// `pass`, `fail`, `skip` or `error`.
    pub fn status(&self) -> &'static str {
        match &self.outcome {
            Ok(o) if o.passed() => "pass",
            Ok(_) => "fail",
            Err(RunError::Skipped(_)) => "skip",
            Err(_) => "error",
        }
    }

    /// Scenario name (the file stem when it could not be loaded).
    pub fn name(&self) -> String {
        match &self.outcome {
            Ok(o) => o.scenario.name.clone(),
            Err(_) => self
                .path
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
        }
    }
}

/// Workers for `--jobs`: as asked, else one per CPU; within 1 and the
/// scenarios one loaded tracer serves at once.
pub fn jobs(asked: Option<usize>) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    asked
        .unwrap_or(cpus)
        .clamp(1, crate::abi::MAX_BANKS as usize)
}

/// Runs `files` with up to `jobs` at once; `each` sees every result as it
/// finishes. Results come back in file order.
pub fn run_all(
    files: &[PathBuf],
    jobs: usize,
    cfg: &runner::RunConfig,
    each: impl Fn(&SuiteResult) + Sync,
) -> Vec<SuiteResult> {
    let next = Mutex::new(0usize);
    let done: Mutex<Vec<(usize, SuiteResult)>> = Mutex::new(vec![]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(files.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = {
                        let mut n = next
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(f) = files.get(i) else { break };
                    let r = SuiteResult {
                        path: f.clone(),
                        outcome: runner::run_file(f, cfg),
                    };
                    each(&r);
                    done.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((i, r));
                }
            });
        }
    });
    let mut v = done
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, r)| r).collect()
}

/// (passed, failed, skipped); errors count as failed.
pub fn counts(results: &[SuiteResult]) -> (usize, usize, usize) {
    let n = |s: &str| results.iter().filter(|r| r.status() == s).count();
    (n("pass"), n("fail") + n("error"), n("skip"))
}

/// Human text for one result.
pub fn human(r: &SuiteResult, verbose: bool) -> String {
    match &r.outcome {
        Ok(o) if o.passed() => {
            let mut t = report::summary(o);
            if verbose {
                t.push('\n');
                t.push_str(&report::tracer_line(o));
                t.push_str(&report::timeline_table(&o.timeline));
                for p in &o.verdict.packets {
                    t.push_str(&format!("path of `{}`: {}\n", p.name, p.path.join(" -> ")));
                }
            }
            t
        }
        Ok(o) => format!("{}\n{}", report::summary(o), report::failure(o)),
        Err(RunError::Skipped(why)) => format!("SKIP {} ({why})", r.path.display()),
        Err(e) => format!("ERROR {}\n{}\n", r.path.display(), e.render()),
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// One JSON object for a result.
pub fn json(r: &SuiteResult) -> serde_json::Value {
    let mut v = json!({
        "name": r.name(),
        "path": r.path.display().to_string(),
        "status": r.status(),
    });
    match &r.outcome {
        Ok(o) => {
            v["timings_ms"] = json!({
                "setup": ms(o.timings.setup),
                "attach": ms(o.timings.attach),
                "inject_to_verdict": ms(o.timings.inject_to_verdict),
                "teardown": ms(o.timings.teardown),
            });
            v["packets"] = serde_json::to_value(&o.verdict.packets).unwrap_or_default();
            v["counters"] = serde_json::to_value(&o.verdict.counters).unwrap_or_default();
            v["trace_problems"] = json!(o.verdict.trace_problems);
            v["lost_events"] = json!(o.timeline.lost);
            v["unchecked"] = json!(o.unchecked);
            v["tracer"] = json!({
                "backend": o.backend,
                "hooks": o.hooks,
                "skipped_hooks": o.skipped_hooks,
                "functions": o.functions,
                "function_attach_ms": ms(o.function_attach),
            });
            v["timeline"] = serde_json::to_value(&o.timeline.steps).unwrap_or_default();
        }
        Err(RunError::Skipped(why)) => v["skipped"] = json!(why),
        Err(e) => {
            v["error"] = json!(e.render());
            v["error_kind"] = json!(e.kind());
        }
    }
    v
}

/// Escapes text for XML attributes and content.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // XML 1.0 forbids most control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => o.push(c),
        }
    }
    o
}

fn class_of(path: &Path) -> String {
    let dir = path
        .parent()
        .and_then(|p| p.file_name())
        .map_or_else(|| "scenarios".into(), |d| d.to_string_lossy().into_owned());
    format!("pktfate.{dir}")
}

/// The suite as `JUnit` XML.
pub fn junit(results: &[SuiteResult], elapsed: Duration) -> String {
    let (passed, failed, skipped) = counts(results);
    let errors = results.iter().filter(|r| r.status() == "error").count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"pktfate\" tests=\"{}\" failures=\"{}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\">\n",
        results.len(),
        failed - errors,
        elapsed.as_secs_f64()
    ));
    x.push_str(&format!(
        "  <testsuite name=\"pktfate\" tests=\"{}\" failures=\"{}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\">\n",
        results.len(),
        failed - errors,
        elapsed.as_secs_f64()
    ));
    let _ = passed;
    for r in results {
        let time = match &r.outcome {
            Ok(o) => {
                let t = o.timings;
                (t.setup + t.attach + t.inject_to_verdict + t.teardown).as_secs_f64()
            }
            Err(_) => 0.0,
        };
        x.push_str(&format!(
            "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\" time=\"{time:.3}\"",
            xml_escape(&r.name()),
            xml_escape(&class_of(&r.path)),
            xml_escape(&r.path.display().to_string())
        ));
        match &r.outcome {
            Ok(o) if o.passed() => x.push_str(" />\n"),
            Ok(o) => {
                let first = o
                    .verdict
                    .packets
                    .iter()
                    .flat_map(|p| p.mismatches.iter())
                    .next()
                    .map_or_else(
                        || "trace incomplete".to_string(),
                        |m| format!("{}: expected {}, got {}", m.what, m.expected, m.actual),
                    );
                x.push_str(&format!(
                    ">\n      <failure message=\"{}\" type=\"expectation\">{}</failure>\n    </testcase>\n",
                    xml_escape(&first),
                    xml_escape(&report::failure(o))
                ));
            }
            Err(RunError::Skipped(why)) => x.push_str(&format!(
                ">\n      <skipped message=\"{}\" />\n    </testcase>\n",
                xml_escape(why)
            )),
            Err(e) => x.push_str(&format!(
                ">\n      <error message=\"{}\" type=\"setup\">{}</error>\n    </testcase>\n",
                xml_escape(e.to_string().lines().next().unwrap_or("")),
                xml_escape(&e.render())
            )),
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_default_to_the_cpus_within_the_tracers_banks() {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        assert_eq!(jobs(None), cpus.min(16));
        assert_eq!(jobs(Some(0)), 1);
        assert_eq!(jobs(Some(3)), 3);
        assert_eq!(jobs(Some(100)), 16);
    }

    #[test]
    fn xml_is_escaped() {
        assert_eq!(xml_escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }
}
