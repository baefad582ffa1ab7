//! The `bareapi` binary: parse the configuration, start logging, run the server.

use std::process::ExitCode;

use bareapi::config::{Cli, Command, LogFormat};
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("BAREAPI_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Migrate(db)) => {
            init_logging(LogFormat::Text);
            bareapi::server::migrate_only(&db.to_config())
        }
        Some(Command::Serve(args)) => serve(&args),
        None => serve(&cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = e.as_str(), "bareapi failed");
            eprintln!("bareapi: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: &bareapi::config::ServeArgs) -> Result<(), String> {
    init_logging(args.log_format);
    let cfg = args.to_config()?;
    tracing::info!(config = ?cfg, "starting");
    bareapi::server::run(cfg)
}
