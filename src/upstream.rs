//! The upstream leg: [`UpstreamRedirect`] (only from a [`ConsentGiven`]), the callback's
//! browser binding, and the token exchange as data (R33–R41).

use core::fmt;
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::authorize::{AuthorizationDetails, MAX_STATE};
use crate::consent::ConsentGiven;
use crate::crypto::{
    B64x32, MacWriter, RecordMac, Sealed, StoreKey, UNSEALED, UpstreamCode, b64, ct_eq, fresh32,
    pkce_s256, push_hex, sha256_labeled,
};
use crate::error::{CallbackError, ParamError, UpstreamError};
use crate::reply::{ClientRedirect, Reply};
use crate::request::cookie::{self, BrowserContext};
use crate::request::params::{Params, append_pair, is_vschar_or_space};
use crate::{Entropy, Gate, UnixTime};

/// Largest upstream response body we parse.
pub const MAX_UPSTREAM_BODY: usize = 64 * 1024;

/// The way to the upstream: a 303 that sets this transaction's binding cookie, and the
/// transaction record to store.
///
/// No public constructor; the only function that returns one,
/// [`Gate::upstream_redirect`], consumes a [`ConsentGiven`] (R25, R34).
#[must_use = "store the transaction record, then send the redirect"]
pub struct UpstreamRedirect {
    transaction: TransactionRecord,
    location: String,
    cookies: Vec<String>,
}

impl fmt::Debug for UpstreamRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamRedirect")
            .field("client_id", &self.transaction.details.client_id)
            .finish_non_exhaustive()
    }
}

impl UpstreamRedirect {
    /// The record to store under its key until the callback takes it.
    pub fn transaction_record(&self) -> &TransactionRecord {
        &self.transaction
    }

    /// The upstream authorization URL (carries our `state` and PKCE challenge).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The 303 with the binding cookie (R24: 303 after a POST, never 307).
    pub fn response(&self) -> Reply {
        let mut r = Reply::see_other(self.location.clone());
        for c in &self.cookies {
            r = r.with_cookie(c.clone());
        }
        r
    }

    /// Takes the record and the reply apart.
    pub fn into_parts(self) -> (TransactionRecord, Reply) {
        let mut r = Reply::see_other(self.location);
        for c in self.cookies {
            r = r.with_cookie(c);
        }
        (self.transaction, r)
    }
}

/// An approved authorization on its way through the upstream, keyed by a hash of our
/// upstream `state`. It holds a hash of the binding cookie, never the cookie (R38: the MCP
/// client's parameters stay server-side; A16).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransactionRecord {
    key: StoreKey,
    details: AuthorizationDetails,
    binding_hash: [u8; 32],
    expires_at: UnixTime,
    mac: RecordMac,
}

impl Sealed for TransactionRecord {
    const LABEL: &'static str = "transaction v1";
    fn feed(&self, w: &mut MacWriter) {
        w.fixed(&self.key.0);
        self.details.feed(w);
        w.fixed(&self.binding_hash).u64(self.expires_at.0);
    }
    fn mac(&self) -> &RecordMac {
        &self.mac
    }
}

impl TransactionRecord {
    /// The store key (a hash of the upstream `state`).
    pub fn key(&self) -> &StoreKey {
        &self.key
    }
    /// When it may be deleted (R36).
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
    /// What was approved.
    pub fn details(&self) -> &AuthorizationDetails {
        &self.details
    }
}

fn binding_cookie_name(gate: &Gate, transaction: &StoreKey) -> String {
    // One cookie per transaction, so parallel flows in one browser do not clobber each
    // other (the Cloudflare demo's single cookie does). Named after the transaction's
    // store key (a hash of the upstream `state`, already computed): 48 bits of a hash of a
    // 256-bit secret tell the browser nothing it could use.
    let mut name = cookie::name_owned(gate.config.cookie_mode, "cg-bind-");
    push_hex(&mut name, &transaction.as_bytes()[..6]);
    name
}

impl Gate {
    fn upstream_verifier(&self, state: &str) -> B64x32 {
        // Derived, not stored: the store never holds the upstream PKCE verifier (R37).
        let mut w = self.config.keys.mac("upstream pkce");
        w.str(state);
        B64x32::encode(&w.finish())
    }

