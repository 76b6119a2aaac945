//! Drawing: `render(&App, &mut Frame)`, one function per screen, no state
//! of its own. Readable without colour: the selected row carries a `>`
//! marker and reversed video, the current tab brackets, errors the word
//! "error". Laid out for 80×24 and anything larger.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Sparkline, Table, TableState, Wrap};

use super::app::{App, ConfirmKind, Form, List, Modal, ModelState, Screen, Status};
use super::data::Grouping;
use crate::billing::Status as BillingStatus;

const SPINNER: [&str; 4] = ["-", "\\", "|", "/"];

fn selected() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

fn header_style() -> Style {
    Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
}

fn time(at: &DateTime<Utc>) -> String {
    at.format("%m-%d %H:%M").to_string()
}

/// `text` on one line, cut to `max` characters with an ellipsis.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let kept: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

pub fn render(app: &App, frame: &mut Frame) {
    let [tabs, body, hints, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    render_tabs(app, frame, tabs);
    match app.screen {
        Screen::Tenants => render_tenants(app, frame, body),
        Screen::Tenant => render_tenant(app, frame, body),
        Screen::Domains => render_domains(app, frame, body),
        Screen::Conversations => render_conversations(app, frame, body),
        Screen::Transcript => render_transcript(app, frame, body),
        Screen::Unanswered => render_unanswered(app, frame, body),
    }
    frame.render_widget(Paragraph::new(hint_line(app)).dim(), hints);
    render_status(app, frame, status);
    match &app.modal {
        Some(Modal::Help) => render_help(frame),
        Some(Modal::Form(form)) => render_form(app, form, frame),
        Some(Modal::Confirm(confirm)) => {
            let (title, text) = match (&confirm.kind, &confirm.expected) {
                (ConfirmKind::DeleteTenant(schema), _) => (
                    "Delete tenant",
                    format!(
                        "This drops the schema {schema} and every FAQ, conversation and \
                         message in it. Type {schema} and press Enter to delete; Esc cancels."
                    ),
                ),
                (ConfirmKind::RemoveDomain(domain), _) => (
                    "Remove domain",
                    format!("Stop routing {domain}? y removes it, n or Esc keeps it."),
                ),
            };
            let area = centered(frame.area(), 60, 9);
            let mut lines = vec![Line::from(text), Line::from("")];
            if confirm.expected.is_some() {
                lines.push(Line::from(vec![
                    Span::raw("> "),
                    Span::styled(format!("{}_", confirm.typed), selected()),
                ]));
            }
            if let Some(error) = &confirm.error {
                lines.push(Line::from(format!("error: {error}")).bold());
            }
            frame.render_widget(Clear, area);
            frame.render_widget(
                Paragraph::new(lines)
                    .wrap(Wrap { trim: true })
                    .block(Block::bordered().title(format!(" {title} "))),
                area,
            );
        }
        None => {}
    }
}

fn render_tabs(app: &App, frame: &mut Frame, area: Rect) {
    let current = match app.screen {
        Screen::Tenants | Screen::Tenant => 1,
        Screen::Domains => 2,
        Screen::Conversations | Screen::Transcript => 3,
        Screen::Unanswered => 4,
    };
    let mut spans = vec![Span::raw(" Chatter ").bold()];
    for (n, name) in [
        (1, "Tenants"),
        (2, "Domains"),
        (3, "Conversations"),
        (4, "Unanswered"),
    ] {
        if n == current {
            spans.push(Span::styled(format!("[{n} {name}]"), selected()));
        } else {
            spans.push(Span::raw(format!(" {n} {name} ")));
        }
    }
    spans.push(Span::raw("  ? help"));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn hint_line(app: &App) -> String {
    let keys = match app.screen {
        Screen::Tenants => "n new  d delete  s suspend/resume  Enter open  u unanswered  q quit",
        Screen::Tenant => "u unanswered questions  s suspend/resume  Esc back  q quit",
        Screen::Domains => "a add  d remove  p make primary  Esc back  q quit",
        Screen::Conversations => "/ filter  u only unanswered  c clear  Enter transcript  Esc back",
        Screen::Transcript => "Up/Down scroll  f file a question under a FAQ  Esc back  q quit",
        Screen::Unanswered => "a answer with a new FAQ  r refresh  Esc back  q quit",
    };
    format!(" {keys}")
}

fn render_status(app: &App, frame: &mut Frame, area: Rect) {
    let [left, right] =
        Layout::horizontal([Constraint::Min(10), Constraint::Length(11)]).areas(area);
    let line = match &app.status {
        Some(Status::Info(text)) => Line::from(format!(" {text}")),
        Some(Status::Error(text)) => Line::from(format!(" error: {text}")).bold(),
        None => Line::from(""),
    };
    frame.render_widget(Paragraph::new(line), left);
    if app.pending > 0 {
        let spinner = SPINNER[app.frame % SPINNER.len()];
        frame.render_widget(
            Paragraph::new(format!("{spinner} working ")).right_aligned(),
            right,
        );
    }
}

/// A table with the selection marked by `>` and reversed video.
fn table<'a, T>(
    list: &List<T>,
    header: Vec<&'a str>,
    widths: Vec<Constraint>,
    rows: Vec<Row<'a>>,
    title: String,
    frame: &mut Frame,
    area: Rect,
) {
    let block = Block::bordered().title(title);
    if !list.loaded {
        frame.render_widget(Paragraph::new(" loading…").block(block), area);
        return;
    }
    if rows.is_empty() {
        frame.render_widget(Paragraph::new(" nothing here yet").block(block), area);
        return;
    }
    let header = Row::new(header).style(header_style());
    let table = Table::new(rows, widths)
        .header(header)
        .block(block)
        .row_highlight_style(selected())
        .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(Some(list.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn render_tenants(app: &App, frame: &mut Frame, area: Rect) {
    let rows = app
        .tenants
        .items
        .iter()
        .map(|row| {
            let t = &row.tenant;
            let mut name = t.name.clone();
            if t.is_public {
                name.push_str(" (public)");
            }
            Row::new(vec![
                Cell::from(name),
                Cell::from(t.schema.clone()),
                Cell::from(t.domains.join(", ")),
                Cell::from(row.conversations.to_string()),
                Cell::from(t.created_at.format("%Y-%m-%d").to_string()),
                Cell::from(if t.is_active { "active" } else { "SUSPENDED" }),
            ])
        })
        .collect();
    table(
        &app.tenants,
        vec!["Name", "Schema", "Domains", "Conv.", "Created", "Active"],
        vec![
            Constraint::Fill(3),
            Constraint::Fill(2),
            Constraint::Fill(3),
            Constraint::Length(5),
            Constraint::Length(10),
            Constraint::Length(9),
        ],
        rows,
        format!(" Tenants ({}) ", app.tenants.items.len()),
        frame,
        area,
    );
}

fn render_tenant(app: &App, frame: &mut Frame, area: Rect) {
    let Some(page) = &app.tenant_page else {
        frame.render_widget(
            Paragraph::new(" loading…").block(Block::bordered().title(" Tenant ")),
            area,
        );
        return;
    };
    let t = &page.tenant;
    let [info, chart] = Layout::vertical([Constraint::Min(9), Constraint::Length(7)]).areas(area);
    let field = |label: &str, value: String| {
        Line::from(vec![
            Span::raw(format!(" {label:<13}")).bold(),
            Span::raw(value),
        ])
    };
    let width = usize::from(info.width.saturating_sub(17));
    let bot = &page.bot;
    let mut lines = vec![
        field(
            "Status",
            format!(
                "{} · created {}",
                if t.is_active { "active" } else { "SUSPENDED" },
                t.created_at.format("%Y-%m-%d %H:%M")
            ),
        ),
        field(
            "Domains",
            one_line(
                &if t.domains.is_empty() {
                    "none".to_string()
                } else {
                    t.domains.join(", ")
                },
                width,
            ),
        ),
        field("FAQs", page.faqs.to_string()),
        field("Bot name", one_line(&bot.bot_name, width)),
        field("Greeting", one_line(&bot.greeting, width)),
        field("Fallback", one_line(&bot.fallback_reply, width)),
        field("Plan", one_line(&plan_line(&page.billing), width)),
        field("This month", one_line(&usage_line(&page.billing), width)),
        field(
            "Threshold",
            format!(
                "{:.2} · caution {:.2} (confidence to answer without asking)",
                bot.match_threshold, bot.caution
            ),
        ),
        field(
            "Origins",
            one_line(
                &if bot.allowed_origins.is_empty() {
                    "any".to_string()
                } else {
                    bot.allowed_origins.join(", ")
                },
                width,
            ),
        ),
        field(
            "Answered",
            format!(
                "{:.0}% of {} replies ({} fell back)",
                page.answered_rate * 100.0,
                page.answered + page.fallback,
                page.fallback
            ),
        ),
    ];
    // On Citus: the worker node that holds the tenant's schema.
    if let Some(node) = &page.node {
        lines.insert(1, field("Node", one_line(node, width)));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(format!(" {} ({}) ", t.name, t.schema))),
        info,
    );
    let data: Vec<u64> = page.per_day.iter().map(|(_, n)| *n).collect();
    let max = data.iter().copied().max().unwrap_or(0);
    let span = match (page.per_day.first(), page.per_day.last()) {
        (Some((first, _)), Some((last, _))) => {
            format!("{} to {}", first.format("%m-%d"), last.format("%m-%d"))
        }
        _ => String::new(),
    };
    frame.render_widget(
        Sparkline::default()
            .data(&data)
            .max(max.max(1))
            .absent_value_symbol("_")
            .block(Block::bordered().title(format!(
                " Conversations per day, {span}: {} in all, at most {max} a day ",
                page.conversations
            ))),
        chart,
    );
}

/// The tenant's plan and where its subscription stands.
fn plan_line(status: &BillingStatus) -> String {
    if !status.billing {
        return "unlimited (billing off)".into();
    }
    let day = |at: &DateTime<Utc>| at.format("%Y-%m-%d").to_string();
    let mut line = format!("{} · {}", status.plan, status.state);
    if status.in_grace {
        if let Some(until) = &status.chat_until {
            line += &format!(" · in grace, answers until {}", day(until));
        }
    } else if !status.chat_open {
        line += " · NOT ANSWERING";
    } else if let Some(ends) = &status.trial_ends_at {
        line += &format!(" · trial ends {}", day(ends));
    }
    match (&status.current_period_end, status.cancel_at_cycle_end) {
        (Some(end), true) => line += &format!(" · cancels {}", day(end)),
        (None, true) => line += " · cancels at the cycle's end",
        (Some(end), false) if status.chat_open && !status.in_grace => {
            line += &format!(" · renews {}", day(end))
        }
        _ => {}
    }
    line
}

/// Conversations started this month, against the plan's limit.
fn usage_line(status: &BillingStatus) -> String {
    let used = status.conversations_this_month;
    match status.limits.conversations_per_month {
        Some(limit) if status.billing => {
            let percent = used.saturating_mul(100) / i64::from(limit.max(1));
            format!(
                "{used} of {limit} conversations ({percent}%){}",
                if status.usage_warning {
                    " · past the warning share"
                } else {
                    ""
                }
            )
        }
        _ => format!("{used} conversations (no limit)"),
    }
}

fn render_domains(app: &App, frame: &mut Frame, area: Rect) {
    let rows = app
        .domains
        .items
        .iter()
        .map(|d| {
            Row::new(vec![
                d.domain.clone(),
                d.tenant.clone(),
                if d.is_primary { "primary" } else { "" }.to_string(),
            ])
        })
        .collect();
    table(
        &app.domains,
        vec!["Domain", "Tenant", "Primary"],
        vec![
            Constraint::Fill(3),
            Constraint::Fill(2),
            Constraint::Length(7),
        ],
        rows,
        format!(" Domains ({}) ", app.domains.items.len()),
        frame,
        area,
    );
}

fn render_conversations(app: &App, frame: &mut Frame, area: Rect) {
    let rows = app
        .conversations
        .items
        .iter()
        .map(|c| {
            let s = &c.conversation;
            Row::new(vec![
                c.tenant.to_string(),
                time(&s.last_message_at),
                s.messages.to_string(),
                if s.answered { "yes" } else { "NO" }.to_string(),
                s.first_message
                    .as_deref()
                    .map(|m| one_line(m, 200))
                    .unwrap_or_default(),
            ])
        })
        .collect();
    let q = &app.query;
    let mut filters = Vec::new();
    if !q.tenant.trim().is_empty() {
        filters.push(format!("tenant ~ {}", q.tenant.trim()));
    }
    if !q.text.trim().is_empty() {
        filters.push(format!("text: {}", q.text.trim()));
    }
    if q.unanswered_only {
        filters.push("unanswered only".into());
    }
    let title = if filters.is_empty() {
        " Latest conversations, all tenants ".to_string()
    } else {
        format!(" Latest conversations: {} ", filters.join(", "))
    };
    table(
        &app.conversations,
        vec!["Tenant", "Last", "Msgs", "Ans.", "First visitor message"],
        vec![
            Constraint::Length(12),
            Constraint::Length(11),
            Constraint::Length(4),
            Constraint::Length(4),
            Constraint::Fill(1),
        ],
        rows,
        title,
        frame,
        area,
    );
}

fn render_transcript(app: &App, frame: &mut Frame, area: Rect) {
    let Some(t) = &app.transcript else {
        frame.render_widget(
            Paragraph::new(" loading…").block(Block::bordered().title(" Transcript ")),
            area,
        );
        return;
    };
    let mut lines: Vec<Line> = Vec::new();
    for m in &t.messages {
        let who = if m.role == "bot" {
            let how = match (m.faq_id, m.score) {
                (Some(faq), Some(score)) => format!("bot, FAQ {faq}, score {score:.2}"),
                (Some(faq), None) => format!("bot, FAQ {faq}"),
                (None, Some(score)) => format!("bot, FALLBACK, score {score:.2}"),
                (None, None) => "bot, FALLBACK".to_string(),
            };
            Span::raw(format!("{} {how}: ", m.created_at.format("%H:%M:%S")))
        } else {
            Span::raw(format!("{} {}: ", m.created_at.format("%H:%M:%S"), m.role)).bold()
        };
        lines.push(Line::from(vec![who, Span::raw(m.text.clone())]));
    }
    if lines.is_empty() {
        lines.push(Line::from(" no messages"));
    }
    let origin = t.origin.as_deref().unwrap_or("no origin");
    frame.render_widget(
        Paragraph::new(Text::from(lines))
            .wrap(Wrap { trim: false })
            .scroll((app.transcript_scroll, 0))
            .block(Block::bordered().title(format!(
                " {} #{} · started {} · {} ",
                t.tenant,
                t.id,
                t.started_at.format("%Y-%m-%d %H:%M"),
                one_line(origin, 30)
            ))),
        area,
    );
}

fn render_unanswered(app: &App, frame: &mut Frame, area: Rect) {
    let [list, detail] = Layout::vertical([Constraint::Min(5), Constraint::Length(6)]).areas(area);
    let title = match &app.unanswered_for {
        Some(u) => {
            let how = match (u.grouping, &app.model) {
                (Grouping::Meaning, _) => "grouped by meaning".to_string(),
                (Grouping::Wording, ModelState::Failed(_)) => {
                    "same wording only: no model".to_string()
                }
                (Grouping::Wording, _) => "same wording only: model loading".to_string(),
            };
            format!(" Unanswered in {}, last {} days, {how} ", u.tenant, u.days)
        }
        None => " Unanswered questions ".to_string(),
    };
    let rows = app
        .unanswered
        .items
        .iter()
        .map(|g| Row::new(vec![format!("{:>4}x", g.count), g.question.clone()]))
        .collect();
    table(
        &app.unanswered,
        vec!["Count", "Question"],
        vec![Constraint::Length(5), Constraint::Fill(1)],
        rows,
        title,
        frame,
        list,
    );
    let mut lines: Vec<Line> = Vec::new();
    if let Some(group) = app.unanswered.current() {
        if group.examples.is_empty() {
            lines.push(Line::from(" asked in these words only"));
        }
        for example in &group.examples {
            lines.push(Line::from(format!(" - {example}")));
        }
    }
    if let ModelState::Failed(reason) = &app.model {
        lines.push(Line::from(format!(" model: {}", one_line(reason, 200))));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" Other wordings ")),
        detail,
    );
}

/// A `width`×`height` box in the middle of `area`, never larger than it.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn render_form(app: &App, form: &Form, frame: &mut Frame) {
    let height = u16::try_from(form.fields.len() * 2 + 4).unwrap_or(u16::MAX);
    let area = centered(frame.area(), 64, height);
    let mut lines = Vec::new();
    for (i, field) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        lines.push(Line::from(format!(" {}", field.label)).bold());
        let marker = if focused { "> " } else { "  " };
        let cursor = if focused { "_" } else { "" };
        let value = Span::styled(
            format!("{}{cursor}", field.value),
            if focused { selected() } else { Style::new() },
        );
        lines.push(Line::from(vec![Span::raw(marker), value]));
    }
    lines.push(Line::from(""));
    match (&form.progress, &form.error) {
        (Some(progress), _) => {
            let spinner = SPINNER[app.frame % SPINNER.len()];
            lines.push(Line::from(format!(" {spinner} {progress}…")));
        }
        (None, Some(error)) => lines.push(Line::from(format!(" error: {error}")).bold()),
        (None, None) => lines.push(Line::from(" Tab next field · Enter send · Esc cancel").dim()),
    }
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(format!(" {} ", form.title()))),
        area,
    );
}

