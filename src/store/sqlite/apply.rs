//! `apply` on SQLite: the whole policy in one transaction.

use std::collections::HashMap;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use super::{resource_from, unavailable};
use crate::catalogue::Subject;
use crate::policy::{ClientKind, PolicyFile};
use crate::store::{ApplyReport, PreparedClient, StoreError, SubjectRow, plan_versions};

type Tx = Transaction<'static, Sqlite>;

/// Applies `policy`; any error rolls the whole transaction back.
pub(super) async fn apply(
    pool: &SqlitePool,
    policy: &PolicyFile,
    prepared: &[PreparedClient],
) -> Result<ApplyReport, StoreError> {
    let mut tx = pool.begin().await.map_err(unavailable)?;
    let mut report = ApplyReport::default();

    super::tokens::revoke_on_security_events(&mut tx, policy).await?;
    write_resources_and_roles(&mut tx, policy).await?;
    let client_ids = write_clients(&mut tx, policy, prepared, &mut report).await?;
    write_accounts(&mut tx, policy).await?;

    exec(&mut tx, "DELETE FROM subject_grants", &[]).await?;
    for grant in &policy.grants {
        let subject = match (&grant.account, &grant.client) {
            (Some(account), _) => Subject::Account(account.clone()),
            (None, Some(name)) => {
                let id = client_ids
                    .get(name.as_str())
                    .cloned()
                    .ok_or_else(|| StoreError::Inconsistent(format!("client {name} has no id")))?;
                Subject::Client(id)
            }
            (None, None) => continue,
        };
        exec(
            &mut tx,
            "INSERT OR IGNORE INTO subject_grants (subject_kind, subject_id, role_id) \
             VALUES (?1, ?2, ?3)",
            &[subject.kind(), subject.id(), &grant.role],
        )
        .await?;
    }

    exec(&mut tx, "DELETE FROM routes", &[]).await?;
    for (position, route) in policy.routes.iter().enumerate() {
        sqlx::query(
            "INSERT INTO routes (position, host, path, type, name) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(position as i64)
        .bind(route.host.as_deref())
        .bind(&route.path)
        .bind(&route.kind)
        .bind(route.name.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }

    report.bumped = bump_versions(&mut tx).await?;
    exec(
        &mut tx,
        "UPDATE meta SET value = ?1 WHERE key = 'policy_id'",
        &[&policy.policy_id],
    )
    .await?;
    report.generation = next_generation(&mut tx).await?;
    tx.commit().await.map_err(unavailable)?;
    Ok(report)
}

/// Runs one statement with text parameters.
async fn exec(tx: &mut Tx, sql: &str, params: &[&str]) -> Result<(), StoreError> {
    let mut query = sqlx::query(sql);
    for param in params {
        query = query.bind(*param);
    }
    query.execute(&mut **tx).await.map_err(unavailable)?;
    Ok(())
}

fn json_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    serde_json::to_string(&items.collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

async fn write_resources_and_roles(tx: &mut Tx, policy: &PolicyFile) -> Result<(), StoreError> {
    let ids = json_list(policy.resources.iter().map(|r| r.id.as_str()));
    exec(
        tx,
        "DELETE FROM resources WHERE id NOT IN (SELECT value FROM json_each(?1))",
        &[&ids],
    )
    .await?;
    for r in &policy.resources {
        exec(
            tx,
            "INSERT INTO resources (id, type, name, action, url, description) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO UPDATE SET \
             type = excluded.type, name = excluded.name, action = excluded.action, \
             url = excluded.url, description = excluded.description",
            &[&r.id, &r.kind, &r.name, &r.action, &r.url, &r.description],
        )
        .await?;
    }

    let roles = json_list(policy.roles.iter().map(|r| r.id.as_str()));
    exec(
        tx,
        "DELETE FROM roles WHERE id NOT IN (SELECT value FROM json_each(?1))",
        &[&roles],
    )
    .await?;
    exec(tx, "DELETE FROM role_resources", &[]).await?;
    for role in &policy.roles {
        exec(
            tx,
            "INSERT INTO roles (id, description) VALUES (?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET description = excluded.description",
            &[&role.id, &role.description],
        )
        .await?;
        for resource in &role.resources {
            exec(
                tx,
                "INSERT OR IGNORE INTO role_resources (role_id, resource_id) VALUES (?1, ?2)",
                &[&role.id, resource],
            )
            .await?;
        }
    }
    Ok(())
}

/// Creates or updates every declared client; returns name → id.
async fn write_clients(
    tx: &mut Tx,
    policy: &PolicyFile,
    prepared: &[PreparedClient],
    report: &mut ApplyReport,
) -> Result<HashMap<String, String>, StoreError> {
    let names = json_list(policy.clients.iter().map(|c| c.name.as_str()));
    exec(
        tx,
        "DELETE FROM clients WHERE name NOT IN (SELECT value FROM json_each(?1))",
        &[&names],
    )
    .await?;

    let mut ids = HashMap::new();
    for client in &policy.clients {
        let grant_types: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
        let grant_types = grant_types.join(" ");
        let scopes = client.scopes.join(" ");
        let redirect_uris = client.redirect_uris.join(" ");
        let disabled = i64::from(client.disabled);
        let existing: Option<(String, String)> =
            sqlx::query_as("SELECT id, kind FROM clients WHERE name = ?1")
                .bind(&client.name)
                .fetch_optional(&mut **tx)
                .await
                .map_err(unavailable)?;
        let id = match existing {
            Some((id, kind)) => {
                if kind != client.kind.as_str() {
                    return Err(StoreError::Inconsistent(format!(
                        "client {} cannot change kind; remove it and apply again to re-create it",
                        client.name
                    )));
                }
                sqlx::query(
                    "UPDATE clients SET grant_types = ?1, scopes = ?2, disabled = ?3, \
                     redirect_uris = ?5 WHERE id = ?4",
                )
                .bind(&grant_types)
                .bind(&scopes)
                .bind(disabled)
                .bind(&id)
                .bind(&redirect_uris)
                .execute(&mut **tx)
                .await
                .map_err(unavailable)?;
                id
            }
            None => {
                let fresh = prepared
                    .iter()
                    .find(|p| p.name == client.name)
                    .ok_or_else(|| {
                        StoreError::Inconsistent(format!(
                            "no credentials for new client {}",
                            client.name
                        ))
                    })?;
                let secret_hash = match client.kind {
                    ClientKind::Confidential => fresh.secret_hash.clone(),
                    ClientKind::Public => None,
                };
                sqlx::query(
                    "INSERT INTO clients (id, name, kind, secret_hash, grant_types, scopes, disabled, \
                     redirect_uris) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .bind(&fresh.id)
                .bind(&client.name)
                .bind(client.kind.as_str())
                .bind(secret_hash)
                .bind(&grant_types)
                .bind(&scopes)
                .bind(disabled)
                .bind(&redirect_uris)
                .execute(&mut **tx)
                .await
                .map_err(unavailable)?;
                let mut created = fresh.clone();
                if client.kind == ClientKind::Public {
                    created.secret = None;
                }
                report.created_clients.push(created);
                fresh.id.clone()
            }
        };
        ids.insert(client.name.clone(), id);
    }
    Ok(ids)
}

async fn write_accounts(tx: &mut Tx, policy: &PolicyFile) -> Result<(), StoreError> {
    let names = json_list(policy.accounts.iter().map(|a| a.username.as_str()));
    // A removed account's version moves on now, so that re-creating it later never revives
    // the tokens minted before its removal.
    exec(
        tx,
        "UPDATE permission_versions SET version = version + 1, fingerprint = X'' \
         WHERE subject_kind = 'account' AND subject_id IN (SELECT username FROM accounts \
         WHERE username NOT IN (SELECT value FROM json_each(?1)))",
        &[&names],
    )
    .await?;
    exec(
        tx,
        "DELETE FROM accounts WHERE username NOT IN (SELECT value FROM json_each(?1))",
        &[&names],
    )
    .await?;
    for account in &policy.accounts {
        sqlx::query(
            "INSERT INTO accounts (username, password_hash, disabled) VALUES (?1, ?2, ?3) \
             ON CONFLICT (username) DO UPDATE SET disabled = excluded.disabled, \
             password_hash = COALESCE(excluded.password_hash, accounts.password_hash)",
        )
        .bind(&account.username)
        .bind(account.password_hash.as_deref())
        .bind(i64::from(account.disabled))
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}

/// Recomputes every live subject's fingerprint and bumps the version where it changed.
pub(super) async fn bump_versions(tx: &mut Tx) -> Result<Vec<Subject>, StoreError> {
    let granted = sqlx::query(
        "SELECT DISTINCT g.subject_kind, g.subject_id, r.id, r.type, r.name, r.action, r.url, \
         r.description FROM subject_grants g JOIN role_resources rr ON rr.role_id = g.role_id \
         JOIN resources r ON r.id = rr.resource_id",
    )
    .try_map(|row: SqliteRow| {
        Ok((
            row.try_get::<String, _>("subject_kind")?,
            row.try_get::<String, _>("subject_id")?,
            resource_from(&row)?,
        ))
    })
    .fetch_all(&mut **tx)
    .await
    .map_err(unavailable)?;

    let subjects: Vec<(String, String, i64, Vec<u8>, String)> = sqlx::query_as(
        "SELECT 'account', username, disabled, CAST(COALESCE(password_hash, '') AS BLOB), '' \
         FROM accounts UNION ALL \
         SELECT 'client', id, disabled, COALESCE(secret_hash, X''), \
         kind || '|' || grant_types || '|' || scopes FROM clients",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(unavailable)?;
    let current: HashMap<(String, String), (i64, Vec<u8>)> =
        sqlx::query_as::<_, (String, String, i64, Vec<u8>)>(
            "SELECT subject_kind, subject_id, version, fingerprint FROM permission_versions",
        )
        .fetch_all(&mut **tx)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|(kind, id, version, print)| ((kind, id), (version, print)))
        .collect();

    let subjects = subjects
        .into_iter()
        .map(|(kind, id, disabled, credential, settings)| SubjectRow {
            kind,
            id,
            disabled: disabled != 0,
            credential,
            settings,
        })
        .collect();
    let mut bumped = Vec::new();
    for write in plan_versions(granted, subjects, &current) {
        let sql = if write.new {
            "INSERT INTO permission_versions (subject_kind, subject_id, version, fingerprint) \
                 VALUES (?3, ?4, ?1, ?2)"
        } else {
            "UPDATE permission_versions SET version = ?1, fingerprint = ?2 \
                 WHERE subject_kind = ?3 AND subject_id = ?4"
        };
        sqlx::query(sql)
            .bind(write.version)
            .bind(&write.fingerprint)
            .bind(&write.kind)
            .bind(&write.id)
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
        if !write.new {
            bumped.push(super::subject_from(&write.kind, write.id)?);
        }
    }
    Ok(bumped)
}

pub(super) async fn next_generation(tx: &mut Tx) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) \
         WHERE key = 'generation' RETURNING CAST(value AS INTEGER)",
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(unavailable)
}
