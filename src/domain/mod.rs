//! Domain types parsed once at the edge, so that the rest of the code never re-checks them.

mod amount;
mod dial;
mod merchant;
mod msisdn;
mod name;
mod pattern;
mod pin;
mod secret;
pub mod shape;
mod text;

pub use amount::{Amount, AmountError, Currency};
pub use dial::is_service_code;
pub use merchant::{MerchantNumber, MerchantNumberError};
pub use msisdn::{Msisdn, MsisdnError, Region, mask as msisdn_mask};
pub use name::{NameError, PersonName};
pub use pattern::{AccountPattern, PatternError};
pub use pin::{Pin, PinError};
pub use secret::Secret;
pub use text::{DISPLAY_TEXT_PATTERN, DisplayText, TextError, one_line};
