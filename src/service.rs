//! The hyper service: match the route, run its handler, turn errors and panics into problem
//! responses, and stamp `Server` and `Date` on every response.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use http::{Request, Response};

use crate::app::App;
use crate::error::AppError;
use crate::handlers;
use crate::http::{Body, stamp};
use crate::router::Match;

/// The label of requests that matched no route.
pub const UNMATCHED: &str = "<unmatched>";

/// Answers one request. Never fails: every error is already a response.
pub async fn handle<B>(app: &App, req: Request<B>) -> Result<Response<Body>, Infallible> {
    let mut res = route(app, &req).await;
    stamp(&mut res);
    Ok(res)
}

async fn route<B>(app: &App, req: &Request<B>) -> Response<Body> {
    match app.router.find(req.method(), req.uri().path()) {
        Match::Found { handler, params, template } => {
            // A panicking handler answers 500 for its own request; the connection, the worker
            // and the process carry on (release builds keep panic = "unwind" for this).
            match AssertUnwindSafe(handlers::dispatch(app, *handler, req, params)).catch_unwind().await {
                Ok(Ok(res)) => res,
                Ok(Err(e)) => e.into_response(template),
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "non-string panic payload".to_owned());
                    AppError::Internal(format!("handler panicked: {what}")).into_response(template)
                }
            }
        }
        Match::MethodNotAllowed { allow, template } => {
            AppError::MethodNotAllowed { allow: allow.clone() }.into_response(template)
        }
        Match::NotFound => AppError::NotFound.into_response(UNMATCHED),
    }
}
