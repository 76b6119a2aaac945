//! Self-service sign-up: a business makes its tenant and its owner's
//! account itself (when `signup.enabled`). The tenant (row, schema, every
//! tenant migration, bot settings), the owner, the membership and the
//! address-verification link are written in one transaction: all of it or
//! nothing. A new tenant has no billing row, which is the trial that began
//! at `tenants.created_at` (billing owns what that means).
//!
//! Each field is checked before any SQL and named in the error; the
//! password is hashed with no pooled connection held.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::auth::email_tokens::{self, Purpose};
use crate::auth::users::{check_password, normalize_email};
use crate::auth::{AuthError, password, tokens};
use crate::config::AuthSettings;
use crate::db::{Db, DbError, SchemaName};
use crate::error_kind::{Class, Classify, Kind};
use crate::tenancy::TenancyError;
use crate::tenancy::provision::{self, CheckedTenant};

#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    /// A field's value is not acceptable; the message starts with its name.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("slug: {0:?} is taken; choose another")]
    SlugTaken(String),
    #[error("email: an account with {0:?} exists already; sign in, or reset its password")]
    EmailTaken(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    #[error(transparent)]
    Db(#[from] DbError),
}

crate::db::db_error_conversions!(SignupError);

impl Classify for SignupError {
    fn kind(&self) -> Kind {
        match self {
            SignupError::Invalid { .. } => Kind::bad_input(),
            SignupError::SlugTaken(_) => Kind::new(Class::Conflict, "slug_taken"),
            SignupError::EmailTaken(_) => Kind::new(Class::Conflict, "email_taken"),
            SignupError::Auth(e) => e.kind(),
            SignupError::Tenancy(e) => e.kind(),
            SignupError::Db(e) => e.kind(),
        }
    }
}

/// Names a business may not take: they are the platform's own places (or
/// will be, as subdomains).
const RESERVED_SLUGS: &[&str] = &[
    "admin",
    "api",
    "app",
    "assets",
    "billing",
    "chatter",
    "dashboard",
    "docs",
    "help",
    "login",
    "mail",
    "operator",
    "root",
    "signin",
    "signup",
    "smtp",
    "static",
    "status",
    "support",
    "system",
    "www",
];

/// What a sign-up form sends.
#[derive(Debug, Clone)]
pub struct NewSignup<'a> {
    pub business_name: &'a str,
    pub slug: &'a str,
    pub email: &'a str,
    pub password: &'a str,
}

