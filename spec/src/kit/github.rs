//! The upstream double, the kit's only one: GitHub. A returning user's browser is sent
//! straight back (docs/upstreams.md#github-returning-user), and the back channel answers with
//! GitHub's wire shapes (docs/upstreams.md#fixtures).
//!
//! Two ways to drive it. The strict methods ([`FakeGithub::authorize`],
//! [`FakeGithub::token`]) keep state as GitHub does: codes are single-use and PKCE-bound,
//! tokens are minted fresh; the integration tests use them. The lenient ones
//! ([`FakeGithub::wave_through`], [`FakeGithub::lenient_token`]) keep no state and enforce
//! neither PKCE nor single use: codes and tokens name the account. That is the World's
//! upstream (`spec/README.md`, "The actors"): every protection checked is the server's own,
//! and a model checker has no upstream state to explore.

use std::collections::BTreeMap;

use consent_gate::{HttpRequest, UpstreamResponse};

use super::google::GoogleShapes;
use super::{encode, query_params, s256};

/// Our static client at the upstream.
pub const UPSTREAM_CLIENT_ID: &str = "Ov23liEXAMPLE";
/// Our client secret at the upstream.
pub const UPSTREAM_SECRET: &str = "upstream-secret";

/// A GitHub account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GithubUser {
    /// The numeric id (the subject).
    pub id: u64,
    /// The login.
    pub login: &'static str,
}

/// The victim's GitHub account (signed in, our app authorized earlier).
pub const VICTIM: GithubUser = GithubUser {
    id: 1,
    login: "octocat",
};
/// The attacker's own GitHub account.
pub const ATTACKER: GithubUser = GithubUser {
    id: 666,
    login: "mallory",
};

/// Every account the double knows.
pub const USERS: [GithubUser; 2] = [VICTIM, ATTACKER];

impl GithubUser {
    /// The MCP subject the gate derives from it (`subject_prefix` + id).
    pub fn subject(&self) -> String {
        format!("github:{}", self.id)
    }
}

