//! The middleware around the routes: the request log, the Host check,
//! tenant resolution, and CORS for the visitor routes.

pub mod cors;
pub mod hosts;
pub mod request_log;
pub mod security;
pub mod tenant;
