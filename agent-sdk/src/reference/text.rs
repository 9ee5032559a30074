//! Word-level text helpers shared by the extractor and the validator.

/// The lower-case words of `s`: runs of letters and digits (hyphens and
/// punctuation separate words, so `user-friendly` is `user`, `friendly`).
pub(crate) fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// How a keyword word matches a text word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Match {
    /// The words are equal.
    Exact,
    /// The text word starts with the keyword word (`archiv` matches
    /// `archived`), for keyword words of 4 characters or more; shorter ones
    /// (`ao`, `tls`, `ms`) must be equal.
    Prefix,
}

/// The position of the first occurrence of `phrase` (consecutive words) in
/// `words`.
pub(crate) fn find(words: &[String], phrase: &[&str], how: Match) -> Option<usize> {
    if phrase.is_empty() || phrase.len() > words.len() {
        return None;
    }
    (0..=words.len() - phrase.len()).find(|&start| {
        phrase.iter().enumerate().all(|(i, key)| {
            let word = &words[start + i];
            match how {
                Match::Prefix if key.chars().count() >= 4 => word.starts_with(key),
                _ => word == key,
            }
        })
    })
}

/// Whether any of `phrases` occurs in `words`.
pub(crate) fn contains_any(words: &[String], phrases: &[&[&str]], how: Match) -> bool {
    phrases.iter().any(|p| find(words, p, how).is_some())
}

/// A word as it may appear in a slug: ASCII, German letters transliterated.
pub(crate) fn slug_word(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        match c {
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_lowercase()),
            _ => {}
        }
    }
    out
}

/// `s` with runs of whitespace collapsed to one space, trimmed.
pub(crate) fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_phrases() {
        let w = words("The UI must be user-friendly; Rechnungen (§ 147 AO).");
        assert_eq!(
            w,
            [
                "the",
                "ui",
                "must",
                "be",
                "user",
                "friendly",
                "rechnungen",
                "147",
                "ao"
            ]
        );
        assert_eq!(find(&w, &["user", "friendly"], Match::Exact), Some(4));
        assert_eq!(find(&w, &["rechnung"], Match::Prefix), Some(6));
        assert_eq!(find(&w, &["rechnung"], Match::Exact), None);
        assert_eq!(find(&w, &["a"], Match::Prefix), None);
        assert_eq!(slug_word("Unveränderbar-ß"), "unveraenderbarss");
        assert_eq!(collapse_whitespace("  a \n b  "), "a b");
    }
}
