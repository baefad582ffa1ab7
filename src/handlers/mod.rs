//! The route table and the dispatch from a matched route to its handler. One module per
//! resource: [`bench`] is the TechEmpower suite.

pub mod bench;

use http::{Method, Request, Response};

use crate::app::App;
use crate::error::AppError;
use crate::http::Body;
use crate::router::Params;

/// Every handler the router can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Plaintext,
    Json,
    Db,
    Queries,
    Fortunes,
    Updates,
    CachedQueries,
}

/// The route table: declared once, here. `HEAD` is served for every `GET` route.
pub const ROUTES: &[(Method, &str, Endpoint)] = &[
    (Method::GET, "/plaintext", Endpoint::Plaintext),
    (Method::GET, "/json", Endpoint::Json),
    (Method::GET, "/db", Endpoint::Db),
    (Method::GET, "/queries", Endpoint::Queries),
    (Method::GET, "/fortunes", Endpoint::Fortunes),
    (Method::GET, "/updates", Endpoint::Updates),
    (Method::GET, "/cached-queries", Endpoint::CachedQueries),
];

/// Runs the handler of `endpoint`.
pub async fn dispatch<B>(
    app: &App,
    endpoint: Endpoint,
    req: &Request<B>,
    _params: Params<'_>,
) -> Result<Response<Body>, AppError> {
    let query = req.uri().query();
    match endpoint {
        Endpoint::Plaintext => Ok(bench::plaintext()),
        Endpoint::Json => bench::json(),
        Endpoint::Db => bench::db(app).await,
        Endpoint::Queries => bench::queries(app, query).await,
        Endpoint::Fortunes => bench::fortunes(app).await,
        Endpoint::Updates => bench::updates(app, query).await,
        Endpoint::CachedQueries => bench::cached_queries(app, query).await,
    }
}