    /// Spends a [`ConsentGiven`] on an upstream authorization redirect: fresh `state`
    /// (256 bits, R33), upstream PKCE S256 (R37), and a binding cookie set only now, after
    /// approval (R34).
    pub fn upstream_redirect(
        &self,
        consent: ConsentGiven,
        now: UnixTime,
        entropy: &mut (impl Entropy + ?Sized),
    ) -> UpstreamRedirect {
        let state = b64(&fresh32(entropy));
        let binding = b64(&fresh32(entropy));
        let prefix = &self.config.upstream_authorize_prefix;
        let mut location = String::with_capacity(prefix.len() + 200);
        location.push_str(prefix);
        append_pair(&mut location, "state", &state);
        append_pair(
            &mut location,
            "code_challenge",
            pkce_s256(self.upstream_verifier(&state).as_str()).as_str(),
        );
        append_pair(&mut location, "code_challenge_method", "S256");
        let lifetime = self.config.lifetimes.transaction;
        let key = StoreKey::derive("upstream state", state.as_bytes());
        let mut transaction = TransactionRecord {
            key,
            details: consent.details,
            binding_hash: sha256_labeled("binding", binding.as_bytes()),
            expires_at: now.plus(lifetime),
            mac: UNSEALED,
        };
        transaction.mac = transaction.compute_mac(&self.config.keys);
        let mode = self.config.cookie_mode;
        let mut cookies = vec![cookie::set(
            mode,
            &binding_cookie_name(self, &key),
            &binding,
            lifetime,
        )];
        cookies.extend(consent.remember_cookie);
        UpstreamRedirect {
            transaction,
            location,
            cookies,
        }
    }
}

