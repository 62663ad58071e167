//! `ussd-gateway simulate`: a phone in the terminal. It dials a code and shows each
//! screen as a handset would, in process (a scratch demo database) or against a running
//! gateway's Africa's Talking endpoint.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::channel::{Hop, Input};
use crate::domain::{Msisdn, Region};
use crate::gateway::Gateway;
use crate::journeys::{Scratch, ScratchError};
use crate::menu::{Budget, Bundle, Encoding, screen_cost};
use unicode_width::UnicodeWidthStr;

/// The line the phone talks over.
pub enum Line {
    /// A gateway in this process, on a scratch copy of the demo database.
    InProcess(Box<Local>),
    /// A running gateway: its Africa's Talking endpoint.
    Http { client: reqwest::Client, url: String },
}

/// The parts of an in-process line, kept to tear the scratch database down.
pub struct Local {
    gateway: Arc<Gateway>,
    scratch: Arc<Scratch>,
    db: String,
    pool: sqlx::PgPool,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error(transparent)]
    Scratch(#[from] ScratchError),
    #[error("the menus do not compile:\n{0}")]
    Menus(String),
    #[error("{url} did not answer as Africa's Talking expects: {reason}")]
    Http { url: String, reason: String },
    #[error("{0} is not a phone number")]
    Msisdn(String),
    #[error("cannot write to the terminal: {0}")]
    Io(#[from] std::io::Error),
}

impl Line {
    /// A gateway in this process over the menus in `menus_dir`, on a fresh database
    /// seeded with the demo subscribers (on the server of `database_url`).
    pub async fn in_process(database_url: &str, menus_dir: &Path) -> Result<Line, SimulateError> {
        // The menus are checked before any database is made.
        Bundle::load_dir(menus_dir).map_err(|d| SimulateError::Menus(crate::menu::report(&d)))?;
        let scratch = Scratch::create(database_url).await?;
        let (pool, db) = match scratch.fresh().await {
            Ok(fresh) => fresh,
            Err(e) => {
                let _ = scratch.remove().await;
                return Err(e.into());
            }
        };
        let gateway = match crate::journeys::demo_gateway(pool.clone(), menus_dir) {
            Ok(gateway) => gateway,
            Err(e) => {
                let _ = scratch.remove().await;
                return Err(SimulateError::Menus(e));
            }
        };
        let scratch = Arc::new(scratch);
        Ok(Line::InProcess(Box::new(Local { gateway, scratch, db, pool })))
    }

    pub fn http(url: &str) -> Line {
        Line::Http { client: reqwest::Client::new(), url: url.to_owned() }
    }

    /// One hop: whether the screen ends the session, and its text.
    async fn hop(
        &self,
        msisdn: &Msisdn,
        session: &str,
        code: &str,
        text: &str,
    ) -> Result<(bool, String), SimulateError> {
        match self {
            Line::InProcess(local) => {
                let hop = Hop {
                    provider: "simulator",
                    channel: "simulator".to_owned(),
                    session_id: session.to_owned(),
                    msisdn: msisdn.clone(),
                    service_code: code.to_owned(),
                    input: Input::Cumulative(text.to_owned()),
                };
                let (reply, _) = local.gateway.handle(&hop).await;
                Ok((reply.end, reply.text))
            }
            Line::Http { client, url } => {
                let fail = |reason: String| SimulateError::Http { url: url.clone(), reason };
                let form = [
                    ("sessionId", session),
                    ("serviceCode", code),
                    ("phoneNumber", msisdn.as_e164()),
                    ("networkCode", "63902"),
                    ("text", text),
                ];
                let response = client.post(url).form(&form).send().await.map_err(|e| fail(e.to_string()))?;
                let status = response.status();
                let body = response.text().await.map_err(|e| fail(e.to_string()))?;
                if !status.is_success() {
                    return Err(fail(format!("{status}: {body}")));
                }
                match (body.strip_prefix("CON "), body.strip_prefix("END ")) {
                    (Some(text), _) => Ok((false, text.to_owned())),
                    (_, Some(text)) => Ok((true, text.to_owned())),
                    _ => Err(fail(format!("a body starting with neither CON nor END: {body:?}"))),
                }
            }
        }
    }

    /// The scratch databases of an in-process line, for a clean-up on Ctrl-C.
    pub fn scratch(&self) -> Option<Arc<Scratch>> {
        match self {
            Line::InProcess(local) => Some(Arc::clone(&local.scratch)),
            Line::Http { .. } => None,
        }
    }

    /// Drops the scratch database of an in-process line.
    pub async fn close(self) -> Result<(), SimulateError> {
        if let Line::InProcess(local) = self {
            let Local { gateway, scratch, db, pool } = *local;
            gateway.drain().await;
            pool.close().await;
            scratch.discard(&db).await?;
            scratch.remove().await?;
        }
        Ok(())
    }
}

/// Draws a screen as a handset would, with its length against a 160/80 budget.
fn draw(out: &mut impl Write, end: bool, text: &str) -> std::io::Result<()> {
    // Columns, not characters: an emoji takes two in a terminal.
    let width = text.lines().map(UnicodeWidthStr::width).max().unwrap_or(0).max(24);
    writeln!(out, "┌{}┐", "─".repeat(width + 2))?;
    for line in text.lines() {
        let pad = width.saturating_sub(line.width());
        writeln!(out, "│ {line}{} │", " ".repeat(pad))?;
    }
    writeln!(out, "└{}┘", "─".repeat(width + 2))?;
    // What the line's channel holds is not known here: the default USSD budget.
    let cost = screen_cost(text);
    let budget = Budget::default();
    let (unit, budget) = match cost.encoding {
        Encoding::Gsm7 => ("GSM-7", budget.gsm7),
        Encoding::Ucs2 => ("UCS-2", budget.ucs2),
    };
    let state = if end { "END: the session is over" } else { "CON: type an answer" };
    writeln!(out, "  {state} · {}/{budget} {unit}", cost.units)
}

const HELP: &str = "Type an answer and Enter. Commands: :dial CODE (a new session), :as NUMBER \
                    (another subscriber), :help, :quit. An empty line after END dials again.";

/// Walks the menu with the lines a person types (or a script), writing every screen.
pub async fn run(
    line: &Line,
    mut typed: impl Iterator<Item = String>,
    out: &mut impl Write,
    msisdn: &str,
    code: &str,
) -> Result<(), SimulateError> {
    let region = Region::parse("KE").expect("KE is a region");
    let parse = |m: &str| Msisdn::parse(m, region).map_err(|_| SimulateError::Msisdn(m.to_owned()));
    let mut who = parse(msisdn)?;
    let mut code = code.to_owned();
    writeln!(out, "{HELP}")?;
    'dial: loop {
        let session = format!("sim{:016x}", rand::random::<u64>());
        let mut text = String::new();
        writeln!(out, "\n☎ {code} as {}", who.as_e164())?;
        let (mut end, screen) = line.hop(&who, &session, &code, &text).await?;
        draw(out, end, &screen)?;
        loop {
            write!(out, "> ")?;
            out.flush()?;
            let Some(input) = typed.next() else { return Ok(()) };
            let input = input.trim_end_matches(['\r', '\n']).to_owned();
            match input.split_once(' ').map_or((input.as_str(), ""), |(c, rest)| (c, rest.trim())) {
                (":quit" | ":q", _) => return Ok(()),
                (":help", _) => {
                    writeln!(out, "{HELP}")?;
                    continue;
                }
                (":dial", dialled) if !dialled.is_empty() => {
                    code = dialled.to_owned();
                    continue 'dial;
                }
                (":as", number) if !number.is_empty() => {
                    match parse(number) {
                        Ok(m) => who = m,
                        Err(e) => {
                            writeln!(out, "{e}")?;
                            continue;
                        }
                    }
                    continue 'dial;
                }
                _ if end => {
                    if input.is_empty() {
                        continue 'dial;
                    }
                    writeln!(out, "The session is over: Enter dials {code} again, :quit leaves.")?;
                    continue;
                }
                _ => {}
            }
            if !text.is_empty() {
                text.push('*');
            }
            text.push_str(&input);
            let (ended, screen) = line.hop(&who, &session, &code, &text).await?;
            end = ended;
            draw(out, end, &screen)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::draw;

    #[test]
    fn the_box_stays_square_around_an_emoji() {
        let mut out = Vec::new();
        draw(&mut out, false, "Karibu 😀 Amina\n1. Salio").unwrap();
        let out = String::from_utf8(out).unwrap();
        let widths: Vec<usize> = out.lines().take(4).map(unicode_width::UnicodeWidthStr::width).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{widths:?}\n{out}");
    }
}
