//! The matrix's summaries of guest runs, on made-up guest output.
use super::*;

#[test]
fn a_guest_runs_one_scenario_per_vcpu_unless_told_otherwise() {
    let files = [PathBuf::from("s/a.yaml")];
    assert_eq!(
        guest_run_args(&files, &["--backend".into(), "fentry".into()], 1),
        ["s/a.yaml", "--backend", "fentry", "--jobs", "1"]
    );
    assert_eq!(
        guest_run_args(&files, &["-j3".into()], 2),
        ["s/a.yaml", "-j3"]
    );
    assert_eq!(
        guest_run_args(&files, &["--jobs".into(), "3".into()], 2),
        ["s/a.yaml", "--jobs", "3"]
    );
}

#[test]
fn a_guests_time_limit_grows_with_its_scenarios_and_under_emulation() {
    assert!(guest_timeout(10, kvm::Accel::Tcg) > guest_timeout(10, kvm::Accel::Kvm));
    assert!(guest_timeout(500, kvm::Accel::Tcg) > guest_timeout(27, kvm::Accel::Tcg));
    assert_eq!(
        guest_timeout(27, kvm::Accel::Tcg),
        Duration::from_secs(180 + 27 * 20)
    );
}

#[test]
fn guests_at_once_share_the_cores_out() {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    assert_eq!(guest_cpus(1), cpus.clamp(1, GUEST_CPUS));
    for jobs in 1..=8 {
        // Never more vCPUs in all than cores, but each guest has one.
        assert!(guest_cpus(jobs) * jobs <= cpus.max(jobs), "{jobs}");
        assert!(guest_cpus(jobs) >= 1);
    }
    let d = default_jobs();
    assert!(d >= 1 && d <= (cpus / GUEST_CPUS).max(1), "{d}");
}

fn result(kernel: &str, cells: &[(&str, &str, &str)]) -> KernelResult {
    KernelResult {
        kernel: kernel.into(),
        spec: kernel.into(),
        backend: "raw_tp".into(),
        hooks: vec![],
        skipped_hooks: vec![],
        functions: None,
        scenarios: cells
            .iter()
            .map(|(n, s, m)| Cell {
                name: (*n).into(),
                path: format!("scenarios/{n}.yaml"),
                status: serde_json::from_value(serde_json::json!(s)).unwrap(),
                message: (*m).into(),
            })
            .collect(),
        reports: vec![],
        error: None,
        panicked_first: None,
        seconds: 1.0,
    }
}

#[test]
fn a_kernel_passes_only_with_every_scenario_passing_or_skipped_with_a_reason() {
    assert!(result("6.1", &[("a", "pass", ""), ("b", "skip", "needs nft")]).ok());
    assert!(!result("6.1", &[("a", "pass", ""), ("b", "fail", "reason")]).ok());
    assert!(
        !result("6.1", &[("b", "skip", "")]).ok(),
        "a skip must say why"
    );
    assert!(!result("6.1", &[]).ok(), "no results is no pass");
    let mut booted_not = result("6.1", &[("a", "pass", "")]);
    booted_not.error = Some("no result within 900s".into());
    assert!(!booted_not.ok());
}

#[test]
fn the_table_has_a_column_per_kernel_and_numbered_notes() {
    let t = human(&[
        result(
            "6.1.0-56-amd64",
            &[("a", "pass", ""), ("b", "fail", "at: expected x, got y")],
        ),
        result(
            "6.12.117+deb12-amd64",
            &[("a", "pass", ""), ("b", "pass", "")],
        ),
    ]);
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("scenario") && lines[0].contains("6.1.0-56-amd64"));
    assert!(lines[1].starts_with("scenarios/a.yaml") && lines[1].matches("pass").count() == 2);
    assert!(lines[2].contains("fail [1]"));
    assert!(t.contains("[1] scenarios/b.yaml on 6.1.0-56-amd64: fail (at: expected x, got y)"));
    assert!(t.contains("matrix: 1 of 2 kernels passed\nmatrix: FAILED"));
}

