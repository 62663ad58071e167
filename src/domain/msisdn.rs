//! `Msisdn`: a subscriber number in E.164, masked whenever it is displayed or logged.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id as CountryId;

/// The region used to read numbers written in national form (`0712345678`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Region(CountryId);

impl Region {
    /// Parses an ISO 3166-1 alpha-2 code such as `KE`.
    pub fn parse(code: &str) -> Result<Self, String> {
        CountryId::from_str(&code.to_ascii_uppercase())
            .map(Region)
            .map_err(|_| format!("`{code}` is not an ISO 3166-1 alpha-2 region code (e.g. KE, GH, NG)"))
    }
}

/// How many distinct inputs each thread remembers before it starts afresh.
const PARSED_CAPACITY: usize = 4096;

/// The longest text read as a number (spaces included).
const MAX_INPUT: usize = 32;

/// Inputs already read in one region, with the number each gave.
type Parsed = HashMap<Box<str>, Msisdn>;

thread_local! {
    static PARSED: RefCell<HashMap<Region, Parsed>> =
        RefCell::new(HashMap::new());
}

/// A valid mobile number in E.164 form (`+254712345678`).
///
/// `Display` and `Debug` mask the middle digits so that a number can be logged without
/// leaking it; [`Msisdn::as_e164`] gives the full number for storage and lookups.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Msisdn(String);

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum MsisdnError {
    #[error("not a phone number")]
    Unparsable,
    #[error("not a valid phone number for its country")]
    Invalid,
}

impl Msisdn {
    /// Parses international (`+254…`, `254…`) or national (`07…`, read in `region`) input.
    ///
    /// Results are remembered per thread: an aggregator sends the caller's number on
    /// every hop, and the full parse (metadata regexes) costs more than the engine step.
    pub fn parse(input: &str, region: Region) -> Result<Self, MsisdnError> {
        // Only numbers are remembered, so that junk cannot fill the memo.
        let input = input.trim();
        if input.is_empty() || input.len() > MAX_INPUT {
            return Err(MsisdnError::Unparsable);
        }
        PARSED.with_borrow_mut(|parsed| {
            let parsed = parsed.entry(region).or_default();
            if let Some(known) = parsed.get(input) {
                return Ok(known.clone());
            }
            let number = Self::parse_uncached(input, region)?;
            if parsed.len() >= PARSED_CAPACITY {
                parsed.clear();
            }
            parsed.insert(input.into(), number.clone());
            Ok(number)
        })
    }

    fn parse_uncached(input: &str, region: Region) -> Result<Self, MsisdnError> {
        let trimmed = input.trim();
        if trimmed.is_empty() || trimmed.len() > MAX_INPUT {
            return Err(MsisdnError::Unparsable);
        }
        // Aggregators often send international numbers without the plus sign.
        let candidate = if !trimmed.starts_with('+') && !trimmed.starts_with('0') && trimmed.len() > 10 {
            format!("+{trimmed}")
        } else {
            trimmed.to_owned()
        };
        let number = phonenumber::parse(Some(region.0), &candidate).map_err(|_| MsisdnError::Unparsable)?;
        if !phonenumber::is_valid(&number) {
            return Err(MsisdnError::Invalid);
        }
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        // A few inputs (`800 00 001H01HE`: letters, leading zeros in a global service
        // number) give an E.164 form that is not the same number read again; such a
        // number would not find its own wallet, so it is refused.
        let again = phonenumber::parse(Some(region.0), &e164).map_err(|_| MsisdnError::Invalid)?;
        if !phonenumber::is_valid(&again) || again.format().mode(phonenumber::Mode::E164).to_string() != e164
        {
            return Err(MsisdnError::Invalid);
        }
        Ok(Msisdn(e164))
    }

    pub fn as_e164(&self) -> &str {
        &self.0
    }

    /// `+254712***678`: enough to recognise a number, not enough to reuse it.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// Masks all but the first seven and the last three characters of a number.
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 10 {
        let keep = chars.len().saturating_sub(3);
        return chars[..keep.min(3)].iter().collect::<String>() + "***";
    }
    let head: String = chars[..7].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}***{tail}")
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Msisdn({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ke() -> Region {
        Region::parse("KE").unwrap()
    }

    #[test]
    fn a_parsed_number_reads_back_as_itself() {
        // Found by the `msisdn` fuzz target: parsed, its E.164 form did not parse again.
        for input in ["800 00 001H01HE", "0712345678", "+254712345678"] {
            if let Ok(number) = Msisdn::parse(input, ke()) {
                assert_eq!(Msisdn::parse(number.as_e164(), ke()).as_ref(), Ok(&number), "{input}");
            }
        }
        assert_eq!(Msisdn::parse("800 00 001H01HE", ke()), Err(MsisdnError::Invalid));
    }

    #[test]
    fn national_international_and_bare_forms_agree() {
        for input in ["0712345678", "+254712345678", "254712345678", " 0712 345 678 "] {
            assert_eq!(Msisdn::parse(input, ke()).unwrap().as_e164(), "+254712345678", "{input}");
        }
    }

    #[test]
    fn rejects_garbage_and_invalid_numbers() {
        assert_eq!(Msisdn::parse("hello", ke()), Err(MsisdnError::Unparsable));
        assert_eq!(Msisdn::parse("", ke()), Err(MsisdnError::Unparsable));
        assert!(Msisdn::parse("0712", ke()).is_err());
    }

    #[test]
    fn remembered_results_match_a_fresh_parse() {
        for input in ["0712345678", "254712345678", "0712", "hello", "+254 712 345 678"] {
            let fresh = Msisdn::parse_uncached(input, ke());
            assert_eq!(Msisdn::parse(input, ke()), fresh, "{input}");
            assert_eq!(Msisdn::parse(input, ke()), fresh, "{input} (remembered)");
        }
        let gh = Region::parse("GH").unwrap();
        assert!(Msisdn::parse("0712345678", gh).is_err(), "a number read in another region is parsed afresh");
    }

    #[test]
    fn display_and_debug_are_masked() {
        let m = Msisdn::parse("+254712345678", ke()).unwrap();
        assert_eq!(m.to_string(), "+254712***678");
        assert!(!format!("{m:?}").contains("345"));
    }

    #[test]
    fn unknown_region_is_explained() {
        assert!(Region::parse("XX").unwrap_err().contains("ISO 3166-1"));
    }
}
