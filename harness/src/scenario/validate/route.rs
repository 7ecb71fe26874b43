//! `routes:` under `expect`: the route lookups a packet must cause, by
//! namespace, table, destination, result, gateway and device.

use super::ctx::*;
use crate::scenario::model::{RouteResult, RouteWant};

/// Tables every namespace has: `local`, `main`, `default`.
const BUILTIN_TABLES: [u32; 3] = [255, 254, 253];

/// Validates `routes:` entries: a namespace and a device the scenario
/// has, a result the kernel reports, addresses.
pub(super) fn routes(
    cx: &mut Ctx,
    raw: Option<&[Spanned<raw::RouteExpect>]>,
    devs: &DevIndex,
) -> Vec<RouteWant> {
    let mut out = vec![];
    for r in raw.into_iter().flatten() {
        if let (None, Some(dev)) = (&r.ns, &r.dev) {
            cx.err(
                dev,
                "a route's `dev` needs its `ns`",
                Some("devices are named per namespace: add `ns: <namespace>`".into()),
            );
            continue;
        }
        if let Some(ns) = &r.ns {
            let Some(set) = devs.get(ns.as_str()) else {
                let near = did_you_mean(ns, devs.keys().map(String::as_str));
                cx.err(
                    ns,
                    format!("no namespace `{}`", ns.as_str()),
                    Some(near.map_or_else(
                        || format!("namespaces: {}", join_keys(devs)),
                        |n| format!("did you mean `{n}`?"),
                    )),
                );
                continue;
            };
            if let Some(d) = r.dev.as_ref().filter(|d| !set.contains(d.as_str())) {
                let near = did_you_mean(d, set.iter().map(String::as_str));
                cx.err(
                    d,
                    format!("namespace `{}` has no device `{}`", ns.as_str(), d.as_str()),
                    near.map(|n| format!("did you mean `{n}`?")),
                );
                continue;
            }
        }
        let result = r.result.as_ref().map(|n| (n, RouteResult::parse(n.trim())));
        if let Some((name, None)) = result {
            let near = did_you_mean(name, RouteResult::ALL.map(RouteResult::name));
            cx.err(
                name,
                format!("unknown route result `{}`", name.as_str()),
                Some(near.map_or_else(
                    || {
                        format!(
                            "results: {}",
                            RouteResult::ALL.map(RouteResult::name).join(", ")
                        )
                    },
                    |n| format!("did you mean `{n}`?"),
                )),
            );
            continue;
        }
        let result = result.and_then(|(_, r)| r);
        if r.table.is_none()
            && r.to.is_none()
            && result.is_none()
            && r.via.is_none()
            && r.dev.is_none()
        {
            cx.err(
                r,
                "a route lookup needs something to check",
                Some("give `table`, `to`, `result`, `via` or `dev`".into()),
            );
            continue;
        }
        out.push(RouteWant {
            ns: r.ns.as_ref().map(|n| n.to_string()),
            table: r.table.as_ref().map(|t| **t),
            to: r.to.as_ref().and_then(|a| cx.ip(a, "destination")),
            result,
            via: r.via.as_ref().and_then(|a| cx.ip(a, "gateway")),
            dev: r.dev.as_ref().map(|d| d.to_string()),
            at: cx.loc(r),
        });
    }
    out
}

