//! Property tests: paths, query strings, emails, headers and JSON bodies fed to the router and
//! the parsers never panic, and what they accept obeys their rules.
//!
//! Inputs drawn at random almost never reach the accepting paths (a random string practically
//! never spells a route, contains `queries=` or forms an email), so the generators here mix
//! valid inputs, near misses made from valid ones, and arbitrary ones, and each test counts the
//! paths its cases took and fails when a path it makes claims about was not taken often enough.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;

use bareapi::http::compression::accepts_gzip;
use bareapi::http::json_in::{Fields, parse_object};
use bareapi::http::query::{param, query_count};
use bareapi::router::{Match, Router};
use bareapi::routes::{self, Endpoint};
use bareapi::validation;
use http::{HeaderValue, Method};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

fn router() -> Router<Endpoint> {
    routes::router(routes::MetricsOn::PublicPort).expect("the route table builds")
}

/// Runs `check` on `cases` inputs from `strategy` (panicking with proptest's shrunk input when
/// one fails); how many cases took each path, as named by `check`.
fn run<S>(
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<&'static str, TestCaseError>,
) -> BTreeMap<&'static str, u32>
where
    S: Strategy,
    S::Value: Debug,
{
    let taken = RefCell::new(BTreeMap::new());
    let mut runner = TestRunner::new(ProptestConfig::with_cases(cases));
    let result = runner.run(&strategy, |input| {
        let path = check(input)?;
        *taken.borrow_mut().entry(path).or_insert(0) += 1;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let taken = taken.into_inner();
    eprintln!("paths taken: {taken:?}");
    taken
}

/// Asserts that at least `percent` % of all cases took `path`.
fn assert_share(taken: &BTreeMap<&'static str, u32>, path: &str, percent: u32) {
    let total: u32 = taken.values().sum();
    let n = taken.get(path).copied().unwrap_or(0);
    assert!(
        n * 100 >= total * percent,
        "only {n} of {total} cases took the path {path:?} (want {percent}%): {taken:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The router.

fn methods() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::HEAD),
        Just(Method::POST),
        Just(Method::PATCH),
        Just(Method::DELETE),
        Just(Method::PUT),
        "[A-Z]{1,10}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

fn is_param(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

/// `template` with its parameters replaced by `values`, in order.
fn fill(template: &str, values: &[String]) -> String {
    let mut values = values.iter();
    template
        .split('/')
        .map(|s| if is_param(s) { values.next().unwrap().as_str() } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// A near miss of a path that matches a route: the same path a little changed, which may or
/// may not match another route (the model below decides, not the generator).
fn mutate(path: &str, how: u8, extra: &str) -> String {
    match how % 8 {
        0 => format!("{path}/"),
        1 => format!("{path}/{extra}"),
        2 => path.rsplit_once('/').map_or(String::new(), |(head, _)| head.to_owned()),
        3 => path.to_ascii_uppercase(),
        4 => path.replacen('/', "//", 2),
        5 => format!("/{extra}{path}"),
        6 => path.trim_start_matches('/').to_owned(),
        _ => format!("{path}{extra}"),
    }
}

/// Request lines: paths of the route table with their parameters filled in (mostly with the
/// route's own method), near misses of those, and arbitrary paths.
fn request_lines(table: Vec<(Method, &'static str)>) -> impl Strategy<Value = (Method, String)> {
    let param_value = prop_oneof![3 => "[1-9][0-9]{0,6}", 1 => "[^/?#]{1,12}"];
    let table_len = table.len();
    let on_route = (0..table_len, proptest::collection::vec(param_value, 4)).prop_map(move |(i, values)| {
        let (method, template) = &table[i];
        (method.clone(), fill(template, &values))
    });
    let on_route_any_method = (on_route.clone(), methods()).prop_map(|((_, path), method)| (method, path));
    let near_miss = (on_route.clone(), methods(), any::<u8>(), "[a-z0-9{}%._~-]{1,6}").prop_map(
        |((route_method, path), method, how, extra)| {
            let method = if how % 2 == 0 { route_method } else { method };
            (method, mutate(&path, how / 2, &extra))
        },
    );
    let arbitrary = (methods(), "(/[a-zA-Z0-9{}%._~-]{0,12}){0,6}/?");
    prop_oneof![4 => on_route, 2 => on_route_any_method, 3 => near_miss, 2 => arbitrary]
}

/// The model: the parameters `template` captures from `path`, or None when it does not match.
fn captures<'p>(template: &str, path: &'p str) -> Option<Vec<(String, &'p str)>> {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    if t.len() != p.len() {
        return None;
    }
    let mut params = Vec::new();
    for (ts, ps) in t.iter().zip(&p) {
        if is_param(ts) {
            if ps.is_empty() {
                return None;
            }
            params.push((ts[1..ts.len() - 1].to_owned(), *ps));
        } else if ts != ps {
            return None;
        }
    }
    Some(params)
}

/// Any method and path: the router answers exactly as the route table says. The path's
/// template is the first one (static templates before those with parameters) whose every
/// static segment equals the path's and every parameter captures a non-empty segment; the
/// route's handler answers its method, `HEAD` falls back to `GET`, any other method is 405
/// with `Allow` listing the template's methods; no template, 404.
#[test]
fn the_router_answers_as_the_route_table_says() {
    let r = router();
    let table: Vec<(Method, &'static str)> = r.routes().map(|(m, t)| (m.clone(), t)).collect();
    let taken = run(3_000, request_lines(table.clone()), |(method, path)| {
        let template = table.iter().map(|(_, t)| *t).find(|t| captures(t, &path).is_some());
        let allowed: Vec<&Method> = table.iter().filter(|(_, t)| Some(*t) == template).map(|(m, _)| m).collect();
        let serves = |m: &Method| allowed.contains(&m);
        let effective = if !serves(&method) && method == Method::HEAD { Method::GET } else { method.clone() };
        match r.find(&method, &path) {
            Match::Found { handler, params, template: found, route } => {
                prop_assert_eq!(Some(found), template, "{} {}", method, path);
                prop_assert!(serves(&effective), "{} {} found though {:?} serves {:?}", method, path, found, allowed);
                prop_assert_eq!(r.templates()[route], found);
                let want = captures(found, &path).unwrap();
                prop_assert_eq!(params.len(), want.len());
                for (name, value) in &want {
                    prop_assert_eq!(params.get(name), Some(*value), "{} {}", method, path);
                }
                if let Some((_, _, endpoint)) = routes::ROUTES.iter().find(|(m, t, _)| *m == effective && *t == found) {
                    prop_assert_eq!(handler, endpoint, "{} {}", method, path);
                }
                Ok("found")
            }
            Match::MethodNotAllowed { allow, template: found, route } => {
                prop_assert_eq!(Some(found), template, "{} {}", method, path);
                prop_assert!(!serves(&effective), "{} {}: 405 though {:?} serves it", method, path, found);
                prop_assert_eq!(r.templates()[route], found);
                let mut listed: Vec<&str> = allow.to_str().unwrap().split(", ").collect();
                let mut want: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
                if want.contains(&"GET") && !want.contains(&"HEAD") {
                    want.push("HEAD");
                }
                listed.sort_unstable();
                want.sort_unstable();
                prop_assert_eq!(listed, want, "Allow for {}", found);
                Ok("method not allowed")
            }
            Match::NotFound => {
                prop_assert_eq!(template, None, "{} {} not found", method, path);
                Ok("not found")
            }
        }
    });
    assert_share(&taken, "found", 25);
    assert_share(&taken, "method not allowed", 5);
    assert_share(&taken, "not found", 15);
}

// ---------------------------------------------------------------------------------------------
// Query counts.

/// A `queries` value and the count it must give.
fn count_values() -> impl Strategy<Value = (String, usize)> {
    prop_oneof![
        4 => (1..=500usize).prop_map(|n| (n.to_string(), n)),
        1 => (1..=500usize).prop_map(|n| (format!("+{n}"), n)),
        1 => ("0{1,3}", 1..=500usize).prop_map(|(zeros, n)| (format!("{zeros}{n}"), n)),
        1 => (501..=u64::MAX).prop_map(|n| (n.to_string(), 500)),
        1 => "[1-9][0-9]{20,40}".prop_map(|n| (n, 500)),
        1 => "0{1,3}".prop_map(|z| (z, 1)),
        1 => "-[0-9]{1,25}".prop_map(|n| (n, 1)),
        2 => prop_oneof![
            Just(String::new()),
            Just("+".to_owned()),
            Just("-".to_owned()),
            Just("++5".to_owned()),
            Just("1.5".to_owned()),
            Just(" 5".to_owned()),
            Just("5 ".to_owned()),
            Just("0x10".to_owned()),
            Just("5=6".to_owned()),
            "[a-z]{1,5}",
            "[0-9]{1,3}[a-z.%]{1,3}",
        ]
        .prop_map(|v| (v, 1)),
    ]
}

/// Pairs that are not `queries`, near misses of its name among them.
fn other_pairs() -> impl Strategy<Value = Vec<String>> {
    let key = prop_oneof![
        "[a-z]{1,8}".prop_filter("not queries", |k| k != "queries"),
        Just("queriesx".to_owned()),
        Just("Queries".to_owned()),
        Just("querie".to_owned()),
        Just("xqueries".to_owned()),
        Just("queries ".to_owned()),
        Just("count".to_owned()),
    ];
    proptest::collection::vec((key, "[a-z0-9]{0,5}", any::<bool>()), 0..4)
        .prop_map(|pairs| pairs.into_iter().map(|(k, v, bare)| if bare { k } else { format!("{k}={v}") }).collect())
}

/// Query strings and the count they must give (None for arbitrary strings): a `queries` pair
/// among other pairs (a later second `queries` pair does not count), the other pairs alone,
/// and arbitrary text.
fn query_strings() -> impl Strategy<Value = (String, Option<usize>)> {
    let with_count =
        (other_pairs(), count_values(), any::<bool>(), other_pairs(), proptest::option::of(count_values())).prop_map(
            |(before, (value, want), bare, after, second)| {
                let mut pairs = before;
                // A bare `queries` (no `=`) is present but empty: 1.
                let (pair, want) = if bare && value.is_empty() {
                    ("queries".to_owned(), 1)
                } else {
                    (format!("queries={value}"), want)
                };
                pairs.push(pair);
                pairs.extend(after);
                if let Some((second, _)) = second {
                    pairs.push(format!("queries={second}"));
                }
                (pairs.join("&"), Some(want))
            },
        );
    let without = other_pairs().prop_map(|pairs| (pairs.join("&"), Some(1)));
    prop_oneof![6 => with_count, 2 => without, 1 => ".{0,200}".prop_map(|q| (q, None))]
}

/// The count rule on whole query strings: always in 1..=500, and exactly the published rule
/// (the first `queries` value, clamped; missing, empty or not an integer, 1).
#[test]
fn query_counts_follow_the_rule() {
    let taken = run(3_000, query_strings(), |(query, want)| {
        let raw = param(Some(&query), "queries");
        let n = query_count(raw);
        prop_assert!((1..=500).contains(&n), "{:?}: {}", query, n);
        if let Some(want) = want {
            prop_assert_eq!(n, want, "{:?}", query);
        }
        Ok(match raw {
            Some(_) if n > 1 => "read a count",
            Some(_) => "read 1 or a value counting as 1",
            None => "no queries parameter",
        })
    });
    assert_share(&taken, "read a count", 30);
    assert_share(&taken, "read 1 or a value counting as 1", 10);
    assert_share(&taken, "no queries parameter", 10);
}

// ---------------------------------------------------------------------------------------------
// Emails and names.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Valid,
    Invalid,
    /// Arbitrary text: only the properties every accepted email has are checked.
    Unknown,
}

const LOCAL: &str = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,24}";
const LABEL: &str = "[A-Za-z0-9]([A-Za-z0-9-]{0,14}[A-Za-z0-9])?";

fn valid_emails() -> impl Strategy<Value = String> {
    (LOCAL, proptest::collection::vec(LABEL, 1..4)).prop_map(|(local, labels)| format!("{local}@{}", labels.join(".")))
}

/// Emails near the 254-byte limit: valid in form, valid or not by their length.
fn long_emails() -> impl Strategy<Value = (String, Verdict)> {
    ("[a-z0-9]{1,12}", proptest::collection::vec("[a-zA-Z0-9]{55,63}", 4)).prop_map(|(local, labels)| {
        let email = format!("{local}@{}", labels.join("."));
        let verdict = if email.len() <= validation::MAX_EMAIL_BYTES { Verdict::Valid } else { Verdict::Invalid };
        (email, verdict)
    })
}

/// A valid email broken in one way the rule refuses.
fn broken(email: &str, how: u8, at: usize, label: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap();
    // Characters allowed neither before nor after the '@'.
    const FORBIDDEN: [char; 14] = [' ', '"', '(', ')', ',', ':', ';', '<', '>', '[', '\\', ']', 'é', '\u{7f}'];
    let chars: Vec<char> = email.chars().collect();
    let at = at % (chars.len() + 1);
    match how % 10 {
        0 => format!("{local}{domain}"),
        1 => format!("{local}@{}@{}", &domain[..domain.len() / 2], &domain[domain.len() / 2..]),
        2 => {
            let mut chars = chars;
            chars.insert(at, FORBIDDEN[usize::from(how / 10) % FORBIDDEN.len()]);
            chars.into_iter().collect()
        }
        3 => format!("@{domain}"),
        4 => format!("{local}@"),
        5 => match how / 10 % 3 {
            0 => format!("{email}."),
            1 => format!("{local}@.{domain}"),
            _ => format!("{local}@{label}..{domain}"),
        },
        6 => match how / 10 % 2 {
            0 => format!("{local}@-{domain}"),
            _ => format!("{email}-"),
        },
        7 => format!("{email}.{}", "a".repeat(64 + at % 10)),
        8 => format!("{email}{}", format!(".{}", "b".repeat(63)).repeat(4)),
        _ => format!("{local}@{label}_{domain}"),
    }
}

/// Emails with the verdict the rule must give: valid ones (some near the length limit), valid
/// ones broken in one way, and arbitrary text.
fn emails() -> impl Strategy<Value = (String, Verdict)> {
    prop_oneof![
        4 => valid_emails().prop_map(|e| (e, Verdict::Valid)),
        1 => long_emails(),
        4 => (valid_emails(), any::<u8>(), any::<usize>(), LABEL)
            .prop_map(|(e, how, at, label)| (broken(&e, how, at, &label), Verdict::Invalid)),
        1 => ".{0,300}".prop_map(|e| (e, Verdict::Unknown)),
    ]
}

/// Checks `validation::email` on one input; which way it went.
fn check_email(raw: &str, verdict: Verdict, result: Result<String, &str>) -> Result<&'static str, TestCaseError> {
    match result {
        Ok(ok) => {
            prop_assert!(verdict != Verdict::Invalid, "{:?} accepted", raw);
            prop_assert!(ok.len() <= 254);
            prop_assert_eq!(ok.matches('@').count(), 1);
            prop_assert_eq!(&ok, &raw.to_ascii_lowercase(), "accepted as given, lower-cased");
            Ok("accepted")
        }
        Err(message) => {
            prop_assert!(verdict != Verdict::Valid, "{:?} refused: {}", raw, message);
            Ok("refused")
        }
    }
}

/// The email rule: valid emails are accepted lower-cased, broken ones refused, and whatever is
/// accepted is at most 254 bytes with one '@'.
#[test]
fn emails_follow_the_rule() {
    let taken = run(3_000, emails(), |(raw, verdict)| check_email(&raw, verdict, validation::email(&raw)));
    assert_share(&taken, "accepted", 35);
    assert_share(&taken, "refused", 35);
}

/// Names with the verdict the rule must give.
fn names() -> impl Strategy<Value = (String, Verdict)> {
    prop_oneof![
        3 => "[a-zA-Z .'-]{0,100}".prop_map(|n| (n, Verdict::Valid)),
        1 => r"\PC{0,100}".prop_map(|n| (n, Verdict::Valid)),
        1 => "[a-z]{101,150}".prop_map(|n| (n, Verdict::Invalid)),
        1 => r"[a-z]{0,10}[\x00-\x1f\x7f][a-z]{0,10}".prop_map(|n| (n, Verdict::Invalid)),
        1 => ".{0,150}".prop_map(|n| (n, Verdict::Unknown)),
    ]
}

/// Emails and names as JSON string values, escaped by serde_json and unescaped by simd-json:
/// never a panic, each field gets the verdict its rule gives, and a body whose fields are both
/// valid is accepted whole.
#[test]
fn json_bodies_with_emails_and_names() {
    let taken = run(2_000, (emails(), names()), |((email, email_verdict), (name, name_verdict))| {
        let body = serde_json::json!({"email": email, "name": name}).to_string();
        let mut buf = body.into_bytes();
        let obj = parse_object(&mut buf).expect("serde_json output parses");
        let mut f = Fields::new(&obj, &["email", "name"]);
        let e = f.string("email");
        prop_assert_eq!(e, Some(email.as_str()), "the email comes back as sent");
        let accepted_email = f.check("email", e, validation::email);
        check_email(&email, email_verdict, accepted_email.clone().ok_or("refused"))?;
        let n = f.opt_string("name");
        prop_assert_eq!(n, Some(name.as_str()), "the name comes back as sent");
        let accepted_name = f.check("name", n, validation::name).is_some();
        prop_assert!(
            name_verdict == Verdict::Unknown || accepted_name == (name_verdict == Verdict::Valid),
            "{:?}",
            name
        );
        let whole = f.finish().is_ok();
        prop_assert_eq!(whole, accepted_email.is_some() && accepted_name);
        Ok(if whole { "accepted" } else { "refused" })
    });
    assert_share(&taken, "accepted", 15);
    assert_share(&taken, "refused", 15);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

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

    /// Arbitrary Accept-Encoding values never panic.
    #[test]
    fn accept_encoding_never_panics(value in "[ -~]{0,100}") {
        if let Ok(v) = HeaderValue::from_str(&value) {
            let _ = accepts_gzip(Some(&v));
        }
    }
}
