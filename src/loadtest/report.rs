//! Latency and error statistics per step, and the final report (text or JSON).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Counts for one step (or for all hops together).
pub struct StepStats {
    latency_us: Histogram<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Default for StepStats {
    fn default() -> Self {
        StepStats {
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds"),
            errors: 0,
            first_error: None,
        }
    }
}

impl StepStats {
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, 120_000_000);
        self.latency_us.saturating_record(us);
    }

    pub fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    pub fn merge(&mut self, other: &StepStats) {
        self.latency_us.add(&other.latency_us).expect("histograms share bounds");
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }

    fn summary(&self, seconds: f64) -> StepSummary {
        let ms = |q: f64| self.latency_us.value_at_quantile(q) as f64 / 1_000.0;
        StepSummary {
            count: self.latency_us.len(),
            // A hop answered wrongly is not throughput, however fast it came back.
            per_second: self.latency_us.len().saturating_sub(self.errors) as f64 / seconds,
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            max_ms: self.latency_us.max() as f64 / 1_000.0,
            errors: self.errors,
            first_error: self.first_error.clone(),
        }
    }
}

/// One hop as the load generator saw it.
pub struct HopSample {
    pub step: &'static str,
    /// When it was sent, from the start of the measurement.
    pub sent: Duration,
    pub latency: Duration,
    pub error: Option<String>,
    /// Answered with the gateway's rate-limit line instead of the screen expected.
    pub refused: bool,
}

/// One journey's hops, up to and including the first failure.
pub struct Walked {
    /// Whether the journey started after the warm-up (only those are counted).
    pub measured: bool,
    pub moves_money: bool,
    pub hops: Vec<HopSample>,
    pub completed: bool,
}

/// Every hop sent in one second of the run, to within a tenth: enough to see a stall.
struct Second {
    latency_us: Histogram<u32>,
    errors: u64,
}

impl Default for Second {
    fn default() -> Self {
        Second {
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 1).expect("valid histogram bounds"),
            errors: 0,
        }
    }
}

/// Everything one worker (closed loop) or the whole run (open loop) saw.
#[derive(Default)]
pub struct Tally {
    pub steps: BTreeMap<&'static str, StepStats>,
    /// All hops by the second they were sent in.
    seconds: Vec<Second>,
    pub journeys: u64,
    pub transfers: u64,
    /// Open loop only: journeys due while the in-flight cap was reached.
    pub shed: u64,
    /// Hops the gateway's rate limits refused (counted among the errors too).
    pub refused: u64,
}

