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
    // Commands other than serve print their results; keep routine logs out
    // (the console's go to its file).
    if !matches!(cli.command, Command::Serve | Command::Console) && settings.log.level == "info" {
        settings.log.level = "warn".into();
    }
    if matches!(cli.command, Command::Console) {
        // The console owns the screen: its log goes to a file.
        let path = chatter::console::log_path(&settings);
        let opened = chatter::console::prepare_log(&path)
            .and_then(|()| chatter::telemetry::init_to_file(&settings.log, &path));
        if let Err(e) = opened {
            eprintln!(
                "error: cannot write the console log {}: {e}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    } else {
        chatter::telemetry::init(&settings.log);
    }
    chatter::cli::run(cli, settings).await
}
