//! `ussd-gateway loadtest`: simulated subscribers walking real journeys over HTTP in
//! Africa's Talking's format, closed loop (fixed concurrency) or open loop (fixed
//! arrival rate, so slow replies are not hidden by coordinated omission).

mod journey;
mod report;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Mutex;
use tokio::time::Instant;

pub use self::journey::{Journey, Mix};
pub use self::report::{HopSample, Report, Tally, Walked, process_cpu};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The gateway's base URL (`http://127.0.0.1:8080`).
    pub url: String,
    pub code: String,
    pub mix: Mix,
    /// Closed loop: simulated subscribers. Open loop: the most journeys in flight.
    pub concurrency: usize,
    /// Journeys started per second; `Some` selects the open loop.
    pub rate: Option<f64>,
    pub duration: Duration,
    pub warmup: Duration,
    /// Demo subscribers `+254700000001` … to draw from (seed them with DEMO_SUBSCRIBERS).
    pub subscribers: u32,
    pub pin: String,
    /// KES sent per transfer.
    pub amount: u64,
    /// Check each reply against the journey's expected screen (off for reference servers).
    pub check: bool,
    pub progress: bool,
}

struct Shared {
    client: reqwest::Client,
    endpoint: String,
    opts: Options,
    run_id: u64,
    /// Recording starts here (the end of the warm-up).
    measure_from: Instant,
    hops: AtomicU64,
}

/// Runs the load and returns the report; errors only for a setup problem.
pub async fn run(opts: Options) -> Result<Report, String> {
    if opts.subscribers < 2 {
        return Err("--subscribers must be at least 2 (send journeys need a payee)".into());
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency.max(1))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let endpoint = format!("{}/ussd/africastalking", opts.url.trim_end_matches('/'));
    // Fail fast, with a useful message, when nothing listens there.
    client.get(format!("{}/healthz", opts.url.trim_end_matches('/'))).send().await.map_err(|e| {
        format!("no gateway answers at {}: {e} (start one with `ussd-gateway serve --demo`)", opts.url)
    })?;

    let start = Instant::now();
    let shared = Arc::new(Shared {
        client,
        endpoint,
        run_id: rand::random::<u32>() as u64,
        measure_from: start + opts.warmup,
        hops: AtomicU64::new(0),
        opts: opts.clone(),
    });
    let end = shared.measure_from + opts.duration;
    let progress = opts.progress.then(|| progress_bar(&shared, start, end));
    let cpu_at_measure = Arc::new(Mutex::new(None));
    {
        let (cpu, from) = (cpu_at_measure.clone(), shared.measure_from);
        tokio::spawn(async move {
            tokio::time::sleep_until(from).await;
            *cpu.lock().await = Some(process_cpu());
        });
    }

    let tally = match opts.rate {
        None => closed_loop(&shared, end).await,
        Some(rate) => open_loop(&shared, end, rate).await,
    };
    // Journeys under way at the end finish and count, so the time runs until they do.
    let elapsed = Instant::now().saturating_duration_since(shared.measure_from);
    if let Some(p) = progress {
        p.abort();
    }
    let cpu_start = cpu_at_measure.lock().await.unwrap_or_default();
    let cpu = process_cpu().saturating_sub(cpu_start);
    let mode = match opts.rate {
        None => format!("closed loop, {} subscribers", opts.concurrency),
        Some(rate) => format!("open loop, {rate} journeys/s (at most {} in flight)", opts.concurrency),
    };
    Ok(Report::build(&opts.url, mode, &tally, elapsed, cpu))
}

fn progress_bar(shared: &Arc<Shared>, start: Instant, end: Instant) -> tokio::task::JoinHandle<()> {
    let total = end.duration_since(start).as_secs();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut last = (Instant::now(), 0u64);
        loop {
            tick.tick().await;
            let now = Instant::now();
            let hops = shared.hops.load(Ordering::Relaxed);
            let rate = (hops - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
            last = (now, hops);
            let phase = if now < shared.measure_from { "warming up" } else { "measuring" };
            bar.set_position(now.duration_since(start).as_secs().min(total));
            bar.set_message(format!("{phase}, {rate:.0} hops/s"));
            if now >= end {
                bar.finish_and_clear();
                break;
            }
        }
    })
}

