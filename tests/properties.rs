//! Property tests: arbitrary paths, query strings, headers and JSON bodies fed to the router and
//! the parsers never panic, and what they accept obeys their rules.

use bareapi::http::compression::accepts_gzip;
use bareapi::http::json_in::{Fields, parse_object};
use bareapi::http::query::{param, query_count};
use bareapi::router::{Match, Router};
use bareapi::routes::{self, Endpoint};
use bareapi::validation;
use http::{HeaderValue, Method};
use proptest::prelude::*;

fn router() -> Router<Endpoint> {
    routes::router().expect("the route table builds")
}

fn methods() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::HEAD),
        Just(Method::POST),
        Just(Method::PATCH),
        Just(Method::DELETE),
        "[A-Z]{1,10}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Any path and method: the router answers without panicking, and a match's template has
    /// as many segments as the path.
    #[test]
    fn the_router_never_panics(method in methods(), path in "(/[a-zA-Z0-9{}%._~-]{0,12}){0,6}/?") {
        let r = router();
        match r.find(&method, &path) {
            Match::Found { template, params, route, .. } => {
                prop_assert_eq!(template.split('/').count(), path.split('/').count());
                prop_assert_eq!(r.templates()[route], template);
                prop_assert!(params.len() <= bareapi::router::MAX_PARAMS);
            }
            Match::MethodNotAllowed { allow, .. } => prop_assert!(!allow.is_empty()),
            Match::NotFound => {}
        }
    }

    /// Known routes with arbitrary ids match their template and capture the id verbatim.
    #[test]
    fn user_ids_are_captured_verbatim(id in "[^/?#]{1,40}") {
        let r = router();
        let path = format!("/api/users/{id}");
        match r.find(&Method::GET, &path) {
            Match::Found { template, params, .. } => {
                prop_assert_eq!(template, "/api/users/{id}");
                prop_assert_eq!(params.get("id"), Some(id.as_str()));
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    /// Query parsing never panics and the count rule always lands in 1..=500.
    #[test]
    fn query_counts_stay_in_range(query in ".{0,200}") {
        let n = query_count(param(Some(&query), "queries"));
        prop_assert!((1..=500).contains(&n));
    }

    /// Numeric counts are clamped exactly.
    #[test]
    fn numeric_counts_are_clamped(n in any::<i64>()) {
        let want = n.clamp(1, 500) as usize;
        prop_assert_eq!(query_count(Some(&n.to_string())), want);
    }

    /// Arbitrary bytes as a JSON body: parsing and field reading never panic.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut buf = body;
        if let Ok(obj) = parse_object(&mut buf) {
            let mut f = Fields::new(&obj, &["email", "password", "name"]);
            let email = f.string("email");
            f.check("email", email, validation::email);
            let _ = f.opt_string("name");
            let _ = f.finish();
        }
    }

    /// JSON-shaped bodies with arbitrary string values: never a panic, and an accepted email
    /// is lower-case, at most 254 bytes and has one '@'.
    #[test]
    fn json_objects_with_arbitrary_strings(email in ".{0,300}", name in ".{0,150}") {
        let body = serde_json::json!({"email": email, "name": name}).to_string();
        let mut buf = body.into_bytes();
        let obj = parse_object(&mut buf).expect("serde_json output parses");
        let mut f = Fields::new(&obj, &["email", "name"]);
        let e = f.string("email");
        if let Some(ok) = f.check("email", e, validation::email) {
            prop_assert!(ok.len() <= 254);
            prop_assert_eq!(ok.matches('@').count(), 1);
            prop_assert_eq!(ok.to_lowercase(), ok.clone());
        }
        let n = f.opt_string("name");
        f.check("name", n, validation::name);
    }

    /// Arbitrary Accept-Encoding values never panic.
    #[test]
    fn accept_encoding_never_panics(value in "[ -~]{0,100}") {
        if let Ok(v) = HeaderValue::from_str(&value) {
            let _ = accepts_gzip(Some(&v));
        }
    }
}
