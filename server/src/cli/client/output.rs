//! Human output of the client commands: JSON values as text, short cells,
//! aligned tables.

use serde_json::Value;

/// A JSON value as display text: strings without quotes, null as `-`.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A timestamp as `2026-12-04 09:31:05Z`: whole, never cut (other values
/// as [`text`]).
pub fn when(v: &Value) -> String {
    match v.as_str().map(chrono::DateTime::parse_from_rfc3339) {
        Some(Ok(at)) => at
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%SZ")
            .to_string(),
        _ => text(v),
    }
}

/// At most `max` characters, with `…` when cut; line breaks become spaces.
pub fn short(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Prints rows under headers, columns padded to their widest cell, fitted
/// to the terminal's width (`comfy-table`): on a narrow terminal, free text
/// wraps; ids and times never do, and nothing is cut. Piped output is not
/// wrapped at all.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    println!("{}", render_table(headers, rows, None));
}

/// The table's text; `width` fixes the terminal width (else detected).
pub fn render_table(headers: &[&str], rows: &[Vec<String>], width: Option<u16>) -> String {
    use comfy_table::{ColumnConstraint, ContentArrangement, Table, presets};

    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.iter().copied());
    if let Some(width) = width {
        table.set_width(width);
    }
    for row in rows {
        table.add_row(row.iter().map(String::as_str));
    }
    let columns = headers.len();
    for i in 0..columns {
        let whole = rows
            .iter()
            .filter_map(|r| r.get(i))
            .any(|cell| is_whole(cell));
        if let Some(column) = table.column_mut(i) {
            // Two spaces between columns, none before the first.
            column.set_padding((0, if i + 1 == columns { 0 } else { 2 }));
            if whole {
                column.set_constraint(ColumnConstraint::ContentWidth);
            }
        }
    }
    table
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Cells a reader copies whole: UUIDs and times.
fn is_whole(cell: &str) -> bool {
    uuid::Uuid::parse_str(cell).is_ok()
        || chrono::NaiveDateTime::parse_from_str(cell, "%Y-%m-%d %H:%M:%SZ").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_whole_to_the_second() {
        let v = serde_json::json!("2026-12-04T09:31:05.123456Z");
        assert_eq!(when(&v), "2026-12-04 09:31:05Z");
        assert_eq!(when(&Value::Null), "-");
    }

    #[test]
    fn tables_fit_the_width_without_cutting_ids_or_times() {
        let id = "0190b8e2-7c4d-7a3e-9f00-1234567890ab";
        let at = "2026-12-04 09:31:05Z";
        let prompt = "Extract every requirement from the attached specification and say why";
        let rows = vec![vec![id.to_owned(), at.to_owned(), prompt.to_owned()]];
        let wide = render_table(&["ID", "CREATED", "PROMPT"], &rows, Some(200));
        assert_eq!(wide.lines().count(), 2, "{wide}");
        assert!(wide.starts_with("ID"), "{wide}");
        assert!(
            wide.lines()
                .nth(1)
                .unwrap()
                .starts_with(&format!("{id}  {at}  Extract")),
            "{wide}"
        );
        let narrow = render_table(&["ID", "CREATED", "PROMPT"], &rows, Some(80));
        assert!(narrow.lines().all(|l| l.chars().count() <= 80), "{narrow}");
        assert!(narrow.contains(id) && narrow.contains(at), "{narrow}");
        assert!(narrow.lines().count() > 2, "the prompt wraps: {narrow}");
        let words: Vec<&str> = narrow.split_whitespace().collect();
        for word in prompt.split_whitespace() {
            assert!(words.contains(&word), "{word} lost: {narrow}");
        }
    }

    #[test]
    fn cells_are_short_and_plain() {
        assert_eq!(text(&Value::Null), "-");
        assert_eq!(text(&serde_json::json!("a")), "a");
        assert_eq!(text(&serde_json::json!(3)), "3");
        assert_eq!(short("abcdef", 4), "abc…");
        assert_eq!(short("a\nb", 10), "a b");
    }
}
