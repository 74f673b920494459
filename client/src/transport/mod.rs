//! How the client reaches a room: a [`Transport`] carries text frames both ways. The rest of
//! the client never knows whether a room is a real server or simulated in the page.
//!
//! # Layout
//! - [`Transport`], [`TransportEvent`]: the contract.
//! - `websocket`: a real room server over `ws://` / `wss://` (the browser's WebSocket).
//! - `mock`: rooms simulated in this page by `mock-backend`, on timers.

mod mock;
mod websocket;

use std::rc::Rc;

pub use mock::{MockHub, MockOptions};

use crate::address::Address;

/// What a transport reports, in order: `Opened`, then frames, then at most one `Closed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// The connection is open: frames may be sent.
    Opened,
    /// A text frame from the room.
    Frame(String),
    /// The connection ended (or never opened); no more events follow.
    Closed { reason: String },
}

/// Receives a transport's events.
pub type EventSink = Rc<dyn Fn(TransportEvent)>;

/// Why a frame could not be sent, or a connection not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The connection is not open (yet, or any more).
    #[error("the connection is not open")]
    NotOpen,
    /// The browser refused to open the connection (for example a `ws://` room from an
    /// `https://` page).
    #[error("the browser refused the connection: {0}")]
    Refused(String),
}

/// One open (or opening) connection to a room.
pub trait Transport {
    /// Sends one text frame.
    fn send(&self, frame: &str) -> Result<(), TransportError>;
    /// Closes the connection. No events are reported after this.
    fn close(&self);
}

/// Opens transports by address.
#[derive(Clone)]
pub struct Connector {
    mock: Rc<MockHub>,
}

impl Connector {
    pub fn new(mock: Rc<MockHub>) -> Self {
        Self { mock }
    }

    /// Makes the page's people moderators in the demo's rooms, or members again.
    pub fn set_demo_moderators(&self, on: bool) {
        self.mock.set_moderators(on);
    }

    /// Starts connecting; events arrive on `sink` (never synchronously from this call).
    pub fn connect(
        &self,
        address: &Address,
        sink: EventSink,
    ) -> Result<Box<dyn Transport>, TransportError> {
        match address {
            Address::WebSocket(url) => {
                Ok(Box::new(websocket::WebSocketTransport::open(url, sink)?))
            }
            Address::Mock(name) => Ok(Box::new(mock::MockTransport::open(&self.mock, name, sink))),
        }
    }
}
