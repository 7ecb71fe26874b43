//! Where output goes: report lines on standard output (coloured on a
//! terminal), pcapng files, and the file policy flags share.

use std::path::PathBuf;
use std::process::ExitCode;

use pktfate::report;

/// Applies `--allow-path` and `--no-commands`.
pub fn file_policy(allow: &[PathBuf], no_commands: bool) -> Result<(), ExitCode> {
    for d in allow {
        if let Err(e) = pktfate::scenario::project::allow(d) {
            eprintln!("error: --allow-path {}: {e}", d.display());
            return Err(ExitCode::from(2));
        }
    }
    pktfate::scenario::project::set_no_commands(no_commands);
    Ok(())
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
    let line = if report::colour_wanted() {
        report::colourize(text)
    } else {
        text.to_string()
    };
    let _ = writeln!(std::io::stdout(), "{line}");
}
