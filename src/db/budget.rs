//! The connection budget: how many PostgreSQL connections this process may open (workers ×
//! pool size) against how many the server accepts (`max_connections` less the reserved
//! slots). Checked once at start, so a process that could exhaust the server is refused with a
//! clear message instead of failing requests later, one pool at a time.

/// What the server says about its connection slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSlots {
    pub max_connections: i64,
    /// `superuser_reserved_connections` plus `reserved_connections` (PostgreSQL 16+).
    pub reserved: i64,
    /// Superusers may also use the reserved slots.
    pub superuser: bool,
    /// Client connections open now, this process's start-up connection included.
    pub in_use: i64,
}

impl ServerSlots {
    /// Slots this role may use.
    pub fn available(&self) -> i64 {
        if self.superuser { self.max_connections } else { self.max_connections - self.reserved }
    }
}

/// Reads the server's slots over `client` (a plain query, so it works through PgBouncer too).
pub async fn read(client: &tokio_postgres::Client) -> Result<ServerSlots, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT current_setting('max_connections')::int8, \
                    current_setting('superuser_reserved_connections')::int8 \
                      + coalesce(current_setting('reserved_connections', true), '0')::int8, \
                    coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false), \
                    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
            &[],
        )
        .await?;
    Ok(ServerSlots { max_connections: row.get(0), reserved: row.get(1), superuser: row.get(2), in_use: row.get(3) })
}

/// What this process may open: `workers` pools of `pool_size`.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    pub workers: usize,
    pub pool_size: usize,
}

impl Need {
    pub fn total(&self) -> i64 {
        i64::try_from(self.workers.saturating_mul(self.pool_size)).unwrap_or(i64::MAX)
    }
}

/// `Err` (the refusal) when this process alone could use more connections than the server
/// accepts; `Ok(Some(warning))` when it fits alone but not beside the connections already open
/// (other instances, or the old process during a restart); `Ok(None)` when it fits.
pub fn check(need: Need, slots: ServerSlots) -> Result<Option<String>, String> {
    let total = need.total();
    let available = slots.available();
    let how = if slots.superuser {
        format!("max_connections {}", slots.max_connections)
    } else {
        format!("max_connections {} less {} reserved", slots.max_connections, slots.reserved)
    };
    if total > available {
        return Err(format!(
            "connection budget: this process may open {total} PostgreSQL connections ({} workers × \
             pool size {}), but the server accepts {available} ({how}). Lower --pool-size or \
             --workers, raise max_connections, or put a pooler in front and pass \
             --no-connection-budget-check (README: Connection budget).",
            need.workers, need.pool_size
        ));
    }
    // The start-up connection counted in `in_use` is this process's own.
    let others = (slots.in_use - 1).max(0);
    if others + total > available {
        return Ok(Some(format!(
            "connection budget: {others} connections are already open on the server; with this \
             process's up to {total} it may exceed the {available} it accepts ({how}) under load"
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(max: i64, reserved: i64, superuser: bool, in_use: i64) -> ServerSlots {
        ServerSlots { max_connections: max, reserved, superuser, in_use }
    }

    #[test]
    fn fits_when_the_pools_fit_beside_what_is_open() {
        assert_eq!(check(Need { workers: 4, pool_size: 8 }, slots(100, 3, false, 10)), Ok(None));
    }

    #[test]
    fn refuses_when_the_pools_alone_exceed_the_server() {
        let err = check(Need { workers: 16, pool_size: 8 }, slots(100, 3, false, 1)).unwrap_err();
        assert!(err.contains("may open 128"), "{err}");
        assert!(err.contains("accepts 97 (max_connections 100 less 3 reserved)"), "{err}");
        assert!(err.contains("--pool-size"), "{err}");
    }

    #[test]
    fn the_reserved_slots_count_for_superusers_only() {
        assert_eq!(check(Need { workers: 1, pool_size: 99 }, slots(100, 3, true, 1)), Ok(None));
        assert!(check(Need { workers: 1, pool_size: 99 }, slots(100, 3, false, 1)).is_err());
    }

    #[test]
    fn warns_when_other_connections_leave_too_little_room() {
        let warning = check(Need { workers: 2, pool_size: 8 }, slots(100, 3, false, 90)).unwrap().unwrap();
        assert!(warning.contains("89 connections are already open"), "{warning}");
    }

    #[test]
    fn huge_settings_do_not_overflow() {
        assert!(check(Need { workers: usize::MAX, pool_size: usize::MAX }, slots(100, 3, false, 1)).is_err());
    }
}