/// A guest's doctor report, as `pktfate doctor --json` writes it.
fn doctor(hooks: &serde_json::Value, multi: bool) -> crate::tools::doctor::Doctor {
    let cap = |a: bool| serde_json::json!({"available": a, "detail": ""});
    serde_json::from_value(serde_json::json!({
        "kernel": "6.1.0-56-amd64", "btf": cap(true), "drop_reasons": 0,
        "reasons_traced": false, "backend": "raw_tp", "tracer_error": null,
        "hooks": hooks, "kprobes": cap(true), "kprobe_multi": cap(multi),
        "fentry": cap(true), "modules": [["vxlan", "loaded"]],
        "virtualisation": {"accel": "tcg", "why": "no vmx/svm", "probe_ms": 0}
    }))
    .expect("the doctor model")
}

#[test]
fn guest_json_lines_become_cells_with_their_reasons() {
    let run = vm::GuestRun {
        results: vec![
            serde_json::json!({"name":"m","path":"p.yaml","status":"pass","unchecked":["packet 1: reason IP_CSUM not checked (no reasons)"]}),
            serde_json::json!({"name":"n","path":"q.yaml","status":"fail","packets":[{"mismatches":[{"what":"reason","expected":"A","actual":"B"}]}]}),
            serde_json::json!({"name":"o","path":"r.yaml","status":"fail","trace_problems":["2 tracer event(s) were lost"],"packets":[{"mismatches":[]}]}),
        ],
        doctor: Some(doctor(
            &serde_json::json!([{"hook":"kfree_skb","args":2,"program":"kfree_skb_noreason","skipped":null},{"hook":"icmp_send","args":null,"program":null,"skipped":"absent"}]),
            false,
        )),
        ..Default::default()
    };
    let k = kernels::Kernel {
        spec: "5.10".into(),
        release: "5.10.0-32-amd64".into(),
        vmlinuz: PathBuf::new(),
        build_dir: None,
    };
    let r = summarise(&k, &run);
    assert_eq!(r.hooks, vec!["kfree_skb"]);
    assert_eq!(
        r.skipped_hooks,
        vec![SkippedHookReport {
            hook: "icmp_send".into(),
            why: "absent".into()
        }]
    );
    assert_eq!(
        r.scenarios[0].message,
        "not checkable: packet 1: reason IP_CSUM not checked (no reasons)"
    );
    assert_eq!(r.scenarios[1].message, "reason: expected A, got B");
    // A failure with nothing but a trace problem still says why.
    assert_eq!(r.scenarios[2].message, "2 tracer event(s) were lost");
    assert!(!r.ok());
    // A line that is not the report model is an error cell, not lost.
    let odd = vm::GuestRun {
        results: vec![serde_json::json!({"name":"x","status":"maybe"})],
        ..Default::default()
    };
    let r = summarise(&k, &odd);
    assert_eq!(r.scenarios[0].status, Status::Error);
    assert!(r.scenarios[0].message.contains("does not read as a report"));
    // A doctor report that does not read is an error cell too: the
    // kernel's hooks and kprobe-multi check would be missing silently.
    let blind = vm::GuestRun {
        results: vec![serde_json::json!({"name":"m","path":"p.yaml","status":"pass"})],
        doctor_unread: Some("missing; doctor's stderr: killed".into()),
        ..Default::default()
    };
    let r = summarise(&k, &blind);
    assert_eq!(r.scenarios[0].status, Status::Pass);
    assert_eq!(r.scenarios[1].status, Status::Error);
    assert!(
        r.scenarios[1].message.contains("doctor report is missing"),
        "{}",
        r.scenarios[1].message
    );
    assert!(!r.ok());
}

