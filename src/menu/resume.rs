//! Offering a journey a dropped session left behind: continue where it stopped, or
//! start again.

use super::budget::{Layout, paginate};
use super::graph::Menu;
use super::journey::{EngineError, Journey, Reply, Step};
use super::messages::Message;

impl Menu {
    /// Whether a journey left behind by a dropped session may be offered to continue: it
    /// waits on one of the screens the menu's `resume` lists (or on the offer itself).
    pub fn can_resume(&self, j: &Journey) -> bool {
        let Some(resume) = &self.resume else { return false };
        !j.done && self.index.get(&j.screen).is_some_and(|id| resume.screens.contains(id))
    }

    /// Offers a dropped journey back: continue where the subscriber left off, or start again.
    pub fn offer_resume(&self, mut j: Journey) -> Result<(Journey, Step), EngineError> {
        j.resuming = true;
        j.retries = 0;
        j.page = 0;
        j.error = None;
        let step = self.offer_page(&mut j)?;
        Ok((j, step))
    }

    /// The page of the offer the journey is on, cut to the budget like any screen.
    fn offer_page(&self, j: &mut Journey) -> Result<Step, EngineError> {
        let mut header: Vec<String> = Vec::new();
        if let Some(error) = &j.error {
            header.extend(error.lines().map(str::to_owned));
        }
        header.extend(self.message(j, Message::ResumeOffer)?.lines().map(str::to_owned));
        let options = vec![
            format!("1. {}", self.message(j, Message::Continue)?),
            format!("2. {}", self.message(j, Message::StartAgain)?),
        ];
        let layout = Layout { back_on_first: false, ends: false };
        let mut pages = paginate(&header, &options, &self.nav_lines(j)?, layout, self.budget_of(j));
        let at = usize::from(j.page).min(pages.len().saturating_sub(1));
        j.page = u8::try_from(at).unwrap_or(u8::MAX);
        let text = if pages.is_empty() { String::new() } else { pages.swap_remove(at) };
        Ok(Step::Reply(Reply::con(text)))
    }

    pub(super) fn answer_resume(&self, j: &mut Journey, key: &str) -> Result<Step, EngineError> {
        match key {
            "1" => {
                j.resuming = false;
                self.show(j)
            }
            "2" => {
                // Ops are keyed by session and counter, and this is a new session: the
                // counter may start again.
                let (fresh, step) = self.begin_within(
                    Some(&j.lang),
                    j.budget,
                    j.flags.unwrap_or_else(|| self.flag_defaults()),
                )?;
                *j = fresh;
                Ok(step)
            }
            k if k == self.keys.more => {
                j.page = j.page.saturating_add(1);
                self.offer_page(j)
            }
            k if k == self.keys.back => {
                j.page = j.page.saturating_sub(1);
                self.offer_page(j)
            }
            _ => {
                j.retries += 1;
                j.refused_on.push(j.screen.clone());
                if j.retries >= self.max_retries {
                    j.done = true;
                    return Ok(Step::Reply(Reply::end(self.message(j, Message::TooManyAttempts)?)));
                }
                j.error = Some(self.message(j, Message::InvalidChoice)?);
                j.page = 0;
                self.offer_page(j)
            }
        }
    }
}