/// A parsed upstream callback query.
#[derive(Clone, PartialEq, Eq)]
pub struct Callback {
    state: String,
    code: Option<UpstreamCode>,
    error: Option<String>,
    iss: Option<String>,
    /// The host takes the transaction by it and the verification checks it: hashed once.
    transaction_key: StoreKey,
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Callback {
    /// Parses the callback query. Unknown parameters are ignored (docs/upstreams.md#parsing-rules);
    /// `state` is required; exactly one of `code` and `error`.
    pub fn parse(query: &[u8]) -> Result<Self, CallbackError> {
        let p = Params::parse(query)?;
        let state = p.required("state", MAX_STATE)?;
        let code = p.optional("code", 1024)?;
        let error = p.optional("error", 128)?;
        let iss = p.optional("iss", 512)?;
        if code.is_some() == error.is_some() {
            return Err(CallbackError::Ambiguous);
        }
        if !is_vschar_or_space(state) {
            return Err(ParamError::Invalid("state").into());
        }
        if code.is_some_and(|c| !is_vschar_or_space(c)) {
            return Err(ParamError::Invalid("code").into());
        }
        Ok(Self {
            transaction_key: StoreKey::derive("upstream state", state.as_bytes()),
            state: state.to_owned(),
            code: code.map(UpstreamCode::new),
            // Kept for logs only: reduced to a safe token, never echoed to anyone.
            error: error.map(|e| {
                e.chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(64)
                    .collect()
            }),
            iss: iss.map(str::to_owned),
        })
    }

    /// The key of the transaction to take (atomically, before any upstream call).
    pub fn transaction_key(&self) -> StoreKey {
        self.transaction_key
    }
}

/// An HTTP request the host must send for the core (back channel).
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub struct HttpRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The absolute URL.
    pub url: String,
    /// Headers to send (fixed values borrowed, as in [`Reply`]).
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies and Authorization headers carry secrets.
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// An upstream HTTP response, as the host received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamResponse<'a> {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// A callback whose `state` named a transaction this browser consented to, exactly once,
/// in time: the code may now be exchanged.
#[must_use]
pub struct VerifiedCallback {
    pub(crate) details: AuthorizationDetails,
    pub(crate) token_request: HttpRequest,
    pub(crate) user_endpoint: String,
    pub(crate) issuer: String,
    pub(crate) clear_cookie: String,
    #[cfg(consent_gate_faults)]
    pub(crate) reinsert: Option<TransactionRecord>,
}

impl fmt::Debug for VerifiedCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCallback")
            .field("client_id", &self.details.client_id)
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// Verifies a callback against the transaction the host *took* under
    /// [`Callback::transaction_key`] (R35, R36; A2, A6, A7).
    ///
    /// The take stands even when verification fails: never store the record back. In A2
    /// the victim's browser reaches the callback first and fails the binding check; that
    /// failed attempt must burn the `state`, or the URL it carried (with the victim's
    /// upstream code) would complete later in the attacker's browser, which does hold the
    /// binding cookie (found by the `flow` fuzzer).
    pub fn verify_callback(
        &self,
        callback: Callback,
        transaction: Option<TransactionRecord>,
        browser: BrowserContext<'_>,
        now: UnixTime,
    ) -> Result<VerifiedCallback, CallbackError> {
        let txn = transaction.ok_or(CallbackError::UnknownTransaction)?;
        if !txn.mac_is_valid(&self.config.keys) {
            return Err(CallbackError::TamperedRecord);
        }
        let key = callback.transaction_key();
        if txn.key != key {
            return Err(CallbackError::UnknownTransaction);
        }
        if now >= txn.expires_at {
            return Err(CallbackError::Expired);
        }
        if browser.cookies_oversized() {
            return Err(CallbackError::CookieHeaderTooLarge);
        }
        let name = binding_cookie_name(self, &key);
        let bound = cookie::find(browser.cookies, &name)
            .is_some_and(|v| ct_eq(&sha256_labeled("binding", v.as_bytes()), &txn.binding_hash));
        if !bound && !self.config.faults().callback_unbound {
            return Err(CallbackError::BindingMismatch);
        }
        let up = &self.config.upstream;
        if let (Some(expected), Some(got)) = (&up.issuer, &callback.iss) {
            if expected != got {
                return Err(CallbackError::IssuerMismatch);
            }
        }
        #[cfg(consent_gate_faults)]
        let reinsert = self.config.faults().state_reusable.then(|| txn.clone());
        let details = txn.details;
        let code = match (callback.code, callback.error) {
            (Some(code), None) => code,
            (_, error) => {
                let error = error.unwrap_or_default();
                let to_client_error = if error == "access_denied" {
                    "access_denied"
                } else {
                    "server_error"
                };
                return Err(CallbackError::Upstream {
                    cause: UpstreamError::ErrorResponse(error),
                    to_client: ClientRedirect::error(
                        &details.redirect_uri,
                        to_client_error,
                        details.client_state.as_deref(),
                        &self.config.issuer,
                    ),
                });
            }
        };
        let mut body = String::with_capacity(512);
        append_pair(&mut body, "grant_type", "authorization_code");
        append_pair(&mut body, "code", code.secret());
        append_pair(&mut body, "redirect_uri", &self.config.callback_uri);
        append_pair(&mut body, "client_id", &up.client_id);
        append_pair(&mut body, "client_secret", up.client_secret.secret());
        append_pair(
            &mut body,
            "code_verifier",
            self.upstream_verifier(&callback.state).as_str(),
        );
        let token_request = HttpRequest {
            method: "POST",
            url: up.token_endpoint.clone(),
            headers: vec![
                (
                    "content-type",
                    Cow::Borrowed("application/x-www-form-urlencoded"),
                ),
                // GitHub picks the format by Accept; never its REST media type (406, F18).
                ("accept", Cow::Borrowed("application/json")),
                ("user-agent", Cow::Borrowed("consent-gate")),
            ],
            body: body.into_bytes(),
        };
        Ok(VerifiedCallback {
            details,
            token_request,
            user_endpoint: up.user_endpoint.clone(),
            issuer: self.config.issuer.clone(),
            clear_cookie: cookie::clear(self.config.cookie_mode, &name),
            #[cfg(consent_gate_faults)]
            reinsert,
        })
    }
}

/// A parsed, successful upstream token response.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct UpstreamTokens {
    pub(crate) access_token: crate::crypto::UpstreamToken,
    pub(crate) expires_in: Option<u64>,
}

