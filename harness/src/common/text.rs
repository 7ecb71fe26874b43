//! Small text helpers shared by error messages and reports.

/// Levenshtein distance in characters, for did-you-mean hints (strsim's,
/// which clap already brings in).
pub fn edit_distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(a, b)
}

/// The closest candidates to `want`, best first, within a distance that
/// scales with length.
pub fn did_you_mean<'a>(
    want: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| {
            // Ties go to the candidate that starts like the typo.
            let other_start = want.chars().next() != c.chars().next();
            (edit_distance(want, c), other_start, c)
        })
        .filter(|(d, _, c)| *d <= (c.len().max(want.len()) / 3).max(2))
        .min()
        .map(|(_, _, c)| c)
}

/// Whether `short` abbreviates `long`: same first character, its
/// characters appear in order in `long`, and it keeps at least half of it
/// (`IP_CSUM` abbreviates `IP_CHECKSUM`).
pub fn abbreviates(short: &str, long: &str) -> bool {
    if short.len() >= long.len()
        || short.len() * 2 < long.len()
        || short.chars().next() != long.chars().next()
    {
        return false;
    }
    let mut it = long.chars();
    short.chars().all(|c| it.any(|l| l == c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        // Characters, not bytes.
        assert_eq!(edit_distance("naïve", "naive"), 1);
        assert_eq!(
            did_you_mean("dropd", ["dropped", "delivered"]),
            Some("dropped")
        );
        assert_eq!(did_you_mean("zzzzzz", ["dropped"]), None);
        // "fait" is two edits from both; the shared first letter decides.
        assert_eq!(did_you_mean("fait", ["at", "fate"]), Some("fate"));
        assert!(abbreviates("IP_CSUM", "IP_CHECKSUM"));
        assert!(!abbreviates("NO_SOCKET", "IP_CHECKSUM"));
        assert!(
            !abbreviates("I", "IP_CHECKSUM"),
            "too short to mean anything"
        );
    }
}

/// `s` cut to at most `max` characters, with `…` when cut: values echoed
/// in messages stay readable whatever their size.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod clip_tests {
    #[test]
    fn clip_keeps_short_text_and_marks_a_cut() {
        assert_eq!(super::clip("abc", 3), "abc");
        assert_eq!(super::clip("abcd", 3), "abc…");
        assert_eq!(super::clip("ééé", 2), "éé…");
    }
}

/// `text` safe inside HTML and SVG text and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut o = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}
