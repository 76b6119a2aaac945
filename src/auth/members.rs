//! A tenant's members as its owners manage them: list, add an existing
//! user as an agent or an owner, change a role, remove. A tenant always
//! keeps one owner at least: removing or demoting the last is refused.
//! Everything is keyed by the tenant's id (no join with `public.tenants`).

use serde::Serialize;

use crate::auth::AuthError;
use crate::auth::users::{Role, hold_seat, normalize_email};
use crate::billing::Cap;
use crate::db::{Db, Statements};

/// Members listed at most: a tenant is a business's staff, not a crowd.
pub const MAX_MEMBERS: i64 = 1000;

/// One member of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MemberSummary {
    pub email: String,
    pub role: Role,
}

/// The tenant's members, owners first, then by email.
pub async fn list(db: &Db, tenant_id: i64) -> Result<Vec<MemberSummary>, AuthError> {
    let client = db.shared().await?;
    let rows = client
        .query(
            "SELECT u.email, m.role FROM public.memberships m \
             JOIN public.users u ON u.id = m.user_id WHERE m.tenant_id = $1 \
             ORDER BY m.role = 'owner' DESC, u.email LIMIT $2",
            &[&tenant_id, &MAX_MEMBERS],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(MemberSummary {
                email: row.try_get(0)?,
                role: row.try_get::<_, String>(1)?.parse()?,
            })
        })
        .collect()
}

async fn user_id(client: &impl Statements, email: &str) -> Result<i64, AuthError> {
    Ok(client
        .query_opt("SELECT id FROM public.users WHERE email = $1", &[&email])
        .await?
        .ok_or_else(|| AuthError::UnknownUser(email.to_string()))?
        .try_get(0)?)
}

/// Makes the user of `email` (who has an account already) a member,
/// unless the plan's `cap` is reached.
pub async fn add(
    db: &Db,
    tenant_id: i64,
    email: &str,
    role: Role,
    cap: Option<&Cap>,
) -> Result<MemberSummary, AuthError> {
    let email = normalize_email(email)?;
    let tx = db.shared_tx().await?;
    let user = user_id(&tx, &email).await?;
    hold_seat(&tx, tenant_id, user, cap).await?;
    let added = tx
        .execute(
            "INSERT INTO public.memberships (user_id, tenant_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, tenant_id) DO NOTHING",
            &[&user, &tenant_id, &role.as_str()],
        )
        .await?;
    if added == 0 {
        return Err(AuthError::AlreadyMember(email));
    }
    tx.commit().await?;
    Ok(MemberSummary { email, role })
}

/// What to do with one member.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    Role(Role),
    Remove,
}

/// Changes a member's role, or removes them; refused when that would
/// leave the tenant without an owner.
pub async fn change(db: &Db, tenant_id: i64, email: &str, change: Change) -> Result<(), AuthError> {
    let email = normalize_email(email)?;
    let tx = db.shared_tx().await?;
    // The owners are locked first, so two owners demoting each other at
    // once cannot both pass the check.
    let owners: Vec<i64> = tx
        .query(
            "SELECT user_id FROM public.memberships WHERE tenant_id = $1 AND role = 'owner' \
             ORDER BY user_id FOR UPDATE",
            &[&tenant_id],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let user = user_id(&tx, &email).await?;
    let role: Option<String> = tx
        .query_opt(
            "SELECT role FROM public.memberships WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE",
            &[&tenant_id, &user],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    if role.is_none() {
        return Err(AuthError::UnknownUser(format!(
            "{email} among this bot's members"
        )));
    }
    let stays_owner = matches!(change, Change::Role(Role::Owner));
    if owners == [user] && !stays_owner {
        return Err(AuthError::LastOwner);
    }
    match change {
        Change::Role(role) => {
            tx.execute(
                "UPDATE public.memberships SET role = $3 WHERE tenant_id = $1 AND user_id = $2",
                &[&tenant_id, &user, &role.as_str()],
            )
            .await?
        }
        Change::Remove => {
            tx.execute(
                "DELETE FROM public.memberships WHERE tenant_id = $1 AND user_id = $2",
                &[&tenant_id, &user],
            )
            .await?
        }
    };
    tx.commit().await?;
    Ok(())
}
