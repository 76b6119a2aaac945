//! Fixed data for the console's tests: no clock, no random names, so the
//! snapshots are the same on every machine and every day.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::analytics::UnansweredGroup;
use crate::bot_config::BotConfig;
use crate::conversations::{Message, Summary, TenantConversation};
use crate::tenancy::SchemaName;
use crate::tenancy::provision::{DomainRow, TenantSummary};

use super::app::App;
use super::data::{Grouping, Response, TenantPage, TenantRow, Transcript, Unanswered};
use crate::billing::Status;
use crate::config::Limits;

pub fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, minute, 0)
        .single()
        .unwrap_or_default()
}

pub fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

pub fn ch(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

/// Presses each key of `keys` (typed text).
pub fn type_text(app: &mut App, keys: &str) {
    for c in keys.chars() {
        app.on_key(ch(c));
    }
}

fn tenant(schema: &str, name: &str, domains: &[&str], active: bool, day: u32) -> TenantSummary {
    TenantSummary {
        schema: schema.into(),
        name: name.into(),
        is_active: active,
        is_public: schema == "public_site",
        created_at: at(day, 9, 30),
        domains: domains.iter().map(|d| d.to_string()).collect(),
    }
}

pub fn tenants() -> Vec<TenantRow> {
    vec![
        TenantRow {
            tenant: tenant(
                "acme",
                "Acme Corp",
                &["acme.test", "www.acme.test"],
                true,
                1,
            ),
            conversations: 12,
        },
        TenantRow {
            tenant: tenant("bikeshop", "Bike Shop", &["bikes.test"], false, 2),
            conversations: 3,
        },
        TenantRow {
            tenant: tenant("public_site", "Chatter", &[], true, 1),
            conversations: 0,
        },
    ]
}

pub fn domains() -> Vec<DomainRow> {
    [
        ("acme.test", "acme", true),
        ("bikes.test", "bikeshop", true),
        ("www.acme.test", "acme", false),
    ]
    .iter()
    .map(|(domain, tenant, is_primary)| DomainRow {
        domain: domain.to_string(),
        tenant: tenant.to_string(),
        is_primary: *is_primary,
    })
    .collect()
}

fn schema(name: &str) -> SchemaName {
    SchemaName::parse(name).unwrap_or_else(|e| panic!("{e}"))
}

pub fn conversations() -> Vec<TenantConversation> {
    let one = |tenant: &str, id: i64, hour: u32, messages: i64, first: &str, answered: bool| {
        TenantConversation {
            tenant: schema(tenant),
            conversation: Summary {
                id,
                session_id: format!("session-{id}"),
                origin: Some("https://acme.test".into()),
                started_at: at(28, hour, 0),
                last_message_at: at(28, hour, 5),
                messages,
                first_message: Some(first.into()),
                answered,
                thumbs_down: 0,
            },
        }
    };
    vec![
        one("acme", 12, 16, 4, "When are you open on Sundays?", true),
        one("bikeshop", 3, 15, 2, "Do you repair e-bikes?", false),
        one(
            "acme",
            11,
            11,
            2,
            "Can I return a parcel after 30 days?",
            true,
        ),
    ]
}

pub fn transcript() -> Transcript {
    let message =
        |role: &str, text: &str, faq_id: Option<i64>, score: Option<f32>, minute| Message {
            role: role.into(),
            text: text.into(),
            faq_id,
            score,
            created_at: at(28, 16, minute),
        };
    Transcript {
        tenant: "acme".into(),
        id: 12,
        started_at: at(28, 16, 0),
        origin: Some("https://acme.test".into()),
        messages: vec![
            message("visitor", "When are you open on Sundays?", None, None, 0),
            message("bot", "We open 10 to 4 on Sundays.", Some(3), Some(0.82), 0),
            message("visitor", "Do you sell gift cards?", None, None, 4),
            message(
                "bot",
                "Sorry, I don't know that one yet.",
                None,
                Some(0.31),
                5,
            ),
        ],
    }
}

pub fn tenant_page() -> TenantPage {
    let start = NaiveDate::from_ymd_opt(2026, 2, 27).unwrap_or_default();
    TenantPage {
        tenant: tenants()[0].tenant.clone(),
        faqs: 24,
        bot: BotConfig {
            bot_name: "Acme helper".into(),
            greeting: "Hi! Ask me anything about Acme.".into(),
            fallback_reply: "Sorry, I don't know that one yet.".into(),
            match_threshold: 0.4,
            caution: 0.5,
            theme: serde_json::json!({}),
            allowed_origins: vec!["https://acme.test".into()],
            unavailable_reply: "Chat is closed for now.".into(),
            show_branding: true,
        },
        per_day: (0..31u64)
            .map(|i| (start + chrono::Days::new(i), (i * 7) % 5))
            .collect(),
        conversations: 60,
        answered: 40,
        fallback: 10,
        answered_rate: 0.8,
        node: Some("10.0.0.12:5432".into()),
        billing: Status {
            billing: true,
            plan: "starter".into(),
            state: "active".into(),
            limits: Limits {
                faqs: Some(200),
                conversations_per_month: Some(2000),
                members: Some(5),
                remove_branding: false,
            },
            trial_ends_at: None,
            current_period_end: "2026-04-01T00:00:00Z".parse().ok(),
            cancel_at_cycle_end: false,
            chat_open: true,
            chat_until: None,
            in_grace: false,
            conversations_this_month: 1712,
            usage_warning: true,
            razorpay_subscription_id: Some("sub_Acme0001".into()),
        },
    }
}

pub fn unanswered() -> Unanswered {
    Unanswered {
        tenant: "acme".into(),
        days: 30,
        grouping: Grouping::Meaning,
        groups: vec![
            UnansweredGroup {
                question: "Do you sell gift cards?".into(),
                count: 5,
                examples: vec!["gift vouchers?".into(), "Can I buy a gift card".into()],
            },
            UnansweredGroup {
                question: "Is there parking?".into(),
                count: 2,
                examples: vec![],
            },
        ],
    }
}

/// An app on the Tenants screen with the fixed tenants loaded.
pub fn loaded_app() -> App {
    let mut app = App::new();
    app.start();
    app.on_response(Response::Tenants(Ok(tenants())));
    app
}
