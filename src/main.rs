//! The `bareapi` binary: parse the configuration, start logging, run the server.

use std::process::ExitCode;

use bareapi::config::{Cli, Command, LogFormat};
use clap::Parser;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// Lines the background log writer may hold before new ones are dropped (never blocking a
/// worker). tracing-appender's default (128 000) allocates its whole queue up front; with the
/// access log on, 16 384 hold a quarter of a second of it at 60 000 requests/s; without it only
/// start-up, warnings and errors are logged, and 2 048 hold a burst of those.
const LOG_BUFFER_LINES_ACCESS: usize = 16_384;
const LOG_BUFFER_LINES: usize = 2_048;

/// Logs go through a background writer thread, so a worker never blocks on a slow stdout (the
/// access log writes a line per request). The guard flushes what is queued when main returns.
fn init_logging(format: LogFormat, access_log: bool) -> WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(if access_log { LOG_BUFFER_LINES_ACCESS } else { LOG_BUFFER_LINES })
        .lossy(true)
        .finish(std::io::stdout());
    let filter = EnvFilter::try_from_env("BAREAPI_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    guard
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (result, guard) = match cli.command {
        Some(Command::Migrate(db)) => {
            let guard = init_logging(LogFormat::Text, false);
            (bareapi::server::migrate_only(&db.to_config()), guard)
        }
        Some(Command::Serve(args)) => serve(&args),
        None => serve(&cli.serve),
    };
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = e.as_str(), "bareapi failed");
            eprintln!("bareapi: {e}");
            ExitCode::FAILURE
        }
    };
    drop(guard);
    code
}

fn serve(args: &bareapi::config::ServeArgs) -> (Result<(), String>, WorkerGuard) {
    let guard = init_logging(args.log_format, args.access_log);
    let result = args.to_config().and_then(|cfg| {
        tracing::info!(config = ?cfg, "starting");
        bareapi::server::run(cfg, bareapi::server::bind, bareapi::server::shutdown_signal())
    });
    (result, guard)
}
