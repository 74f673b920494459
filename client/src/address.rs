//! Room server addresses as a user types them: `ws://`, `wss://` or `mock://name`.

use std::fmt;

/// Where a room lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A real room server, by its WebSocket URL (`ws://` or `wss://`).
    WebSocket(String),
    /// A room simulated in this page by `mock-backend`, by name.
    Mock(String),
}

/// Why an address was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing was typed.
    #[error("type an address, such as ws://localhost:4000 or mock://lobby")]
    Empty,
    /// A scheme other than ws, wss or mock.
    #[error("the address must start with ws://, wss:// or mock://")]
    Scheme,
    /// `ws://` with no host after it.
    #[error("the address has no host")]
    NoHost,
    /// A mock room name with characters other than letters, digits, `-` and `_`.
    #[error("a mock room name is 1 to 32 letters, digits, - or _")]
    MockName,
    /// A host that is not a name, an IPv4 address or a bracketed IPv6 address (with a port).
    #[error("the host is not a valid name or address")]
    BadHost,
    /// Spaces or control characters inside a URL.
    #[error("the address contains spaces or control characters")]
    Whitespace,
    /// A bare word (`hello`): no scheme, no port, no dot. More likely a typo or a mock room
    /// name than a server.
    #[error("did you mean mock://{0} (a demo room) or ws://{0}:PORT (a server)?")]
    Unclear(String),
}

impl Address {
    /// Parses what a user typed. A bare `host:port` means `ws://host:port`.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(AddressError::Empty);
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(AddressError::Whitespace);
        }
        let (scheme, rest) = match input.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => {
                let host = input.split(['/', '?', '#']).next().unwrap_or_default();
                if !host.contains([':', '.', '[']) && !host.eq_ignore_ascii_case("localhost") {
                    return Err(AddressError::Unclear(host.to_owned()));
                }
                ("ws".to_owned(), input)
            }
        };
        match scheme.as_str() {
            "mock" => {
                let name = rest.trim_end_matches('/');
                let valid = !name.is_empty()
                    && name.chars().count() <= 32
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
                if valid {
                    Ok(Self::Mock(name.to_lowercase()))
                } else {
                    Err(AddressError::MockName)
                }
            }
            "ws" | "wss" => {
                let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
                if host.is_empty() {
                    return Err(AddressError::NoHost);
                }
                if !valid_host(host) {
                    return Err(AddressError::BadHost);
                }
                let path = &rest[host.len()..];
                let path = if path.is_empty() { "/" } else { path };
                Ok(Self::WebSocket(format!(
                    "{scheme}://{}{path}",
                    same_server(&scheme, &host.to_ascii_lowercase())
                )))
            }
            _ => Err(AddressError::Scheme),
        }
    }

    /// True for rooms simulated in the page: they end with it, so nothing about them is
    /// worth remembering across reloads except that they were open.
    pub fn is_mock(&self) -> bool {
        matches!(self, Self::Mock(_))
    }
}

/// One spelling per server, so that two spellings of it are one room (with one identity):
/// `localhost` is `127.0.0.1`, and the scheme's default port is left out.
fn same_server(scheme: &str, host: &str) -> String {
    let host = match host.strip_prefix("localhost") {
        Some(port) if port.is_empty() || port.starts_with(':') => format!("127.0.0.1{port}"),
        _ => host.to_owned(),
    };
    let default_port = if scheme == "wss" { ":443" } else { ":80" };
    match host.strip_suffix(default_port) {
        Some(bare) if !bare.ends_with(':') => bare.to_owned(),
        _ => host,
    }
}

/// `name[:port]`, `1.2.3.4[:port]` or `[v6][:port]`: roughly what the browser's URL parser
/// accepts for a WebSocket host. Anything else the browser would refuse outright.
fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        let Some((addr, rest)) = v6.split_once(']') else {
            return false;
        };
        let addr_ok = !addr.is_empty()
            && addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        match (addr_ok, rest) {
            (false, _) => return false,
            (true, "") => return true,
            (true, rest) => match rest.strip_prefix(':') {
                Some(port) => ("v6", Some(port)),
                None => return false,
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'));
    name_ok && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WebSocket(url) => f.write_str(url),
            Self::Mock(name) => write!(f, "mock://{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_three_schemes_and_normalises() {
        // One server, one room: localhost is 127.0.0.1, a default port is no port.
        assert_eq!(
            Address::parse(" ws://LocalHost:4000 "),
            Ok(Address::WebSocket("ws://127.0.0.1:4000/".into()))
        );
        assert_eq!(
            Address::parse("ws://127.0.0.1:4000"),
            Address::parse("ws://localhost:4000/")
        );
        assert_eq!(
            Address::parse("wss://chat.example.org:443/"),
            Ok(Address::WebSocket("wss://chat.example.org/".into()))
        );
        assert_eq!(
            Address::parse("ws://chat.example.org:8080"),
            Ok(Address::WebSocket("ws://chat.example.org:8080/".into()))
        );
        assert_eq!(
            Address::parse("wss://chat.example.org/room?x=1"),
            Ok(Address::WebSocket("wss://chat.example.org/room?x=1".into()))
        );
        assert_eq!(
            Address::parse("localhost:4001"),
            Ok(Address::WebSocket("ws://127.0.0.1:4001/".into()))
        );
        assert_eq!(
            Address::parse("chat.example.org"),
            Ok(Address::WebSocket("ws://chat.example.org/".into()))
        );
        assert_eq!(
            Address::parse("mock://Lobby"),
            Ok(Address::Mock("lobby".into()))
        );
        assert_eq!(
            Address::parse("mock://lobby").map(|a| a.to_string()),
            Ok("mock://lobby".into())
        );
    }

    #[test]
    fn refuses_what_cannot_be_a_room() {
        assert_eq!(Address::parse("  "), Err(AddressError::Empty));
        // A bare word is probably a typo: say what was meant instead of retrying ws://hello/.
        assert_eq!(
            Address::parse("hello"),
            Err(AddressError::Unclear("hello".into()))
        );
        assert_eq!(
            Address::parse("http://example.org"),
            Err(AddressError::Scheme)
        );
        assert_eq!(
            Address::parse("javascript://alert(1)"),
            Err(AddressError::Scheme)
        );
        assert_eq!(Address::parse("ws://"), Err(AddressError::NoHost));
        assert_eq!(Address::parse("mock://"), Err(AddressError::MockName));
        assert_eq!(Address::parse("mock://a<b"), Err(AddressError::MockName));
        assert_eq!(Address::parse("ws://a b"), Err(AddressError::Whitespace));
        assert_eq!(Address::parse("ws://[nope"), Err(AddressError::BadHost));
        assert_eq!(
            Address::parse("ws://host:99999/"),
            Err(AddressError::BadHost)
        );
        assert_eq!(Address::parse("ws://a%20b/"), Err(AddressError::BadHost));
        assert_eq!(Address::parse("ws://[::1]x/"), Err(AddressError::BadHost));
        assert!(Address::parse("ws://[::1]:4000/").is_ok());
        assert!(Address::parse("ws://[::1]").is_ok());
        assert!(Address::parse("ws://127.0.0.1:4000").is_ok());
        assert!(Address::parse("wss://chat.example.org").is_ok());
    }
}
