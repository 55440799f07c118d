use super::script::{BatchTransaction, Param};
use super::{Store, StoreError};
use crate::audit::AuditEvent;

/// Rows per `INSERT` statement. On SQLite the numbers of a transaction's parameters run on
/// across its statements, and a batch of 500 events with 6 parameters each stays far below
/// SQLite's limit of 32,766. A statement of 600 parameters stays below PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 100;

impl Store {
    /// Inserts audit events in one transaction, many rows per statement.
    pub async fn insert_audit_events(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let transaction = BatchTransaction::acquire(&self.writer, self.backend).await?;
        let mut script = transaction.script();
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            script
                .statement(
                    "INSERT INTO audit_events (tenant_id, occurred_at, event, client_id, subject, \
                     detail) VALUES ",
                )
                .rows(chunk.iter().map(|event| {
                    vec![
                        Param::from(&event.tenant_id),
                        Param::from(event.occurred_at),
                        Param::from(event.event),
                        Param::from(&event.client_id),
                        Param::from(&event.subject),
                        Param::Text(event.detail.to_string()),
                    ]
                }));
        }
        transaction.commit(script).await?;
        Ok(())
    }
}
