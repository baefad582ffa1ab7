//! The matched-path router: routes declared once as a table of (method, template, handler),
//! matched without heap allocation.
//!
//! A template is a path of static segments and `{param}` segments: `/api/users/{id}`. Matching
//! returns the handler, the path parameters (borrowed from the request path) and the template
//! itself, which travels with the request as its label in logs and metrics. A known path with the
//! wrong method yields the precomputed `Allow` header value; `HEAD` is served by the `GET` route
//! unless a `HEAD` route is declared.

use http::{HeaderValue, Method};

/// Most path parameters one template may have. Fixed so that [`Params`] lives on the stack;
/// raise it if a route ever needs more.
pub const MAX_PARAMS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Static(&'static str),
    Param(&'static str),
}

/// All routes that share one template.
#[derive(Debug)]
struct PathRoutes<H> {
    template: &'static str,
    /// Empty for a template without parameters, which is matched by one string comparison.
    segments: Box<[Segment]>,
    methods: Vec<(Method, H)>,
    /// `Allow` for a 405 on this path, built once.
    allow: HeaderValue,
}

/// The route table. Build it once at start-up with [`Router::new`].
#[derive(Debug)]
pub struct Router<H> {
    /// Parameter-free templates first, so `/users/me` wins over `/users/{id}`.
    paths: Vec<PathRoutes<H>>,
}

/// Path parameters of one match, borrowed from the request path.
#[derive(Debug, Clone, Copy)]
pub struct Params<'p> {
    names: [&'static str; MAX_PARAMS],
    values: [&'p str; MAX_PARAMS],
    len: usize,
}

impl<'p> Params<'p> {
    const EMPTY: Params<'static> = Params { names: [""; MAX_PARAMS], values: [""; MAX_PARAMS], len: 0 };

    /// The raw (not percent-decoded) value of the parameter `name`.
    pub fn get(&self, name: &str) -> Option<&'p str> {
        self.names[..self.len].iter().position(|n| *n == name).map(|i| self.values[i])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The outcome of matching one request line.
#[derive(Debug)]
///
/// `route` is the template's index in [`Router::templates`]: a stable small integer that
/// metrics use to find their slot without hashing.
pub enum Match<'r, 'p, H> {
    Found { handler: &'r H, params: Params<'p>, template: &'static str, route: usize },
    MethodNotAllowed { allow: &'r HeaderValue, template: &'static str, route: usize },
    NotFound,
}

/// A route table that cannot be built.
#[derive(Debug, PartialEq, Eq)]
pub struct RouteError(pub String);

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RouteError {}

fn parse_template(template: &'static str) -> Result<Vec<Segment>, RouteError> {
    let Some(rest) = template.strip_prefix('/') else {
        return Err(RouteError(format!("template {template:?} must start with '/'")));
    };
    let mut segments = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for part in rest.split('/') {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if name.is_empty() || name.contains(['{', '}']) {
                return Err(RouteError(format!("template {template:?} has a bad parameter {part:?}")));
            }
            if names.contains(&name) {
                return Err(RouteError(format!("template {template:?} repeats parameter {name:?}")));
            }
            names.push(name);
            segments.push(Segment::Param(name));
        } else if part.contains(['{', '}']) {
            return Err(RouteError(format!("template {template:?} has a bad segment {part:?}")));
        } else {
            segments.push(Segment::Static(part));
        }
    }
    if names.len() > MAX_PARAMS {
        return Err(RouteError(format!("template {template:?} has more than {MAX_PARAMS} parameters")));
    }
    Ok(segments)
}

impl<H: Copy> Router<H> {
    /// Builds the table; refuses malformed templates and duplicate (method, template) pairs.
    pub fn new(routes: &[(Method, &'static str, H)]) -> Result<Self, RouteError> {
        let mut paths: Vec<PathRoutes<H>> = Vec::new();
        for (method, template, handler) in routes {
            let segments = parse_template(template)?;
            let has_params = segments.iter().any(|s| matches!(s, Segment::Param(_)));
            let existing = paths.iter_mut().find(|p| p.template == *template);
            let entry = match existing {
                Some(entry) => entry,
                None => {
                    paths.push(PathRoutes {
                        template,
                        segments: if has_params { segments.into() } else { Box::new([]) },
                        methods: Vec::new(),
                        allow: HeaderValue::from_static(""),
                    });
                    paths.last_mut().expect("just pushed")
                }
            };
            if entry.methods.iter().any(|(m, _)| m == method) {
                return Err(RouteError(format!("route {method} {template} is declared twice")));
            }
            entry.methods.push((method.clone(), *handler));
        }
        for entry in &mut paths {
            let mut allow: Vec<&str> = entry.methods.iter().map(|(m, _)| m.as_str()).collect();
            if allow.contains(&"GET") && !allow.contains(&"HEAD") {
                allow.push("HEAD");
            }
            entry.allow = HeaderValue::from_str(&allow.join(", "))
                .map_err(|_| RouteError(format!("bad method in {}", entry.template)))?;
        }
        // Stable sort: static templates first, declaration order kept within each group.
        paths.sort_by_key(|p| !p.segments.is_empty());
        Ok(Router { paths })
    }

    /// Matches `method` and `path` (the path of the request URI, without the query).
    pub fn find<'r, 'p>(&'r self, method: &Method, path: &'p str) -> Match<'r, 'p, H> {
        for (route, entry) in self.paths.iter().enumerate() {
            let params = if entry.segments.is_empty() {
                if entry.template != path {
                    continue;
                }
                Params::EMPTY
            } else {
                match match_segments(&entry.segments, path) {
                    Some(params) => params,
                    None => continue,
                }
            };
            let handler = entry
                .methods
                .iter()
                .find(|(m, _)| m == method)
                .or_else(|| {
                    (method == Method::HEAD).then(|| entry.methods.iter().find(|(m, _)| m == Method::GET)).flatten()
                })
                .map(|(_, h)| h);
            return match handler {
                Some(handler) => Match::Found { handler, params, template: entry.template, route },
                None => Match::MethodNotAllowed { allow: &entry.allow, template: entry.template, route },
            };
        }
        Match::NotFound
    }

    /// The templates, indexed by the `route` of a [`Match`].
    pub fn templates(&self) -> Vec<&'static str> {
        self.paths.iter().map(|p| p.template).collect()
    }

    /// Every (method, template) pair, in declaration order per template.
    pub fn routes(&self) -> impl Iterator<Item = (&Method, &'static str)> {
        self.paths.iter().flat_map(|p| p.methods.iter().map(move |(m, _)| (m, p.template)))
    }
}

fn match_segments<'p>(segments: &[Segment], path: &'p str) -> Option<Params<'p>> {
    let rest = path.strip_prefix('/')?;
    let mut params = Params { names: [""; MAX_PARAMS], values: [""; MAX_PARAMS], len: 0 };
    let mut parts = rest.split('/');
    for segment in segments {
        let part = parts.next()?;
        match segment {
            Segment::Static(s) => {
                if *s != part {
                    return None;
                }
            }
            Segment::Param(name) => {
                if part.is_empty() {
                    return None;
                }
                params.names[params.len] = name;
                params.values[params.len] = part;
                params.len += 1;
            }
        }
    }
    if parts.next().is_some() {
        return None;
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum H {
        Plain,
        UserGet,
        UserPatch,
        Me,
        Item,
        Head,
    }

    fn router() -> Router<H> {
        Router::new(&[
            (Method::GET, "/plaintext", H::Plain),
            (Method::GET, "/users/{id}", H::UserGet),
            (Method::PATCH, "/users/{id}", H::UserPatch),
            (Method::GET, "/users/me", H::Me),
            (Method::GET, "/a/{x}/b/{y}", H::Item),
            (Method::HEAD, "/head-only", H::Head),
        ])
        .unwrap()
    }

    type Found = (H, Vec<(String, String)>, &'static str);

    fn found(r: &Router<H>, m: Method, p: &str) -> Option<Found> {
        match r.find(&m, p) {
            Match::Found { handler, params, template, .. } => {
                let ps = params.names[..params.len]
                    .iter()
                    .zip(&params.values[..params.len])
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect();
                Some((*handler, ps, template))
            }
            _ => None,
        }
    }

    #[test]
    fn static_routes_match_exactly() {
        let r = router();
        assert_eq!(found(&r, Method::GET, "/plaintext").unwrap().0, H::Plain);
        assert!(matches!(r.find(&Method::GET, "/plaintext/"), Match::NotFound));
        assert!(matches!(r.find(&Method::GET, "/plaintex"), Match::NotFound));
        assert!(matches!(r.find(&Method::GET, "/PLAINTEXT"), Match::NotFound));
        assert!(matches!(r.find(&Method::GET, ""), Match::NotFound));
    }

    #[test]
    fn params_are_captured_with_the_template() {
        let r = router();
        let (h, ps, t) = found(&r, Method::GET, "/users/42").unwrap();
        assert_eq!(h, H::UserGet);
        assert_eq!(ps, vec![("id".to_string(), "42".to_string())]);
        assert_eq!(t, "/users/{id}");
        let (h, ps, t) = found(&r, Method::GET, "/a/1/b/two").unwrap();
        assert_eq!(h, H::Item);
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[1], ("y".to_string(), "two".to_string()));
        assert_eq!(t, "/a/{x}/b/{y}");
        match r.find(&Method::GET, "/a/1/b/two") {
            Match::Found { params, .. } => {
                assert_eq!(params.get("x"), Some("1"));
                assert_eq!(params.get("nope"), None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_or_extra_segments_do_not_match() {
        let r = router();
        assert!(matches!(r.find(&Method::GET, "/users/"), Match::NotFound));
        assert!(matches!(r.find(&Method::GET, "/users//"), Match::NotFound));
        assert!(matches!(r.find(&Method::GET, "/users/1/2"), Match::NotFound));
        assert!(matches!(r.find(&Method::GET, "/users"), Match::NotFound));
    }

    #[test]
    fn static_templates_win_over_params_whatever_the_order() {
        let r = router();
        assert_eq!(found(&r, Method::GET, "/users/me").unwrap().0, H::Me);
    }

    #[test]
    fn wrong_method_gives_allow_with_head_for_get() {
        let r = router();
        match r.find(&Method::DELETE, "/users/7") {
            Match::MethodNotAllowed { allow, template, route } => {
                assert_eq!(r.templates()[route], template);
                assert_eq!(allow, "GET, PATCH, HEAD");
                assert_eq!(template, "/users/{id}");
            }
            other => panic!("{other:?}"),
        }
        match r.find(&Method::POST, "/plaintext") {
            Match::MethodNotAllowed { allow, .. } => assert_eq!(allow, "GET, HEAD"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn head_falls_back_to_get_but_not_the_reverse() {
        let r = router();
        assert_eq!(found(&r, Method::HEAD, "/plaintext").unwrap().0, H::Plain);
        assert_eq!(found(&r, Method::HEAD, "/head-only").unwrap().0, H::Head);
        assert!(matches!(r.find(&Method::GET, "/head-only"), Match::MethodNotAllowed { .. }));
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(Router::new(&[(Method::GET, "nope", H::Plain)]).is_err());
        assert!(Router::new(&[(Method::GET, "/a/{}", H::Plain)]).is_err());
        assert!(Router::new(&[(Method::GET, "/a/{x}/{x}", H::Plain)]).is_err());
        assert!(Router::new(&[(Method::GET, "/a/x{y}", H::Plain)]).is_err());
        assert!(Router::new(&[(Method::GET, "/a/{a}/{b}/{c}/{d}/{e}", H::Plain)]).is_err());
        assert!(Router::new(&[(Method::GET, "/a", H::Plain), (Method::GET, "/a", H::Me)]).is_err());
    }

    #[test]
    fn routes_lists_every_pair() {
        let r = router();
        assert_eq!(r.routes().count(), 6);
    }
}
