//! A real room server, through the browser's WebSocket.

use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

use super::{EventSink, Transport, TransportError, TransportEvent};

/// A browser WebSocket and the callbacks that feed its events to the sink.
pub struct WebSocketTransport {
    socket: WebSocket,
    // Held so the callbacks live as long as the socket uses them.
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl WebSocketTransport {
    pub fn open(url: &str, sink: EventSink) -> Result<Self, TransportError> {
        let socket = WebSocket::new(url).map_err(|e| {
            TransportError::Refused(e.as_string().unwrap_or_else(|| format!("{e:?}")))
        })?;
        let opened = sink.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            opened(TransportEvent::Opened);
        });
        let frames = sink.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            // Text frames only: binary frames are not part of the protocol and are ignored.
            if let Some(text) = event.data().as_string() {
                frames(TransportEvent::Frame(text));
            }
        });
        let closed = sink;
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            let reason = match (event.code(), event.reason()) {
                (code, reason) if reason.is_empty() => format!("closed ({code})"),
                (code, reason) => format!("{reason} ({code})"),
            };
            closed(TransportEvent::Closed { reason });
        });
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Self {
            socket,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }
}

impl Transport for WebSocketTransport {
    fn send(&self, frame: &str) -> Result<(), TransportError> {
        if self.socket.ready_state() != WebSocket::OPEN {
            return Err(TransportError::NotOpen);
        }
        self.socket
            .send_with_str(frame)
            .map_err(|_| TransportError::NotOpen)
    }

    fn close(&self) {
        self.socket.set_onopen(None);
        self.socket.set_onmessage(None);
        self.socket.set_onclose(None);
        // Closing an already closed socket is not an error worth reporting: it is gone.
        if self.socket.ready_state() <= WebSocket::OPEN {
            let _closing = self.socket.close_with_code(1000);
        }
    }
}

impl Drop for WebSocketTransport {
    fn drop(&mut self) {
        self.close();
    }
}
