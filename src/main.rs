//! The `ussd-gateway` command line: serve, migrate, menu tools and the load generator.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use secrecy::ExposeSecret;
use ussd_gateway::config::Settings;
use ussd_gateway::money::crypto;
use ussd_gateway::money::kek::ConfiguredKeys;
use ussd_gateway::{admin, app, menu, telemetry};

/// A hop allocates many small, short-lived buffers; glibc's malloc took about 13% of
/// the gateway's CPU under load (perf), mimalloc much less (docs/performance.md).
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[derive(Parser)]
#[command(name = "ussd-gateway", version, about = "USSD and SMS gateway for mobile money")]
struct Cli {
    /// TOML file with settings (same names as the environment variables, in lower case).
    #[arg(long, global = true, env = "USSD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP gateway.
    Serve {
        /// Seed demo subscribers and print how to try them (also allows the demo PIN pepper).
        #[arg(long)]
        demo: bool,
        /// Address to listen on; overrides LISTEN_ADDR.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Create the database if needed and apply the migrations, then exit.
    Migrate,
    /// Simulate subscribers walking real journeys against a running gateway.
    Loadtest(LoadtestArgs),
    /// Run journey transcripts against the menus, each on a fresh copy of a database
    /// seeded with the demo subscribers (on the server of DATABASE_URL).
    Journeys {
        /// Folder of transcript files (`*.yaml`).
        #[arg(default_value = "menus/journeys")]
        dir: PathBuf,
        /// Folder of menu files (default: the folder above DIR).
        #[arg(long)]
        menus: Option<PathBuf>,
    },
    /// A phone in the terminal: dial a code and walk the menu, against a gateway in
    /// this process (a scratch demo database) or a running one.
    Simulate {
        /// A running gateway's Africa's Talking endpoint, e.g.
        /// http://127.0.0.1:8080/ussd/africastalking.
        #[arg(long)]
        url: Option<String>,
        /// The subscriber dialling (a demo subscriber: PIN 1234).
        #[arg(long, default_value = "+254700000001")]
        msisdn: String,
        #[arg(long, default_value = "*384#")]
        code: String,
        /// Menus of the in-process gateway.
        #[arg(long, default_value = "menus")]
        menus: PathBuf,
    },
    /// Menu file tools.
    Menus {
        #[command(subcommand)]
        command: MenusCommand,
    },
    /// Admin API tools (on the database of DATABASE_URL).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The keys sealing personal data (on the database of DATABASE_URL, with the
    /// key-encryption keys of DATA_KEY or DATA_KEYS).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-wrap every data key under a key-encryption key (the newest in DATA_KEYS unless
    /// --to names another) and add a new data key under it, while the gateway runs.
    /// First give every replica the new key in DATA_KEYS; once this is done, the older
    /// keys may leave DATA_KEYS.
    Rotate {
        #[arg(long)]
        to: Option<String>,
    },
    /// The data keys: id, the key-encryption key wrapping each, when made and re-wrapped.
    List,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Bearer tokens of the admin API.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it: the database keeps only its hash, so this is the
    /// one time it can be read.
    Create {
        /// 1 to 63 lower-case letters, digits, `.`, `_` or `-` (who or what uses it).
        name: String,
        /// What it may do: menus, customers:read, customers:write, transfers:reverse,
        /// agents, float (repeat the flag or separate with commas).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
    /// Revoke a token; calls with it are refused from now on.
    Revoke { name: String },
    /// List the tokens: name, scopes, when created, live or revoked.
    List,
}

#[derive(Subcommand)]
enum MenusCommand {
    /// Compile every menu file in DIR and report all problems with file:line:column.
    Check {
        #[arg(default_value = "menus")]
        dir: PathBuf,
    },
    /// Print the JSON Schema of menu files (shipped as menus/menu.schema.json).
    Schema,
    /// Draw the flow of one menu file (Mermaid for Markdown, DOT for Graphviz).
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "mermaid")]
        format: GraphFormat,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum GraphFormat {
    /// Mermaid flowchart, for Markdown pages.
    Mermaid,
    /// Graphviz DOT: `… --format dot | dot -Tsvg > wallet.svg`.
    Dot,
}

#[derive(clap::Args)]
struct LoadtestArgs {
    /// Base URL of the gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Journeys and their weights: browse (menu hops only), balance, send.
    #[arg(long, default_value = "browse=6,balance=3,send=1")]
    mix: ussd_gateway::loadtest::Mix,
    /// Closed loop: simulated subscribers at once. Open loop: the most journeys in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Start this many journeys per second whatever the replies (open loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Seconds run but not measured first.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Draw subscribers from the first N demo subscribers (serve with DEMO_SUBSCRIBERS=N).
    #[arg(long, default_value_t = 10)]
    subscribers: u32,
    #[arg(long, default_value = "1234")]
    pin: String,
    /// KES per transfer.
    #[arg(long, default_value_t = 10)]
    amount: u64,
    #[arg(long, default_value = "*384#")]
    code: String,
    /// Print the report as JSON on stdout (no progress bar).
    #[arg(long)]
    json: bool,
    /// Count any 200 as success instead of checking each screen (for reference servers).
    #[arg(long)]
    no_check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Loadtest(args) => loadtest(args),
        Command::Menus { command: MenusCommand::Check { dir } } => check_menus(&dir),
        Command::Menus { command: MenusCommand::Graph { file, format } } => graph_menu(&file, format),
        Command::Menus { command: MenusCommand::Schema } => {
            print!("{}", menu::json_schema());
            ExitCode::SUCCESS
        }
        Command::Journeys { dir, menus } => journeys(cli.config, &dir, menus),
        Command::Simulate { url, msisdn, code, menus } => simulate(cli.config, url, &msisdn, &code, &menus),
        Command::Serve { demo, listen } => run(cli.config, listen, demo, false),
        // Migrating needs no secrets, so it validates as leniently as a demo does.
        Command::Migrate => run(cli.config, None, true, true),
        Command::Admin { command: AdminCommand::Token { command } } => tokens(cli.config, command),
        Command::Keys { command } => keys(cli.config, command),
    }
}

