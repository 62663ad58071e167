//! The `ussd-gateway` command line: its arguments, and which command runs; the
//! commands themselves are in `commands.rs`.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::menu;
use clap::{Parser, Subcommand};
use commands::{
    audit_verify, check_menus, events, graph_menu, journeys, keys, loadtest, run, simulate, tokens,
};

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
        /// Serve the web phone on the admin listener (ADMIN_LISTEN) at /phone, for
        /// tokens with the `simulator` scope: walk the menus as any subscriber.
        #[arg(long)]
        simulator: bool,
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
        /// Menus of the in-process gateway (default: MENUS_DIR, as `serve` reads it).
        #[arg(long)]
        menus: Option<PathBuf>,
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
    /// The tamper-evident history (on the database of DATABASE_URL).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The event streams on the Redis of REDIS_URL.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the hash chains of the event log and the admin audit trail from their
    /// rows; name the first link that does not match (exit 1), or say how many links
    /// each chain has.
    Verify,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Print events as they are published, one JSON envelope a line, reading as a
    /// consumer group does (XREADGROUP, XACK); Ctrl-C stops.
    Tail {
        /// Event types: an exact type or a pattern (`transfer.*`, `*.rejected`).
        #[arg(long = "type", default_value = "*")]
        types: String,
        /// Where to start: `$` (what comes next), `0` (all the streams still hold) or a
        /// stream entry id (`1765011243512-0`, from that moment). A kept group resumes
        /// where it stopped instead.
        #[arg(long, default_value = "$")]
        from: String,
        /// A consumer group to keep, so the next tail resumes where this one stopped
        /// (without it, one is made for this tail and removed at its end).
        #[arg(long)]
        group: Option<String>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
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
        #[arg(long = "scope", required = true, help = scopes_help())]
        scopes: Vec<String>,
    },
    /// Revoke a token; calls with it are refused from now on.
    Revoke { name: String },
    /// List the tokens: name, scopes, when created, live or revoked.
    List,
}

/// Every scope a token can hold, from the list the API checks, so the help cannot
/// fall behind it.
fn scopes_help() -> String {
    let names: Vec<_> = crate::admin::Scope::ALL.iter().map(|s| s.name()).collect();
    format!("What it may do: {} (repeat the flag or separate with commas)", names.join(", "))
}

#[derive(Subcommand)]
enum MenusCommand {
    /// Compile every menu file in a folder (or one file) and report every problem at
    /// once, as file:line:column, sorted.
    Check {
        #[arg(default_value = "menus")]
        path: PathBuf,
    },
    /// Print the JSON Schema of menu files (shipped as menus/menu.schema.json).
    Schema,
    /// Draw the flow of a menu file, or of every one in a folder (Mermaid for Markdown,
    /// DOT for Graphviz); a menu with problems is drawn too, its broken screens in red.
    Graph {
        path: PathBuf,
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
    mix: crate::loadtest::Mix,
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
    /// Count any 200 as success instead of checking each screen (for reference servers);
    /// the gateway's rate-limit lines still count as refusals.
    #[arg(long)]
    no_check: bool,
}

/// Runs the command the arguments name.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Loadtest(args) => loadtest(args),
        Command::Menus { command: MenusCommand::Check { path } } => check_menus(&path),
        Command::Menus { command: MenusCommand::Graph { path, format } } => graph_menu(&path, format),
        Command::Menus { command: MenusCommand::Schema } => {
            print!("{}", menu::json_schema());
            ExitCode::SUCCESS
        }
        Command::Journeys { dir, menus } => journeys(cli.config, &dir, menus),
        Command::Simulate { url, msisdn, code, menus } => simulate(cli.config, url, &msisdn, &code, menus),
        Command::Serve { demo, simulator, listen } => run(cli.config, listen, demo, simulator, false),
        // Migrating needs no secrets, so it validates as leniently as a demo does.
        Command::Migrate => run(cli.config, None, true, false, true),
        Command::Admin { command: AdminCommand::Token { command } } => tokens(cli.config, command),
        Command::Keys { command } => keys(cli.config, command),
        Command::Audit { command: AuditCommand::Verify } => audit_verify(cli.config),
        Command::Events { command: EventsCommand::Tail { types, from, group, count } } => {
            events(cli.config, crate::events::tail::Tail { types, from, group, count })
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn token_create_help_names_every_scope() {
        let mut cli = super::Cli::command();
        let help = cli
            .find_subcommand_mut("admin")
            .and_then(|c| c.find_subcommand_mut("token"))
            .and_then(|c| c.find_subcommand_mut("create"))
            .expect("admin token create")
            .render_help()
            .to_string();
        for scope in crate::admin::Scope::ALL {
            assert!(help.contains(scope.name()), "{} missing from:\n{help}", scope.name());
        }
    }
}
