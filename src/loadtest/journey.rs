//! The journeys a simulated subscriber walks, as the hops an aggregator would send.

use std::fmt;
use std::str::FromStr;

/// A walk through the shipped wallet menu.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Journey {
    /// Dial, open "My balance", drop before the PIN: menu hops only, no money.
    Browse,
    /// Dial, "My balance", PIN.
    Balance,
    /// Dial, "Send money", number, amount, PIN: a transfer.
    Send,
}

/// One hop to send: the cumulative text and what the reply must start with.
#[derive(Clone, Debug)]
pub struct HopPlan {
    pub step: &'static str,
    pub text: String,
    pub expect: &'static str,
}

impl Journey {
    pub const ALL: [Journey; 3] = [Journey::Browse, Journey::Balance, Journey::Send];

    pub fn moves_money(self) -> bool {
        self == Journey::Send
    }

    /// The hops of this journey for a subscriber whose PIN is `pin`, sending
    /// `amount_major` to `payee` (national form) where the journey sends money.
    pub fn hops(self, pin: &str, payee: &str, amount_major: u64) -> Vec<HopPlan> {
        let hop = |step, text: String, expect| HopPlan { step, text, expect };
        match self {
            Journey::Browse => vec![
                hop("browse.dial", String::new(), "CON Welcome"),
                hop("browse.menu", "2".into(), "CON Enter your PIN"),
            ],
            Journey::Balance => vec![
                hop("balance.dial", String::new(), "CON Welcome"),
                hop("balance.menu", "2".into(), "CON Enter your PIN"),
                hop("balance.pin", format!("2*{pin}"), "END Your balance is"),
            ],
            Journey::Send => vec![
                hop("send.dial", String::new(), "CON Welcome"),
                hop("send.menu", "1".into(), "CON Enter phone number"),
                hop("send.number", format!("1*{payee}"), "CON Enter amount"),
                hop("send.amount", format!("1*{payee}*{amount_major}"), "CON Send "),
                hop("send.confirm", format!("1*{payee}*{amount_major}*1"), "CON Enter PIN to send"),
                hop("send.pin", format!("1*{payee}*{amount_major}*1*{pin}"), "END Sent "),
            ],
        }
    }
}

impl fmt::Display for Journey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Journey::Browse => "browse",
            Journey::Balance => "balance",
            Journey::Send => "send",
        })
    }
}

/// Weights of each journey, parsed from `browse=6,balance=3,send=1` or a single name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix(pub Vec<(Journey, u32)>);

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let journey = Journey::ALL
                .into_iter()
                .find(|j| j.to_string() == name.trim())
                .ok_or_else(|| format!("unknown journey `{name}` (browse, balance, send)"))?;
            let weight: u32 =
                weight.trim().parse().map_err(|_| format!("`{weight}` is not a whole number"))?;
            weights.push((journey, weight));
        }
        if weights.iter().map(|(_, w)| w).sum::<u32>() == 0 {
            return Err("the mix needs at least one journey with a positive weight".into());
        }
        Ok(Mix(weights))
    }
}

impl Mix {
    /// Picks a journey for a draw `r` in `0..total()`.
    pub fn pick(&self, mut r: u32) -> Journey {
        for (journey, weight) in &self.0 {
            if r < *weight {
                return *journey;
            }
            r -= weight;
        }
        self.0[0].0
    }

    pub fn total(&self) -> u32 {
        self.0.iter().map(|(_, w)| w).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_pick_by_weight() {
        let mix: Mix = "browse=6, balance=3,send=1".parse().unwrap();
        assert_eq!(mix.total(), 10);
        assert_eq!(mix.pick(0), Journey::Browse);
        assert_eq!(mix.pick(6), Journey::Balance);
        assert_eq!(mix.pick(9), Journey::Send);
        assert_eq!("send".parse::<Mix>().unwrap().0, [(Journey::Send, 1)]);
        assert!("teleport".parse::<Mix>().is_err());
        assert!("send=0".parse::<Mix>().is_err());
    }

    #[test]
    fn send_hops_accumulate_text_like_africas_talking() {
        let hops = Journey::Send.hops("1234", "0700000002", 10);
        let texts: Vec<_> = hops.iter().map(|h| h.text.as_str()).collect();
        assert_eq!(
            texts,
            ["", "1", "1*0700000002", "1*0700000002*10", "1*0700000002*10*1", "1*0700000002*10*1*1234"]
        );
    }
}