fn keys(config_file: Option<PathBuf>, command: KeysCommand) -> ExitCode {
    let settings = match Settings::load(config_file.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
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

fn tokens(config_file: Option<PathBuf>, command: TokenCommand) -> ExitCode {
    let url = match Settings::load(config_file.as_deref()) {
        Ok(s) => s.database_url.expose_secret().to_owned(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
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

fn loadtest(args: LoadtestArgs) -> ExitCode {
    let opts = ussd_gateway::loadtest::Options {
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
    match runtime.block_on(ussd_gateway::loadtest::run(opts)) {
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

fn journeys(config_file: Option<PathBuf>, dir: &std::path::Path, menus: Option<PathBuf>) -> ExitCode {
    let settings = match Settings::load(config_file.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let menus = menus.unwrap_or_else(|| match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    });
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    let run =
        ussd_gateway::journeys::run_dir(settings.database_url.expose_secret(), dir, &menus, |t, mismatch| {
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

fn simulate(
    config_file: Option<PathBuf>,
    url: Option<String>,
    msisdn: &str,
    code: &str,
    menus: &std::path::Path,
) -> ExitCode {
    use ussd_gateway::simulate::{Line, run};
    let settings = match Settings::load(config_file.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime() else { return ExitCode::FAILURE };
    let result = runtime.block_on(async {
        let line = match url {
            Some(url) => Line::http(&url),
            None => {
                eprintln!("starting a gateway in this process on a scratch demo database…");
                Line::in_process(settings.database_url.expose_secret(), menus).await?
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
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("error: cannot start the async runtime: {e}"))
        .ok()
}

fn graph_menu(file: &std::path::Path, format: GraphFormat) -> ExitCode {
    let format = match format {
        GraphFormat::Mermaid => menu::PictureFormat::Mermaid,
        GraphFormat::Dot => menu::PictureFormat::Dot,
    };
    let source = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    match menu::compile(file, &source) {
        Ok(menu) => {
            print!("{}", menu.picture(format));
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            ExitCode::FAILURE
        }
    }
}

fn check_menus(dir: &std::path::Path) -> ExitCode {
    match menu::Bundle::load_dir(dir) {
        Ok(bundle) => {
            for m in bundle.menus() {
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
            eprintln!("{} problem(s) in {}", diagnostics.len(), dir.display());
            ExitCode::FAILURE
        }
    }
}

fn run(config_file: Option<PathBuf>, listen: Option<String>, demo: bool, migrate_only: bool) -> ExitCode {
    let config =
        match Settings::load(config_file.as_deref()).and_then(|s| s.validate(listen.as_deref(), demo)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
    telemetry::init_logs(config.settings.log_format == "json");
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
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
