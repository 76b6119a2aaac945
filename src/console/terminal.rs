//! The I/O loop: puts the terminal in raw mode on the alternate screen
//! (with a panic hook that puts it back), then waits on keys, service
//! answers, a spinner tick and a refresh timer, feeds each to the `App`,
//! starts the requests it returns, and draws.

use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::ConsoleError;
use super::app::App;
use super::render::render;
use super::service::Services;

/// How often the Conversations screen refreshes itself.
const REFRESH: Duration = Duration::from_secs(3);
/// The spinner's pace.
const TICK: Duration = Duration::from_millis(250);

/// Restores the terminal when dropped: on return, on error and on unwind.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub async fn run(services: Services) -> Result<(), ConsoleError> {
    // A panic goes to the log file too: the screen it is printed on after
    // the restore may be gone with the SSH session.
    let print = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "the console panicked");
        print(info);
    }));
    // Raw mode, the alternate screen, and a panic hook (run before the one
    // above) that restores the terminal before the panic message is printed.
    let mut terminal = ratatui::try_init().map_err(ConsoleError::Terminal)?;
    let _restore = Restore;
    let (replies, mut answers) = mpsc::unbounded_channel();
    let mut app = App::new();
    for request in app.start() {
        services.spawn(request, replies.clone());
    }
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        terminal
            .draw(|frame| render(&app, frame))
            .map_err(ConsoleError::Terminal)?;
        if app.quit {
            break;
        }
        let requests = tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind == KeyEventKind::Press => app.on_key(key),
                // A resize (or anything else) just redraws.
                Some(Ok(_)) => Vec::new(),
                Some(Err(e)) => return Err(ConsoleError::Terminal(e)),
                None => break,
            },
            Some(answer) = answers.recv() => app.on_response(answer),
            _ = tick.tick() => {
                app.on_tick();
                Vec::new()
            }
            _ = refresh.tick() => app.on_refresh(),
        };
        for request in requests {
            services.spawn(request, replies.clone());
        }
    }
    tracing::info!("console closed");
    Ok(())
}
