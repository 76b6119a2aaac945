use std::process::ExitCode;

use clap::Parser;

use chatter::cli::{Cli, Command};
use chatter::config::Settings;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

async fn run() -> ExitCode {
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

/// glibc gives threads up to 8 malloc arenas per core, and memory freed in
/// one arena serves only that arena. The server builds and drops FAQ
/// indexes on the blocking pool's threads as its index budget evicts them,
/// so with thousands of tenants each arena kept its own high-water mark:
/// `bench/scale.sh` (10,000 tenants, 64 MiB index budget) ended at 283 MB
/// with the default and 230 MB with one arena per core (same throughput
/// and latency). Before any thread of ours allocates; `MALLOC_ARENA_MAX`
/// in the environment still wins (glibc reads it itself).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter; called from
        // main before the runtime's threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
