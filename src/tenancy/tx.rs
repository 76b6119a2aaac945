//! `TenantTx`: the only door to tenant data. A transaction whose first
//! statement points `search_path` at the tenant's schema alone, with
//! `SET LOCAL`, so it ends with the transaction (commit, rollback, or a
//! connection returned to the pool mid-way) and never leaks into the next
//! request. Shared tables are always written `public.x`.

use std::ops::Deref;

use tokio_postgres::{Client, Transaction};

use crate::tenancy::SchemaName;

pub struct TenantTx<'a> {
    tx: Transaction<'a>,
    schema: SchemaName,
}

impl<'a> TenantTx<'a> {
    pub async fn begin(
        client: &'a mut Client,
        schema: &SchemaName,
    ) -> Result<Self, tokio_postgres::Error> {
        let tx = client.transaction().await?;
        Self::enter(tx, schema).await
    }

    /// Turns an open transaction into the tenant's (used when provisioning
    /// writes public rows and the new schema in one transaction).
    pub async fn enter(
        tx: Transaction<'a>,
        schema: &SchemaName,
    ) -> Result<Self, tokio_postgres::Error> {
        // SET LOCAL takes no bind parameter; the name is a checked, quoted identifier.
        tx.batch_execute(&format!("SET LOCAL search_path TO {}", schema.quoted()))
            .await?;
        Ok(Self {
            tx,
            schema: schema.clone(),
        })
    }

    pub fn schema(&self) -> &SchemaName {
        &self.schema
    }

    pub async fn commit(self) -> Result<(), tokio_postgres::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), tokio_postgres::Error> {
        self.tx.rollback().await
    }

    /// A savepoint inside the tenant transaction. `SET LOCAL` belongs to the
    /// outer transaction, so rolling the savepoint back keeps the schema.
    pub async fn savepoint(
        &mut self,
        name: &str,
    ) -> Result<Transaction<'_>, tokio_postgres::Error> {
        self.tx.savepoint(name).await
    }
}

impl<'a> Deref for TenantTx<'a> {
    type Target = Transaction<'a>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}
