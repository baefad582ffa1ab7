//! schemathesis (from PyPI, installed by scripts/test.sh) drives the running server from the
//! OpenAPI document it serves, and fails on any server error or any answer the document does
//! not describe (status, content type, headers, body schema).

mod common;

use std::process::Command;

use common::Server;
use common::users::{create_user, token_for, unique_email};

/// Seconds of generated traffic; `SCHEMATHESIS_MAX_TIME` overrides.
const DEFAULT_MAX_TIME: &str = "45";

/// Every operation except the two DELETEs, which would revoke the test's own token or account
/// midway (they are covered by tests/users_api.rs), conforms to the document.
#[test]
fn the_api_conforms_to_its_openapi_document() {
    let st = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_owned());
    let version = Command::new(&st).arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "schemathesis not runnable as {st:?}: run the tests through scripts/test.sh, which installs it"
    );
    let server = Server::start(&[]);
    let mut conn = server.connect();
    let email = unique_email("schemathesis");
    create_user(&mut conn, &email);
    let token = token_for(&mut conn, &email);
    let max_time = std::env::var("SCHEMATHESIS_MAX_TIME").unwrap_or_else(|_| DEFAULT_MAX_TIME.to_owned());
    let out = Command::new(&st)
        .args(["run", &format!("http://{}/openapi.json", server.addr)])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
        ])
        .args(["--exclude-method", "DELETE", "--max-time", &max_time, "--workers", "1"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis found problems:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("passed"), "{stdout}");
}
