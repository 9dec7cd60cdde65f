//! Failure counters on Postgres.

use async_trait::async_trait;

use super::{PostgresStore, unavailable};
use crate::store::StoreError;
use crate::store::throttle::{FailureRecord, ThrottleKey, ThrottlePolicy, ThrottleStore};

/// One statement: a new key starts with the values bound as $7 and $8; an existing one counts on
/// from its stored row (or starts over when the row has expired). The conflicting row is locked
/// before `SET` reads it, so concurrent failures on several replicas are all counted.
const RECORD_FAILURE: &str = "INSERT INTO auth_failures AS f \
     (kind, id, failures, locked_until, expires_at) VALUES ($1, $2, 1, $7, $8) \
     ON CONFLICT (kind, id) DO UPDATE SET (failures, locked_until, expires_at) = ( \
       SELECT n, lock, GREATEST($3, lock) + $5 FROM ( \
         SELECT n, CASE WHEN n >= $4 \
           THEN $3 + LEAST($6, 1::bigint << LEAST(n - $4, 30)::int) ELSE 0 END AS lock \
         FROM (SELECT CASE WHEN $3 >= f.expires_at THEN 1 ELSE f.failures + 1 END AS n) AS counted) AS locked) \
     RETURNING failures, locked_until";

/// [`crate::store::Store::generation_and_throttle_state`] in one statement.
pub(super) async fn generation_and_state(
    pool: &sqlx::Pool<sqlx::Postgres>,
    key: &ThrottleKey,
) -> Result<(i64, Option<FailureRecord>), StoreError> {
    let (generation, failures, locked_until): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT m.generation, f.failures, f.locked_until FROM meta m \
             LEFT JOIN auth_failures f ON f.kind = $1 AND f.id = $2",
    )
    .bind(key.kind.as_str())
    .bind(&key.id)
    .fetch_one(pool)
    .await
    .map_err(unavailable)?;
    Ok((generation, failures.zip(locked_until).map(record)))
}

#[async_trait]
impl ThrottleStore for PostgresStore {
    async fn throttle_state(&self, key: &ThrottleKey) -> Result<Option<FailureRecord>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT failures, locked_until FROM auth_failures WHERE kind = $1 AND id = $2",
        )
        .bind(key.kind.as_str())
        .bind(&key.id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(row.map(record))
    }

    async fn record_failure(
        &self,
        key: &ThrottleKey,
        now: i64,
        policy: &ThrottlePolicy,
    ) -> Result<FailureRecord, StoreError> {
        let first_lock = match policy.lockout(1) {
            0 => 0,
            seconds => now + seconds,
        };
        let row: (i64, i64) = sqlx::query_as(RECORD_FAILURE)
            .bind(key.kind.as_str())
            .bind(&key.id)
            .bind(now)
            .bind(i64::from(policy.max_failures))
            .bind(policy.window_seconds)
            .bind(policy.max_lockout_seconds)
            .bind(first_lock)
            .bind(now.max(first_lock) + policy.window_seconds)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(record(row))
    }

    async fn clear_failures(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM auth_failures WHERE kind = $1 AND id = $2")
            .bind(key.kind.as_str())
            .bind(&key.id)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn prune_failures(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM auth_failures WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(done.rows_affected())
    }
}

fn record((failures, locked_until): (i64, i64)) -> FailureRecord {
    FailureRecord {
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        locked_until,
    }
}
