//! USSD adapters, one module per aggregator, and the cumulative-input helper they share.

pub mod africastalking;
pub mod cumulative;
