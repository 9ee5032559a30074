//! Sentence splitting over plain text and Markdown, keeping line numbers.

use std::sync::LazyLock;

use regex::Regex;

use super::text::collapse_whitespace;

/// One sentence of a document and the 1-based line where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    /// The sentence, Markdown markup removed, whitespace collapsed.
    pub text: String,
    /// The 1-based line of its first character.
    pub line: u32,
}

/// Splits plain text or Markdown into sentences. Headings, tables, code
/// blocks and rules are skipped; list markers and `>` are removed and every
/// list item starts a new sentence; paragraphs end at blank lines. A `.`
/// ends a sentence unless it follows a known abbreviation (`e.g.`, `Art.`,
/// `Abs.`, `z.B.`, ...) or a lower-case word follows.
pub fn split_sentences(document: &str) -> Vec<Sentence> {
    let mut sentences = Vec::new();
    let mut block: Vec<(u32, String)> = Vec::new();
    let mut in_fence = false;
    for (index, raw) in document.lines().enumerate() {
        let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let trimmed = raw.trim();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            flush(&mut block, &mut sentences);
            in_fence = !in_fence;
            continue;
        }
        if in_fence || trimmed.starts_with('|') || is_heading(trimmed) {
            flush(&mut block, &mut sentences);
            continue;
        }
        if trimmed.is_empty() {
            flush(&mut block, &mut sentences);
            continue;
        }
        if is_rule(trimmed) {
            // A setext underline makes the one line above it a heading.
            if block.len() == 1 && !trimmed.starts_with('*') {
                block.clear();
            }
            flush(&mut block, &mut sentences);
            continue;
        }
        let mut text = trimmed;
        while let Some(rest) = text.strip_prefix('>') {
            text = rest.trim_start();
        }
        if let Some(item) = strip_list_marker(text) {
            flush(&mut block, &mut sentences);
            text = item;
        }
        if !text.is_empty() {
            block.push((line, strip_inline_markup(text)));
        }
    }
    flush(&mut block, &mut sentences);
    sentences
}

fn is_heading(line: &str) -> bool {
    let rest = line.trim_start_matches('#');
    rest.len() < line.len()
        && line.len() - rest.len() <= 6
        && (rest.is_empty() || rest.starts_with(' '))
}

fn is_rule(line: &str) -> bool {
    let first = line.chars().next().unwrap_or(' ');
    matches!(first, '-' | '=' | '*' | '_')
        && line.chars().filter(|c| !c.is_whitespace()).count() >= 2
        && line.chars().all(|c| c == first || c.is_whitespace())
}

/// The text of a list item without its marker (`- `, `* `, `+ `, `1. `, `1) `).
fn strip_list_marker(line: &str) -> Option<&str> {
    for marker in ["- ", "* ", "+ "] {
        if let Some(rest) = line.strip_prefix(marker) {
            return Some(
                rest.trim_start()
                    .trim_start_matches("[ ] ")
                    .trim_start_matches("[x] "),
            );
        }
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if (1..=3).contains(&digits) {
        let rest = &line[digits..];
        if let Some(rest) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return Some(rest.trim_start());
        }
    }
    None
}

/// Removes `**`, `__`, backticks, and turns `[text](url)` into `text`.
fn strip_inline_markup(text: &str) -> String {
    static LINK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\[([^\]]*)\]\([^)]*\)").unwrap());
    let text = LINK.replace_all(text, "$1");
    text.replace("**", "").replace("__", "").replace('`', "")
}

/// Words after which a `.` never ends a sentence (lower-case, without the
/// final dot).
const ABBREVIATIONS: &[&str] = &[
    "e.g", "i.e", "z.b", "d.h", "u.a", "bzw", "ca", "vs", "art", "abs", "nr", "no", "dr", "mr",
    "para", "ziff", "lit", "vgl", "inkl", "ggf", "evtl", "rz", "s", "cf", "fig",
];

/// Splits one paragraph or list item (lines with their numbers) into sentences.
fn flush(block: &mut Vec<(u32, String)>, out: &mut Vec<Sentence>) {
    if block.is_empty() {
        return;
    }
    let mut joined = String::new();
    let mut starts: Vec<(usize, u32)> = Vec::new();
    for (line, text) in block.drain(..) {
        if !joined.is_empty() {
            joined.push(' ');
        }
        starts.push((joined.len(), line));
        joined.push_str(&text);
    }
    let line_at = |offset: usize| {
        starts
            .iter()
            .take_while(|(start, _)| *start <= offset)
            .last()
            .map_or(1, |(_, line)| *line)
    };
    let chars: Vec<(usize, char)> = joined.char_indices().collect();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        i += 1;
        if !matches!(c, '.' | '!' | '?') {
            continue;
        }
        let mut end = i;
        while end < chars.len() && matches!(chars[end].1, ')' | '"' | '\'' | '”' | '’' | '»') {
            end += 1;
        }
        if end < chars.len() && !chars[end].1.is_whitespace() {
            continue;
        }
        if c == '.'
            && !period_ends_sentence(&joined[start..pos], chars[end..].iter().map(|(_, c)| *c))
        {
            continue;
        }
        let end_byte = chars.get(end).map_or(joined.len(), |(b, _)| *b);
        push_sentence(&joined, start, end_byte, &line_at, out);
        start = end_byte;
        i = end;
    }
    push_sentence(&joined, start, joined.len(), &line_at, out);
}

fn period_ends_sentence(before: &str, mut after: impl Iterator<Item = char>) -> bool {
    let word = before
        .rsplit(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_lowercase();
    if ABBREVIATIONS.contains(&word.as_str()) {
        return false;
    }
    !after
        .find(|c| !c.is_whitespace())
        .is_some_and(char::is_lowercase)
}

fn push_sentence(
    joined: &str,
    start: usize,
    end: usize,
    line_at: &dyn Fn(usize) -> u32,
    out: &mut Vec<Sentence>,
) {
    let piece = &joined[start..end];
    let lead = piece.len() - piece.trim_start().len();
    let text = collapse_whitespace(piece);
    if text.chars().any(char::is_alphanumeric) {
        out.push(Sentence {
            text,
            line: line_at(start + lead),
        });
    }
}