/// `auto` must use kprobe-multi where the guest links it: a passing
/// run on plain kprobes there fails, with the fallback's reason; where
/// kprobe-multi does not link (6.1), plain kprobes pass.
#[test]
fn plain_kprobes_where_kprobe_multi_links_fail_the_scenario() {
    let scenario = |mechanism: &str, fallback: serde_json::Value| {
        serde_json::json!({"name":"f","path":"f.yaml","status":"pass","tracer":{
            "backend": format!("raw_tp+{mechanism}"), "hooks": [], "skipped_hooks": [],
            "functions": 44, "function_attach_ms": 3900.0,
            "function_mechanism": mechanism, "function_fallback": fallback}})
    };
    let fallback = serde_json::json!("linking kmulti_skb to 9 functions: EBUSY");
    let k = kernels::Kernel {
        spec: "6.18".into(),
        release: "6.18.15+deb13-amd64".into(),
        vmlinuz: PathBuf::new(),
        build_dir: None,
    };
    let guest = |result: serde_json::Value, multi: bool| vm::GuestRun {
        results: vec![result],
        doctor: Some(doctor(&serde_json::json!([]), multi)),
        ..Default::default()
    };
    let r = summarise(&k, &guest(scenario("kprobe", fallback.clone()), true));
    assert_eq!(r.scenarios[0].status, Status::Fail);
    assert!(
        r.scenarios[0].message.contains("EBUSY"),
        "{}",
        r.scenarios[0].message
    );
    assert!(!r.ok());
    assert_eq!(
        r.functions.as_ref().unwrap().mechanism,
        ProbeMechanism::Kprobe
    );

    let r = summarise(&k, &guest(scenario("kprobe", fallback), false));
    assert!(r.ok(), "no kprobe-multi here: plain kprobes are the best");

    let r = summarise(
        &k,
        &guest(scenario("kprobe-multi", serde_json::Value::Null), true),
    );
    assert!(r.ok());
    assert!(human(&[r]).contains("functions by kprobe-multi (44, attached in 3900 ms)"));
}

/// A guest whose run refused to start says why, not just its status.
#[test]
fn a_run_that_refused_to_start_is_reported_with_its_words() {
    let k = kernels::Kernel {
        spec: "5.10".into(),
        release: "5.10.0-32-amd64".into(),
        vmlinuz: PathBuf::new(),
        build_dir: None,
    };
    let run = vm::GuestRun {
        rc: Some(2),
        log: "error: --backend fentry: this kernel refuses fentry programs (invalid func unknown#173)".into(),
        ..Default::default()
    };
    let r = summarise(&k, &run);
    let e = r.error.unwrap();
    assert!(
        e.contains("exit status Some(2)") && e.contains("unknown#173"),
        "{e}"
    );
}

#[test]
fn the_html_grid_has_a_cell_per_kernel_and_scenario_with_its_message() {
    let page = super::html::page(
        &[
            result(
                "5.10",
                &[
                    ("a", "pass", "not checkable: reason <x>"),
                    ("b", "fail", "fate"),
                ],
            ),
            result("6.1", &[("a", "pass", "")]),
        ],
        &|_| None,
    );
    // Two scenario rows, a column per kernel.
    assert_eq!(page.matches("<tr id=\"r").count(), 2);
    assert!(page.contains("<th id=\"k-5.10\">") && page.contains("<th id=\"k-6.1\">"));
    // The note is there, escaped; a failure's message is open.
    assert!(page.contains("not checkable: reason &lt;x&gt;"));
    assert!(page.contains("<details open><summary>fail</summary><p>fate</p>"));
    // A scenario one kernel did not run says so.
    assert!(page.contains("<td class=\"error\">not run on this kernel</td>"));
}

#[test]
fn a_grid_cell_opens_that_kernels_run_of_the_scenario() {
    let sample = crate::report::html::sample::report();
    let mut k1 = result("5.10", &[("x", "fail", "fate")]);
    let mut k2 = result("6.1", &[("x", "pass", "")]);
    for k in [&mut k1, &mut k2] {
        k.scenarios[0].path.clone_from(&sample.path);
        k.reports = vec![sample.clone()];
    }
    k2.reports[0].status = Status::Pass;
    let page = super::html::page(&[k1, k2], &|_| Some("packets: []\n".into()));
    // Each cell links to its own kernel's section, and every link resolves.
    assert!(
        page.contains("<summary><a href=\"#k0-s0\">fail</a></summary>"),
        "{page}"
    );
    assert!(page.contains("<td class=\"pass\"><a href=\"#k1-s0\">pass</a></td>"));
    for id in ["k0-s0", "k1-s0"] {
        assert!(
            page.contains(&format!("<section class=\"scenario\" id=\"{id}\"")),
            "{id}"
        );
    }
    assert!(
        crate::report::html::sample::dangling_links(&page).is_empty(),
        "{:?}",
        crate::report::html::sample::dangling_links(&page)
    );
    // Each section is drawn, with its own timeline filter.
    assert_eq!(page.matches("<svg").count(), 2);
    assert!(page.contains("data-table=\"tl-k0-s0\"") && page.contains("id=\"tl-k1-s0\""));
    // A link checker that could not fail would prove nothing.
    assert_eq!(
        crate::report::html::sample::dangling_links("<a href=\"#nowhere\">"),
        ["nowhere"]
    );
}
