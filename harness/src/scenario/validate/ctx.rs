//! What every validator shares: the error collector, reference checks
//! and the imports they all use.

pub(super) use std::collections::{BTreeMap, BTreeSet, HashMap};
pub(super) use std::net::IpAddr;
pub(super) use std::path::Path;

pub(super) use marked_yaml::Spanned;

pub(super) use crate::common::text::{clip, did_you_mean};
pub(super) use crate::scenario::error::{Location, ScenarioError};
pub(super) use crate::scenario::model::*;
pub(super) use crate::scenario::raw;

/// Longest error message, values quoted in it included.
pub(super) const MAX_MESSAGE_CHARS: usize = 400;

pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a Path,
    pub(crate) errors: Vec<ScenarioError>,
    /// The scenario's text, for what positions alone do not say (how a
    /// scalar is written).
    pub(crate) source: &'a str,
    /// What the scenario may read and run.
    pub(crate) policy: &'a crate::common::config::FilePolicy,
    /// The programs the scenario attaches, once its namespaces are read
    /// (what `programs:` expectations may name).
    pub(crate) programs: Vec<ProgramRef>,
}

impl Ctx<'_> {
    pub(crate) fn loc<T>(&self, s: &Spanned<T>) -> Option<Location> {
        s.span().start().map(|m| Location {
            file: self.file.to_path_buf(),
            line: m.line(),
            col: m.column(),
        })
    }

    pub(crate) fn err<T>(&mut self, at: &Spanned<T>, msg: impl Into<String>, hint: Option<String>) {
        let loc = self.loc(at);
        self.errors.push(ScenarioError {
            loc,
            file: self.file.to_path_buf(),
            // Messages quote values; a 10 MiB one stays readable.
            msg: clip(&msg.into(), MAX_MESSAGE_CHARS),
            hint,
        });
    }

    pub(crate) fn ip(&mut self, s: &raw::S, what: &str) -> Option<IpAddr> {
        if let Ok(a) = s.parse::<IpAddr>() {
            Some(a)
        } else {
            self.err(
                s,
                format!("{what} `{}` is not an IP address", s.as_str()),
                Some("write e.g. 192.0.2.1 or 2001:db8::1".into()),
            );
            None
        }
    }

    /// A packet mark: `16` or `0x10`, 32 bits.
    pub(crate) fn mark(&mut self, s: &raw::S) -> Option<u32> {
        let t = s.trim();
        let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(h) => u32::from_str_radix(h, 16).ok(),
            None => t.parse().ok(),
        };
        if v.is_none() {
            self.err(
                s,
                format!("mark `{}` is not a 32-bit number", s.as_str()),
                Some("write e.g. 16 or \"0x10\" (up to 0xffffffff)".into()),
            );
        }
        v
    }

    pub(crate) fn cidr(&mut self, s: &raw::S, what: &str) -> Option<(IpAddr, u8)> {
        // An address alone is a host route's: the whole length.
        if let Ok(a) = s.parse::<IpAddr>() {
            return Some((a, if a.is_ipv4() { 32 } else { 128 }));
        }
        // The address as written (host bits kept: `192.0.2.1/24` is an
        // interface address, not only a network).
        if let Ok(n) = s.parse::<ipnet::IpNet>() {
            return Some((n.addr(), n.prefix_len()));
        }
        match s.split_once('/').map(|(a, _)| a.parse::<IpAddr>()) {
            Some(Ok(a)) => {
                let max = if a.is_ipv4() { 32 } else { 128 };
                self.err(
                    s,
                    format!("{what} `{}` has a bad prefix length", s.as_str()),
                    Some(format!("the prefix is 0..={max}")),
                );
            }
            _ => self.err(
                s,
                format!("{what} `{}` is not an address with prefix", s.as_str()),
                Some("write e.g. 192.0.2.1/24 or 2001:db8::1/64".into()),
            ),
        }
        None
    }

    pub(crate) fn checksum(&mut self, s: Option<&raw::S>) -> Checksum {
        let Some(s) = s else { return Checksum::Auto };
        let v = s.trim();
        if v == "auto" {
            return Checksum::Auto;
        }
        if v == "bad" {
            return Checksum::Bad;
        }
        let parsed = if let Some(h) = v.strip_prefix("0x") {
            u16::from_str_radix(h, 16).ok()
        } else {
            v.parse::<u16>().ok()
        };
        if let Some(n) = parsed {
            Checksum::Value(n)
        } else {
            self.err(
                s,
                format!("checksum `{v}` is not `auto`, `bad` or a 16-bit number"),
                Some(
                    "write `checksum: bad` to send a wrong checksum, or e.g. `checksum: 0xf77b`"
                        .into(),
                ),
            );
            Checksum::Auto
        }
    }
}

/// Which links (by name) each namespace will have, for reference checks.
pub(super) type DevIndex = BTreeMap<String, BTreeSet<String>>;

pub(super) fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n != "."
        && n != ".."
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn valid_nsname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 24
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// (line, column) of a spanned value, for keeping file order.
pub(super) fn span_pos<T>(s: &Spanned<T>) -> (usize, usize) {
    s.span().start().map_or((0, 0), |m| (m.line(), m.column()))
}

/// Parses `6`, `6.8` or `6.8.0` (anything after a `-` is ignored).
pub fn parse_kernel_version(v: &str) -> Option<(u32, u32, u32)> {
    let v = v.split(['-', '+']).next()?;
    let mut it = v.split('.').map(str::parse::<u32>);
    let major = it.next()?.ok()?;
    let minor = it.next().transpose().ok()?.unwrap_or(0);
    let patch = it.next().transpose().ok()?.unwrap_or(0);
    Some((major, minor, patch))
}

pub(super) fn valid_mac(m: &str) -> bool {
    parse_mac(m).is_some()
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(m: &str) -> Option<[u8; 6]> {
    // The colon form only, as `ip link` prints it (macaddr also reads
    // dashes and dots, which `ip` does not).
    if m.len() != 17 || m.split(':').count() != 6 {
        return None;
    }
    m.parse::<macaddr::MacAddr6>()
        .ok()
        .map(macaddr::MacAddr6::into_array)
}

/// The namespace being validated and the devices it will have, for
/// reference checks.
pub(super) struct Here<'a> {
    pub(super) name: &'a raw::S,
    pub(super) devs: &'a BTreeSet<String>,
}

impl Here<'_> {
    /// Reports `d` unless this namespace will have it.
    pub(super) fn check_dev(&self, cx: &mut Ctx, d: &raw::S) {
        if self.devs.contains(d.as_str()) {
            return;
        }
        let near = did_you_mean(d, self.devs.iter().map(String::as_str));
        cx.err(
            d,
            format!(
                "no device `{}` in namespace `{}`",
                d.as_str(),
                self.name.as_str()
            ),
            Some(match near {
                Some(n) => format!("did you mean `{n}`?"),
                None => format!(
                    "devices here: {}",
                    self.devs.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            }),
        );
    }
}

/// Reports a MAC address that does not parse.
pub(super) fn check_mac(cx: &mut Ctx, m: Option<&raw::S>) {
    if let Some(m) = m {
        if !valid_mac(m) {
            cx.err(
                m,
                format!("`{}` is not a MAC address", m.as_str()),
                Some("write six hex pairs, e.g. 02:00:00:00:00:01".into()),
            );
        }
    }
}
