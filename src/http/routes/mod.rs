//! The handlers, one file per route group.

pub mod analytics;
pub mod auth;
pub mod billing;
pub mod bot;
pub mod chat;
pub mod conversations;
pub mod dashboard;
pub mod faq_tools;
pub mod faqs;
pub mod health;
pub mod members;
pub mod metrics;
pub mod operator;
pub mod recovery;
pub mod session;
pub mod signup;
pub mod static_files;
pub mod widget;
