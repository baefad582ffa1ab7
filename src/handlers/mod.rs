//! The route table and the dispatch from a matched route to its handler. One module per
//! resource: [`bench`] (TechEmpower suite), [`users`], [`sessions`], [`docs`] (OpenAPI).

pub mod bench;
pub mod docs;
pub mod sessions;
pub mod users;

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response};

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
    CreateUser,
    ListUsers,
    GetUser,
    PatchUser,
    DeleteUser,
    CreateSession,
    DeleteCurrentSession,
    OpenApi,
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
    (Method::POST, "/api/users", Endpoint::CreateUser),
    (Method::GET, "/api/users", Endpoint::ListUsers),
    (Method::GET, "/api/users/{id}", Endpoint::GetUser),
    (Method::PATCH, "/api/users/{id}", Endpoint::PatchUser),
    (Method::DELETE, "/api/users/{id}", Endpoint::DeleteUser),
    (Method::POST, "/api/sessions", Endpoint::CreateSession),
    (Method::DELETE, "/api/sessions/current", Endpoint::DeleteCurrentSession),
    (Method::GET, "/openapi.json", Endpoint::OpenApi),
];

/// Runs the handler of `endpoint`.
pub async fn dispatch<B>(
    app: &App,
    endpoint: Endpoint,
    parts: &Parts,
    body: B,
    params: Params<'_>,
) -> Result<Response<Body>, AppError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let query = parts.uri.query();
    match endpoint {
        Endpoint::Plaintext => Ok(bench::plaintext()),
        Endpoint::Json => bench::json(),
        Endpoint::Db => bench::db(app).await,
        Endpoint::Queries => bench::queries(app, query).await,
        Endpoint::Fortunes => bench::fortunes(app).await,
        Endpoint::Updates => bench::updates(app, query).await,
        Endpoint::CachedQueries => bench::cached_queries(app, query).await,
        Endpoint::CreateUser => users::create(app, parts, body).await,
        Endpoint::ListUsers => users::list(app, parts).await,
        Endpoint::GetUser => users::get(app, parts, params).await,
        Endpoint::PatchUser => users::patch(app, parts, body, params).await,
        Endpoint::DeleteUser => users::delete(app, parts, params).await,
        Endpoint::CreateSession => sessions::create(app, parts, body).await,
        Endpoint::DeleteCurrentSession => sessions::delete_current(app, parts).await,
        Endpoint::OpenApi => Ok(docs::openapi()),
    }
}
