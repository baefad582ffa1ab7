//! The in-memory cache of `world` rows behind `/cached-queries`, held in quick_cache (a real
//! cache library with bounded capacity and eviction, as the benchmark rules require).

use quick_cache::sync::Cache;

use crate::db::world::{self, World};

/// Shared by all workers. Sized for every row, so once filled it never evicts.
pub struct WorldCache {
    rows: Cache<i32, World>,
}

impl Default for WorldCache {
    fn default() -> Self {
        WorldCache { rows: Cache::new(world::ROWS as usize) }
    }
}

impl WorldCache {
    pub fn get(&self, id: i32) -> Option<World> {
        self.rows.get(&id)
    }

    pub fn insert(&self, row: World) {
        self.rows.insert(row.id, row);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Fills the cache with every row (at start-up).
    pub async fn fill(&self, client: &tokio_postgres::Client) -> Result<usize, crate::db::DbError> {
        world::for_each_world(client, |row| self.insert(row)).await
    }
}
