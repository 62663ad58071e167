//! Channels at the edge: each adapter turns a provider's wire format into a [`Hop`] (or
//! a [`Closed`] notification) and a [`crate::menu::Reply`] back into the wire format.

pub mod ussd;

use crate::domain::Msisdn;

/// One USSD request from an aggregator, normalised.
#[derive(Debug)]
pub struct Hop {
    /// Adapter name, part of the session key (`africastalking`).
    pub provider: &'static str,
    pub session_id: String,
    pub msisdn: Msisdn,
    /// The code as dialled (`*384#`, or `*384*1*2#` when jumping ahead).
    pub service_code: String,
    pub input: Input,
}

/// What the subscriber typed, in the provider's input model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Everything typed since the dial, joined by `*`; empty on the first hop.
    Cumulative(String),
    /// Only this hop's input. The opening hop (`first`) carries nothing: its dial
    /// string is in [`Hop::service_code`]. `seq` is the provider's hop counter, when
    /// it sends one (Hubtel `Sequence`).
    PerHop { text: String, first: bool, seq: Option<u32> },
}

impl Input {
    /// A hop that opens a session.
    pub fn is_first(&self) -> bool {
        match self {
            Input::Cumulative(text) => text.is_empty(),
            Input::PerHop { first, .. } => *first,
        }
    }

    /// What identifies this hop among the session's hops, so that a retry of it is
    /// recognised: the whole text when cumulative, the counter and text when counted.
    /// A per-hop input without a counter is only its text, so a repeat of it is taken
    /// for a retry only while fresh (see the gateway).
    pub fn identity(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Input::Cumulative(text) => text.into(),
            Input::PerHop { first: true, .. } => "".into(),
            Input::PerHop { text, seq: Some(n), .. } => format!("{n}\u{1f}{text}").into(),
            Input::PerHop { text, seq: None, .. } => text.into(),
        }
    }

    /// Whether the same identity on a later request can only be a retry, however late.
    pub fn identifies_uniquely(&self) -> bool {
        match self {
            Input::Cumulative(_) => true,
            Input::PerHop { first, seq, .. } => *first || seq.is_some(),
        }
    }
}

/// An aggregator telling us a session is over without asking for a screen.
#[derive(Debug)]
pub struct Closed {
    pub provider: &'static str,
    pub session_id: String,
    pub msisdn: Msisdn,
    pub reason: CloseReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The subscriber cancelled or hung up.
    Aborted,
    /// The network gave up waiting for the subscriber.
    TimedOut,
    /// The session ended normally, or for a reason the provider does not say.
    Ended,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Aborted => "aborted",
            CloseReason::TimedOut => "timed_out",
            CloseReason::Ended => "ended",
        }
    }
}
