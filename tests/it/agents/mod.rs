//! Agents over WebSocket: the protocol, dispatch, failures, the SDK and the
//! reference pipeline, against the real hub.

mod dispatch;
mod pipeline;
mod schemas;

mod protocol;
mod violations;
