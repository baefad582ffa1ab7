//! The connection budget at start: pools that cannot fit PostgreSQL's `max_connections` are
//! refused with a message that says what to change; `--no-connection-budget-check` overrides.

mod common;

use common::Server;

#[test]
fn pools_larger_than_max_connections_are_refused_with_a_clear_message() {
    // The test cluster allows 200 connections; 2 workers × 150 would need 300.
    let (status, out) = common::run_to_exit(&["--workers", "2", "--pool-size", "150"], &common::database_url());
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("connection budget: this process may open 300 PostgreSQL connections"), "{out}");
    assert!(out.contains("max_connections 200"), "{out}");
    assert!(out.contains("--pool-size"), "{out}");
}

#[test]
fn the_check_can_be_turned_off_for_a_pooler() {
    let server = Server::start(&["--workers", "2", "--pool-size", "150", "--no-connection-budget-check"]);
    assert_eq!(server.get("/db").status, 200);
}