/// An HTTP answer from the upstream.
#[derive(Clone, Debug)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// As the gate takes it.
    pub fn as_response(&self) -> UpstreamResponse<'_> {
        UpstreamResponse {
            status: self.status,
            content_type: Some(self.content_type),
            body: &self.body,
        }
    }

    fn json(status: u16, v: serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json; charset=utf-8",
            body: serde_json::to_vec(&v).expect("json"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GithubCode {
    user: GithubUser,
    challenge: String,
    redirect_uri: String,
    nonce: Option<String>,
    used: bool,
}

/// GitHub, as seen by our server and by a browser whose user authorized our app before.
/// Plain data, so that a harness state holding it can be compared and hashed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FakeGithub {
    /// The browser-facing authorization endpoint.
    pub authorize_endpoint: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// `GET /user`.
    pub user_endpoint: String,
    /// Its RFC 9207 issuer.
    pub issuer: String,
    /// The `iss` it appends to callbacks (F1), or none (F2).
    pub send_iss: Option<String>,
    /// The next token exchange fails with this error code, HTTP 200 (F7, F9).
    pub fail_next_exchange: Option<&'static str>,
    /// How many authorization requests reached it.
    pub authorize_hits: usize,
    /// `expires_in` of the tokens it issues (a GitHub App user token: 28800), or none (an
    /// OAuth App token, which never expires).
    pub token_lifetime: Option<u64>,
    /// Answer in Google's OpenID shapes instead of GitHub's.
    pub openid: Option<GoogleShapes>,
    /// In GitHub's shapes, issue a refresh token with each expiring token (a GitHub App's
    /// user tokens): one-time, rotated on every refresh (R66). Google's shapes always
    /// carry one, which is not rotated.
    pub refresh_tokens: bool,
    /// The next refresh is refused with this error code (`invalid_grant`: the user revoked
    /// the app upstream), in the provider's shape (R66).
    pub fail_next_refresh: Option<&'static str>,
    /// How many refresh requests reached the token endpoint.
    pub refresh_hits: usize,
    /// The RFC 7009 revocation endpoint (configured in the gate for Google's shapes).
    pub revocation_endpoint: String,
    /// GitHub's token deletion for our app (`DELETE {api}/applications/{id}/token`),
    /// configured in the gate for GitHub's shapes as the real preset has it.
    pub token_deletion_endpoint: String,
    /// How many revocation requests (of either form) reached it.
    pub revocation_hits: usize,
    callback: String,
    codes: BTreeMap<String, GithubCode>,
    tokens: BTreeMap<String, GithubUser>,
    /// Refresh tokens issued, with their user and whether they were used (GitHub's are
    /// one-time).
    refreshes: BTreeMap<String, (GithubUser, bool)>,
    counter: u64,
}

impl FakeGithub {
    /// GitHub at `base` (its API at `api`), with our app's callback registered there.
    pub fn new(base: &str, api: &str, callback: String) -> Self {
        let issuer = format!("{base}/login/oauth");
        Self {
            authorize_endpoint: format!("{issuer}/authorize"),
            token_endpoint: format!("{issuer}/access_token"),
            user_endpoint: format!("{api}/user"),
            send_iss: Some(issuer.clone()),
            issuer,
            fail_next_exchange: None,
            authorize_hits: 0,
            token_lifetime: None,
            openid: None,
            refresh_tokens: false,
            fail_next_refresh: None,
            refresh_hits: 0,
            revocation_endpoint: format!("{base}/login/oauth/revoke"),
            token_deletion_endpoint: format!("{api}/applications/{UPSTREAM_CLIENT_ID}/token"),
            revocation_hits: 0,
            callback,
            codes: BTreeMap::new(),
            tokens: BTreeMap::new(),
            refreshes: BTreeMap::new(),
            counter: 0,
        }
    }

    fn checked_authorize(&mut self, url: &str) -> BTreeMap<String, String> {
        self.authorize_hits += 1;
        let (base, _) = url.split_once('?').expect("a query");
        assert_eq!(base, self.authorize_endpoint, "sent to the upstream");
        let q = query_params(url);
        assert_eq!(q["client_id"], UPSTREAM_CLIENT_ID);
        assert_eq!(q["redirect_uri"], self.callback, "R39: our exact callback");
        assert_eq!(q["code_challenge_method"], "S256", "R37");
        assert_eq!(q["code_challenge"].len(), 43, "R37");
        assert!(q["state"].len() >= 22, "R33: at least 128 bits");
        assert!(
            !q.contains_key("resource"),
            "R68: the MCP resource is not the upstream's"
        );
        if self.openid.is_some() {
            assert!(q["scope"].split(' ').any(|s| s == "openid"));
            assert_eq!(q["nonce"].len(), 43, "R67: a nonce per trip");
        } else {
            assert!(!q.contains_key("nonce"));
        }
        q
    }

    fn back(&self, pairs: &[(&str, &str)]) -> String {
        self.back_naming(pairs, self.send_iss.as_deref())
    }

    fn back_naming(&self, pairs: &[(&str, &str)], iss: Option<&str>) -> String {
        let mut p = pairs.to_vec();
        if let Some(iss) = iss {
            p.push(("iss", iss));
        }
        format!("{}?{}", self.callback, encode(p))
    }

    /// `GET /login/oauth/authorize` in a browser signed in as `user`, who authorized our
    /// app before: no prompt, straight back with a code (docs/upstreams.md#github-returning-user,
    /// F1/F2).
    pub fn authorize(&mut self, user: GithubUser, url: &str) -> String {
        let q = self.checked_authorize(url);
        self.counter += 1;
        let code = format!("{:020x}", self.counter.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let issued = GithubCode {
            user,
            challenge: q["code_challenge"].clone(),
            redirect_uri: q["redirect_uri"].clone(),
            nonce: q.get("nonce").cloned(),
            used: false,
        };
        self.codes.insert(code.clone(), issued);
        self.back(&[("code", &code), ("state", &q["state"])])
    }

    /// The user pressed Cancel (F3), or the app is suspended (F4).
    pub fn refuse(&mut self, url: &str, error: &str) -> String {
        let q = self.checked_authorize(url);
        self.back(&[
            ("error", error),
            (
                "error_description",
                "The user has denied your application access.",
            ),
            (
                "error_uri",
                "/apps/troubleshooting-authorization-request-errors/",
            ),
            ("state", &q["state"]),
        ])
    }

    /// `POST /login/oauth/access_token` (docs/upstreams.md#github-token-request,
    /// docs/upstreams.md#github-token-response): HTTP 200 always; success F5, errors F7/F9/F10 as
    /// JSON bodies. Codes are single-use and PKCE-bound.
    pub fn token(&mut self, req: &HttpRequest) -> HttpAnswer {
        assert_eq!(
            (req.method, req.url.as_str()),
            ("POST", &*self.token_endpoint)
        );
        assert!(
            req.headers
                .iter()
                .any(|(n, v)| *n == "accept" && v == "application/json"),
            "F18: JSON Accept, never the REST media type"
        );
        let f = query_params(&format!("?{}", String::from_utf8_lossy(&req.body)));
        let error = |e: &str| {
            HttpAnswer::json(
                200,
                serde_json::json!({"error": e, "error_description": "…", "error_uri": "https://docs.github.com/…"}),
            )
        };
        if f.get("grant_type").map(String::as_str) == Some("refresh_token") {
            return self.refresh(&f);
        }
        assert_eq!(f["grant_type"], "authorization_code");
        if let Some(e) = self.fail_next_exchange.take() {
            return error(e);
        }
        if f["client_id"] != UPSTREAM_CLIENT_ID || f["client_secret"] != UPSTREAM_SECRET {
            return error("incorrect_client_credentials");
        }
        let Some(code) = self.codes.get_mut(&f["code"]).filter(|c| !c.used) else {
            return error("bad_verification_code");
        };
        code.used = true;
        if f.get("redirect_uri") != Some(&code.redirect_uri) {
            return error("redirect_uri_mismatch");
        }
        if s256(&f["code_verifier"]) != code.challenge {
            return error("bad_verification_code");
        }
        let token = format!("gho_{:036x}", self.counter * 7919 + code.user.id);
        self.counter += 1;
        self.tokens.insert(token.clone(), code.user);
        let user = code.user;
        if let Some(google) = &self.openid {
            let nonce = code.nonce.clone().unwrap_or_default();
            let answer = google.token_answer(&self.issuer, user, &nonce, &token);
            if let Some(refresh) = answer["refresh_token"].as_str() {
                self.refreshes.insert(refresh.to_owned(), (user, false));
            }
            return HttpAnswer::json(200, answer);
        }
        HttpAnswer::json(200, self.github_tokens(user, token))
    }

    /// GitHub's success answer for a new access token of `user`: with `expires_in` and a
    /// fresh one-time refresh token when its tokens expire and it issues refresh tokens.
    fn github_tokens(&mut self, user: GithubUser, token: String) -> serde_json::Value {
        let mut answer = serde_json::json!({"access_token": token, "token_type": "bearer", "scope": "read:user"});
        if let Some(lifetime) = self.token_lifetime {
            answer["expires_in"] = lifetime.into();
            if self.refresh_tokens {
                let refresh = format!("ghr_{:036x}", self.counter * 104_729 + user.id);
                self.counter += 1;
                self.refreshes.insert(refresh.clone(), (user, false));
                answer["refresh_token"] = refresh.into();
                answer["refresh_token_expires_in"] = 15_811_200.into();
            }
        }
        answer
    }

    /// The refresh grant (RFC 6749 §6) of the token endpoint: our client's credentials,
    /// a refresh token it issued, and a new access token. GitHub's refresh tokens are
    /// one-time (a second use is refused, as a refusal of GitHub's: HTTP 200) and rotate;
    /// Google's stay and none comes back (its refusal: HTTP 400 `invalid_grant`).
    fn refresh(&mut self, f: &BTreeMap<String, String>) -> HttpAnswer {
        self.refresh_hits += 1;
        let google = self.openid.is_some();
        let refuse = |e: &str| {
            let body = serde_json::json!({"error": e, "error_description": "Token has been expired or revoked."});
            HttpAnswer::json(if google { 400 } else { 200 }, body)
        };
        if let Some(e) = self.fail_next_refresh.take() {
            return refuse(e);
        }
        if f.get("client_id").map(String::as_str) != Some(UPSTREAM_CLIENT_ID)
            || f.get("client_secret").map(String::as_str) != Some(UPSTREAM_SECRET)
        {
            return refuse("invalid_client");
        }
        let presented = f.get("refresh_token").map_or("", String::as_str);
        let Some((user, used)) = self.refreshes.get_mut(presented) else {
            return refuse(if google {
                "invalid_grant"
            } else {
                "bad_refresh_token"
            });
        };
        let user = *user;
        if !google {
            if *used {
                return refuse("bad_refresh_token");
            }
            *used = true;
        }
        let token = format!("gho_{:036x}", self.counter * 7919 + user.id);
        self.counter += 1;
        self.tokens.insert(token.clone(), user);
        if google {
            let answer = serde_json::json!({"access_token": token, "expires_in": 3599,
                "scope": "openid https://www.googleapis.com/auth/userinfo.email", "token_type": "Bearer"});
            return HttpAnswer::json(200, answer);
        }
        HttpAnswer::json(200, self.github_tokens(user, token))
    }

    /// `GET /user` (F14; F15 for an unknown token).
    pub fn user(&self, req: &HttpRequest) -> HttpAnswer {
        assert_eq!(
            (req.method, req.url.as_str()),
            ("GET", &*self.user_endpoint)
        );
        let header = |name: &str| req.headers.iter().find(|(n, _)| *n == name);
        assert!(
            header("user-agent").is_some(),
            "F16: GitHub wants a User-Agent"
        );
        let token = header("authorization").and_then(|(_, v)| v.strip_prefix("Bearer "));
        let lenient = |t: &str| USERS.into_iter().find(|u| lenient_token(*u) == t);
        let user = token.and_then(|t| self.tokens.get(t).copied().or_else(|| lenient(t)));
        if let Some(google) = &self.openid {
            return match user {
                Some(u) => HttpAnswer::json(200, google.userinfo(u)),
                None => HttpAnswer::json(
                    401,
                    serde_json::json!({"error": "invalid_request",
                        "error_description": "Invalid Credentials"}),
                ),
            };
        }
        match user {
            Some(u) => HttpAnswer::json(
                200,
                serde_json::json!({"login": u.login, "id": u.id, "node_id": "MDQ6VXNlcjE=",
                    "type": "User", "site_admin": false, "name": "monalisa octocat", "email": null}),
            ),
            None => HttpAnswer::json(
                401,
                serde_json::json!({"message": "Bad credentials", "status": "401"}),
            ),
        }
    }

    /// The lenient authorization endpoint: any request for our client id and exact
    /// callback is waved through at once with a code naming `user`'s account; `None` for
    /// any other request. Keeps no state.
    pub fn wave_through(&self, user: GithubUser, url: &str) -> Option<String> {
        self.wave_through_naming(user, url, self.send_iss.as_deref())
    }

    /// [`wave_through`](Self::wave_through), in an answer that names `iss` as its
    /// RFC 9207 issuer: what another authorization server that relayed the request here
    /// sends the browser back with (A13, mix-up).
    pub fn wave_through_naming(
        &self,
        user: GithubUser,
        url: &str,
        iss: Option<&str>,
    ) -> Option<String> {
        let (base, _) = url.split_once('?')?;
        let q = url::form_urlencoded::parse(url.split_once('?')?.1.as_bytes())
            .into_owned()
            .collect::<BTreeMap<String, String>>();
        if base != self.authorize_endpoint
            || q.get("client_id").map(String::as_str) != Some(UPSTREAM_CLIENT_ID)
            || q.get("redirect_uri") != Some(&self.callback)
        {
            return None;
        }
        let code = lenient_code(user);
        Some(self.back_naming(&[("code", &code), ("state", q.get("state")?)], iss))
    }

    /// The account a lenient code names.
    pub fn lenient_code_user(code: &str) -> Option<GithubUser> {
        USERS.into_iter().find(|u| lenient_code(*u) == code)
    }

    /// The lenient token endpoint: a token for the account the code names, however often
    /// and with whatever verifier it is presented. Keeps no state.
    pub fn lenient_token(&self, req: &HttpRequest) -> HttpAnswer {
        let code = url::form_urlencoded::parse(&req.body)
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        match Self::lenient_code_user(&code) {
            Some(user) => HttpAnswer::json(
                200,
                serde_json::json!({"access_token": lenient_token(user), "token_type": "bearer", "scope": "read:user"}),
            ),
            None => HttpAnswer::json(200, serde_json::json!({"error": "bad_verification_code"})),
        }
    }

    /// The callback URI registered for our app at GitHub.
    pub fn callback(&self) -> &str {
        &self.callback
    }

    /// The account an access token it issued (strictly or leniently) speaks for.
    pub fn token_user(&self, token: &str) -> Option<GithubUser> {
        let lenient = || USERS.into_iter().find(|u| lenient_token(*u) == token);
        self.tokens.get(token).copied().or_else(lenient)
    }

    /// Every access token it issued (to check none ever reaches an MCP client, R41).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.tokens.keys().cloned().collect()
    }

    /// `POST /revoke` (RFC 7009, Google's): our client's credentials and a token; a
    /// refresh token ends the user's whole grant (every access token of the user goes
    /// with it), an access token only itself. 200 either way, as Google answers.
    pub fn revoke(&mut self, req: &HttpRequest) -> HttpAnswer {
        if req.url == self.token_deletion_endpoint {
            return self.delete_token(req);
        }
        assert_eq!(
            (req.method, req.url.as_str()),
            ("POST", &*self.revocation_endpoint)
        );
        self.revocation_hits += 1;
        let f = query_params(&format!("?{}", String::from_utf8_lossy(&req.body)));
        assert_eq!(
            f.get("client_id").map(String::as_str),
            Some(UPSTREAM_CLIENT_ID)
        );
        let token = f.get("token").cloned().unwrap_or_default();
        if let Some((user, _)) = self.refreshes.remove(&token) {
            self.tokens.retain(|_, u| *u != user);
        }
        self.tokens.remove(&token);
        HttpAnswer::json(200, serde_json::json!({}))
    }

    /// `DELETE /applications/{client_id}/token` (GitHub's, docs/upstreams.md#github-revocation):
    /// HTTP Basic with our app's id and secret, `{"access_token": …}`; that one token
    /// is revoked, `204` with no body. Anything else is `422`, as GitHub answers a
    /// request that fails validation; wrong credentials are `404`.
    fn delete_token(&mut self, req: &HttpRequest) -> HttpAnswer {
        use base64::Engine as _;
        self.revocation_hits += 1;
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_ref())
        };
        let ours = base64::engine::general_purpose::STANDARD
            .encode(format!("{UPSTREAM_CLIENT_ID}:{UPSTREAM_SECRET}"));
        if req.method != "DELETE" || header("authorization") != Some(&format!("Basic {ours}")) {
            return HttpAnswer::json(404, serde_json::json!({"message": "Not Found"}));
        }
        let body: Option<serde_json::Value> = serde_json::from_slice(&req.body).ok();
        let token = body
            .as_ref()
            .and_then(|b| b.get("access_token"))
            .and_then(serde_json::Value::as_str);
        let json = header("content-type") == Some("application/json");
        match token {
            Some(token) if json && header("user-agent").is_some() => {
                self.tokens.remove(token);
                HttpAnswer {
                    status: 204,
                    content_type: "text/plain",
                    body: Vec::new(),
                }
            }
            _ => HttpAnswer::json(422, serde_json::json!({"message": "Validation Failed"})),
        }
    }

    /// Whether `token` (an access or refresh token it issued) is still live.
    pub fn is_live(&self, token: &str) -> bool {
        self.tokens.contains_key(token) || self.refreshes.contains_key(token)
    }

    /// Every refresh token it issued, for tests that look for leaks (R66).
    pub fn issued_refresh_tokens(&self) -> Vec<String> {
        self.refreshes.keys().cloned().collect()
    }
}

fn lenient_code(user: GithubUser) -> String {
    format!("gh-code-{}", user.id)
}

fn lenient_token(user: GithubUser) -> String {
    format!("gho_lenient_{}", user.id)
}
