//! What each command of the command line does: serve, migrate, keys, tokens, the event
//! tail, the audit check, the menu tools, the journey transcripts, the simulator and
//! the load generator.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Settings;
use crate::money::crypto;
use crate::money::kek::ConfiguredKeys;
use crate::{admin, app, menu, telemetry};
use secrecy::ExposeSecret;

use super::{GraphFormat, KeysCommand, LoadtestArgs, TokenCommand};

pub(super) fn keys(config_file: Option<PathBuf>, command: KeysCommand) -> ExitCode {
    let settings = match settings(config_file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if settings.data_key.is_none() && settings.data_keys.is_none() {
        eprintln!("error: set DATA_KEYS (or DATA_KEY) to the key-encryption keys the gateway runs with");
        return ExitCode::from(2);
    }
    // Only the keys and the database matter here, so the rest validates as leniently as
    // a demo does.
    let config = match settings.validate(None, true) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    runtime.block_on(async {
        let pool = match app::connect_database(config.settings.database_url.expose_secret(), 2).await {
            Ok(pool) => pool,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let keks = ConfiguredKeys::configured(&config.money.data_keys);
        let done = match command {
            KeysCommand::Rotate { to } => crypto::rotate(&pool, &keks, to.as_deref()).await.map(|r| {
                println!(
                    "re-wrapped {} data key(s) under `{}`; new values are sealed with data key {} (replicas take it within 30 s)",
                    r.rewrapped, r.kek, r.new_data_key
                );
            }),
            KeysCommand::List => crypto::data_keys(&pool).await.map_err(Into::into).map(|keys| {
                for (id, kek, created, rewrapped) in keys {
                    let rewrapped = rewrapped.map(|at| format!(", re-wrapped {at}")).unwrap_or_default();
                    println!("data key {id}: wrapped with `{kek}`, made {created}{rewrapped}");
                }
            }),
        };
        match done {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

pub(super) fn tokens(config_file: Option<PathBuf>, command: TokenCommand) -> ExitCode {
    let url = match settings(config_file) {
        Ok(s) => s.database_url.expose_secret().to_owned(),
        Err(code) => return code,
    };
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    runtime.block_on(async {
        let pool = match app::connect_database(&url, 1).await {
            Ok(pool) => pool,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let done = match command {
            TokenCommand::Create { name, scopes } => {
                admin::create(&pool, &name, &scopes).await.map(|token| {
                    println!("{token}");
                    eprintln!("token `{name}` created; it is shown only now: keep it in your secret store");
                })
            }
            TokenCommand::Revoke { name } => match admin::revoke(&pool, &name).await {
                Ok(true) => {
                    eprintln!("token `{name}` revoked");
                    Ok(())
                }
                Ok(false) => Err(admin::TokenError::Unknown(name)),
                Err(e) => Err(e.into()),
            },
            TokenCommand::List => admin::list(&pool)
                .await
                .map(|lines| lines.iter().for_each(|l| println!("{l}")))
                .map_err(Into::into),
        };
        match done {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

pub(super) fn loadtest(args: LoadtestArgs) -> ExitCode {
    let opts = crate::loadtest::Options {
        url: args.url,
        code: args.code,
        mix: args.mix,
        concurrency: args.concurrency.max(1),
        rate: args.rate,
        duration: std::time::Duration::from_secs(args.duration.max(1)),
        warmup: std::time::Duration::from_secs(args.warmup),
        subscribers: args.subscribers,
        pin: args.pin,
        amount: args.amount,
        check: !args.no_check,
        progress: !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    match runtime.block_on(crate::loadtest::run(opts)) {
        Ok(report) if args.json => match serde_json::to_string_pretty(&report) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(report) => {
            report.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(super) fn journeys(
    config_file: Option<PathBuf>,
    dir: &std::path::Path,
    menus: Option<PathBuf>,
) -> ExitCode {
    let settings = match settings(config_file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let menus = menus.unwrap_or_else(|| match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    });
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    let run = crate::journeys::run_dir(settings.database_url.expose_secret(), dir, &menus, |t, mismatch| {
        match mismatch {
            None => println!("ok    {} ({} steps)", t.file.display(), t.steps()),
            Some(m) => println!("FAIL  {m}"),
        }
    });
    match runtime.block_on(run) {
        Ok(summary) => {
            println!("{} passed, {} failed", summary.passed.len(), summary.failed.len());
            if summary.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

pub(super) fn simulate(
    config_file: Option<PathBuf>,
    url: Option<String>,
    msisdn: &str,
    code: &str,
    menus: Option<PathBuf>,
) -> ExitCode {
    use crate::simulate::{Line, run};
    let settings = match settings(config_file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let menus = menus.unwrap_or_else(|| settings.menus_dir.clone());
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    let result = runtime.block_on(async {
        let line = match url {
            Some(url) => Line::http(&url),
            None => {
                eprintln!("starting a gateway in this process on a scratch demo database…");
                Line::in_process(settings.database_url.expose_secret(), &menus).await?
            }
        };
        // Ctrl-C while a line is typed: drop the scratch databases, then leave.
        // (On a thread of its own: the main one blocks reading the terminal.)
        if let Some(scratch) = line.scratch() {
            std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                    return;
                };
                rt.block_on(async {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        let _ = scratch.remove().await;
                        std::process::exit(130);
                    }
                });
            });
        }
        let typed = std::io::stdin().lines().map_while(Result::ok);
        let walked = run(&line, typed, &mut std::io::stdout(), msisdn, code).await;
        line.close().await?;
        walked
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The async runtime, or `None` after saying why it cannot start.
pub(super) fn audit_verify(config_file: Option<PathBuf>) -> ExitCode {
    let settings = match settings(config_file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    runtime.block_on(async {
        let pool = match app::connect_database(settings.database_url.expose_secret(), 2).await {
            Ok(pool) => pool,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let said = |v: &admin::chain::Verified| {
            println!("{}: {} link(s) verified, head {}", v.chain, v.links, v.head)
        };
        match admin::chain::verify(&pool, said).await {
            Ok(Ok(_)) => {
                println!("every chain matches its rows");
                ExitCode::SUCCESS
            }
            Ok(Err(broken)) => {
                println!("BROKEN: {broken}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("error: cannot read the chains: {e}");
                ExitCode::from(2)
            }
        }
    })
}

pub(super) fn events(config_file: Option<PathBuf>, tail: crate::events::tail::Tail) -> ExitCode {
    let settings = match settings(config_file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(url) = settings.redis_url.as_ref() else {
        eprintln!("error: set REDIS_URL to the Redis the gateway publishes its events to");
        return ExitCode::from(2);
    };
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    runtime.block_on(async {
        let conn = match crate::events::redis::connect(url.expose_secret(), std::time::Duration::from_secs(5))
            .await
        {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("error: cannot reach Redis at REDIS_URL: {e}");
                return ExitCode::FAILURE;
            }
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            on_signal.cancel();
        });
        eprintln!("reading {} events (Ctrl-C stops)", tail.types);
        match crate::events::tail::tail(conn, &settings.redis_key_prefix, &tail, &stop, |event| {
            println!("{event}")
        })
        .await
        {
            Ok(n) => {
                eprintln!("{n} event(s)");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: reading the event streams failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The settings from the config file and the environment, or the exit code after
/// saying what is wrong with them.
fn settings(config_file: Option<PathBuf>) -> Result<Settings, ExitCode> {
    Settings::load(config_file.as_deref()).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

pub(super) fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("error: cannot start the async runtime: {e}"))
        .ok()
}

pub(super) fn graph_menu(path: &std::path::Path, format: GraphFormat) -> ExitCode {
    let format = match format {
        GraphFormat::Mermaid => menu::PictureFormat::Mermaid,
        GraphFormat::Dot => menu::PictureFormat::Dot,
    };
    let files = match menu_paths(path) {
        Ok(files) => files,
        Err(code) => return code,
    };
    // Several menus: each Mermaid picture fenced under its file's name, a Markdown page;
    // DOT takes several graphs in one input as it is.
    let fenced = files.len() > 1 && format == menu::PictureFormat::Mermaid;
    // The built-in lines a menu does not reword come from the texts beside it.
    let (texts, wrong) = menu::Texts::read_dir(folder_of(path));
    let texts = std::sync::Arc::new(texts);
    for d in &wrong {
        eprintln!("{d}");
    }
    let mut problems = wrong.len();
    for file in &files {
        let source = match std::fs::read_to_string(file) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        };
        let compiled = menu::compile_all(file, &source, &texts);
        if let Some(menu) = &compiled.menu {
            let picture = menu.picture(format, &compiled.broken);
            if fenced {
                println!("## {}\n\n```mermaid\n{picture}```\n", file.display());
            } else {
                print!("{picture}");
            }
        }
        for d in &compiled.diagnostics {
            eprintln!("{d}");
        }
        problems += compiled.diagnostics.len();
    }
    if problems == 0 {
        return ExitCode::SUCCESS;
    }
    eprintln!("{problems} problem(s); the screens they are in are drawn in red");
    ExitCode::FAILURE
}

/// `path` itself when it is a file, else the menu files of the folder; `Err` after
/// saying what is wrong.
fn menu_paths(path: &std::path::Path) -> Result<Vec<PathBuf>, ExitCode> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.exists() {
        eprintln!("error: {}: no such menu file or folder", path.display());
        return Err(ExitCode::FAILURE);
    }
    menu::menu_files(path).map_err(|e| {
        eprintln!("error: {}: {e}", path.display());
        ExitCode::FAILURE
    })
}

/// The folder a menu path is in, or is: where its `texts/` are.
fn folder_of(path: &std::path::Path) -> &std::path::Path {
    if path.is_file() { path.parent().unwrap_or(std::path::Path::new(".")) } else { path }
}

pub(super) fn check_menus(path: &std::path::Path) -> ExitCode {
    let checked = if path.is_file() {
        let source = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let (texts, mut problems) = menu::Texts::read_dir(folder_of(path));
        match menu::compile_with(path, &source, &std::sync::Arc::new(texts)) {
            Ok(m) if problems.is_empty() => Ok((vec![std::sync::Arc::new(m)], None)),
            Ok(_) => Err(problems),
            Err(mut more) => {
                problems.append(&mut more);
                Err(problems)
            }
        }
    } else {
        menu::Bundle::load_dir(path)
            .map(|bundle| (bundle.menus().to_vec(), Some(bundle.texts().languages().join(", "))))
    };
    match checked {
        Ok((menus, texts)) => {
            if let Some(languages) = texts {
                println!("ok  texts: receipts, SMS replies and built-in lines in {languages}");
            }
            for m in menus {
                println!(
                    "ok  {} {:?}: {} screens, languages {:?}",
                    m.service,
                    m.codes,
                    m.screen_count(),
                    m.languages
                );
            }
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            eprintln!("{} problem(s) in {}", diagnostics.len(), path.display());
            ExitCode::FAILURE
        }
    }
}

pub(super) fn run(
    config_file: Option<PathBuf>,
    listen: Option<String>,
    demo: bool,
    simulator: bool,
    migrate_only: bool,
) -> ExitCode {
    let mut config =
        match Settings::load(config_file.as_deref()).and_then(|s| s.validate(listen.as_deref(), demo)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
    config.simulator = simulator;
    let exporting = match telemetry::init(config.settings.log_format == "json", config.trace.as_ref()) {
        Ok(exporting) => exporting,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    let result = runtime.block_on(async {
        if migrate_only {
            app::connect_database(config.settings.database_url.expose_secret(), 2)
                .await
                .map(|_| println!("database migrated"))
        } else {
            app::serve(config).await
        }
    });
    // The last spans are sent once the runtime is gone: the send blocks.
    drop(runtime);
    drop(exporting);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
