//! What kind of failure an error is. Each module says it of its own error
//! type, once, in an `impl Classify` whose match names every variant (no
//! catch-all arm: a new variant does not compile until it is classified).
//! `error.rs` turns a `Kind` into a status and a body; nothing else does.
//!
//! This module knows no HTTP, so a domain module can classify its errors
//! without depending on the web layer.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The client's input: 400.
    BadInput,
    /// 401.
    Unauthenticated,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 409.
    Conflict,
    /// 413.
    TooLarge,
    /// 429.
    TooMany,
    /// Try again later: 503 with `Retry-After`.
    Unavailable,
    /// Our fault: 500; the client never reads the cause.
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub class: Class,
    /// Stable, for programs: `invalid`, `not_found`, `unknown_tenant`, ...
    pub code: &'static str,
    /// What the client reads instead of the error's own text: set where
    /// that text could carry internals (a database message) or where a
    /// server-side state deserves its own words.
    pub message: Option<&'static str>,
    /// How long a client should wait before trying again.
    pub retry_after: Option<Duration>,
    /// A state the server is in on purpose (the model loading, a limit
    /// reached): not logged as a fault, and its own text is the message.
    pub expected: bool,
}

impl Kind {
    pub const fn new(class: Class, code: &'static str) -> Self {
        Self {
            class,
            code,
            message: None,
            retry_after: None,
            expected: false,
        }
    }

    pub const fn expected(mut self) -> Self {
        self.expected = true;
        self
    }

    pub const fn saying(mut self, message: &'static str) -> Self {
        self.message = Some(message);
        self
    }

    pub const fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    pub const fn bad_input() -> Self {
        Self::new(Class::BadInput, "invalid")
    }

    pub const fn not_found() -> Self {
        Self::new(Class::NotFound, "not_found")
    }

    pub const fn conflict() -> Self {
        Self::new(Class::Conflict, "conflict")
    }

    pub const fn internal() -> Self {
        Self::new(Class::Internal, "internal")
    }
}

/// An error that knows its kind.
pub trait Classify {
    fn kind(&self) -> Kind;
}