fn join_keys(devs: &DevIndex) -> String {
    devs.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// The tables a namespace can consult: the built-in ones and those its
/// routes and policy rules name.
fn tables_of(ns: &Namespace) -> Vec<u32> {
    let mut t: Vec<u32> = BUILTIN_TABLES.to_vec();
    t.extend(ns.routes.iter().filter_map(|r| r.table));
    t.extend(ns.rules.iter().filter_map(|r| r.table));
    t.sort_unstable();
    t.dedup();
    t
}

/// Every `routes:` table of `e` (and its reply) against the namespaces'
/// routes and rules: a table no namespace in scope has is refused.
pub(super) fn check_tables(cx: &mut Ctx, e: &Expectation, namespaces: &[Namespace]) {
    for w in &e.routes {
        let Some(table) = w.table else {
            continue;
        };
        // A namespace whose `run:` commands may add tables is not judged.
        let scope: Vec<&Namespace> = namespaces
            .iter()
            .filter(|n| w.ns.as_ref().is_none_or(|x| *x == n.name))
            .collect();
        if scope
            .iter()
            .any(|n| !n.run.is_empty() || tables_of(n).contains(&table))
        {
            continue;
        }
        let mut known: Vec<u32> = scope.iter().flat_map(|n| tables_of(n)).collect();
        known.sort_unstable();
        known.dedup();
        let known: Vec<String> = known.iter().map(u32::to_string).collect();
        cx.errors.push(ScenarioError {
            loc: w.at.clone(),
            file: cx.file.to_path_buf(),
            msg: format!(
                "no route or rule of {} uses table {table}",
                w.ns.as_ref()
                    .map_or("the scenario".to_string(), |n| format!("namespace `{n}`"))
            ),
            hint: Some(format!("tables there: {}", known.join(", "))),
        });
    }
    if let Some(r) = &e.reply {
        check_tables(cx, r, namespaces);
    }
}

#[cfg(test)]
mod tests {
    use crate::scenario::{RouteResult, Scenario, ScenarioError};

    const FILE: &str = "namespaces:
  client:
    links:
      - { name: eth0, kind: veth, peer: { namespace: router, name: r-client } }
    addresses: [{ dev: eth0, addr: 192.0.2.2/24 }]
  router:
    addresses: [{ dev: r-client, addr: 192.0.2.1/24 }]
    routes: [{ to: default, type: unreachable, table: 100 }]
    rules: [{ from: 192.0.2.0/24, table: 100 }]
inject:
  socket: { from: client, proto: udp, to: 198.51.100.2, port: 53 }
expect:
  routes:
    - { ns: router, table: 100, to: 198.51.100.2, result: unreachable, dev: r-client }
";

    fn first_err(text: &str) -> ScenarioError {
        Scenario::parse(std::path::Path::new("t.yaml"), text)
            .unwrap_err()
            .remove(0)
    }

    #[test]
    fn a_route_expectation_reads_as_written() {
        let s = Scenario::parse(std::path::Path::new("t.yaml"), FILE).unwrap();
        let w = &s.packets[0].expect.routes[0];
        assert_eq!(w.ns.as_deref(), Some("router"));
        assert_eq!(w.table, Some(100));
        assert_eq!(w.result, Some(RouteResult::Unreachable));
        assert_eq!(w.dev.as_deref(), Some("r-client"));
        assert_eq!(w.to, Some("198.51.100.2".parse().unwrap()));
        assert_eq!(w.at.as_ref().unwrap().line, 14);
    }

    #[test]
    fn unknown_namespaces_devices_tables_and_results_are_refused_at_their_line() {
        let e = first_err(&FILE.replace("{ ns: router,", "{ ns: rooter,"));
        assert_eq!(e.msg, "no namespace `rooter`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `router`?"));
        assert_eq!(e.loc.unwrap().line, 14);
        let e = first_err(&FILE.replace("dev: r-client }", "dev: r-clent }"));
        assert_eq!(e.msg, "namespace `router` has no device `r-clent`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `r-client`?"));
        let e = first_err(&FILE.replace("result: unreachable", "result: unreachabel"));
        assert_eq!(e.msg, "unknown route result `unreachabel`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `unreachable`?"));
        // Table 200 is none of the router's (local, main, default, 100).
        let e = first_err(&FILE.replace("table: 100, to:", "table: 200, to:"));
        assert_eq!(
            e.msg,
            "no route or rule of namespace `router` uses table 200"
        );
        assert_eq!(e.hint.as_deref(), Some("tables there: 100, 253, 254, 255"));
        assert_eq!(e.loc.unwrap().line, 14);
        let e = first_err(&FILE.replace("to: 198.51.100.2, result", "to: 198.51.100, result"));
        assert!(e.msg.contains("is not an IP address"), "{}", e.msg);
        let e = first_err(&FILE.replace("{ ns: router, table", "{ table"));
        assert_eq!(e.msg, "a route's `dev` needs its `ns`");
        let e = first_err(&FILE.replace(
            "{ ns: router, table: 100, to: 198.51.100.2, result: unreachable, dev: r-client }",
            "{ ns: router }",
        ));
        assert_eq!(e.msg, "a route lookup needs something to check");
    }
}