const HELP: &[(&str, &str)] = &[
    ("", "Everywhere"),
    ("1 2 3 4", "Tenants, Domains, Conversations, Unanswered"),
    ("Up Down j k", "move (PgUp PgDn Home End g G too)"),
    ("Enter", "open the selected row"),
    ("Esc", "back (closes a form or this help)"),
    ("r", "refresh the screen"),
    ("? / q", "this help / quit (Ctrl-C too)"),
    ("", "Tenants"),
    (
        "n d s",
        "new (schema Tab name Enter), delete, suspend/resume",
    ),
    ("u", "unanswered questions (also on a tenant's page)"),
    ("", "Domains"),
    (
        "a d p",
        "add (domain Tab tenant Enter), remove, make primary",
    ),
    ("", "Conversations"),
    ("/ u c", "filter (tenant Tab text), only unanswered, clear"),
    ("", "Unanswered"),
    ("a", "answer the group: a new FAQ the bot uses at once"),
    ("", "Forms"),
    ("Tab Enter Esc", "next field, send, cancel"),
];

fn render_help(frame: &mut Frame) {
    let height = u16::try_from(HELP.len() + 3).unwrap_or(u16::MAX);
    let area = centered(frame.area(), 76, height);
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(keys, what)| {
            if keys.is_empty() {
                Line::from(format!(" {what}")).bold()
            } else {
                Line::from(format!("   {keys:<14}{what}"))
            }
        })
        .chain(std::iter::once(
            Line::from(" any key closes this help").dim(),
        ))
        .collect();
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Keys ")),
        area,
    );
}

