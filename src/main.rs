use std::process::ExitCode;

use clap::Parser;

use chatter::cli::{Cli, Command};
use chatter::config::Settings;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut settings = match Settings::from_process_env(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Commands other than serve print their results; keep routine logs out.
    if !matches!(cli.command, Command::Serve) && settings.log.level == "info" {
        settings.log.level = "warn".into();
    }
    chatter::telemetry::init(&settings.log);
    chatter::cli::run(cli, settings).await
}