impl Tally {
    pub fn absorb(&mut self, walked: Walked) {
        if !walked.measured {
            return;
        }
        for hop in walked.hops {
            let at = usize::try_from(hop.sent.as_secs()).unwrap_or(usize::MAX);
            if self.seconds.len() <= at && at < MAX_SECONDS {
                self.seconds.resize_with(at + 1, Second::default);
            }
            if let Some(second) = self.seconds.get_mut(at) {
                let us = u64::try_from(hop.latency.as_micros()).unwrap_or(u64::MAX).clamp(1, 120_000_000);
                second.latency_us.saturating_record(us);
                second.errors += u64::from(hop.error.is_some());
            }
            self.refused += u64::from(hop.refused);
            let stats = self.steps.entry(hop.step).or_default();
            stats.record(hop.latency);
            if let Some(e) = hop.error {
                stats.error(e);
            }
        }
        if walked.completed {
            self.journeys += 1;
            self.transfers += u64::from(walked.moves_money);
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        for (step, stats) in &other.steps {
            self.steps.entry(step).or_default().merge(stats);
        }
        if self.seconds.len() < other.seconds.len() {
            self.seconds.resize_with(other.seconds.len(), Second::default);
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            mine.latency_us.add(&theirs.latency_us).expect("histograms share bounds");
            mine.errors += theirs.errors;
        }
        self.journeys += other.journeys;
        self.transfers += other.transfers;
        self.shed += other.shed;
        self.refused += other.refused;
    }
}

/// Runs longer than a day keep no timeline past it.
const MAX_SECONDS: usize = 86_400;

/// One second of the run, all steps together.
#[derive(Debug, Serialize)]
pub struct SecondSummary {
    /// From the start of the measurement.
    pub second: usize,
    pub hops: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
}

#[derive(Debug, Serialize)]
pub struct StepSummary {
    pub count: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub url: String,
    pub mode: String,
    pub seconds: f64,
    pub hops_per_second: f64,
    pub journeys_per_second: f64,
    pub transfers_per_second: f64,
    pub shed: u64,
    /// Hops refused by the gateway's rate limits: the load measured the limiter.
    pub refused: u64,
    pub all_hops: StepSummary,
    pub steps: BTreeMap<String, StepSummary>,
    /// CPU time of the load generator itself, in cores (1.0 = one core busy).
    pub loadgen_cpu_cores: f64,
    /// Second by second, by when each hop was sent: a tail from a stall shows as a
    /// few bad seconds, one from saturation as all of them.
    pub timeline: Vec<SecondSummary>,
}

impl Report {
    pub fn build(url: &str, mode: String, tally: &Tally, elapsed: Duration, cpu: Duration) -> Report {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let mut all = StepStats::default();
        for stats in tally.steps.values() {
            all.merge(stats);
        }
        let all_hops = all.summary(seconds);
        Report {
            url: url.to_owned(),
            mode,
            seconds,
            hops_per_second: all_hops.per_second,
            journeys_per_second: tally.journeys as f64 / seconds,
            transfers_per_second: tally.transfers as f64 / seconds,
            shed: tally.shed,
            refused: tally.refused,
            all_hops,
            steps: tally.steps.iter().map(|(k, v)| ((*k).to_owned(), v.summary(seconds))).collect(),
            loadgen_cpu_cores: cpu.as_secs_f64() / seconds,
            timeline: tally
                .seconds
                .iter()
                .enumerate()
                .map(|(second, s)| {
                    let ms = |us: u64| us as f64 / 1_000.0;
                    SecondSummary {
                        second,
                        hops: s.latency_us.len(),
                        p50_ms: ms(s.latency_us.value_at_quantile(0.5)),
                        p99_ms: ms(s.latency_us.value_at_quantile(0.99)),
                        max_ms: ms(s.latency_us.max()),
                        errors: s.errors,
                    }
                })
                .collect(),
        }
    }

    pub fn print(&self) {
        println!("\n{} against {} for {:.1} s", self.mode, self.url, self.seconds);
        println!(
            "  {:.0} hops/s, {:.0} journeys/s, {:.0} transfers/s; load generator used {:.2} cores{}",
            self.hops_per_second,
            self.journeys_per_second,
            self.transfers_per_second,
            self.loadgen_cpu_cores,
            if self.shed > 0 {
                format!("; {} journeys shed (in-flight cap)", self.shed)
            } else {
                String::new()
            }
        );
        println!(
            "\n  {:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "step", "count", "per s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
        );
        let line = |name: &str, s: &StepSummary| {
            println!(
                "  {:<14} {:>9} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7}",
                name, s.count, s.per_second, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms, s.errors
            );
        };
        for (name, s) in &self.steps {
            line(name, s);
        }
        line("all hops", &self.all_hops);
        if self.timeline.len() > 1 {
            println!(
                "\n  {:<14} {:>9} {:>9} {:>9} {:>9} {:>7}",
                "second", "hops", "p50 ms", "p99 ms", "max ms", "errors"
            );
            for s in &self.timeline {
                println!(
                    "  {:<14} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>7}",
                    s.second, s.hops, s.p50_ms, s.p99_ms, s.max_ms, s.errors
                );
            }
        }
        for (name, s) in &self.steps {
            if let Some(e) = &s.first_error {
                println!("  first error at {name}: {e}");
            }
        }
        if self.refused > 0 {
            println!(
                "\n  {} of {} hops were refused by the gateway's rate limits, not answered: the generator \
                 dials its --subscribers numbers far more often than people do. Refused hops are not counted \
                 as throughput. Seed more numbers (DEMO_SUBSCRIBERS) and pass as many with --subscribers, or \
                 raise RATE_PER_MSISDN_PER_MINUTE (60 by default) on the gateway under test, or the \
                 channel's own per_msisdn_per_minute and per_second where its configuration sets them.",
                self.refused, self.all_hops.count
            );
        }
    }
}

/// CPU time (user + system) this process has used so far, from /proc on Linux.
pub fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // Linux reports in USER_HZ, which is 100 on every mainstream architecture.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
