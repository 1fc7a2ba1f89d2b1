//! "The user": what a person's browser does between the SDK handing out the authorization
//! URL and the client's loopback redirect URI, as plain HTTP with a cookie jar, like the
//! other drivers' user agents (tests/e2e/ts/user-agent.mjs, tests/e2e/py/user_agent.py).
//! It sends the headers a browser sends (`Sec-Fetch-Site`, `Origin` on the form POST),
//! keeps cookies per host and path (host-only; ports share cookies, RFC 6265), submits the
//! one consent form with the button the user clicks, and follows the redirect chain until
//! it reaches the redirect URI, whose query it returns instead of loading it: the SDK, not
//! a listener, reads the code there.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, LOCATION, SET_COOKIE};
use url::Url;

const HOP_LIMIT: usize = 12;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// One response on the way from the consent POST to the redirect URI.
#[derive(Debug)]
pub struct Hop {
    pub url: Url,
    pub status: u16,
}

/// What the user saw and where the browser landed.
#[derive(Debug)]
pub struct UserRun {
    /// Every response from the consent POST on, in order.
    pub chain: Vec<Hop>,
    /// The client's redirect URI with the authorization response in its query.
    pub landed: Url,
}

impl UserRun {
    /// A query parameter of the authorization response, if present.
    pub fn param(&self, name: &str) -> Option<String> {
        self.landed
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

struct Cookie {
    host: String,
    name: String,
    value: String,
    path: String,
}

/// Cookies keyed by host name, as a browser keeps them for plain-http loopback origins.
#[derive(Default)]
struct CookieJar {
    cookies: Vec<Cookie>,
}

impl CookieJar {
    fn store(&mut self, url: &Url, headers: &HeaderMap) {
        let host = url.host_str().unwrap_or_default().to_owned();
        for line in headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let mut parts = line.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            // The default path is the request path's directory (RFC 6265 §5.1.4).
            let dir = url.path().rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            let mut path = if dir.is_empty() {
                "/".to_owned()
            } else {
                dir.to_owned()
            };
            let mut expired = false;
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                match k.trim().to_ascii_lowercase().as_str() {
                    "path" if v.starts_with('/') => path = v.to_owned(),
                    "max-age" => expired |= v.trim().parse::<i64>().is_ok_and(|n| n <= 0),
                    _ => {}
                }
            }
            self.cookies
                .retain(|c| !(c.host == host && c.name == name && c.path == path));
            if !expired {
                let (name, value) = (name.to_owned(), value.to_owned());
                self.cookies.push(Cookie {
                    host: host.clone(),
                    name,
                    value,
                    path,
                });
            }
        }
    }

