//! Journey transcripts: YAML files of dials and inputs with the screens expected, run
//! through the gateway (engine, ops, a real database) hop by hop as an aggregator sends them.

mod scratch;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

pub use scratch::{Scratch, ScratchError};

use crate::app;
use crate::channel::{Hop, Input};
use crate::config::Settings;
use crate::domain::{Msisdn, Region};
use crate::gateway::Gateway;
use crate::menu::{Bundle, Diagnostic};
use crate::session::{MemoryStore, SessionKey, SessionStore};

/// The subscriber a transcript dials as unless it says otherwise: Amina, demo PIN 1234.
const DEFAULT_MSISDN: &str = "+254700000001";

/// The provider name transcripts' sessions are keyed under.
const PROVIDER: &str = "transcript";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TranscriptFile {
    /// The subscriber dialling (E.164); a demo subscriber by default.
    msisdn: Option<String>,
    /// Feature flags switched on or off for everyone before the first step, by name (a
    /// flag some menu declares): both sides of a flag are each a transcript.
    #[serde(default)]
    flags: std::collections::BTreeMap<String, Spanned<bool>>,
    steps: Vec<Spanned<StepDecl>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepDecl {
    /// Dial a code: a new session. Extra segments (`*384*2#`) jump ahead.
    dial: Option<String>,
    /// Type an answer on the current screen.
    input: Option<String>,
    /// On a `dial`: dial as this subscriber from now on.
    msisdn: Option<String>,
    expect: Expect,
    /// Whether the screen must close the session (`END`) or continue (`CON`).
    end: Option<bool>,
}

/// What the screen must show: the exact text, a regular expression over all of it, or a
/// part of it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Expect {
    Exact(String),
    Pattern { pattern: String },
    Contains { contains: String },
}

/// A transcript that parsed: ready to run.
#[derive(Debug)]
pub struct Transcript {
    pub file: PathBuf,
    msisdn: String,
    /// Each flag, whether it is on, and the line that says so.
    flags: Vec<(String, bool, u64)>,
    steps: Vec<Step>,
}

#[derive(Debug)]
struct Step {
    line: u64,
    action: Move,
    expect: Matcher,
    end: Option<bool>,
}

#[derive(Debug)]
enum Move {
    Dial { code: String, msisdn: Option<String> },
    Input(String),
}

#[derive(Debug)]
enum Matcher {
    Exact(String),
    Pattern(regex::Regex),
    Contains(String),
}

impl Matcher {
    fn matches(&self, text: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == text,
            Matcher::Pattern(re) => re.is_match(text),
            Matcher::Contains(s) => text.contains(s.as_str()),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(s) => write!(f, "{s:?}"),
            Matcher::Pattern(re) => write!(f, "text matching /{}/", re.as_str()),
            Matcher::Contains(s) => write!(f, "text containing {s:?}"),
        }
    }
}

impl Transcript {
    /// Parses one transcript file, reporting every problem with its line.
    pub fn parse(file: &Path, source: &str) -> Result<Transcript, Vec<Diagnostic>> {
        let problem = |at: Location, message: String, hint: &str| Diagnostic {
            file: file.to_path_buf(),
            line: at.line(),
            column: at.column(),
            message,
            hint: Some(hint.to_owned()),
        };
        let parsed: TranscriptFile = serde_saphyr::from_str(source).map_err(|e| {
            let at = e.location().unwrap_or(Location::UNKNOWN);
            let message = e.to_string().lines().next().unwrap_or_default().to_owned();
            vec![problem(
                at,
                message,
                "a transcript is `steps: [{dial: \"*384#\", expect: …}, {input: \"1\", expect: …}]`; quote inputs",
            )]
        })?;
        let mut problems = Vec::new();
        let mut steps = Vec::new();
        for (i, step) in parsed.steps.into_iter().enumerate() {
            let at = step.referenced;
            let s = step.value;
            let action = match (s.dial, s.input) {
                (Some(code), None) => Move::Dial { code, msisdn: s.msisdn },
                (None, Some(input)) if s.msisdn.is_none() => Move::Input(input),
                _ => {
                    problems.push(problem(
                        at,
                        format!("step {} must have either `dial` or `input`", i + 1),
                        "`msisdn` goes with `dial` only",
                    ));
                    continue;
                }
            };
            if i == 0 && !matches!(action, Move::Dial { .. }) {
                problems.push(problem(
                    at,
                    "the first step must be a `dial`".into(),
                    "start with `dial: \"*384#\"`",
                ));
            }
            let expect = match s.expect {
                Expect::Exact(text) => Matcher::Exact(text),
                Expect::Contains { contains } => Matcher::Contains(contains),
                Expect::Pattern { pattern } => match regex::Regex::new(&format!("(?s)^(?:{pattern})$")) {
                    Ok(re) => Matcher::Pattern(re),
                    Err(e) => {
                        problems.push(problem(
                            at,
                            format!("step {}: the pattern is not a regular expression", i + 1),
                            e.to_string().lines().last().unwrap_or_default(),
                        ));
                        continue;
                    }
                },
            };
            steps.push(Step { line: at.line(), action, expect, end: s.end });
        }
        if steps.is_empty() && problems.is_empty() {
            problems.push(problem(Location::UNKNOWN, "the transcript has no steps".into(), "add `steps:`"));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Transcript {
            file: file.to_path_buf(),
            msisdn: parsed.msisdn.unwrap_or_else(|| DEFAULT_MSISDN.to_owned()),
            flags: parsed
                .flags
                .into_iter()
                .map(|(name, on)| (name, on.value, on.referenced.line()))
                .collect(),
            steps,
        })
    }

