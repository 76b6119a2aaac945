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
    if !matches!(cli.command, Command::Serve | Command::Console) {
        stop_quietly_on_a_closed_pipe();
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

/// `chatter faq doctor SCHEMA | head` should end as `cat` does when `head`
/// has read enough: Rust ignores SIGPIPE, so printing to the closed pipe
/// panicked instead. Only for the printing commands: the server and the
/// console write to sockets and the terminal, where a closed peer is an
/// error to handle, not a reason to stop.
fn stop_quietly_on_a_closed_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: the default action runs no code of ours, so there is no
    // handler to be async-signal-safe; dispositions are process-wide.
    if let Err(e) = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) } {
        eprintln!("warning: SIGPIPE stays ignored: {e}");
    }
}
