//! The PROXY protocol (versions 1 and 2, as HAProxy's `send-proxy` and `send-proxy-v2` send
//! it): a load balancer in front of the room's nodes starts each connection with a header that
//! names the client's address. A node told to expect it from the balancer's address
//! (`--proxy-protocol-from`) reads that header before anything else and counts, limits and
//! bans by the client's address instead of the balancer's, which every client would otherwise
//! share. Only the header is read, byte by byte, so nothing the client sent after it is taken.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The first 12 bytes of a version 2 header.
const V2_SIGNATURE: [u8; 12] = [
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
];
/// Longest version 1 header, `\r\n` included (the protocol's own bound).
const V1_MAX: usize = 107;
/// Longest version 2 address block read (an IPv6 pair is 36 bytes; TLVs after it are skipped
/// up to this).
const V2_MAX_BLOCK: usize = 1024;

/// Why a connection's PROXY header is refused (the connection is then closed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    #[error("a PROXY protocol header that is not well formed")]
    Malformed,
    #[error("the connection ended inside its PROXY protocol header")]
    Ended,
}

/// Reads the PROXY header at the start of `io`: the client's address, or `None` when the
/// balancer says the connection is its own (a health check: `LOCAL`, `UNKNOWN`).
pub async fn read_header<Io: AsyncRead + Unpin>(
    io: &mut Io,
) -> Result<Option<SocketAddr>, ProxyError> {
    let mut start = [0u8; 12];
    read_exact(io, &mut start[..6]).await?;
    if &start[..6] == b"PROXY " {
        return read_v1(io).await;
    }
    read_exact(io, &mut start[6..]).await?;
    if start != V2_SIGNATURE {
        return Err(ProxyError::Missing);
    }
    let mut head = [0u8; 4];
    read_exact(io, &mut head).await?;
    let (version_command, family) = (head[0], head[1]);
    let length = usize::from(u16::from_be_bytes([head[2], head[3]]));
    if version_command >> 4 != 2 || length > V2_MAX_BLOCK {
        return Err(ProxyError::Malformed);
    }
    let mut block = vec![0u8; length];
    read_exact(io, &mut block).await?;
    if version_command & 0x0f == 0 {
        // LOCAL: the balancer's own connection (a health check).
        return Ok(None);
    }
    let address = match family >> 4 {
        1 if block.len() >= 12 => {
            let ip = Ipv4Addr::new(block[0], block[1], block[2], block[3]);
            SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([block[8], block[9]]))
        }
        2 if block.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&block[..16]);
            let port = u16::from_be_bytes([block[32], block[33]]);
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port)
        }
        0 => return Ok(None),
        _ => return Err(ProxyError::Malformed),
    };
    Ok(Some(address))
}

/// The rest of a version 1 header, after `PROXY `: `TCP4|TCP6 src dst sport dport\r\n`, or
/// `UNKNOWN...\r\n`.
async fn read_v1<Io: AsyncRead + Unpin>(io: &mut Io) -> Result<Option<SocketAddr>, ProxyError> {
    let mut line = Vec::with_capacity(V1_MAX);
    line.extend_from_slice(b"PROXY ");
    loop {
        if line.len() >= V1_MAX {
            return Err(ProxyError::Malformed);
        }
        let byte = io.read_u8().await.map_err(|_| ProxyError::Ended)?;
        line.push(byte);
        if line.ends_with(b"\r\n") {
            break;
        }
    }
    let text = std::str::from_utf8(&line[..line.len() - 2]).map_err(|_| ProxyError::Malformed)?;
    let fields: Vec<&str> = text.split(' ').collect();
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(None),
        [
            "PROXY",
            family @ ("TCP4" | "TCP6"),
            source,
            _destination,
            port,
            _,
        ] => {
            let ip: IpAddr = source.parse().map_err(|_| ProxyError::Malformed)?;
            if (*family == "TCP4") != ip.is_ipv4() {
                return Err(ProxyError::Malformed);
            }
            let port: u16 = port.parse().map_err(|_| ProxyError::Malformed)?;
            Ok(Some(SocketAddr::new(ip, port)))
        }
        _ => Err(ProxyError::Malformed),
    }
}

async fn read_exact<Io: AsyncRead + Unpin>(io: &mut Io, buf: &mut [u8]) -> Result<(), ProxyError> {
    io.read_exact(buf)
        .await
        .map(drop)
        .map_err(|_| ProxyError::Ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyError>, Vec<u8>) {
        let mut io = bytes;
        let header = read_header(&mut io).await;
        (header, io.to_vec())
    }

    #[tokio::test]
    async fn version_1_names_the_client_and_nothing_after_the_header_is_taken() {
        let (header, rest) =
            read(b"PROXY TCP4 203.0.113.7 10.0.0.2 51000 4000\r\nGET / HTTP/1.1").await;
        assert_eq!(header, Ok(Some("203.0.113.7:51000".parse().unwrap())));
        assert_eq!(rest, b"GET / HTTP/1.1");
        let (header, _) = read(b"PROXY TCP6 2001:db8::1 2001:db8::2 443 4000\r\n").await;
        assert_eq!(header, Ok(Some("[2001:db8::1]:443".parse().unwrap())));
        let (header, _) = read(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(header, Ok(None));
    }

    #[tokio::test]
    async fn version_2_names_the_client_or_says_the_connection_is_the_balancers() {
        let mut v4 = V2_SIGNATURE.to_vec();
        v4.extend_from_slice(&[
            0x21, 0x11, 0, 12, 198, 51, 100, 9, 10, 0, 0, 2, 0xc3, 0x50, 0x0f, 0xa0,
        ]);
        v4.extend_from_slice(b"rest");
        let (header, rest) = read(&v4).await;
        assert_eq!(header, Ok(Some("198.51.100.9:50000".parse().unwrap())));
        assert_eq!(rest, b"rest");
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(read(&local).await.0, Ok(None));
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"PROXY TCP4 not-an-address 10.0.0.2 1 2\r\n",
            b"PROXY TCP4 2001:db8::1 10.0.0.2 1 2\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.2 99999 4000\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.2 1 2",
        ] {
            assert!(
                read(bad).await.0.is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // A header that never ends is cut at the protocol's bound.
        let endless = [b"PROXY ".as_slice(), &[b'x'; 200]].concat();
        assert_eq!(read(&endless).await.0, Err(ProxyError::Malformed));
    }
}
