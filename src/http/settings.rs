//! Where the two listeners bind and how many connections they take, as configured
//! (LISTEN_ADDR, ADMIN_LISTEN, HTTP_MAX_CONNECTIONS, HTTP_HEADER_TIMEOUT_SECS), checked
//! here, where they are served.

use std::net::SocketAddr;
use std::time::Duration;

use crate::problems::Problems;

/// The listeners' settings as the operator wrote them.
#[derive(Clone, Copy, Debug)]
pub struct ServerDeclared<'a> {
    /// LISTEN_ADDR, or `--listen`, which wins.
    pub listen_addr: &'a str,
    pub admin_listen: &'a str,
    pub max_connections: u32,
    pub header_timeout_secs: u64,
}

/// The listeners' settings, checked.
#[derive(Clone, Copy, Debug)]
pub struct ServerSpec {
    /// Where aggregators and SMS providers call.
    pub listen: SocketAddr,
    /// Where the admin API and `/metrics` answer.
    pub admin_listen: SocketAddr,
    /// Connections the aggregators' listener serves at once.
    pub max_connections: usize,
    /// How long a request's headers, or a kept-alive connection's next request, may take.
    pub header_timeout: Duration,
}

/// An address to bind: an IP and port, or a host name and port (`localhost:8080`),
/// resolved now; of a name's addresses the first IPv4 one, since `localhost` may
/// resolve to `::1` first while clients dial 127.0.0.1.
fn address(raw: &str) -> Option<SocketAddr> {
    if let Ok(addr) = raw.parse() {
        return Some(addr);
    }
    // A name and a port: `fe80::1:8080` would split at its last colon into an address
    // nobody meant; IPv6 is written bracketed (`[fe80::1]:8080`), which parses above.
    if raw.matches(':').count() != 1 {
        return None;
    }
    let resolved: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(raw).ok()?.collect();
    resolved.iter().find(|a| a.is_ipv4()).or(resolved.first()).copied()
}

/// Checks the listeners' settings; what is wrong falls back to the default, so later
/// checks still run.
pub fn validate(s: &ServerDeclared<'_>, problems: &mut Problems) -> ServerSpec {
    let listen = address(s.listen_addr).unwrap_or_else(|| {
        problems.push(format!(
            "LISTEN_ADDR `{}` is not an address like 0.0.0.0:8080, [::]:8080 or localhost:8080",
            s.listen_addr
        ));
        SocketAddr::from(([0, 0, 0, 0], 8080))
    });
    let admin_listen = address(s.admin_listen).unwrap_or_else(|| {
        problems.push(format!(
            "ADMIN_LISTEN `{}` is not an address like 127.0.0.1:9090, [::1]:9090 or localhost:9090",
            s.admin_listen
        ));
        SocketAddr::from(([127, 0, 0, 1], 9090))
    });
    if admin_listen.port() != 0 && admin_listen.port() == listen.port() {
        problems.push(format!(
            "ADMIN_LISTEN `{admin_listen}` must be another port than LISTEN_ADDR `{listen}`: the admin API and /metrics are never served where aggregators call"
        ));
    }
    if !(16..=1_000_000).contains(&s.max_connections) {
        problems.push(format!(
            "HTTP_MAX_CONNECTIONS must be between 16 and 1000000 (got {}); each connection costs a file descriptor",
            s.max_connections
        ));
    }
    if !(1..=300).contains(&s.header_timeout_secs) {
        problems.push(format!(
            "HTTP_HEADER_TIMEOUT_SECS must be between 1 and 300 (got {}); aggregators send a request's headers at once",
            s.header_timeout_secs
        ));
    }
    ServerSpec {
        listen,
        admin_listen,
        max_connections: s.max_connections as usize,
        header_timeout: Duration::from_secs(s.header_timeout_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn a_listener_takes_a_host_name_and_port() {
        assert_eq!(address("localhost:8080"), Some(([127, 0, 0, 1], 8080).into()));
        assert_eq!(address("0.0.0.0:8080"), Some(([0, 0, 0, 0], 8080).into()));
        assert_eq!(address("localhost"), None, "a port is needed");
        assert_eq!(address("8080"), None);
        assert_eq!(address("[::1]:8080"), Some("[::1]:8080".parse().unwrap()));
        assert_eq!(address("fe80::1:8080"), None, "IPv6 without brackets is ambiguous");
    }
}
