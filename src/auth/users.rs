//! The account service the CLI and the HTTP API share: creating users,
//! signing in and out, finding the user behind a token, changing passwords.

use std::fmt;
use std::str::FromStr;

use crate::db::Db;
use crate::db::Statements;
use serde::Serialize;
use tokio_postgres::error::SqlState;

use crate::auth::password::{self, Verdict};
use crate::auth::{AuthError, tokens};
use crate::billing::Cap;
use crate::config::AuthSettings;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// What a member may do in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Agent,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Agent => "agent",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Role::Owner),
            "agent" => Ok(Role::Agent),
            other => Err(AuthError::Invalid(format!(
                "role must be owner or agent, not {other:?}"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Membership {
    /// The tenant's schema name.
    pub tenant: String,
    pub role: Role,
}

/// A signed-in user, with every tenant they belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub struct AuthUser {
    #[serde(skip)]
    pub id: i64,
    pub email: String,
    /// The address was confirmed (a mailed link reached it).
    pub email_verified: bool,
    pub is_operator: bool,
    pub memberships: Vec<Membership>,
}

impl AuthUser {
    /// The user's role in `schema`, if they are a member.
    pub fn role_in(&self, schema: &str) -> Option<Role> {
        self.memberships
            .iter()
            .find(|m| m.tenant == schema)
            .map(|m| m.role)
    }
}

#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub is_operator: bool,
    /// A tenant (schema name) to join, and as what.
    pub membership: Option<(&'a str, Role)>,
}

/// Trimmed and lowercased; one `@`, something before it, a dotted domain
/// after it. Deliverability is the mail server's business, not ours.
pub fn normalize_email(raw: &str) -> Result<String, AuthError> {
    let email = raw.trim().to_lowercase();
    let invalid = || AuthError::Invalid(format!("{raw:?} is not an email address"));
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let domain_ok = domain.contains('.')
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return Err(invalid());
    }
    Ok(email)
}

pub fn check_password(password: &str) -> Result<(), AuthError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(AuthError::Invalid(format!(
            "a password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// Members of the tenant other than `$2`: what a plan's member limit
/// counts (a member whose role changes takes no new seat).
pub const OTHER_MEMBERS: &str =
    "SELECT count(*) FROM public.memberships WHERE tenant_id = $1 AND user_id <> $2";

/// Room for `user` among the tenant's members under the plan's `cap`,
/// held until the transaction ends.
pub async fn hold_seat(
    tx: &impl Statements,
    tenant_id: i64,
    user: i64,
    cap: Option<&Cap>,
) -> Result<(), AuthError> {
    if let Some(cap) = cap {
        cap.hold(
            tx,
            &tenant_id.to_string(),
            OTHER_MEMBERS,
            &[&tenant_id, &user],
            1,
        )
        .await?;
    }
    Ok(())
}

/// The tenant's id, or `UnknownTenant`.
async fn tenant_id(client: &impl Statements, schema: &str) -> Result<i64, AuthError> {
    Ok(client
        .query_opt(
            "SELECT id FROM public.tenants WHERE schema_name = $1",
            &[&schema],
        )
        .await?
        .ok_or_else(|| AuthError::UnknownTenant(schema.to_string()))?
        .try_get(0)?)
}

/// Creates a user (and their membership, when asked) in one transaction;
/// returns the new user's id.
pub async fn create_user(db: &Db, new: NewUser<'_>) -> Result<i64, AuthError> {
    create_user_within(db, new, None).await
}

/// `create_user`, the membership held to the tenant's plan's `cap`.
pub async fn create_user_within(
    db: &Db,
    new: NewUser<'_>,
    cap: Option<&Cap>,
) -> Result<i64, AuthError> {
    let email = normalize_email(new.email)?;
    check_password(new.password)?;
    let hash = password::hash(new.password.to_string()).await?;
    let tx = db.shared_tx().await?;
    let inserted = tx
        .query_one(
            "INSERT INTO public.users (email, password_hash, is_operator) \
             VALUES ($1, $2, $3) RETURNING id",
            &[&email, &hash, &new.is_operator],
        )
        .await;
    let id: i64 = match inserted {
        Ok(row) => row.try_get(0)?,
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(AuthError::EmailTaken(email));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some((schema, role)) = new.membership {
        let tenant = tenant_id(&tx, schema).await?;
        hold_seat(&tx, tenant, id, cap).await?;
        tx.execute(
            "INSERT INTO public.memberships (user_id, tenant_id, role) VALUES ($1, $2, $3)",
            &[&id, &tenant, &role.as_str()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Signs in: a new token for the right password, `InvalidCredentials` for
/// anything else. An unknown email costs one verification too, so timing
/// does not tell which emails have accounts. A hash made with weaker
/// parameters than today's is replaced while we have the password.
pub async fn authenticate(
    db: &Db,
    email: &str,
    password: &str,
    settings: &AuthSettings,
) -> Result<String, AuthError> {
    let password = password.to_string();
    // Too long to be anyone's password: refused before it is hashed.
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(AuthError::InvalidCredentials);
    }
    let email = email.trim().to_lowercase();
    // The connection goes back to the pool before the hash: a burst of
    // sign-ins must not hold the connections chats need (issue 16).
    let row = db
        .shared()
        .await?
        .query_opt(
            "SELECT id, password_hash FROM public.users WHERE email = $1",
            &[&email],
        )
        .await?;
    let Some(row) = row else {
        password::verify_dummy(password).await?;
        return Err(AuthError::InvalidCredentials);
    };
    let user_id: i64 = row.try_get("id")?;
    let stored: String = row.try_get("password_hash")?;
    let upgraded = match password::verify(password.clone(), stored).await? {
        Verdict::Wrong => return Err(AuthError::InvalidCredentials),
        Verdict::Correct => None,
        Verdict::CorrectNeedsRehash => Some(password::hash(password).await?),
    };
    let client = db.shared().await?;
    if let Some(upgraded) = upgraded {
        client
            .execute(
                "UPDATE public.users SET password_hash = $2 WHERE id = $1",
                &[&user_id, &upgraded],
            )
            .await?;
    }
    tokens::issue(&client, user_id, settings).await
}

/// The user behind a live token, or None.
pub async fn find_by_token(
    db: &Db,
    token: &str,
    settings: &AuthSettings,
) -> Result<Option<AuthUser>, AuthError> {
    let client = db.shared().await?;
    let Some(user_id) = tokens::user_of(&client, token, settings).await? else {
        return Ok(None);
    };
    load_user(&client, user_id).await
}

async fn load_user(client: &impl Statements, user_id: i64) -> Result<Option<AuthUser>, AuthError> {
    let Some(row) = client
        .query_opt(
            "SELECT email, is_operator, email_verified_at IS NOT NULL AS email_verified \
             FROM public.users WHERE id = $1",
            &[&user_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let rows = client
        .query(
            "SELECT t.schema_name, m.role FROM public.memberships m \
             JOIN public.tenants t ON t.id = m.tenant_id \
             WHERE m.user_id = $1 ORDER BY t.schema_name",
            &[&user_id],
        )
        .await?;
    let mut memberships = Vec::with_capacity(rows.len());
    for row in rows {
        let role: String = row.try_get("role")?;
        memberships.push(Membership {
            tenant: row.try_get("schema_name")?,
            role: role.parse()?,
        });
    }
    Ok(Some(AuthUser {
        id: user_id,
        email: row.try_get("email")?,
        email_verified: row.try_get("email_verified")?,
        is_operator: row.try_get("is_operator")?,
        memberships,
    }))
}

/// Signs a token out.
pub async fn revoke_token(db: &Db, token: &str) -> Result<(), AuthError> {
    let client = db.shared().await?;
    tokens::revoke(&client, token).await
}

/// Signs the user out everywhere: every token, every browser session.
pub async fn revoke_all_tokens(db: &Db, user_id: i64) -> Result<u64, AuthError> {
    let client = db.shared().await?;
    tokens::revoke_others(&client, user_id, None).await
}

/// Replaces the password after checking the old one, and signs out every
/// other session: whoever knew the old password keeps nothing.
pub async fn change_password(
    db: &Db,
    user_id: i64,
    old_password: &str,
    new_password: &str,
    current_token: Option<&str>,
) -> Result<(), AuthError> {
    check_password(new_password)?;
    // No pooled connection is held across the two hashes (issue 16).
    let stored: String = db
        .shared()
        .await?
        .query_one(
            "SELECT password_hash FROM public.users WHERE id = $1",
            &[&user_id],
        )
        .await?
        .try_get(0)?;
    if password::verify(old_password.to_string(), stored).await? == Verdict::Wrong {
        return Err(AuthError::WrongOldPassword);
    }
    let hash = password::hash(new_password.to_string()).await?;
    let tx = db.shared_tx().await?;
    tx.execute(
        "UPDATE public.users SET password_hash = $2 WHERE id = $1",
        &[&user_id, &hash],
    )
    .await?;
    tokens::revoke_others(&tx, user_id, current_token).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            normalize_email(" Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@example",
            "a b@example.com",
            "ann@x..com",
            "a@b@c.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn passwords_are_8_to_1024_characters() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"x".repeat(1024)).is_ok());
        assert!(check_password(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn roles_parse() {
        assert_eq!("owner".parse::<Role>().unwrap(), Role::Owner);
        assert_eq!("agent".parse::<Role>().unwrap(), Role::Agent);
        assert!("admin".parse::<Role>().is_err());
    }
}

/// A user as operators see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserSummary {
    pub email: String,
    pub is_operator: bool,
    pub memberships: Vec<Membership>,
}

/// Every user with their memberships, by email.
pub async fn list_users(db: &Db) -> Result<Vec<UserSummary>, AuthError> {
    let client = db.shared().await?;
    let rows = client
        .query(
            "SELECT u.email, u.is_operator, t.schema_name, m.role FROM public.users u \
             LEFT JOIN public.memberships m ON m.user_id = u.id \
             LEFT JOIN public.tenants t ON t.id = m.tenant_id ORDER BY u.email, t.schema_name",
            &[],
        )
        .await?;
    let mut users: Vec<UserSummary> = Vec::new();
    for row in rows {
        let email: String = row.try_get(0)?;
        if users.last().is_none_or(|u| u.email != email) {
            users.push(UserSummary {
                email,
                is_operator: row.try_get(1)?,
                memberships: Vec::new(),
            });
        }
        let (tenant, role): (Option<String>, Option<String>) = (row.try_get(2)?, row.try_get(3)?);
        if let (Some(tenant), Some(role), Some(user)) = (tenant, role, users.last_mut()) {
            user.memberships.push(Membership {
                tenant,
                role: role.parse()?,
            });
        }
    }
    Ok(users)
}

/// Makes `email` a member of `schema` with `role` (or changes the role).
pub async fn set_membership(
    db: &Db,
    email: &str,
    schema: &str,
    role: Role,
    cap: Option<&Cap>,
) -> Result<(), AuthError> {
    let email = normalize_email(email)?;
    let tx = db.shared_tx().await?;
    let user: i64 = tx
        .query_opt("SELECT id FROM public.users WHERE email = $1", &[&email])
        .await?
        .ok_or_else(|| AuthError::UnknownUser(email.clone()))?
        .try_get(0)?;
    let tenant = tenant_id(&tx, schema).await?;
    hold_seat(&tx, tenant, user, cap).await?;
    tx.execute(
        "INSERT INTO public.memberships (user_id, tenant_id, role) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, tenant_id) DO UPDATE SET role = EXCLUDED.role",
        &[&user, &tenant, &role.as_str()],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn remove_membership(db: &Db, email: &str, schema: &str) -> Result<(), AuthError> {
    let email = normalize_email(email)?;
    let client = db.shared().await?;
    let removed = client
        .execute(
            "DELETE FROM public.memberships m USING public.users u, public.tenants t \
             WHERE m.user_id = u.id AND m.tenant_id = t.id AND u.email = $1 AND t.schema_name = $2",
            &[&email, &schema],
        )
        .await?;
    if removed == 0 {
        return Err(AuthError::UnknownUser(format!("{email} in {schema}")));
    }
    Ok(())
}
