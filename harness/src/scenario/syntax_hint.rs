//! Where a YAML syntax error most likely starts. The parser reports where
//! it gave up: for a `[`, `{` or quote left open that is the next key, with
//! "invalid indentation", lines below the mistake.

/// A hint for the syntax error `msg` the parser raised on 1-based `line`
/// of `text`, when the likely cause is clear.
pub(super) fn for_syntax_error(text: &str, msg: &str, line: usize) -> Option<String> {
    // The scanner's error carries only its text: a tab is named there.
    if msg.contains("tab") {
        return Some("YAML indents with spaces only: replace the tab with spaces".into());
    }
    let (open, l, c) = unclosed_through(text, line)?;
    Some(match open {
        '"' | '\'' => format!(
            "the string quoted at {l}:{c} is not closed: add the closing {open} on that line"
        ),
        _ => {
            let close = if open == '[' { ']' } else { '}' };
            format!("the `{open}` at {l}:{c} is not closed: add the `{close}` before the next key")
        }
    })
}

/// The innermost `[`, `{` or quote opened up to the end of `line` and
/// not closed there (a quote's error is reported at the quote itself), with its 1-based position. Block scalars (`|`, `>`: nft
/// rulesets, shell lines) and comments are skipped; a bracket or quote
/// counts only where a YAML value can start with it, so a plain string's
/// `[` or apostrophe does not.
fn unclosed_through(text: &str, line: usize) -> Option<(char, usize, usize)> {
    let mut open: Vec<(char, usize, usize)> = vec![];
    // The indentation of a key whose value is a block scalar: deeper
    // lines are its text.
    let mut block: Option<usize> = None;
    for (i, l) in text.lines().enumerate().take(line) {
        let indent = l.len() - l.trim_start().len();
        if let Some(b) = block {
            if l.trim().is_empty() || indent > b {
                continue;
            }
            block = None;
        }
        let chars: Vec<(usize, char)> = l.char_indices().collect();
        // The last character outside quotes and comments (`None`: the
        // line's start), for where a value can start; where code ends.
        let mut prev: Option<char> = None;
        let mut code_end = l.len();
        let mut k = 0;
        while k < chars.len() {
            let (byte, ch) = chars[k];
            let next = chars.get(k + 1).map(|&(_, n)| n);
            k += 1;
            match open.last().map(|o| o.0) {
                Some('"') => {
                    match ch {
                        '\\' => k += 1,
                        '"' => _ = open.pop(),
                        _ => {}
                    }
                    continue;
                }
                Some('\'') => {
                    if ch == '\'' && next == Some('\'') {
                        k += 1;
                    } else if ch == '\'' {
                        open.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let value_start = matches!(prev, None | Some(':' | '-' | '[' | '{' | ',' | '?'));
            match ch {
                '#' if byte == 0 || l[..byte].ends_with(char::is_whitespace) => {
                    code_end = byte;
                    break;
                }
                '"' | '\'' if value_start => open.push((ch, i + 1, byte + 1)),
                '[' | '{' if value_start || !open.is_empty() => open.push((ch, i + 1, byte + 1)),
                ']' | '}' if !open.is_empty() => _ = open.pop(),
                _ => {}
            }
            if !ch.is_whitespace() {
                prev = Some(ch);
            }
        }
        if open.is_empty() && starts_block_scalar(&l[..code_end]) {
            block = Some(indent);
        }
    }
    open.last().copied()
}

/// Whether a line's code ends in a block scalar's header (`|`, `>-`,
/// `|2`, ...) after a key or a list dash.
fn starts_block_scalar(code: &str) -> bool {
    let head = code
        .trim_end()
        .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '+');
    let Some(before) = head.strip_suffix(['|', '>']) else {
        return false;
    };
    let before = before.trim_end();
    before.is_empty() || before.ends_with(':') || before.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(text: &str, line: usize) -> Option<String> {
        for_syntax_error(text, "invalid indentation", line)
    }

    #[test]
    fn an_unclosed_flow_sequence_is_named_where_it_opens() {
        // The parser stops at `inject:` (4:1), a line below the mistake.
        let text = "namespaces:\n  a:\n    links: [ { name: tun0, kind: tun }\ninject:\n";
        assert_eq!(
            hint(text, 4).as_deref(),
            Some("the `[` at 3:12 is not closed: add the `]` before the next key")
        );
    }

    #[test]
    fn an_unclosed_mapping_and_quote_are_named() {
        let text = "namespaces:\n  a:\n    links:\n      - { name: tun0, kind: tun\ninject:\n";
        assert!(hint(text, 5).unwrap().starts_with("the `{` at 4:9 "));
        let text = "description: \"unclosed\nnamespaces:\n";
        // The parser reports this one at the quote itself.
        assert_eq!(
            hint(text, 1).as_deref(),
            Some("the string quoted at 1:14 is not closed: add the closing \" on that line")
        );
    }

    #[test]
    fn plain_text_block_scalars_and_comments_open_nothing() {
        // A plain string's bracket and apostrophe, a comment's bracket, an
        // awk program's quote in a `run:` block and an nft ruleset's
        // braces: the error at the last line has no cause before it.
        let text = concat!(
            "description: drops [tcp] that don't match # - [ {\n",
            "namespaces:\n",
            "  a:\n",
            "    run: |\n",
            "      awk '\n",
            "        { print }\n",
            "      ' /dev/null\n",
            "    nft: |-\n",
            "      table inet f {\n",
            "  b:\n",
        );
        assert_eq!(hint(text, 10), None);
    }

    #[test]
    fn a_tab_is_named() {
        let h = for_syntax_error("a:\n\tb: 1\n", "tabs disallowed within this context", 2);
        assert!(h.unwrap().contains("spaces"));
    }
}
