//! Built-in lines the engine adds to screens (errors, endings, navigation), in each
//! shipped language; a menu may replace any of them under `messages:`.

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
}

/// Languages whose built-in lines ship with the gateway.
pub const SHIPPED: &[&str] = &["en", "sw"];

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
        }
    }

    /// The line a menu's own wording of which stands in for this one in a language the
    /// gateway does not ship: `conversation_over` came after menus had translated
    /// `session_over`, and such a menu must not be refused for lacking it.
    pub fn stand_in(self) -> Option<Message> {
        match self {
            Message::ConversationOver => Some(Message::SessionOver),
            Message::TooManyAnswers => Some(Message::TooManyAttempts),
            _ => None,
        }
    }

    pub fn from_name(name: &str) -> Option<Message> {
        Self::ALL.iter().copied().find(|m| m.name() == name)
    }

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
            Message::InvalidText => "Invalid entry.",
            Message::InvalidPin => "PIN must be 4 digits.",
            Message::TooManyAttempts => "Too many invalid attempts. Please dial again.",
            Message::ServiceUnavailable => "Service unavailable, please try again",
            Message::Processing => "We are processing your request; you will receive an SMS.",
            Message::Unconfirmed => {
                "We cannot confirm your request right now. Please check your balance before you try again."
            }
            Message::SessionOver => "This session has ended. Please dial again.",
            Message::Back => "Back",
            Message::More => "More",
            Message::Yes => "Yes",
            Message::No => "No",
            Message::ResumeOffer => "Your last session was cut off.",
            Message::Continue => "Continue where I left off",
            Message::StartAgain => "Start again",
            Message::WrongCode => "That code is not right. Reply YES and the code we sent you.",
            Message::CodeExpired => "The code has expired and nothing was done. Send the command again.",
            Message::NotBySms => "This cannot be done by SMS. Please dial the USSD code.",
            Message::DialToFinish => "To finish, dial the code in our last message and enter your PIN.",
            Message::NoMoreCodes => "Too many wrong codes today. Please dial the USSD code and use your PIN.",
            Message::ConversationOver => "This conversation has ended. Send the command again.",
            Message::TooManyAnswers => "Too many invalid answers. Send the command again.",
        }
    }

    fn swahili(self) -> &'static str {
        match self {
            Message::InvalidChoice => "Chaguo si sahihi.",
            Message::InvalidDigits => "Nambari si sahihi.",
            Message::InvalidAmount => "Kiasi si sahihi.",
            Message::InvalidMsisdn => "Nambari ya simu si sahihi.",
            Message::InvalidName => "Weka jina kwa herufi pekee.",
            Message::InvalidText => "Ulichoweka si sahihi.",
            Message::InvalidPin => "PIN ni tarakimu 4.",
            Message::TooManyAttempts => "Majaribio mengi yasiyo sahihi. Tafadhali piga tena.",
            Message::ServiceUnavailable => "Huduma haipatikani, tafadhali jaribu tena",
            Message::Processing => "Ombi lako linashughulikiwa; utapokea SMS.",
            Message::Unconfirmed => {
                "Hatuwezi kuthibitisha ombi lako sasa hivi. Tafadhali angalia salio lako kabla ya kujaribu tena."
            }
            Message::SessionOver => "Kipindi hiki kimeisha. Tafadhali piga tena.",
            Message::Back => "Rudi",
            Message::More => "Zaidi",
            Message::Yes => "Ndiyo",
            Message::No => "Hapana",
            Message::ResumeOffer => "Kipindi chako cha mwisho kilikatika.",
            Message::Continue => "Endelea nilipoachia",
            Message::StartAgain => "Anza upya",
            Message::WrongCode => "Nambari hiyo si sahihi. Jibu NDIYO na nambari tuliyokutumia.",
            Message::CodeExpired => "Nambari imepitwa na muda na hakuna kilichofanyika. Tuma amri tena.",
            Message::NotBySms => "Hili haliwezi kufanywa kwa SMS. Tafadhali piga msimbo wa USSD.",
            Message::DialToFinish => {
                "Ili kumaliza, piga msimbo ulio kwenye ujumbe wetu wa mwisho na uweke PIN yako."
            }
            Message::NoMoreCodes => {
                "Nambari nyingi zisizo sahihi leo. Tafadhali piga msimbo wa USSD na utumie PIN yako."
            }
            Message::ConversationOver => "Mazungumzo haya yamekwisha. Tuma amri tena.",
            Message::TooManyAnswers => "Majibu mengi yasiyo sahihi. Tuma amri tena.",
        }
    }
}
