//! The loops every replica runs beside the servers, each stopping on the application's
//! token: data keys and feature flags refreshed, the upkeep, promised SMS kept, bills
//! reconciled, identity checks submitted and polled, menus reloaded on SIGHUP.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::flags::REFRESH;
use crate::gateway::Gateway;
use crate::http::AppState;
use crate::sms::letters;

/// How often every replica looks for promised SMS that are due.
const PROMISE_SWEEP: Duration = Duration::from_secs(1);

/// How often every replica looks for identity checks to submit or poll.
const IDENTITY_SWEEP: Duration = Duration::from_secs(1);

/// How often a replica looks for a data key made by a rotation elsewhere.
const DATA_KEY_REFRESH: Duration = Duration::from_secs(30);

/// Reloads the menus from `dir` on every SIGHUP (a refused reload keeps the current
/// menus) until `stop` is cancelled. The receiver counts finished reload attempts.
#[cfg(unix)]
pub fn reload_on_hangup(
    gateway: Arc<Gateway>,
    dir: std::path::PathBuf,
    stop: CancellationToken,
) -> std::io::Result<tokio::sync::watch::Receiver<u32>> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let (done, attempts) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        while stop.run_until_cancelled(hangups.recv()).await.flatten().is_some() {
            info!(dir = %dir.display(), "SIGHUP: reloading the menus");
            let gateway = Arc::clone(&gateway);
            let from = dir.clone();
            let _ = tokio::task::spawn_blocking(move || gateway.reload(&from)).await;
            done.send_modify(|n| *n += 1);
        }
    });
    Ok(attempts)
}

/// The periodic loops, each stopping on `stop`: the data-key refresh, the upkeep
/// (metrics, screen timeouts, expired holds, backlogs), the promise keeper and the bill
/// reconciler.
pub(super) fn start_loops(loops: &TaskTracker, state: &AppState, config: &Config, stop: &CancellationToken) {
    let gateway = &state.gateway;
    // A rotation elsewhere reaches this replica without a restart.
    let vault = gateway.money().vault().clone();
    // The application opened the vault just now: the first look is a period away.
    loops.spawn(every(DATA_KEY_REFRESH, DATA_KEY_REFRESH, stop.clone(), move || {
        let vault = vault.clone();
        async move {
            if let Err(e) = vault.refresh().await {
                warn!(error = %e, "cannot look for new data keys; sealing with the current one");
            }
        }
    }));
    // A flag changed on any replica reaches this one within a period.
    let (flags, pool) = (gateway.flags().clone(), gateway.money().pool().clone());
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loops.spawn(every(REFRESH, REFRESH, stop.clone(), move || {
        let (flags, pool, failing) = (flags.clone(), pool.clone(), Arc::clone(&failing));
        async move {
            let read = flags.refresh(&pool).await;
            let was_failing = failing.swap(read.is_err(), std::sync::atomic::Ordering::Relaxed);
            match read {
                Ok(true) => info!("feature flags changed; new sessions decide by them"),
                Ok(false) => {}
                // Said once per outage, not once a second.
                Err(e) if !was_failing => {
                    warn!(error = %e, "cannot read the feature flags; hops decide by the flags as last read")
                }
                Err(_) => {}
            }
        }
    }));
    #[cfg(unix)]
    if let Err(e) = reload_on_hangup(Arc::clone(gateway), config.settings.menus_dir.clone(), stop.clone()) {
        warn!(error = %e, "cannot listen for SIGHUP; menus reload only through the admin endpoint");
    }
    let (upkeep, sweeper) = (state.metrics.clone(), Arc::clone(gateway));
    loops.spawn(every(Duration::ZERO, Duration::from_secs(5), stop.clone(), move || {
        upkeep.run_upkeep();
        let sweeper = Arc::clone(&sweeper);
        async move { keep_up(&sweeper).await }
    }));
    // The promise keeper: every promised SMS whose process did not keep it (it died, or
    // the database failed) is kept by whichever replica comes by first.
    let keeper = Arc::clone(gateway);
    loops.spawn(every(Duration::ZERO, PROMISE_SWEEP, stop.clone(), move || {
        let keeper = Arc::clone(&keeper);
        async move {
            match keeper.money().keep_due_promises().await {
                Ok(0) => {}
                Ok(kept) => info!(kept, "promised SMS settled by the sweeper"),
                Err(e) => warn!(error = %e, "the promise keeper could not run; it tries again shortly"),
            }
        }
    }));
    // Identity checks, on their own task: the provider's pace is not the upkeep's.
    if gateway.money().identity().is_some() {
        let checker = Arc::clone(gateway);
        loops.spawn(every(Duration::ZERO, IDENTITY_SWEEP, stop.clone(), move || {
            let checker = Arc::clone(&checker);
            async move {
                let Some(identity) = checker.money().identity() else { return };
                match identity.run_due().await {
                    Ok(0) => {}
                    Ok(settled) => info!(settled, "identity checks settled"),
                    Err(e) => warn!(error = %e, "the identity checker could not run; it tries again in 1 s"),
                }
            }
        }));
    }
    // The bill reconciler, on its own task: a slow biller must not hold up the upkeep.
    let reconciler = Arc::clone(gateway);
    loops.spawn(every(Duration::ZERO, Duration::from_secs(5), stop.clone(), move || {
        let reconciler = Arc::clone(&reconciler);
        async move {
            match reconciler.money().reconcile_bills().await {
                Ok(0) => {}
                Ok(settled) => info!(settled, "pending bill payments settled"),
                Err(e) => warn!(error = %e, "the bill reconciler could not run; it tries again in 5 s"),
            }
        }
    }));
}