/// A sign-up whose every field passed its check.
#[derive(Debug, Clone)]
pub struct CheckedSignup {
    pub tenant: CheckedTenant,
    pub email: String,
    password: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> SignupError {
    SignupError::Invalid {
        field,
        message: message.into(),
    }
}

/// Checks every field, in the form's order, before anything is spent.
pub fn check(new: &NewSignup<'_>) -> Result<CheckedSignup, SignupError> {
    let name = new.business_name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid("business_name", "must be 1 to 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("business_name", "must be one line of text"));
    }
    let slug = SchemaName::parse(new.slug).map_err(|e| invalid("slug", e.to_string()))?;
    if RESERVED_SLUGS.contains(&slug.as_str()) {
        return Err(invalid(
            "slug",
            format!("{:?} is reserved; choose another", slug.as_str()),
        ));
    }
    let email = normalize_email(new.email).map_err(|e| invalid("email", e.to_string()))?;
    check_password(new.password).map_err(|e| invalid("password", e.to_string()))?;
    Ok(CheckedSignup {
        tenant: CheckedTenant {
            schema: slug,
            name: name.to_string(),
            domain: None,
            is_public: false,
        },
        email,
        password: new.password.to_string(),
    })
}

/// A new account, signed in.
#[derive(Debug)]
pub struct Account {
    pub user_id: i64,
    /// A sign-in token for the new owner, when asked for.
    pub session: Option<String>,
    /// The address-verification link's token, when one was asked for.
    pub verification: Option<String>,
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Creates the tenant, its owner and (with `verify_ttl`) a verification
/// link in one transaction, then (with `sign_in`) signs the owner in.
pub async fn sign_up(
    db: &Db,
    new: CheckedSignup,
    verify_ttl: Option<Duration>,
    sign_in: Option<&AuthSettings>,
) -> Result<Account, SignupError> {
    let slug = new.tenant.schema.as_str().to_string();
    // Taken names answer before the hash and the tenant's migrations are
    // spent; a race past this is caught by the unique indexes below.
    let client = db.shared().await?;
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM public.tenants WHERE schema_name = $1) \
                 OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), \
                    EXISTS (SELECT 1 FROM public.users WHERE email = $2)",
            &[&slug, &new.email],
        )
        .await?;
    drop(client);
    let (slug_taken, email_taken): (bool, bool) = (row.try_get(0)?, row.try_get(1)?);
    if slug_taken {
        return Err(SignupError::SlugTaken(slug));
    }
    if email_taken {
        return Err(SignupError::EmailTaken(new.email));
    }
    let hash = password::hash(new.password.clone()).await?;

    let tx = db.shared_tx().await?;
    let (_, tx) = provision::create_tenant_in(tx, &new.tenant)
        .await
        .map_err(|e| match e {
            TenancyError::TenantExists(_) => SignupError::SlugTaken(slug.clone()),
            other => other.into(),
        })?;
    let user_id: i64 = tx
        .query_one(
            "INSERT INTO public.users (email, password_hash) VALUES ($1, $2) RETURNING id",
            &[&new.email, &hash],
        )
        .await
        .map_err(|e| match is_unique_violation(&e) {
            true => SignupError::EmailTaken(new.email.clone()),
            false => e.into(),
        })?
        .try_get(0)?;
    tx.execute(
        "INSERT INTO public.memberships (user_id, tenant_id, role) \
         SELECT $1, id, 'owner' FROM public.tenants WHERE schema_name = $2",
        &[&user_id, &slug],
    )
    .await?;
    let verification = match verify_ttl {
        Some(ttl) => Some(email_tokens::issue(&tx, user_id, Purpose::Verify, ttl).await?),
        None => None,
    };
    tx.commit().await?;

    let session = match sign_in {
        Some(auth) => Some(tokens::issue(&db.shared().await?, user_id, auth).await?),
        None => None,
    };
    Ok(Account {
        user_id,
        session,
        verification,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form<'a>(name: &'a str, slug: &'a str, email: &'a str, pw: &'a str) -> NewSignup<'a> {
        NewSignup {
            business_name: name,
            slug,
            email,
            password: pw,
        }
    }

    fn field_of(result: Result<CheckedSignup, SignupError>) -> &'static str {
        match result {
            Err(SignupError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        let ok = ("Acme", "acme_shop", "ann@example.com", "long enough");
        assert!(check(&form(ok.0, ok.1, ok.2, ok.3)).is_ok());
        assert_eq!(
            field_of(check(&form(" ", ok.1, ok.2, ok.3))),
            "business_name"
        );
        assert_eq!(
            field_of(check(&form(&"x".repeat(201), ok.1, ok.2, ok.3))),
            "business_name"
        );
        assert_eq!(
            field_of(check(&form("a\nb", ok.1, ok.2, ok.3))),
            "business_name"
        );
        for slug in [
            "Acme",
            "ac",
            "1acme",
            "pg_acme",
            "public",
            "acme-shop",
            "www",
            "api",
        ] {
            assert_eq!(
                field_of(check(&form(ok.0, slug, ok.2, ok.3))),
                "slug",
                "{slug}"
            );
        }
        assert_eq!(field_of(check(&form(ok.0, ok.1, "ann", ok.3))), "email");
        assert_eq!(
            field_of(check(&form(ok.0, ok.1, ok.2, "short"))),
            "password"
        );
    }

    #[test]
    fn the_message_starts_with_the_field() {
        let err = check(&form("Acme", "Bad Slug", "a@example.com", "long enough")).unwrap_err();
        assert!(err.to_string().starts_with("slug: "), "{err}");
    }
}
