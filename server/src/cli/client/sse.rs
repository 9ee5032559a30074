//! A small Server-Sent Events reader for `jobs watch` / `jobs create --wait`:
//! bytes in, `(id, event, data)` out, per the SSE format (`id:`, `event:`,
//! `data:` lines, a blank line ends an event, `:` lines are comments).

use futures::StreamExt;

use super::{CliError, Client};

/// One event of the stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// Incremental parser: feed it chunks as they arrive.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl Parser {
    /// Feeds a chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if self.has_data || !self.current.event.is_empty() {
                    let mut event = std::mem::take(&mut self.current);
                    if event.event.is_empty() {
                        event.event = "message".into();
                    }
                    out.push(event);
                }
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "id" => self.current.id = Some(value.to_owned()),
                "event" => self.current.event = value.to_owned(),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
    }
}

/// Follows `GET path` as an event stream, calling `on_event` for each event
/// until it returns `false` or the stream ends. Returns whether `on_event`
/// stopped it (`false`: the stream ended by itself).
pub async fn follow(
    client: &Client,
    path: &str,
    last_event_id: Option<&str>,
    mut on_event: impl FnMut(SseEvent) -> bool,
) -> Result<bool, CliError> {
    let mut request = client
        .request(reqwest::Method::GET, path)
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = client.send_streaming(request).await?;
    let mut stream = response.bytes_stream();
    let mut parser = Parser::default();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            // A dropped connection: the caller resumes from its last id.
            return Ok(false);
        };
        for event in parser.push(&chunk) {
            if !on_event(event) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut p = Parser::default();
        assert!(p.push(b": keep-alive\n\nid: 7\nevent: job.cre").is_empty());
        let events = p.push(b"ated\ndata: {\"a\":\ndata: 1}\r\n\r\nevent: lagged\ndata: x\n\n");
        assert_eq!(
            events,
            [
                SseEvent {
                    id: Some("7".into()),
                    event: "job.created".into(),
                    data: "{\"a\":\n1}".into()
                },
                SseEvent {
                    id: None,
                    event: "lagged".into(),
                    data: "x".into()
                }
            ]
        );
    }
}
