//! Verifier refusals in one line: a load error's log runs to hundreds of
//! lines, of which one says why.

/// A load or attach error in one line: for a verifier rejection, the
/// line of its log that says why (the log itself runs to hundreds).
pub fn describe(e: &aya::programs::ProgramError) -> String {
    match e {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            match verifier_key_line(&log) {
                Some(line) => format!("the verifier refused it ({io_error}): {line}"),
                None => format!("loading failed: {io_error}"),
            }
        }
        other => format!("{other:#}"),
    }
}

/// The line of a verifier log that states the rejection: the last line
/// before the statistics that is not an instruction dump.
pub fn verifier_key_line(log: &str) -> Option<String> {
    log.lines()
        .map(str::trim)
        .rfind(|l| {
            !l.is_empty()
                && !l.starts_with("processed ")
                && !l.starts_with("verification time")
                && !l.starts_with("stack depth")
                && !l.starts_with(';')
                && !l.starts_with("func#")
                && !l.chars().next().is_some_and(|c| c.is_ascii_digit())
        })
        .map(|l| crate::common::text::clip(l, 200))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_key_line_is_the_rejection() {
        // Verbatim from Debian's 6.1 refusing a (skb, location) program.
        let log = "reg type unsupported for arg#0 function consume_skb#5\n0: R1=ctx(off=0,imm=0) R10=fp0\n; #[btf_tracepoint(function = \"consume_skb\")]\n0: (bf) r6 = r1                       ; R1=ctx(off=0,imm=0) R6_w=ctx(off=0,imm=0)\nfunc 'consume_skb' arg0 has btf_id 924 type STRUCT 'sk_buff'\n2: (79) r8 = *(u64 *)(r6 +8)\nfunc 'consume_skb' doesn't have 2-th argument\ninvalid bpf_context access off=8 size=8\nverification time 1224 usec\nstack depth 0+0\nprocessed 3 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n";
        assert_eq!(
            verifier_key_line(log).as_deref(),
            Some("invalid bpf_context access off=8 size=8")
        );
        assert_eq!(verifier_key_line(""), None);
    }
}
