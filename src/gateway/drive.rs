//! Driving the engine over a hop's inputs: each op it asks for runs on a task of its
//! own (claimed first where it must be), and its outcome — or why it has none — goes
//! back into the journey.

use tokio::time::Instant;
use tracing::{Instrument, warn};

use super::claim::RENEW_EVERY;
use super::entry::Entry;
use super::told::{LEFT_TO_RUNNER, LEFT_TO_SERVER, PROMISE_MARGIN, Unknown};
use super::{Attempt, Gateway, Interrupt, MAX_OPS_PER_HOP, Record, SAVE_MARGIN, op_key};
use crate::domain::Region;
use crate::menu::{Action, EngineError, Journey, Menu, Reply, Step};
use crate::money::Auth;
use crate::ops::Call;
use crate::outcome::{OpResult, Outcome};

impl Gateway {
    /// Runs the engine over this hop's inputs, running ops as it asks for them.
    pub(super) async fn drive(
        &self,
        at: &Attempt<'_>,
        rec: &mut Record,
        inputs: Vec<String>,
        entry: Entry,
    ) -> Result<Reply, Interrupt> {
        let menu = at.menu;
        let mut inputs = inputs.into_iter();
        let mut ops = 0;
        let mut step = match entry {
            Entry::Continue => {
                let first = inputs.next().unwrap_or_default();
                match at.conversation {
                    Some(c) if rec.session.code.is_some() => self.confirm(at, rec, c, &first).await?,
                    _ => menu.input(&mut rec.session.journey, &first).map_err(Interrupt::Engine)?,
                }
            }
            entry => self.start(at, rec, entry)?,
        };
        loop {
            step = match step {
                Step::Reply(reply) => match at.conversation {
                    // Over SMS a screen asking for a secret takes no input — a command's
                    // dial cannot type a PIN, the rest of it is dropped — unless its
                    // code is already out (this is the wrong-code line).
                    Some(c)
                        if !reply.end
                            && rec.session.code.is_none()
                            && menu.is_sensitive(&rec.session.journey.screen) =>
                    {
                        match self.instead_of_pin(at, rec, c).await? {
                            Ok(vouched) => vouched,
                            Err(asked) => return Ok(asked),
                        }
                    }
                    // Inputs left over are dialled ahead (`*384*1*0712…#`, or an
                    // opening hop's text): they never type a PIN nor say yes to a
                    // step on the subscriber's behalf, so the dial string and the
                    // aggregator's logs carry no PIN and a replayed dial moves nothing.
                    _ if !reply.end
                        && inputs.len() > 0
                        && dialled_past(menu, at, &rec.session.journey.screen) =>
                    {
                        return Ok(reply);
                    }
                    _ => match inputs.next() {
                        Some(next) if !reply.end => {
                            menu.input(&mut rec.session.journey, &next).map_err(Interrupt::Engine)?
                        }
                        _ => return Ok(reply),
                    },
                },
                Step::Run(action) => {
                    ops += 1;
                    if ops > MAX_OPS_PER_HOP {
                        let screen = rec.session.journey.screen.clone();
                        return Err(Interrupt::Engine(EngineError::Loop(screen)));
                    }
                    if let Some(flag) = self.switched_off(menu, at.hop, action.op) {
                        crate::telemetry::record_op(action.op.name(), "switched_off");
                        step =
                            menu.switched_off(&mut rec.session.journey, flag).map_err(Interrupt::Engine)?;
                        continue;
                    }
                    if Self::needs_claim(rec, &action) {
                        self.claim(at, rec, &action).await?;
                    }
                    let auth = at.conversation.map_or(Auth::Pin, |c| c.auth());
                    let result = self.run_op(at, rec, action, auth, menu.region).await?;
                    menu.resume(&mut rec.session.journey, result).map_err(Interrupt::Engine)?
                }
            };
        }
    }

    /// The first step of a new session: its menu's start screen within the channel's
    /// budget, a dropped journey offered back, or an SMS movement handed over.
    fn start(&self, at: &Attempt<'_>, rec: &mut Record, entry: Entry) -> Result<Step, Interrupt> {
        let menu = at.menu;
        let channel = self.config.budgets.get(at.hop.provider).copied();
        let budget = channel.map(|b| b.min(menu.budget)).filter(|b| *b != menu.budget);
        let (journey, step) = match entry {
            // A new session: it decides the flags again, whether the subscriber goes on
            // or starts again.
            Entry::Offer(mut dropped) => {
                dropped.budget = budget;
                dropped.flags = (!menu.flags.is_empty()).then(|| self.flag_bits(menu, at.hop));
                menu.offer_resume(*dropped)
            }
            Entry::HandOff(handed) => {
                let flags = (!menu.flags.is_empty()).then(|| self.flag_bits(menu, at.hop));
                let mut j = Journey { budget, retries: 0, flags, ..*handed };
                menu.show(&mut j).map(|step| (j, step))
            }
            _ => menu.begin_within(None, channel, self.flag_bits(menu, at.hop)),
        }
        .map_err(Interrupt::Engine)?;
        rec.session.journey = journey;
        // A journey handed over from SMS goes on as a USSD one.
        rec.session.journey.by_sms = at.conversation.is_some();
        Ok(step)
    }

