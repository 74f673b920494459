//! Admission at the door: every accepted TCP connection holds a [`Ticket`] for as long as it
//! lives (while it sends its HTTP request, and then as a WebSocket), so that connections still
//! in their HTTP phase count toward the limits too. Dropping the ticket (the connection's IO
//! is dropped) gives its place back; nothing counts by hand.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Places for connections: so many in all, so many per network address.
#[derive(Debug)]
pub struct Admission {
    places: Arc<Semaphore>,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    max_per_address: usize,
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The room has `--max-connections` open.
    Full,
    /// This address has `--max-connections-per-address` open.
    AddressFull,
}

impl Refused {
    /// What the 503 response says.
    pub fn text(self) -> &'static str {
        match self {
            Refused::Full => "room is full; try again later\n",
            Refused::AddressFull => "too many connections from your network address\n",
        }
    }
}

/// One connection's place. Its drop gives the place back.
#[derive(Debug)]
pub struct Ticket {
    _place: OwnedSemaphorePermit,
    address: IpAddr,
    admission: Arc<Admission>,
}

impl Admission {
    /// Places for `max` connections, `max_per_address` from any one address.
    pub fn new(max: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            places: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            per_address: Mutex::new(HashMap::new()),
            max_per_address,
        })
    }

    /// A place for a connection from `peer`, or why there is none.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Ticket, Refused> {
        let address = protocol::address_key(peer);
        let place = Arc::clone(&self.places)
            .try_acquire_owned()
            .map_err(|_| Refused::Full)?;
        let mut counts = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(address).or_insert(0);
        if *count >= self.max_per_address {
            return Err(Refused::AddressFull);
        }
        *count += 1;
        Ok(Ticket {
            _place: place,
            address,
            admission: Arc::clone(self),
        })
    }

    /// Connections open from `peer`'s address.
    pub fn open_from(&self, peer: IpAddr) -> usize {
        let counts = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .get(&protocol::address_key(peer))
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self
            .admission
            .per_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// A connection's IO with its ticket: the place is held exactly as long as the IO lives,
/// through hyper and into the upgraded WebSocket.
#[derive(Debug)]
pub struct Admitted<Io> {
    io: Io,
    _ticket: Ticket,
}

impl<Io> Admitted<Io> {
    /// `io`, holding `ticket`.
    pub fn new(io: Io, ticket: Ticket) -> Self {
        Self {
            io,
            _ticket: ticket,
        }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Admitted<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Admitted<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_in_all_and_per_address_and_given_back_on_drop() {
        let admission = Admission::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = admission.admit(a).unwrap();
        let _a2 = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).unwrap_err(), Refused::AddressFull);
        let _b1 = admission.admit(b).unwrap();
        assert_eq!(admission.admit(b).unwrap_err(), Refused::Full);
        drop(a1);
        assert_eq!(admission.open_from(a), 1);
        let _b2 = admission.admit(b).unwrap();
        // One /64 is one address.
        let v6 = Admission::new(10, 1);
        let _x = v6.admit("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(
            v6.admit("2001:db8::ffff".parse().unwrap()).unwrap_err(),
            Refused::AddressFull
        );
        assert!(v6.admit("2001:db8:0:1::1".parse().unwrap()).is_ok());
    }
}
