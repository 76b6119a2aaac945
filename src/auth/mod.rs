//! Accounts and sign-in: argon2id passwords (`password`), opaque bearer
//! tokens stored only as their SHA-256 (`tokens`), and the service layer the
//! CLI and the HTTP API share (`users`).

pub mod email_tokens;
pub mod members;
pub mod password;
pub mod recovery;
pub mod tokens;
pub mod users;

use crate::billing::BillingError;
use crate::db::DbError;

use crate::error_kind::{Class, Classify, Kind};
pub use users::{AuthUser, Membership, NewUser, Role};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// One message for an unknown email and a wrong password: the answer
    /// must not tell which emails have accounts.
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("sign in first: send `Authorization: Bearer <token>`")]
    Unauthenticated,
    #[error("you are not a member of this tenant")]
    Forbidden,
    #[error("only the tenant's owners (or an operator) can change this")]
    OwnerOnly,
    #[error("only operators can do this")]
    OperatorOnly,
    #[error("{0}")]
    Invalid(String),
    /// A password change's `old_password` is not the current one. 400, not
    /// 401: the token is fine, a field is wrong, and a 401 means "sign in
    /// again" to every client (the dashboard sends the browser to sign in).
    #[error("old_password is not the current password")]
    WrongOldPassword,
    #[error("a user with email {0:?} already exists")]
    EmailTaken(String),
    #[error("no tenant {0:?}")]
    UnknownTenant(String),
    #[error("no user {0:?}")]
    UnknownUser(String),
    #[error("{0} is a member already: change their role instead")]
    AlreadyMember(String),
    #[error("a bot keeps one owner at least: make another member an owner first")]
    LastOwner,
    /// Every password-hashing slot is taken (see `password`): try again.
    #[error("too many sign-ins at once; try again shortly")]
    Busy,
    /// A mailed link used already, expired, or never made.
    #[error(
        "this link does not work any more: it was used already or it expired; ask for a new one"
    )]
    InvalidLink,
    #[error("mail could not be sent: {0}")]
    Mail(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The plan has no room for another member.
    #[error(transparent)]
    Plan(#[from] BillingError),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::db_error_conversions!(AuthError);

impl Classify for AuthError {
    fn kind(&self) -> Kind {
        match self {
            AuthError::InvalidCredentials => {
                Kind::new(Class::Unauthenticated, "invalid_credentials")
            }
            AuthError::Unauthenticated => Kind::new(Class::Unauthenticated, "unauthenticated"),
            AuthError::Forbidden | AuthError::OwnerOnly | AuthError::OperatorOnly => {
                Kind::new(Class::Forbidden, "forbidden")
            }
            AuthError::Invalid(_) => Kind::bad_input(),
            AuthError::WrongOldPassword => Kind::new(Class::BadInput, "wrong_password"),
            AuthError::EmailTaken(_) => Kind::conflict(),
            AuthError::UnknownTenant(_) => Kind::new(Class::NotFound, "unknown_tenant"),
            AuthError::UnknownUser(_) => Kind::not_found(),
            AuthError::AlreadyMember(_) | AuthError::LastOwner => Kind::conflict(),
            AuthError::Busy => Kind::new(Class::Unavailable, "busy").expected(),
            AuthError::InvalidLink => Kind::new(Class::BadInput, "invalid_link"),
            AuthError::Mail(_) => Kind::internal(),
            AuthError::Hash(_) => Kind::internal(),
            AuthError::Plan(e) => e.kind(),
            AuthError::Db(e) => e.kind(),
        }
    }
}