    /// Runs an op on its own task so that it completes even if the hop cannot wait,
    /// renewing the hop's claim meanwhile. A movement that overruns, fails after its
    /// statement was sent, or crashes has an unknown outcome; any other failure moved
    /// nothing.
    async fn run_op(
        &self,
        at: &Attempt<'_>,
        rec: &mut Record,
        action: Action,
        auth: Auth,
        region: Region,
    ) -> Result<OpResult, Interrupt> {
        let ops = self.ops.clone();
        let (msisdn, channel) = (at.hop.msisdn.clone(), at.hop.channel.clone());
        let (op, seq) = (action.op, action.seq);
        let spec = op.spec();
        let request = rec.session.claim.as_ref().filter(|c| c.seq == seq).and_then(|c| c.request);
        let idempotency_key = op_key(at.key, seq);
        // A movement keeps back the time to write its promise, should it overrun.
        let margin = if spec.moves_money() { SAVE_MARGIN + PROMISE_MARGIN } else { SAVE_MARGIN };
        let budget = at.deadline.checked_sub(margin).unwrap_or(at.deadline);
        let mut task = self.tasks.spawn(
            async move {
                let Action { args, secrets, .. } = &action;
                let key = &idempotency_key;
                let call = Call {
                    op,
                    msisdn: &msisdn,
                    channel: &channel,
                    idempotency_key: key,
                    args,
                    secrets,
                    auth,
                    region,
                    budget: Some(budget),
                };
                ops.run(call).await
            }
            .instrument(tracing::debug_span!("op", op = op.name())),
        );
        let joined = loop {
            let renew_at = (Instant::now() + RENEW_EVERY).min(budget);
            match tokio::time::timeout_at(renew_at, &mut task).await {
                Ok(joined) => break Some(joined),
                Err(_) if renew_at >= budget => break None,
                // A store that hangs (a master failing over) must not hold the hop past
                // its budget: the op's end is what the loop is waiting to see.
                Err(_) => {
                    let _ = tokio::time::timeout_at(budget, self.renew(at, rec)).await;
                }
            }
        };
        let unknown = |running, due_in| {
            Err(Interrupt::Unknown(Box::new(Unknown { op, seq, request, running, due_in })))
        };
        let outcome = match &joined {
            Some(Ok(Ok(result))) => result.outcome.as_str(),
            Some(_) => "error",
            None => "overran",
        };
        crate::telemetry::record_op(op.name(), outcome);
        match joined {
            Some(Ok(Ok(result))) => {
                // An answer that changed nothing needs no standing (a read, a partner's
                // check): a hop that cannot write after it is tried again, or fails, as
                // if it had not run.
                rec.ran |= spec.changes_state();
                if spec.moves_money() && result.outcome == Outcome::Ok {
                    rec.moved = Some((op, seq, request));
                }
                Ok(result)
            }
            Some(Ok(Err(e))) if spec.moves_money() && e.may_have_moved() => {
                warn!(op = op.name(), channel = %at.hop.channel, session = %at.hop.session_id, error = %e, "a movement's answer was lost; its outcome will be looked up");
                unknown(None, LEFT_TO_SERVER)
            }
            Some(Ok(Err(e))) => Err(Interrupt::Money(e)),
            Some(Err(join)) => {
                warn!(op = op.name(), error = %join, "op task panicked");
                if spec.moves_money() { unknown(None, LEFT_TO_SERVER) } else { Err(Interrupt::OpCrashed) }
            }
            None if spec.moves_money() => unknown(Some(task), LEFT_TO_RUNNER),
            None => Err(Interrupt::OpOverran),
        }
    }
}

/// Whether dialling ahead must stop at `screen`: it asks for a secret, or (on USSD) for
/// a yes. An SMS command's arguments confirm by design, and its movements wait for a
/// one-time code; its secrets are never typed (`instead_of_pin`).
fn dialled_past(menu: &Menu, at: &Attempt<'_>, screen: &str) -> bool {
    menu.is_sensitive(screen) || (at.conversation.is_none() && menu.is_confirm(screen))
}