    pub fn steps(&self) -> usize {
        self.steps.len()
    }
}

/// Where a transcript and the gateway disagreed.
#[derive(Debug)]
pub struct Mismatch {
    pub file: PathBuf,
    pub line: u64,
    pub step: usize,
    /// What the step sent; an answer to a PIN screen shows as `****`.
    pub sent: String,
    pub expected: String,
    pub got: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: step {} ({}):\n  expected {}\n  got      {:?}",
            self.file.display(),
            self.line,
            self.step,
            self.sent,
            self.expected,
            self.got
        )
    }
}

/// Why transcripts could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Scratch(#[from] ScratchError),
    #[error("the menus do not compile:\n{0}")]
    Menus(String),
    #[error("the transcripts do not parse:\n{0}")]
    Transcripts(String),
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot switch a transcript's flags in its database: {0}")]
    Flags(String),
}

/// Runs one transcript against a gateway on its own fresh database.
pub async fn run_one(
    scratch: &Scratch,
    menus_dir: &Path,
    t: &Transcript,
) -> Result<Option<Mismatch>, RunError> {
    let (pool, db) = scratch.fresh().await?;
    let result = run_on(pool.clone(), menus_dir, t).await;
    pool.close().await;
    scratch.discard(&db).await?;
    result
}

/// A gateway over the menus in `menus_dir` on `pool`, configured as `serve --demo` is,
/// with sessions in process memory: what transcripts and the simulator talk to.
pub(crate) fn demo_gateway(pool: sqlx::PgPool, menus_dir: &Path) -> Result<Arc<Gateway>, String> {
    let config = Settings { menus_dir: menus_dir.to_path_buf(), ..Settings::default() }
        .validate(None, true)
        .map_err(|e| e.to_string())?;
    let bundle = Bundle::load_dir(menus_dir).map_err(|d| crate::menu::report(&d))?;
    let store = SessionStore::Memory(MemoryStore::new());
    Ok(app::build_state(pool, store, bundle, &config).gateway)
}

