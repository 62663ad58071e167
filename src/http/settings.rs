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

/// Checks the listeners' settings; what is wrong falls back to the default, so later
/// checks still run.
pub fn validate(s: &ServerDeclared<'_>, problems: &mut Problems) -> ServerSpec {
    let listen = s.listen_addr.parse::<SocketAddr>().unwrap_or_else(|_| {
        problems.push(format!(
            "LISTEN_ADDR `{}` is not an address like 0.0.0.0:8080 or 127.0.0.1:9000",
            s.listen_addr
        ));
        SocketAddr::from(([0, 0, 0, 0], 8080))
    });
    let admin_listen = s.admin_listen.parse::<SocketAddr>().unwrap_or_else(|_| {
        problems.push(format!("ADMIN_LISTEN `{}` is not an address like 127.0.0.1:9090", s.admin_listen));
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
