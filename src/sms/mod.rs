//! The SMS channel: what subscribers send and what we send them — receipts written to
//! the outbox with each movement, delivered by a worker through a provider.

pub mod answer;
pub mod breaker;
pub mod delivery;
pub mod inbound;
pub mod outbox;
pub mod receipts;
pub mod segments;
