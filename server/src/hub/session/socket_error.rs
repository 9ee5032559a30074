//! What a broken agent socket gets told before it is closed.
//!
//! A read error from the WebSocket layer is either the peer breaking the
//! protocol (a bad frame, invalid UTF-8, a frame over the size limit) or the
//! connection being gone. For the first kind RFC 6455 §7.4.1 names a close
//! code, and the hub sends it with a reason, after an `error` frame in the
//! agent protocol's own vocabulary. For the second there is nobody to tell.

use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};

/// How to close a session whose socket failed to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Closing {
    /// The `code` of the `error` frame.
    pub error_code: &'static str,
    /// The `error` frame's message.
    pub message: String,
    /// The RFC 6455 close code.
    pub close_code: u16,
    /// The close frame's reason (at most 123 bytes on the wire).
    pub reason: String,
}

/// The close for a read error, or `None` when the connection is already gone.
pub(super) fn closing_for(error: axum::Error, max_frame_bytes: usize) -> Option<Closing> {
    let inner = error.into_inner();
    let ws = inner.downcast_ref::<WsError>()?;
    classify(ws, max_frame_bytes)
}

fn classify(error: &WsError, max_frame_bytes: usize) -> Option<Closing> {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { .. } | CapacityError::TooManyHeaders) => {
            Some(Closing {
                error_code: "frame_too_large",
                message: format!(
                    "a frame was larger than this hub accepts ({max_frame_bytes} bytes, max_frame_bytes)"
                ),
                close_code: 1009,
                reason: format!("frame larger than {max_frame_bytes} bytes"),
            })
        }
        WsError::Utf8(_) => Some(Closing {
            error_code: "invalid_message",
            message: "a text frame was not valid UTF-8".into(),
            close_code: 1007,
            reason: "text frame is not valid UTF-8".into(),
        }),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(problem) => {
            let reason = short(&format!("protocol error: {problem}"));
            Some(Closing {
                error_code: "invalid_message",
                message: format!("WebSocket protocol violation (RFC 6455): {problem}"),
                close_code: 1002,
                reason,
            })
        }
        _ => None,
    }
}

/// At most 120 bytes, cut at a character boundary: a close reason must fit
/// a control frame's 125-byte payload with its 2-byte code.
fn short(text: &str) -> String {
    let mut end = text.len().min(120);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_violation_gets_its_rfc_6455_code() {
        let cases = [
            (
                WsError::Capacity(CapacityError::MessageTooLong {
                    size: 9,
                    max_size: 1,
                }),
                1009,
            ),
            (WsError::Utf8("bad".into()), 1007),
            (WsError::Protocol(ProtocolError::NonZeroReservedBits), 1002),
            (
                WsError::Protocol(ProtocolError::UnmaskedFrameFromClient),
                1002,
            ),
            (
                WsError::Protocol(ProtocolError::FragmentedControlFrame),
                1002,
            ),
            (
                WsError::Protocol(ProtocolError::UnexpectedContinueFrame),
                1002,
            ),
            (
                WsError::Protocol(ProtocolError::UnknownDataFrameType(3)),
                1002,
            ),
        ];
        for (error, code) in cases {
            let closing = classify(&error, 1024).expect("a violation is answered");
            assert_eq!(closing.close_code, code, "{error}");
            assert!(closing.reason.len() <= 123, "{error}");
        }
    }

    #[test]
    fn a_vanished_peer_gets_nothing() {
        assert_eq!(classify(&WsError::ConnectionClosed, 1024), None);
        assert_eq!(
            classify(
                &WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
                1024
            ),
            None
        );
    }

    #[test]
    fn reasons_are_cut_at_a_character_boundary() {
        let long = "é".repeat(100);
        let cut = short(&long);
        assert!(cut.len() <= 120 && cut.chars().all(|c| c == 'é'));
    }
}