async fn run_on(pool: sqlx::PgPool, menus_dir: &Path, t: &Transcript) -> Result<Option<Mismatch>, RunError> {
    let gateway = &demo_gateway(pool.clone(), menus_dir).map_err(RunError::Menus)?;
    let region = Region::parse("KE").expect("KE is a region");
    for (name, on, line) in &t.flags {
        if !gateway.menus().menus().iter().any(|m| m.flags.iter().any(|f| f.name == *name)) {
            return Ok(Some(Mismatch {
                file: t.file.clone(),
                line: *line,
                step: 0,
                sent: format!("flags: {name}"),
                expected: "a flag some menu declares under `flags:`".into(),
                got: format!("no menu declares `{name}`"),
            }));
        }
        sqlx::query(
            "INSERT INTO flags (name, enabled) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET enabled = $2",
        )
        .bind(name)
        .bind(on)
        .execute(&pool)
        .await
        .map_err(|e| RunError::Flags(e.to_string()))?;
    }
    gateway.flags().refresh(&pool).await.map_err(|e| RunError::Flags(e.to_string()))?;

    let mut msisdn = t.msisdn.clone();
    let mut session_id = String::new();
    let mut code = String::new();
    let mut text = String::new();
    let mut answering_pin = false;
    for (i, step) in t.steps.iter().enumerate() {
        let sent = match &step.action {
            Move::Dial { code: dialled, msisdn: who } => {
                if let Some(who) = who {
                    msisdn.clone_from(who);
                }
                session_id = format!("t{:016x}", rand::random::<u64>());
                code.clone_from(dialled);
                text.clear();
                format!("dial {dialled} as {msisdn}")
            }
            Move::Input(input) => {
                // A dial with extra segments sent them in the code, not in `text`.
                if !text.is_empty() {
                    text.push('*');
                }
                text.push_str(input);
                if answering_pin { "input ****".to_owned() } else { format!("input {input:?}") }
            }
        };
        let mismatch = |expected: String, got: String| Mismatch {
            file: t.file.clone(),
            line: step.line,
            step: i + 1,
            sent: sent.clone(),
            expected,
            got,
        };
        let number = match Msisdn::parse(&msisdn, region) {
            Ok(m) => m,
            Err(e) => return Ok(Some(mismatch("a valid msisdn".into(), format!("{msisdn}: {e}")))),
        };
        let hop = Hop {
            provider: PROVIDER,
            channel: PROVIDER.to_owned(),
            session_id: session_id.clone(),
            msisdn: number.clone(),
            service_code: code.clone(),
            input: Input::Cumulative(text.clone()),
        };
        let (reply, _) = gateway.handle(&hop).await;
        if !step.expect.matches(&reply.text) {
            return Ok(Some(mismatch(step.expect.to_string(), reply.text)));
        }
        if let Some(end) = step.end
            && end != reply.end
        {
            let (want, got) = if end { ("an END screen", "CON") } else { ("a CON screen", "END") };
            return Ok(Some(mismatch(want.to_owned(), format!("{got} {}", reply.text))));
        }
        // Whether the next answer goes to a PIN screen, so that reports never show it.
        let key = SessionKey::new(PROVIDER, number.as_e164(), &session_id);
        answering_pin = match gateway.store().load(&key).await {
            Ok(Some(loaded)) => gateway
                .menus()
                .get(&loaded.session.service)
                .is_some_and(|m| m.is_sensitive(&loaded.session.journey.screen)),
            _ => false,
        };
    }
    gateway.drain().await;
    Ok(None)
}

/// Every `*.yaml` transcript in `dir`, parsed, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<Transcript>, RunError> {
    let read_err =
        |e: std::io::Error| RunError::Read { path: dir.display().to_string(), reason: e.to_string() };
    let paths = crate::menu::yaml_files(dir).map_err(read_err)?;
    let mut transcripts = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        let source = std::fs::read_to_string(&path)
            .map_err(|e| RunError::Read { path: path.display().to_string(), reason: e.to_string() })?;
        match Transcript::parse(&path, &source) {
            Ok(t) => transcripts.push(t),
            Err(mut d) => problems.append(&mut d),
        }
    }
    if !problems.is_empty() {
        return Err(RunError::Transcripts(crate::menu::report(&problems)));
    }
    Ok(transcripts)
}

/// The result of a run of several transcripts.
#[derive(Debug, Default)]
pub struct Summary {
    pub passed: Vec<PathBuf>,
    pub failed: Vec<Mismatch>,
}

impl Summary {
    pub fn render(&self) -> String {
        let mut out = String::new();
        for m in &self.failed {
            out.push_str(&format!("FAIL {m}\n"));
        }
        out.push_str(&format!("{} passed, {} failed\n", self.passed.len(), self.failed.len()));
        out
    }
}

/// Runs every transcript in `dir` against the menus in `menus_dir`, each on a fresh
/// database cloned from one seeded with the demo subscribers on the server at
/// `database_url`. `progress` hears about each transcript as it finishes.
pub async fn run_dir(
    database_url: &str,
    dir: &Path,
    menus_dir: &Path,
    mut progress: impl FnMut(&Transcript, Option<&Mismatch>),
) -> Result<Summary, RunError> {
    let transcripts = load_dir(dir)?;
    let scratch = Scratch::create(database_url).await?;
    let mut summary = Summary::default();
    let mut outcome = Ok(());
    for t in &transcripts {
        match run_one(&scratch, menus_dir, t).await {
            Ok(None) => {
                progress(t, None);
                summary.passed.push(t.file.clone());
            }
            Ok(Some(mismatch)) => {
                progress(t, Some(&mismatch));
                summary.failed.push(mismatch);
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    if let Err(e) = scratch.remove().await {
        // The verdicts stand; only the clean-up failed.
        tracing::warn!(error = %e, "cannot drop the transcripts' scratch databases");
    }
    outcome.map(|()| summary)
}
