//! Built-in lines the engine adds to screens (errors, endings), in each shipped language.

/// A line the engine writes itself; menu authors may override the error lines per step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    InvalidChoice,
    InvalidDigits,
    InvalidAmount,
    InvalidMsisdn,
    InvalidName,
    InvalidPin,
    TooManyAttempts,
    ServiceUnavailable,
    Processing,
    SessionOver,
}

impl Message {
    /// The text in `lang`, falling back to English for languages we do not ship.
    pub fn text(self, lang: &str) -> &'static str {
        match lang {
            "sw" => self.swahili(),
            _ => self.english(),
        }
    }

    fn english(self) -> &'static str {
        match self {
            Message::InvalidChoice => "Invalid choice.",
            Message::InvalidDigits => "Invalid number.",
            Message::InvalidAmount => "Invalid amount.",
            Message::InvalidMsisdn => "Invalid phone number.",
            Message::InvalidName => "Enter a name in letters only.",
            Message::InvalidPin => "PIN must be 4 digits.",
            Message::TooManyAttempts => "Too many invalid attempts. Please dial again.",
            Message::ServiceUnavailable => "Service unavailable, please try again",
            Message::Processing => "We are processing your request; you will receive an SMS.",
            Message::SessionOver => "This session has ended. Please dial again.",
        }
    }

    fn swahili(self) -> &'static str {
        match self {
            Message::InvalidChoice => "Chaguo si sahihi.",
            Message::InvalidDigits => "Nambari si sahihi.",
            Message::InvalidAmount => "Kiasi si sahihi.",
            Message::InvalidMsisdn => "Nambari ya simu si sahihi.",
            Message::InvalidName => "Weka jina kwa herufi pekee.",
            Message::InvalidPin => "PIN ni tarakimu 4.",
            Message::TooManyAttempts => "Majaribio mengi yasiyo sahihi. Tafadhali piga tena.",
            Message::ServiceUnavailable => "Huduma haipatikani, tafadhali jaribu tena",
            Message::Processing => "Ombi lako linashughulikiwa; utapokea SMS.",
            Message::SessionOver => "Kipindi hiki kimeisha. Tafadhali piga tena.",
        }
    }
}
