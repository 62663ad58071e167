//! The built-in lines the engine adds to screens and SMS conversations (errors, endings,
//! navigation), by name; their words are texts (`lines:` in `texts/<language>.yaml`),
//! and a menu may replace any of them under `messages:`.

/// A line the engine writes itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    InvalidChoice,
    InvalidDigits,
    InvalidAmount,
    InvalidMsisdn,
    InvalidName,
    InvalidText,
    InvalidPin,
    TooManyAttempts,
    ServiceUnavailable,
    Processing,
    /// A movement whose outcome is unknown, when no SMS could be promised about it.
    Unconfirmed,
    SessionOver,
    Back,
    More,
    Yes,
    No,
    ResumeOffer,
    Continue,
    StartAgain,
    /// SMS: the reply to a one-time code that does not match.
    WrongCode,
    /// SMS: the one-time code is older than its lifetime.
    CodeExpired,
    /// SMS reached a screen that needs a secret SMS must not carry (a national ID).
    NotBySms,
    /// SMS: a reply to a movement the menu finishes on USSD only (its text offers a dial).
    DialToFinish,
    /// SMS: the number sent too many wrong codes today to be sent another.
    NoMoreCodes,
    /// SMS: a reply to a conversation that is over (its movement was finished on USSD,
    /// or its session expired).
    ConversationOver,
    /// SMS: too many invalid replies or wrong codes; where USSD says dial again.
    TooManyAnswers,
    /// A screen or an op a feature flag switched off, when the flag says nothing itself.
    NotAvailable,
}

impl Message {
    pub const ALL: &'static [Message] = &[
        Message::InvalidChoice,
        Message::InvalidDigits,
        Message::InvalidAmount,
        Message::InvalidMsisdn,
        Message::InvalidName,
        Message::InvalidText,
        Message::InvalidPin,
        Message::TooManyAttempts,
        Message::ServiceUnavailable,
        Message::Processing,
        Message::Unconfirmed,
        Message::SessionOver,
        Message::Back,
        Message::More,
        Message::Yes,
        Message::No,
        Message::ResumeOffer,
        Message::Continue,
        Message::StartAgain,
        Message::WrongCode,
        Message::CodeExpired,
        Message::NotBySms,
        Message::DialToFinish,
        Message::NoMoreCodes,
        Message::ConversationOver,
        Message::TooManyAnswers,
        Message::NotAvailable,
    ];

    /// The key a menu uses under `messages:` to replace this line.
    pub fn name(self) -> &'static str {
        match self {
            Message::InvalidChoice => "invalid_choice",
            Message::InvalidDigits => "invalid_digits",
            Message::InvalidAmount => "invalid_amount",
            Message::InvalidMsisdn => "invalid_msisdn",
            Message::InvalidName => "invalid_name",
            Message::InvalidText => "invalid_text",
            Message::InvalidPin => "invalid_pin",
            Message::TooManyAttempts => "too_many_attempts",
            Message::ServiceUnavailable => "service_unavailable",
            Message::Processing => "processing",
            Message::Unconfirmed => "unconfirmed",
            Message::SessionOver => "session_over",
            Message::Back => "back",
            Message::More => "more",
            Message::Yes => "yes",
            Message::No => "no",
            Message::ResumeOffer => "resume_offer",
            Message::Continue => "continue",
            Message::StartAgain => "start_again",
            Message::WrongCode => "wrong_code",
            Message::CodeExpired => "code_expired",
            Message::NotBySms => "not_by_sms",
            Message::DialToFinish => "dial_to_finish",
            Message::NoMoreCodes => "no_more_codes",
            Message::ConversationOver => "conversation_over",
            Message::TooManyAnswers => "too_many_answers",
            Message::NotAvailable => "not_available",
        }
    }

    /// The line a menu's own wording of which stands in for this one in a language no
    /// texts file writes the lines of: `conversation_over` came after menus had translated
    /// `session_over` (`not_available` after `service_unavailable`), and such a menu must not
    /// be refused for lacking it.
    pub fn stand_in(self) -> Option<Message> {
        match self {
            Message::ConversationOver => Some(Message::SessionOver),
            Message::TooManyAnswers => Some(Message::TooManyAttempts),
            Message::NotAvailable => Some(Message::ServiceUnavailable),
            _ => None,
        }
    }

    pub fn from_name(name: &str) -> Option<Message> {
        Self::ALL.iter().copied().find(|m| m.name() == name)
    }
}
