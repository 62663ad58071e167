//! Who may call a channel's path: its secret token, an address allowlist and Basic
//! credentials, as configuration gave them.

use std::fmt;

/// Who may call a channel's path, checked: shared by USSD and SMS channels.
#[derive(Clone)]
pub struct Callers {
    /// The path without the token.
    pub path: String,
    pub token: Option<String>,
    pub allow: Vec<ipnet::IpNet>,
    /// `user:password`, as it is compared with the decoded `Authorization` header.
    pub basic: Option<String>,
}

impl Callers {
    /// Anyone, at `path`: the demo channels.
    pub fn anyone(path: String) -> Self {
        Callers { path, token: None, allow: Vec::new(), basic: None }
    }
}

impl fmt::Debug for Callers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callers")
            .field("path", &self.path)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("allow", &self.allow)
            .field("basic", &self.basic.as_ref().map(|_| "<set>"))
            .finish()
    }
}