/// Parses an upstream token response: branch on the body, not the status (GitHub answers
/// errors with HTTP 200, docs/upstreams.md#github-token-response); JSON or form by `Content-Type`;
/// any `error` member is a failure; a missing or empty `access_token` is a failure.
pub(crate) fn parse_token_response(
    resp: &UpstreamResponse<'_>,
) -> Result<UpstreamTokens, UpstreamError> {
    if resp.body.len() > MAX_UPSTREAM_BODY {
        return Err(UpstreamError::Malformed);
    }
    let ct = resp.content_type.unwrap_or("");
    let is = |essence: &str| {
        ct.get(..essence.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(essence))
    };
    const WANTED: [&str; 4] = ["access_token", "token_type", "expires_in", "error"];
    let mut fields: [Option<Cow<'_, str>>; 4] = Default::default();
    if is("application/x-www-form-urlencoded") || is("text/plain") {
        let p = Params::parse(resp.body).map_err(|_| UpstreamError::Malformed)?;
        for (slot, k) in fields.iter_mut().zip(WANTED) {
            *slot = p.get(k).map(|v| Cow::Owned(v.to_owned()));
        }
    } else {
        let members = json::object_members(resp.body, &WANTED).map_err(|_| {
            if resp.status != 200 {
                UpstreamError::Status(resp.status)
            } else {
                UpstreamError::Malformed
            }
        })?;
        for ((slot, k), v) in fields.iter_mut().zip(WANTED).zip(members) {
            *slot = match v {
                Some(json::Scalar::Str(s)) => Some(s),
                // Numbers only where providers send them (`expires_in` may be either,
                // docs/upstreams.md#parsing-rules); a numeric `access_token` is not a token.
                Some(json::Scalar::Num(n)) if k == "expires_in" => Some(Cow::Owned(n.to_string())),
                _ => None,
            };
        }
    }
    let get = |k: &str| {
        WANTED
            .iter()
            .position(|w| *w == k)
            .and_then(|i| fields[i].as_deref())
    };
    if let Some(e) = get("error") {
        let e: String = e
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(UpstreamError::ErrorResponse(e));
    }
    if resp.status != 200 {
        return Err(UpstreamError::Status(resp.status));
    }
    let token = get("access_token").filter(|t| !t.is_empty() && t.len() <= 4096);
    let token = token.ok_or(UpstreamError::Incomplete)?;
    // `bearer` (GitHub) or `Bearer` (Google); absent is tolerated.
    if get("token_type").is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
        return Err(UpstreamError::Incomplete);
    }
    Ok(UpstreamTokens {
        access_token: crate::crypto::UpstreamToken::new(token),
        // Absent means "does not expire" (GitHub OAuth Apps), never "expired".
        expires_in: get("expires_in").and_then(|v| v.parse().ok()),
    })
}

/// The user an upstream document names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UpstreamUser {
    pub(crate) subject: String,
    pub(crate) display_name: Option<String>,
}

/// Parses a GitHub `GET /user` document (`id`, `login`) or an OIDC userinfo (`sub`).
pub(crate) fn parse_user(
    resp: &UpstreamResponse<'_>,
    prefix: &str,
) -> Result<UpstreamUser, UpstreamError> {
    if resp.status != 200 {
        return Err(UpstreamError::Status(resp.status));
    }
    if resp.body.len() > MAX_UPSTREAM_BODY {
        return Err(UpstreamError::Malformed);
    }
    let [sub, id, login, email, name] =
        json::object_members(resp.body, &["sub", "id", "login", "email", "name"])
            .map_err(|_| UpstreamError::Malformed)?;
    let id: Cow<'_, str> = match (sub, id) {
        (Some(json::Scalar::Str(s)), _) => s,
        (_, Some(json::Scalar::Num(n))) => Cow::Owned(n.to_string()),
        (_, Some(json::Scalar::Str(s))) => s,
        _ => return Err(UpstreamError::NoSubject),
    };
    if id.is_empty() || id.len() > 255 || !is_vschar_or_space(&id) {
        return Err(UpstreamError::NoSubject);
    }
    let display_name = [login, email, name]
        .into_iter()
        .find_map(|v| match v {
            Some(json::Scalar::Str(s)) => Some(s),
            _ => None,
        })
        .filter(|s| s.len() <= 255)
        .map(|s| s.chars().filter(|c| !c.is_control()).collect());
    let mut subject = String::with_capacity(prefix.len() + id.len());
    subject.push_str(prefix);
    subject.push_str(&id);
    Ok(UpstreamUser {
        subject,
        display_name,
    })
}

mod json {
    //! Reading a few members of an upstream JSON object without building a
    //! `serde_json::Value` tree: strings borrow the body when they have no escapes, every
    //! other member is skipped. Strict where the tree was lenient: the top level must be an
    //! object, and a member we read may appear only once (a repeated `access_token` or `id`
    //! is ambiguous, R22's rule applied to JSON).

