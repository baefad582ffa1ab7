//! `GET /openapi.json`: the OpenAPI 3.1 description of every route, kept in the repository
//! (`openapi.json`) and embedded in the binary.

use bytes::Bytes;
use http::{Response, StatusCode};

use crate::http::{APPLICATION_JSON, Body, response};

pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

pub fn openapi() -> Response<Body> {
    response(StatusCode::OK, APPLICATION_JSON, Bytes::from_static(OPENAPI_JSON.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::ROUTES;

    /// The document parses and describes exactly the routes of the table.
    #[test]
    fn the_document_describes_every_route_and_no_other() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI_JSON).expect("openapi.json parses");
        assert_eq!(doc["openapi"].as_str().unwrap(), "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(p, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| *k != "parameters")
                    .map(move |m| (m.to_uppercase(), p.clone()))
            })
            .collect();
        documented.sort();
        let mut routed: Vec<(String, String)> = ROUTES.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
        routed.sort();
        assert_eq!(documented, routed);
    }
}