async fn closed_loop(shared: &Arc<Shared>, end: Instant) -> Tally {
    let workers: Vec<_> = (0..shared.opts.concurrency)
        .map(|w| {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut seq = 0u64;
                while Instant::now() < end {
                    tally.absorb(walk(&shared, w as u64, seq).await);
                    seq += 1;
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for w in workers {
        if let Ok(t) = w.await {
            total.merge(&t);
        }
    }
    total
}

async fn open_loop(shared: &Arc<Shared>, end: Instant, rate: f64) -> Tally {
    // One tally for all journeys: each records its few samples under a short lock, so
    // that the generator's own cost stays flat however many journeys are in flight.
    let total = Arc::new(std::sync::Mutex::new(Tally::default()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    let mut seq = 0u64;
    let mut shed = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while Instant::now() < end {
        let due = tick.tick().await;
        if in_flight.load(Ordering::Relaxed) >= shared.opts.concurrency {
            if due >= shared.measure_from {
                shed += 1;
            }
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (shared, total, in_flight) = (shared.clone(), total.clone(), in_flight.clone());
        seq += 1;
        tasks.spawn(async move {
            let walked = walk(&shared, u64::MAX, seq).await;
            total.lock().unwrap_or_else(|p| p.into_inner()).absorb(walked);
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut tally = std::mem::take(&mut *total.lock().unwrap_or_else(|p| p.into_inner()));
    tally.shed = shed;
    tally
}

/// Whether a reply is the offer to continue a dropped journey, in a shipped language.
fn is_resume_offer(text: &str) -> bool {
    use crate::menu::{Message, Texts};
    let texts = Texts::shipped();
    texts
        .languages()
        .iter()
        .any(|lang| text.starts_with(&format!("CON {}", texts.line(lang, Message::ResumeOffer))))
}

/// Whether a reply is the gateway's answer to a number or a channel over its rate limit.
fn is_refusal(text: &str) -> bool {
    use crate::http::channels::{CHANNEL_BUSY, TOO_MANY_HOPS};
    text.strip_prefix("END ")
        .is_some_and(|line| line.starts_with(TOO_MANY_HOPS) || line.starts_with(CHANNEL_BUSY))
}

/// One journey by a random subscriber. Its hops count if the journey started after the
/// warm-up; it stops at the first failed hop.
async fn walk(shared: &Shared, worker: u64, seq: u64) -> Walked {
    let opts = &shared.opts;
    let r = rand::random_range(0..opts.mix.total());
    let journey = opts.mix.pick(r);
    let payer = rand::random_range(1..=opts.subscribers);
    let payee = (payer + rand::random_range(1..opts.subscribers) - 1) % opts.subscribers + 1;
    let phone = format!("+2547{payer:08}");
    let session = format!("lt{:x}-{worker:x}-{seq:x}", shared.run_id);
    let mut walked = Walked {
        measured: Instant::now() >= shared.measure_from,
        moves_money: journey.moves_money(),
        hops: Vec::with_capacity(5),
        completed: false,
    };
    let mut hops = journey.hops(&opts.pin, &format!("07{payee:08}"), opts.amount).into_iter().peekable();
    // A subscriber who dropped a journey the menu can resume is offered it on the next
    // dial (the generator stops mid-journey at the end of a run, and draws subscribers
    // at random): they decline, and their later inputs follow that answer.
    let mut prefix = String::new();
    let mut declined = false;
    while let Some(hop) = hops.peek() {
        let text = match (&prefix[..], hop.text.as_str()) {
            ("", t) => t.to_owned(),
            (p, "") => p.to_owned(),
            (p, t) => format!("{p}*{t}"),
        };
        let step = if declined { "resume.declined" } else { hop.step };
        let expect = hop.expect;
        let body = serde_urlencoded::to_string([
            ("sessionId", session.as_str()),
            ("serviceCode", opts.code.as_str()),
            ("phoneNumber", phone.as_str()),
            ("networkCode", "63902"),
            ("text", text.as_str()),
        ])
        .unwrap_or_default();
        let sent = Instant::now();
        let outcome = shared
            .client
            .post(&shared.endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        let reply = match outcome {
            Ok(response) => {
                let status = response.status();
                match response.text().await {
                    Ok(text) if status.is_success() => Ok(text),
                    Ok(text) => Err(format!("HTTP {status}: {}", text.trim())),
                    Err(e) => Err(format!("reading the reply: {e}")),
                }
            }
            Err(e) => Err(format!("request failed: {e}")),
        };
        let latency = sent.elapsed();
        shared.hops.fetch_add(1, Ordering::Relaxed);
        let offered = !declined && prefix.is_empty() && reply.as_ref().is_ok_and(|t| is_resume_offer(t));
        let refused = reply.as_ref().is_ok_and(|t| is_refusal(t));
        let error = match reply {
            _ if offered => None,
            Ok(text) if refused => Some(format!("refused by the rate limit: `{}`", text.trim())),
            Ok(text) if !opts.check || text.starts_with(expect) => None,
            Ok(text) => Some(format!("expected `{expect}…`, got `{}`", text.replace('\n', "\\n"))),
            Err(e) => Some(e),
        };
        let failed = error.is_some();
        let sent = sent.saturating_duration_since(shared.measure_from);
        let step = if offered { "resume.offered" } else { step };
        walked.hops.push(HopSample { step, sent, latency, error, refused });
        if failed {
            return walked;
        }
        if offered {
            // Answer the offer with "2" (start again) in place of the dial's screen.
            prefix = "2".into();
            declined = true;
            continue;
        }
        declined = false;
        hops.next();
    }
    walked.completed = true;
    walked
}
