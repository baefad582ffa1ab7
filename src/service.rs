//! The hyper service: match the route, run its handler, turn errors and panics into problem
//! responses, and stamp `Server` and `Date` on every response.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response};

use crate::app::App;
use crate::error::{AppError, REQUEST_ID};
use crate::handlers;
use crate::http::{Body, stamp};
use crate::router::Match;

/// The label of requests that matched no route.
pub const UNMATCHED: &str = "<unmatched>";

/// Answers one request. Never fails: every error is already a response.
pub async fn handle<B>(app: &App, req: Request<B>) -> Result<Response<Body>, Infallible>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let mut res = match app.router.find(&parts.method, parts.uri.path()) {
        Match::Found { handler, params, template } => {
            // A panicking handler answers 500 for its own request; the connection, the worker
            // and the process carry on (release builds keep panic = "unwind" for this).
            match AssertUnwindSafe(handlers::dispatch(app, *handler, &parts, body, params)).catch_unwind().await {
                Ok(Ok(res)) => res,
                Ok(Err(e)) => e.into_response(template, parts.headers.get(REQUEST_ID)),
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "non-string panic payload".to_owned());
                    AppError::Internal(format!("handler panicked: {what}"))
                        .into_response(template, parts.headers.get(REQUEST_ID))
                }
            }
        }
        Match::MethodNotAllowed { allow, template } => {
            AppError::MethodNotAllowed { allow: allow.clone() }.into_response(template, None)
        }
        Match::NotFound => AppError::NotFound("No route matches this path.").into_response(UNMATCHED, None),
    };
    stamp(&mut res);
    Ok(res)
}
