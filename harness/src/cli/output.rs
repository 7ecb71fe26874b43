//! Where output goes: report lines on standard output (coloured on a
//! terminal), pcapng files, and the file policy flags share.

use std::path::PathBuf;
use std::process::ExitCode;

use pktfate::report;

/// Whether to colour output: a terminal, and `NO_COLOR` not set.
pub fn colour_wanted() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// `--allow-path` and `--no-commands` as a file policy.
pub fn file_policy(
    allow: &[PathBuf],
    no_commands: bool,
) -> Result<pktfate::scenario::FilePolicy, ExitCode> {
    let mut policy = pktfate::scenario::FilePolicy {
        no_commands,
        ..Default::default()
    };
    for d in allow {
        if let Err(e) = policy.allow(d) {
            eprintln!("error: --allow-path {}: {e}", d.display());
            return Err(ExitCode::from(2));
        }
    }
    Ok(policy)
}

/// Writes steps as pcapng and says how many packets went in.
pub fn write_pcap(
    path: &PathBuf,
    runs: &[(&str, &[pktfate::collect::Step])],
) -> Result<(), ExitCode> {
    let written = std::fs::File::create(path).and_then(|f| {
        let mut w = std::io::BufWriter::new(f);
        let n = pktfate::report::pcap::write(&mut w, runs)?;
        std::io::Write::flush(&mut w)?;
        Ok(n)
    });
    match written {
        Ok(n) => {
            eprintln!("wrote {n} packets to {}", path.display());
            Ok(())
        }
        Err(e) => {
            eprintln!("error: writing {}: {e}", path.display());
            Err(ExitCode::from(2))
        }
    }
}

/// Prints a report line, coloured on a terminal unless NO_COLOR is set. A closed pipe (`| head`) must not panic the run
/// in the middle of a scenario: its namespaces still have to go.
pub fn say(text: &str) {
    use std::io::Write;
    let line = if colour_wanted() {
        report::colourize(text)
    } else {
        text.to_string()
    };
    let _ = writeln!(std::io::stdout(), "{line}");
}
