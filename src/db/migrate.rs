//! Schema migrations: the numbered SQL files of `migrations/`, embedded in the binary and
//! applied in order, each inside its own transaction and recorded in `schema_migrations`.
//!
//! A session-level advisory lock serialises migrators, so two instances starting at once do
//! not race: the second waits, then finds nothing left to apply.

use tokio_postgres::Client;

use super::DbError;

/// One embedded migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. A unit test checks this list against the `migrations/` folder.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "0001_world.sql", sql: include_str!("../../migrations/0001_world.sql") },
    Migration { version: 2, name: "0002_fortune.sql", sql: include_str!("../../migrations/0002_fortune.sql") },
    Migration { version: 3, name: "0003_users.sql", sql: include_str!("../../migrations/0003_users.sql") },
];

/// Advisory lock key: "bareapi" in ASCII, so it is unlikely to collide with another app's.
const LOCK_KEY: i64 = 0x62_61_72_65_61_70_69;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version bigint PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// Applies every pending migration; returns the names of those applied.
pub async fn run(client: &mut Client) -> Result<Vec<&'static str>, DbError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY]).await?;
    let result = apply_pending(client).await;
    // Unlock even after a failure; the lock also ends with the session.
    let unlock = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
    let applied = result?;
    unlock?;
    Ok(applied)
}

async fn apply_pending(client: &mut Client) -> Result<Vec<&'static str>, DbError> {
    client.batch_execute(CREATE_TABLE).await?;
    let done: Vec<i64> =
        client.query("SELECT version FROM schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        let tx = client.transaction().await?;
        tx.batch_execute(m.sql).await.map_err(|source| {
            // 42P07 duplicate_table, 42710 duplicate_object: made by someone else.
            let foreign = matches!(source.code().map(|c| c.code()), Some("42P07" | "42710"));
            DbError::Migration { name: m.name, source, foreign }
        })?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[&m.version, &m.name]).await?;
        tx.commit().await?;
        tracing::info!(migration = m.name, "applied migration");
        applied.push(m.name);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_the_folder_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(files, listed);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "versions are 1, 2, 3, ...");
            assert!(m.name.starts_with(&format!("{:04}_", m.version)), "{}", m.name);
        }
    }
}