/// One pass of the upkeep: screen timeouts, the hold sweeper (unanswered cash-out
/// requests give the money back), the reversal requests nobody disputed, and the backlogs (promises, events, the SMS outbox,
/// inbound SMS) as metrics.
async fn keep_up(gateway: &Gateway) {
    gateway.sweep_timeouts(tokio::time::Instant::now()).await;
    match gateway.money().expire_holds().await {
        Ok(0) => {}
        Ok(expired) => info!(expired, "holds expired"),
        Err(e) => warn!(error = %e, "the hold sweeper could not run; it tries again in 5 s"),
    }
    match gateway.money().sweep_reversals().await {
        Ok(0) => {}
        Ok(reversed) => info!(reversed, "undisputed reversal requests reversed"),
        Err(e) => warn!(error = %e, "the reversal sweeper could not run; it tries again in 5 s"),
    }
    if let Ok((open, oldest)) = gateway.money().open_promises().await {
        metrics::gauge!("ussd_promises_open").set(open as f64);
        metrics::gauge!("ussd_promises_oldest_seconds").set(oldest);
    }
    if let Ok((waiting, oldest)) = crate::money::events::backlog(gateway.money().pool()).await {
        metrics::gauge!("ussd_events_waiting").set(waiting as f64);
        metrics::gauge!("ussd_events_oldest_waiting_seconds").set(oldest);
    }
    if let Ok((waiting, oldest)) = letters::outbox_backlog(gateway.money().pool()).await {
        metrics::gauge!("sms_outbox_waiting").set(waiting as f64);
        metrics::gauge!("sms_outbox_oldest_seconds").set(oldest);
    }
    if let Ok((waiting, dead)) = letters::backlog(gateway.money().pool()).await {
        metrics::gauge!("sms_inbound_waiting").set(waiting as f64);
        metrics::gauge!("sms_inbound_dead").set(dead as f64);
    }
}

/// Runs `pass` after `first`, then every `period` (a late pass delays the next rather
/// than bringing on a burst), until `stop` is cancelled; a pass under way when it is
/// finishes first.
async fn every<F, Fut>(first: Duration, period: Duration, stop: CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => pass().await,
        }
    }
}