    use core::fmt;
    use std::borrow::Cow;

    use serde::Deserializer as _;
    use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

    /// A member's value, as far as we care.
    pub(super) enum Scalar<'de> {
        Str(Cow<'de, str>),
        Num(serde_json::Number),
        Other,
    }

    struct ScalarVisitor;

    impl<'de> Visitor<'de> for ScalarVisitor {
        type Value = Scalar<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Owned(v)))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Scalar::Num(v.into()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Scalar::Num(v.into()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Scalar::Other, Scalar::Num))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Scalar::Other)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Scalar::Other)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Scalar::Other)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Scalar::Other)
        }
    }

    impl<'de> de::Deserialize<'de> for Scalar<'de> {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ScalarVisitor)
        }
    }

    /// Reads a member name as its index in the wanted list (no allocation: the name is
    /// compared where it lies).
    struct KeySeed<'w, const N: usize>(&'w [&'static str; N]);

    impl<'de, const N: usize> de::DeserializeSeed<'de> for KeySeed<'_, N> {
        type Value = Option<usize>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de, const N: usize> Visitor<'de> for KeySeed<'_, N> {
        type Value = Option<usize>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a member name")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(self.0.iter().position(|w| *w == v))
        }
    }

    struct ObjectVisitor<'w, const N: usize>(&'w [&'static str; N]);

    impl<'de, const N: usize> Visitor<'de> for ObjectVisitor<'_, N> {
        type Value = [Option<Scalar<'de>>; N];
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out: [Option<Scalar<'de>>; N] = core::array::from_fn(|_| None);
            while let Some(key) = map.next_key_seed(KeySeed(self.0))? {
                match key {
                    Some(i) if out[i].is_some() => {
                        return Err(de::Error::custom("repeated member"));
                    }
                    Some(i) => out[i] = Some(map.next_value::<Scalar<'de>>()?),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(out)
        }
    }

    /// The members named in `wanted` of the JSON object `body`, in that order.
    pub(super) fn object_members<'de, const N: usize>(
        body: &'de [u8],
        wanted: &[&'static str; N],
    ) -> Result<[Option<Scalar<'de>>; N], serde_json::Error> {
        let mut d = serde_json::Deserializer::from_slice(body);
        let out = d.deserialize_map(ObjectVisitor(wanted))?;
        d.end()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> UpstreamResponse<'_> {
        UpstreamResponse {
            status: 200,
            content_type: Some("application/json"),
            body: body.as_bytes(),
        }
    }

    #[test]
    fn a_repeated_member_is_refused_not_last_wins() {
        // R22's rule for OAuth parameters, applied to the upstream's JSON: with "last
        // wins" a proxy or a smuggled member could decide which token or subject we take.
        let twice = r#"{"access_token":"a","token_type":"bearer","access_token":"b"}"#;
        assert_eq!(
            parse_token_response(&json(twice)).err(),
            Some(UpstreamError::Malformed)
        );
        let user = r#"{"id":1,"login":"octocat","id":2}"#;
        assert_eq!(
            parse_user(&json(user), "github:").err(),
            Some(UpstreamError::Malformed)
        );
        // Members we do not read may repeat: they are skipped, not judged.
        let other = r#"{"access_token":"a","scope":"x","scope":"y"}"#;
        assert!(parse_token_response(&json(other)).is_ok());
    }

    #[test]
    fn only_an_object_is_a_document() {
        // A derived struct visitor would also accept a JSON array, member by position.
        for body in [
            r#"["a","bearer"]"#,
            "\"a\"",
            "1",
            "null",
            r#"{"access_token":"a"} x"#,
        ] {
            assert!(parse_token_response(&json(body)).is_err(), "{body}");
        }
        let ok = parse_token_response(&json(
            r#"{"access_token":"gho_x","token_type":"bearer","expires_in":28800,"x":[1,{"y":null}]}"#,
        ))
        .expect("a GitHub-shaped answer");
        assert_eq!(ok.access_token.secret(), "gho_x");
        assert_eq!(ok.expires_in, Some(28800));
        assert_eq!(
            parse_user(&json(r#"{"login":"octocat","id":583231}"#), "github:")
                .expect("user")
                .subject,
            "github:583231"
        );
    }
}

#[cfg(test)]
#[path = "tests/upstream_checks.rs"]
mod checks;
