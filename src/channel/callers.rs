//! Who may call a channel's path: its secret token, an address allowlist and Basic
//! credentials, as configuration gave them.

use secrecy::SecretString;

/// Who may call a channel's path, checked: shared by USSD and SMS channels. `Debug`
/// shows the secrets as redacted.
#[derive(Clone, Debug)]
pub struct Callers {
    /// The path without the token.
    pub path: String,
    pub token: Option<SecretString>,
    pub allow: Vec<ipnet::IpNet>,
    /// `user:password`, as it is compared with the decoded `Authorization` header.
    pub basic: Option<SecretString>,
}

impl Callers {
    /// Anyone, at `path`: the demo channels.
    pub fn anyone(path: String) -> Self {
        Callers { path, token: None, allow: Vec::new(), basic: None }
    }
}
