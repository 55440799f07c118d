use std::fmt::Write;

use super::{Store, StoreError};
use crate::audit::AuditEvent;

/// Rows per `INSERT` statement: 6 parameters each stays far below SQLite's limit of 32,766
/// bound parameters and PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 100;

impl Store {
    /// Inserts audit events in one transaction, many rows per statement.
    pub async fn insert_audit_events(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let mut statement = String::from(
                "INSERT INTO audit_events (tenant_id, occurred_at, event, client_id, subject, detail) VALUES ",
            );
            for index in 0..chunk.len() {
                let first = index * 6;
                let separator = if index == 0 { "" } else { ", " };
                let _ = write!(
                    statement,
                    "{separator}(${}, ${}, ${}, ${}, ${}, ${})",
                    first + 1,
                    first + 2,
                    first + 3,
                    first + 4,
                    first + 5,
                    first + 6
                );
            }
            // The statement text holds only placeholders; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(statement));
            for event in chunk {
                query = query
                    .bind(event.tenant_id.as_deref())
                    .bind(event.occurred_at)
                    .bind(event.event)
                    .bind(event.client_id.as_deref())
                    .bind(event.subject.as_deref())
                    .bind(event.detail.to_string());
            }
            query.execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        Ok(())
    }
}
