//! `JUnit` XML through quick-junit, for the suite (`pktfate run --format
//! junit`) and the kernel matrix alike: both describe their results as
//! [`Case`]s grouped in suites.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::model::Status;

/// One test case.
#[derive(Debug, Clone)]
pub struct Case {
    /// The scenario's name.
    pub name: String,
    /// Its class (a directory, or a kernel).
    pub classname: String,
    /// The scenario file, when known.
    pub file: Option<String>,
    /// How long it took.
    pub time: Option<Duration>,
    /// How it ended.
    pub status: Status,
    /// Why it failed or was skipped: one line.
    pub message: String,
    /// The whole failure report, when there is more than the message.
    pub detail: Option<String>,
}

/// A group of cases (the suite, or one kernel of the matrix).
#[derive(Debug, Clone)]
pub struct Suite {
    /// Its name.
    pub name: String,
    /// How long it took.
    pub time: Option<Duration>,
    /// Its cases.
    pub cases: Vec<Case>,
}

fn test_case(c: &Case) -> TestCase {
    let status = match c.status {
        Status::Pass => TestCaseStatus::success(),
        Status::Skip => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(c.message.as_str());
            s
        }
        Status::Fail | Status::Error => {
            let (kind, ty) = if c.status == Status::Fail {
                (NonSuccessKind::Failure, "expectation")
            } else {
                (NonSuccessKind::Error, "setup")
            };
            let mut s = TestCaseStatus::non_success(kind);
            s.set_message(c.message.as_str()).set_type(ty);
            if let Some(d) = &c.detail {
                s.set_description(d.as_str());
            }
            s
        }
    };
    let mut t = TestCase::new(c.name.as_str(), status);
    t.set_classname(c.classname.as_str());
    if let Some(time) = c.time {
        t.set_time(time);
    }
    if let Some(f) = &c.file {
        t.extra.insert("file".into(), f.as_str().into());
    }
    t
}

/// The XML of `suites` under one report named `name`.
pub fn write(name: &str, time: Option<Duration>, suites: &[Suite]) -> String {
    let mut report = Report::new(name);
    if let Some(t) = time {
        report.set_time(t);
    }
    for s in suites {
        let mut suite = TestSuite::new(s.name.as_str());
        if let Some(t) = s.time {
            suite.set_time(t);
        }
        suite.add_test_cases(s.cases.iter().map(test_case));
        report.add_test_suite(suite);
    }
    // Serialising owned strings into a String cannot fail; should it, the
    // report says so rather than vanish.
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- pktfate: JUnit serialisation failed: {e} -->\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_become_testcases_with_escaped_text_and_counts() {
        let case = |name: &str, status, message: &str| Case {
            name: name.into(),
            classname: "pktfate.tun-syn".into(),
            file: Some("scenarios/a&b.yaml".into()),
            time: Some(Duration::from_millis(12)),
            status,
            message: message.into(),
            detail: Some("expected <dropped>".into()),
        };
        let xml = write(
            "pktfate",
            Some(Duration::from_secs(1)),
            &[Suite {
                name: "pktfate".into(),
                time: None,
                cases: vec![
                    case("a", Status::Pass, ""),
                    case("b<", Status::Fail, "fate: expected \"dropped\""),
                    case("c", Status::Skip, "needs nft"),
                    case("d", Status::Error, "no root"),
                ],
            }],
        );
        let back = quick_junit::Report::deserialize_from_str(&xml).unwrap();
        assert_eq!(
            (back.tests, back.failures, back.errors, back.skipped),
            (4, 1, 1, 1)
        );
        let cases = &back.test_suites[0].test_cases;
        assert_eq!(cases[1].name.as_str(), "b<");
        assert!(xml.contains("b&lt;"), "{xml}");
        assert!(xml.contains(r#"file="scenarios/a&amp;b.yaml""#), "{xml}");
        assert!(xml.contains("expected &lt;dropped&gt;"), "{xml}");
        assert!(matches!(
            cases[1].status,
            quick_junit::TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Failure,
                ..
            }
        ));
    }
}