    fn header(&self, url: &Url) -> String {
        let host = url.host_str().unwrap_or_default();
        let path = url.path();
        let in_path = |c: &Cookie| {
            let prefix = if c.path.ends_with('/') {
                c.path.clone()
            } else {
                format!("{}/", c.path)
            };
            path == c.path || path.starts_with(&prefix)
        };
        let matching = self.cookies.iter().filter(|c| c.host == host && in_path(c));
        matching
            .map(|c| format!("{}={}", c.name, c.value))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// An `<input>` or `<button>` of the consent form.
#[derive(Debug, Default)]
struct Field {
    tag: String,
    name: String,
    value: String,
    kind: String,
}

/// A `<form>` of the consent page.
#[derive(Debug)]
struct Form {
    method: String,
    action: Option<String>,
    fields: Vec<Field>,
}

fn unescape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if entity.starts_with("#x") || entity.starts_with("#X") => {
                u32::from_str_radix(&entity[2..], 16)
                    .ok()
                    .and_then(char::from_u32)
            }
            _ if entity.starts_with('#') => entity[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The attributes of a start tag's inside (`name="v" type=hidden disabled`), lower-cased
/// names, unescaped values.
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut s = tag.trim_start();
    while !s.is_empty() {
        let end = s
            .find(|c: char| c.is_whitespace() || c == '=' || c == '/')
            .unwrap_or(s.len());
        let name = s[..end].to_ascii_lowercase();
        s = s[end..].trim_start();
        let mut value = String::new();
        if let Some(after) = s.strip_prefix('=') {
            let after = after.trim_start();
            let (v, rest) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let close = after[1..].find(q).map_or(after.len(), |i| i + 1);
                    (&after[1..close], after.get(close + 1..).unwrap_or(""))
                }
                _ => after.split_at(after.find(char::is_whitespace).unwrap_or(after.len())),
            };
            value = unescape_html(v);
            s = rest.trim_start();
        } else if s.starts_with('/') {
            s = s[1..].trim_start();
        }
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The start tags `<tag …>` in `html`, as their attribute text (ASCII case-insensitive).
fn start_tags<'a>(html: &'a str, tag: &str) -> Vec<(usize, &'a str)> {
    let lower = html.to_ascii_lowercase();
    let open = format!("<{tag}");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(&open).map(|i| i + from) {
        let after = i + open.len();
        from = after;
        if !lower[after..].starts_with(|c: char| c.is_whitespace() || c == '>') {
            continue;
        }
        let Some(close) = lower[after..].find('>') else {
            break;
        };
        found.push((i, &html[after..after + close]));
    }
    found
}

fn parse_forms(html: &str) -> Vec<Form> {
    let lower = html.to_ascii_lowercase();
    let mut forms = Vec::new();
    for (start, inside) in start_tags(html, "form") {
        let end = lower[start..]
            .find("</form>")
            .map_or(html.len(), |i| i + start);
        let body = &html[start..end];
        let attrs = attributes(inside);
        let mut fields = Vec::new();
        for tag in ["input", "button"] {
            for (_, field) in start_tags(body, tag) {
                let a = attributes(field);
                fields.push(Field {
                    tag: tag.to_owned(),
                    name: attr(&a, "name").unwrap_or_default().to_owned(),
                    value: attr(&a, "value").unwrap_or_default().to_owned(),
                    kind: attr(&a, "type").unwrap_or("text").to_ascii_lowercase(),
                });
            }
        }
        forms.push(Form {
            method: attr(&attrs, "method").unwrap_or("get").to_ascii_lowercase(),
            action: attr(&attrs, "action").map(str::to_owned),
            fields,
        });
    }
    forms
}

/// The text of the element with `id="redirect-host"` (the host the consent page names).
fn redirect_host(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let at = [
        "id=\"redirect-host\"",
        "id='redirect-host'",
        "id=redirect-host",
    ]
    .iter()
    .find_map(|needle| lower.find(needle))?;
    let open_end = lower[at..].find('>')? + at + 1;
    let close = lower[open_end..].find("</")? + open_end;
    Some(unescape_html(&html[open_end..close]))
}

/// The request headers of a top-level navigation; `site` is its `Sec-Fetch-Site`.
fn navigate(site: &str) -> Vec<(&'static str, String)> {
    vec![
        ("sec-fetch-site", site.to_owned()),
        ("sec-fetch-mode", "navigate".to_owned()),
        ("sec-fetch-dest", "document".to_owned()),
    ]
}

/// A browser: one cookie jar, never following a redirect by itself.
pub struct Browser {
    http: reqwest::Client,
    jar: CookieJar,
}

impl Browser {
    pub fn new() -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("browser client: {e}"))?;
        Ok(Self {
            http,
            jar: CookieJar::default(),
        })
    }

    async fn request(
        &mut self,
        url: &Url,
        form: Option<String>,
        headers: &[(&'static str, String)],
    ) -> Result<reqwest::Response, String> {
        let mut req = match &form {
            Some(_) => self.http.post(url.clone()),
            None => self.http.get(url.clone()),
        };
        req = req
            .header("user-agent", "consent-gate-e2e-user/1")
            .header("accept", "text/html");
        let cookie = self.jar.header(url);
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
            req = req.header(*name, value);
        }
        if let Some(body) = form {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let res = req.send().await.map_err(|e| format!("{url}: {e}"))?;
        self.jar.store(url, res.headers());
        Ok(res)
    }

    /// Loads `url` as a top-level navigation arriving from another site (a link in a
    /// message, say), without following a redirect: its status and `Location`.
    pub async fn open(&mut self, url: &Url) -> Result<(u16, Option<String>), String> {
        let res = self.request(url, None, &navigate("cross-site")).await?;
        let location = res.headers().get(LOCATION).and_then(|v| v.to_str().ok());
        Ok((res.status().as_u16(), location.map(str::to_owned)))
    }

    /// Opens `auth_url`, checks that the consent page names the client and the redirect
    /// host (R12, R25), clicks `decision` ("approve" or "deny"), and follows redirects
    /// until the browser is sent to `redirect_uri`, or to `stop_at` (same origin and
    /// path) when given: the gate's `/callback`, to hand that URL to another browser.
    pub async fn act_as_user(
        &mut self,
        auth_url: &Url,
        decision: &str,
        redirect_uri: &Url,
        stop_at: Option<&Url>,
        client_name: &str,
    ) -> Result<UserRun, String> {
        let page = self.request(auth_url, None, &navigate("none")).await?;
        let status = page.status().as_u16();
        let html_type = page
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        let html_type = html_type.unwrap_or_default().contains("text/html");
        let html = page
            .text()
            .await
            .map_err(|e| format!("consent page body: {e}"))?;
        if status != 200 || !html_type {
            let head: String = html.chars().take(400).collect();
            return Err(format!(
                "consent page: HTTP {status} (html: {html_type}): {head}"
            ));
        }
        if !html.contains(client_name) {
            return Err(format!(
                "consent page does not show the client name {client_name:?}"
            ));
        }
        let want_host = redirect_uri.host_str().unwrap_or_default();
        match redirect_host(&html) {
            Some(shown) if shown.contains(want_host) => {}
            shown => {
                return Err(format!(
                    "#redirect-host does not show {want_host}: {shown:?}"
                ));
            }
        }
        let forms = parse_forms(&html);
        let posts: Vec<&Form> = forms.iter().filter(|f| f.method == "post").collect();
        let [form] = posts[..] else {
            return Err(format!(
                "expected one <form method=\"post\">, found {}",
                posts.len()
            ));
        };
        let buttons: Vec<&str> = form
            .fields
            .iter()
            .filter(|f| f.name == "decision")
            .map(|f| f.value.as_str())
            .collect();
        if !buttons.contains(&"approve") || !buttons.contains(&"deny") {
            return Err(format!("decision buttons: {buttons:?}"));
        }
        // Exactly what a browser submits: every named input that is not a button, plus the
        // clicked button's name and value.
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        let mut names = Vec::new();
        for f in &form.fields {
            let button_like = ["submit", "button", "image", "reset"].contains(&f.kind.as_str());
            if f.tag == "input" && !f.name.is_empty() && !button_like {
                body.append_pair(&f.name, &f.value);
                names.push(f.name.as_str());
            }
        }
        for required in ["tx", "csrf"] {
            if !names.contains(&required) {
                return Err(format!("form lacks hidden field {required}"));
            }
        }
        body.append_pair("decision", decision);

        let action = match &form.action {
            Some(a) if !a.is_empty() => auth_url.join(a).map_err(|e| format!("action: {e}"))?,
            _ => auth_url.clone(),
        };
        let same_origin = action.origin() == auth_url.origin();
        let mut headers = navigate(if same_origin {
            "same-origin"
        } else {
            "cross-site"
        });
        headers.push(("origin", auth_url.origin().ascii_serialization()));
        let mut res = self.request(&action, Some(body.finish()), &headers).await?;
        let mut url = action;
        let mut crossed = !same_origin;
        let mut chain = Vec::new();
        for _ in 0..HOP_LIMIT {
            let status = res.status().as_u16();
            chain.push(Hop {
                url: url.clone(),
                status,
            });
            let location = res.headers().get(LOCATION).and_then(|v| v.to_str().ok());
            let location = location.map(str::to_owned);
            let Some(location) = location.filter(|_| res.status().is_redirection()) else {
                let text: String = res
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(400)
                    .collect();
                return Err(format!(
                    "stopped at HTTP {status} {url} before the redirect URI: {text}"
                ));
            };
            if matches!(status, 307 | 308) {
                return Err(format!(
                    "R24: {status} after a POST would re-post the form ({url})"
                ));
            }
            url = url
                .join(&location)
                .map_err(|e| format!("Location {location:?}: {e}"))?;
            crossed |= url.origin() != auth_url.origin();
            let at = |target: &Url| url.origin() == target.origin() && url.path() == target.path();
            if at(redirect_uri) || stop_at.is_some_and(at) {
                return Ok(UserRun { chain, landed: url });
            }
            let site = if crossed { "cross-site" } else { "same-origin" };
            res = self.request(&url, None, &navigate(site)).await?;
        }
        Err(format!("more than {HOP_LIMIT} redirects: {chain:?}"))
    }
}
