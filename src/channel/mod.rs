//! Channels at the edge: each adapter turns a provider's wire format into a [`Hop`] (or
//! a [`Closed`] notification) and a [`crate::menu::Reply`] back into the wire format.

mod callers;
pub mod settings;
pub mod sms;
pub mod ussd;

pub use callers::Callers;
pub use settings::{ChannelDefaults, ChannelSettings, ChannelSpec, DEFAULT_REPEAT_WINDOW, GateSettings};

use crate::domain::Msisdn;

/// The channel of the admin API's simulator (`serve --simulator`): a name no declared
/// channel can have (theirs are letters, digits, `-` and `_`), so its sessions never
/// meet an aggregator's.
pub const SIMULATOR_CHANNEL: &str = "@simulator";

/// One USSD request from an aggregator, normalised.
#[derive(Debug)]
pub struct Hop {
    /// The wire format (`africastalking`): screen budgets are per provider.
    pub provider: &'static str,
    /// The channel it came through: part of the session key, so that two channels of
    /// one provider never share a session.
    pub channel: String,
    pub session_id: String,
    pub msisdn: Msisdn,
    /// The code as dialled (`*384#`, or `*384*1*2#` when jumping ahead).
    pub service_code: String,
    pub input: Input,
}

/// What the subscriber typed, in the provider's input model. `Debug` shows lengths
/// only: the text may hold a PIN.
#[derive(Clone, PartialEq, Eq)]
pub enum Input {
    /// Everything typed since the dial, joined by `*`; empty on the first hop.
    Cumulative(String),
    /// The whole dial string with everything typed since (`*384*2*1234#`), as Airtel
    /// and Safaricom may send it. Whether it opens a session is known only once the
    /// session is looked up.
    Dialled(String),
    /// Only this hop's input. The opening hop (`first`) carries nothing: its dial
    /// string is in [`Hop::service_code`]. `seq` is the provider's hop counter, when
    /// it sends one (Hubtel `Sequence`).
    PerHop { text: String, first: bool, seq: Option<u32> },
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Cumulative(text) => write!(f, "Cumulative({} bytes)", text.len()),
            Input::Dialled(text) => write!(f, "Dialled({} bytes)", text.len()),
            Input::PerHop { text, first, seq } => {
                write!(f, "PerHop {{ {} bytes, first: {first}, seq: {seq:?} }}", text.len())
            }
        }
    }
}

impl Input {
    /// A hop known, before any lookup, to open a session.
    pub fn is_first(&self) -> bool {
        match self {
            Input::Cumulative(text) => text.is_empty(),
            Input::Dialled(_) => false,
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
            Input::Dialled(text) => text.trim_end_matches('#').into(),
            Input::PerHop { first: true, .. } => "".into(),
            Input::PerHop { text, seq: Some(n), .. } => format!("{n}\u{1f}{text}").into(),
            Input::PerHop { text, seq: None, .. } => text.into(),
        }
    }

    /// Whether the same identity on a later request can only be a retry, however late.
    pub fn identifies_uniquely(&self) -> bool {
        match self {
            Input::Cumulative(_) | Input::Dialled(_) => true,
            Input::PerHop { first, seq, .. } => *first || seq.is_some(),
        }
    }
}

/// An aggregator telling us a session is over without asking for a screen.
#[derive(Debug)]
pub struct Closed {
    pub channel: String,
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
