//! The signing-key lifecycle: `upcoming -> current -> retired -> removed`.
//!
//! - A key is created `upcoming` one publish lead time before the current key has served a
//!   rotation period, or at once on demand. It is in JWKS from that moment.
//! - Once published for the lead time, it becomes `current` and the old key `retired`, in one
//!   transaction.
//! - A retired key stays published for the longest access-token lifetime plus the clock skew
//!   and the key cache time, so every token it signed expires before it disappears; then it is
//!   `removed` and its private part erased.
//!
//! Every instance runs the same steps. Conditional updates and the unique indexes on one
//! `current` and one `upcoming` key per tenant make instances racing on one database change
//! each key once, so exactly one rotation happens per period.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::sealing::MasterKeys;
use super::{SigningAlgorithm, cache_ttl, new_key_record};
use crate::audit::AuditEvent;
use crate::clock;
use crate::config::KeyTiming;
use crate::store::{KeyLifecycle, SigningKeyRecord, Store, StoreError};

/// A change the lifecycle made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyChange {
    Created { tenant_id: String, kid: String },
    Activated { tenant_id: String, kid: String },
    Removed { tenant_id: String, kid: String },
}

pub struct Rotation {
    store: Store,
    master_keys: Arc<MasterKeys>,
    timing: KeyTiming,
    access_token_lifetime: i64,
}

impl Rotation {
    pub fn new(
        store: Store,
        master_keys: Arc<MasterKeys>,
        timing: KeyTiming,
        access_token_lifetime: i64,
    ) -> Self {
        Self {
            store,
            master_keys,
            timing,
            access_token_lifetime,
        }
    }

    /// Seconds a retired key stays published.
    pub fn retention(&self) -> i64 {
        self.access_token_lifetime
            + self.timing.clock_skew
            + cache_ttl(&self.timing).as_secs() as i64
    }

    /// Applies every lifecycle step that is due at `now`, for every tenant.
    pub async fn run_once(&self, now: i64) -> Result<Vec<KeyChange>, StoreError> {
        let mut tenants: HashMap<String, Vec<KeyLifecycle>> = HashMap::new();
        for key in self.store.key_lifecycles().await? {
            tenants.entry(key.tenant_id.clone()).or_default().push(key);
        }
        let mut changes = Vec::new();
        for (tenant_id, keys) in tenants {
            self.step_tenant(&tenant_id, &keys, now, &mut changes)
                .await?;
        }
        for change in &changes {
            self.audit(change, now).await?;
        }
        Ok(changes)
    }

    async fn step_tenant(
        &self,
        tenant_id: &str,
        keys: &[KeyLifecycle],
        now: i64,
        changes: &mut Vec<KeyChange>,
    ) -> Result<(), StoreError> {
        let upcoming = keys.iter().find(|key| key.state == "upcoming");
        let current = keys.iter().find(|key| key.state == "current");
        if let Some(upcoming) = upcoming {
            // Times are whole seconds, so `<` rather than `<=`: the key was created up to a second
            // after `created_at`, and must still have been published for the full lead time.
            let published_long_enough = upcoming.created_at + self.timing.publish_lead < now;
            if published_long_enough
                && self
                    .store
                    .promote_signing_key(tenant_id, &upcoming.kid, now)
                    .await?
            {
                changes.push(KeyChange::Activated {
                    tenant_id: tenant_id.to_owned(),
                    kid: upcoming.kid.clone(),
                });
            }
        } else if let Some(current) = current {
            let activated_at = current.activated_at.unwrap_or(current.created_at);
            let due = activated_at + self.timing.rotation_period - self.timing.publish_lead <= now;
            if due && let Some(record) = self.create_upcoming(tenant_id, None, now).await? {
                changes.push(KeyChange::Created {
                    tenant_id: tenant_id.to_owned(),
                    kid: record.kid,
                });
            }
        }
        let retention = self.retention();
        for retired in keys.iter().filter(|key| key.state == "retired") {
            if retired
                .retired_at
                .is_some_and(|retired_at| retired_at + retention < now)
                && self.store.remove_signing_key(&retired.kid, now).await?
            {
                changes.push(KeyChange::Removed {
                    tenant_id: tenant_id.to_owned(),
                    kid: retired.kid.clone(),
                });
            }
        }
        Ok(())
    }

    /// Creates an upcoming key with the tenant's algorithm, or `algorithm` after making it the
    /// tenant's. Returns `None` when the tenant already has an upcoming key.
    pub async fn create_upcoming(
        &self,
        tenant_id: &str,
        algorithm: Option<SigningAlgorithm>,
        now: i64,
    ) -> Result<Option<SigningKeyRecord>, StoreError> {
        let algorithm = match algorithm {
            Some(algorithm) => {
                self.store
                    .set_tenant_signing_algorithm(tenant_id, algorithm.name())
                    .await?;
                algorithm
            }
            None => SigningAlgorithm::parse(&self.store.tenant_signing_algorithm(tenant_id).await?)
                .map_err(StoreError::Corrupt)?,
        };
        let record =
            new_key_record(algorithm, "upcoming", &self.master_keys, now).map_err(|error| {
                StoreError::Corrupt(format!("generating a signing key failed: {error}"))
            })?;
        match self.store.insert_upcoming_key(tenant_id, &record).await {
            Ok(()) => Ok(Some(record)),
            Err(StoreError::Duplicate) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn audit(&self, change: &KeyChange, now: i64) -> Result<(), StoreError> {
        let (tenant_id, kid, event) = match change {
            KeyChange::Created { tenant_id, kid } => (tenant_id, kid, "key_created"),
            KeyChange::Activated { tenant_id, kid } => (tenant_id, kid, "key_activated"),
            KeyChange::Removed { tenant_id, kid } => (tenant_id, kid, "key_removed"),
        };
        tracing::info!(tenant_id, kid, event, "signing key lifecycle");
        let mut record = AuditEvent::new(tenant_id, event).detail(json!({"kid": kid}));
        record.occurred_at = now;
        self.store.insert_audit_events(&[record]).await
    }
}

/// Runs the lifecycle on a timer: every quarter of the publish lead time, between 1 and 60
/// seconds.
pub fn spawn(rotation: Rotation) -> tokio::task::JoinHandle<()> {
    let period = Duration::from_secs((rotation.timing.publish_lead / 4).clamp(1, 60) as u64);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(error) = rotation.run_once(clock::now()).await {
                tracing::warn!(error = %error, "signing key rotation failed; retrying at the next tick");
            }
        }
    })
}
