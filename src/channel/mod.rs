//! Channels at the edge: each adapter turns a provider's wire format into a [`Hop`]
//! and a [`crate::menu::Reply`] back into the wire format.

pub mod ussd;

use crate::domain::Msisdn;

/// One USSD request from an aggregator, normalised.
#[derive(Debug)]
pub struct Hop {
    /// Adapter name, part of the session key (`africastalking`).
    pub provider: &'static str,
    pub session_id: String,
    pub msisdn: Msisdn,
    /// The code as the aggregator reports it (`*384#`, or `*384*1*2#` when jumping ahead).
    pub service_code: String,
    /// Everything typed so far, joined by `*` (the cumulative model).
    pub text: String,
}
