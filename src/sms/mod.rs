//! The SMS channel: what subscribers send and what we send them.

pub mod segments;
