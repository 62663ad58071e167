//! The `ussd-gateway` command line: serve, migrate, and menu tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ussd_gateway::config::Settings;
use ussd_gateway::{app, menu, telemetry};

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
    /// Menu file tools.
    Menus {
        #[command(subcommand)]
        command: MenusCommand,
    },
}

#[derive(Subcommand)]
enum MenusCommand {
    /// Compile every menu file in DIR and report all problems with file:line:column.
    Check {
        #[arg(default_value = "menus")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Menus { command: MenusCommand::Check { dir } } => check_menus(&dir),
        Command::Serve { demo, listen } => run(cli.config, listen, demo, false),
        Command::Migrate => run(cli.config, None, true, true),
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
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        if migrate_only {
            app::connect_database(&config.settings.database_url, 2)
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