#[cfg(test)]
mod tests {
    //! Each screen drawn on an 80×24 `TestBackend` after scripted keys,
    //! compared with the committed snapshots in `snapshots/`.

    use crossterm::event::KeyCode;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::console::data::{Response, TenantPage};
    use crate::console::fixtures::{self, ch, key, loaded_app, type_text};

    fn draw(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| render(app, frame)).unwrap();
        terminal
    }

    fn screen(app: &App) -> Terminal<TestBackend> {
        draw(app, 80, 24)
    }

    #[test]
    fn tenants() {
        let mut app = loaded_app();
        app.on_key(ch('j'));
        insta::assert_snapshot!(screen(&app).backend());
    }

    #[test]
    fn tenants_loading() {
        let mut app = App::new();
        app.start();
        insta::assert_snapshot!(screen(&app).backend());
    }

    #[test]
    fn new_tenant_form_in_progress() {
        let mut app = loaded_app();
        app.on_key(ch('n'));
        type_text(&mut app, "zeta");
        app.on_key(key(KeyCode::Tab));
        type_text(&mut app, "Zeta Ltd");
        app.on_key(key(KeyCode::Enter));
        app.on_response(Response::CreateProgress(
            crate::console::data::CreateStep::Migrating,
        ));
        insta::assert_snapshot!(screen(&app).backend());
    }

    #[test]
    fn delete_confirmation() {
        let mut app = loaded_app();
        app.on_key(ch('d'));
        type_text(&mut app, "acm");
        insta::assert_snapshot!(screen(&app).backend());
    }

    #[test]
    fn tenant_page() {
        let mut app = loaded_app();
        app.on_key(key(KeyCode::Enter));
        app.on_response(Response::TenantPage(Ok(Box::new(fixtures::tenant_page()))));
        insta::assert_snapshot!(screen(&app).backend());
    }

    #[test]
    fn tenant_page_off_citus_has_no_node_line() {
        let mut app = loaded_app();
        app.on_key(key(KeyCode::Enter));
        let page = TenantPage {
            node: None,
            ..fixtures::tenant_page()
        };
        app.on_response(Response::TenantPage(Ok(Box::new(page))));
        let text = format!("{:?}", screen(&app).backend());
        assert!(text.contains("Status"), "{text}");
        assert!(!text.contains("Node"), "{text}");
    }

    #[test]
    fn tenant_page_without_billing_counts_the_month_unlimited() {
        let mut app = loaded_app();
        app.on_key(key(KeyCode::Enter));
        let mut page = fixtures::tenant_page();
        page.billing.billing = false;
        page.billing.limits = crate::config::Limits::UNLIMITED;
        page.billing.conversations_this_month = 37;
        app.on_response(Response::TenantPage(Ok(Box::new(page))));
        let text = format!("{:?}", screen(&app).backend());
        assert!(text.contains("unlimited (billing off)"), "{text}");
        assert!(text.contains("37 conversations (no limit)"), "{text}");
    }

    #[test]
    fn the_plan_line_says_where_the_subscription_stands() {
        let mut status = fixtures::tenant_page().billing;
        assert_eq!(plan_line(&status), "starter · active · renews 2026-04-01");
        status.cancel_at_cycle_end = true;
        assert_eq!(plan_line(&status), "starter · active · cancels 2026-04-01");
        status.state = "halted".into();
        status.cancel_at_cycle_end = false;
        status.in_grace = true;
        status.chat_until = "2026-03-10T00:00:00Z".parse().ok();
        assert_eq!(
            plan_line(&status),
            "starter · halted · in grace, answers until 2026-03-10"
        );
        status.in_grace = false;
        status.chat_open = false;
        assert_eq!(plan_line(&status), "starter · halted · NOT ANSWERING");
        assert_eq!(
            usage_line(&status),
            "1712 of 2000 conversations (85%) · past the warning share"
        );
    }

    #[test]
    fn domains() {
        let mut app = loaded_app();
        app.on_key(ch('2'));
        app.on_response(Response::Domains(Ok(fixtures::domains())));
        app.on_response(Response::DomainChanged(Err(
            "domain \"bikes.test\" already belongs to a tenant".into(),
        )));
        insta::assert_snapshot!(screen(&app).backend());
    }

    #[test]
    fn conversations_filtered() {
        let mut app = loaded_app();
        app.on_key(ch('3'));
        app.on_key(ch('/'));
        type_text(&mut app, "acme");
        app.on_key(key(KeyCode::Enter));
        let mut acme = fixtures::conversations();
        acme.retain(|c| c.tenant.as_str() == "acme");
        app.on_response(Response::Conversations(app.query.clone(), Ok(acme)));
        insta::assert_snapshot!(screen(&app).backend());
    }

    #[test]
    fn transcript() {
        let mut app = loaded_app();
        app.on_key(ch('3'));
        app.on_response(Response::Conversations(
            app.query.clone(),
            Ok(fixtures::conversations()),
        ));
        app.on_key(key(KeyCode::Enter));
        app.on_response(Response::Transcript(Ok(fixtures::transcript())));
        insta::assert_snapshot!(screen(&app).backend());
    }

    #[test]
    fn unanswered_with_the_answer_form() {
        let mut app = loaded_app();
        app.on_key(ch('4'));
        app.on_response(Response::Unanswered(Ok(fixtures::unanswered())));
        app.on_response(Response::Model(Err("no model files".into())));
        app.on_key(ch('a'));
        type_text(&mut app, "Yes, gift cards from 10 euros.");
        insta::assert_snapshot!(screen(&app).backend());
    }

    #[test]
    fn help() {
        let mut app = loaded_app();
        app.on_key(ch('?'));
        insta::assert_snapshot!(screen(&app).backend());
    }

    #[test]
    fn small_and_large_terminals_do_not_panic() {
        let mut app = loaded_app();
        app.on_key(ch('?'));
        for (w, h) in [(1, 1), (20, 5), (40, 10), (200, 60)] {
            draw(&app, w, h);
        }
        app.on_key(key(KeyCode::Esc));
        app.on_key(key(KeyCode::Enter));
        app.on_response(Response::TenantPage(Ok(Box::new(fixtures::tenant_page()))));
        for (w, h) in [(1, 1), (20, 5), (40, 10), (200, 60)] {
            draw(&app, w, h);
        }
    }
}
