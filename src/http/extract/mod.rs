//! The extractors handlers take: who is asking (`auth`), in which tenant
//! (`tenant`; `session` for a browser's cookie), and request parts with
//! our errors (`json`).

pub mod auth;
pub mod json;
pub mod session;
pub mod tenant;

pub use auth::{ClientAddress, Member, MetricsReader, Operator, Owner, PresentedToken};
pub use json::{ApiBytes, ApiJson, ApiPath};
pub use tenant::{CurrentTenant, TenantTag};
