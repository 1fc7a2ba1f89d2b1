//! The consent page, its browser-bound CSRF protection, the decision, and
//! [`ConsentGiven`]: the only key to the upstream (R25–R31).
//!
//! CSRF binding (R28, A3): the browser holds a random secret in an `HttpOnly` cookie; the
//! form's token is `HMAC(server key, browser secret, transaction handle)`. An attacker who
//! loads its own consent page learns a token bound to *its* browser secret, which the
//! victim's browser does not send. One cookie serves every tab and every re-render, so a
//! double GET or a prefetch never breaks the form (FastMCP #4814), and parallel flows in
//! one browser do not clobber each other.

use core::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::authorize::AuthorizationDetails;
use crate::authorize::AuthorizeRequest;
use crate::client_document::{is_metadata_document_url, metadata_document_host};
use crate::config::ConsentPolicy;
use crate::cookie::{self, BrowserContext};
use crate::crypto::{
    MacWriter, RecordMac, Sealed, StoreKey, UNSEALED, b64, fresh32, unb64, unb64_32,
};
use crate::error::{AuthorizeError, ConsentError};
use crate::messages::Language;
use crate::page::{ConsentPageFields, UpstreamPiece};
use crate::params::{ParamError, Params};
use crate::register::ClientRecord;
use crate::reply::{ClientRedirect, Reply};
use crate::step::{Kind, Op, Record, Step};
use crate::{Entropy, Gate, UnixTime};

const BROWSER_COOKIE: &str = "cg-browser";
const REMEMBER_COOKIE: &str = "cg-consent";
/// Most remembered consents kept in the cookie (bounded header size, FastMCP #3747).
const MAX_REMEMBERED: usize = 16;
const REMEMBER_ENTRY: usize = 24;

/// What `GET /authorize` leads to.
#[derive(Debug)]
#[must_use]
// Moved once per request; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Authorization {
    /// Show the consent page.
    NeedsConsent(ConsentPrompt),
    /// A remembered consent for exactly this client, redirect URI, scope and resource
    /// applied ([`ConsentPolicy::Remember`] only): go upstream.
    Remembered(ConsentGiven),
}

/// Everything the consent page shows (R12, R27). The redirect host is always there, next
/// to the self-asserted name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConsentView {
    /// The client's self-asserted name (may be absent).
    pub client_name: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The exact redirect URI the code will be sent to.
    pub redirect_uri: String,
    /// Its host.
    pub redirect_host: String,
    /// The MCP scopes requested.
    pub scopes: Vec<String>,
    /// The upstream provider's name.
    pub upstream_name: String,
    /// The upstream scopes our server will ask for.
    pub upstream_scopes: Vec<String>,
    /// The MCP resource the token is for.
    pub resource: String,
    /// Whether the redirect goes to a loopback address only (R27, A11: any local program
    /// can listen there).
    pub loopback_warning: bool,
    /// For a Client ID Metadata Document's client, the domain that published the
    /// document (the host of its URL client id): the one detail of the client that is
    /// verified (R59).
    pub client_domain: Option<String>,
    /// The form's hidden transaction handle.
    pub form_tx: String,
    /// The form's hidden CSRF token.
    pub form_csrf: String,
}

/// A consent page waiting for the user's decision: the pending record to store and what
/// the page needs. The page is rendered when asked for ([`page`](Self::page),
/// [`into_parts`](Self::into_parts)); hosts with their own template read
/// [`view`](Self::view) instead.
#[must_use = "store the pending record, then send the page"]
pub struct ConsentPrompt {
    pending: PendingConsent,
    form_tx: String,
    form_csrf: String,
    cookie: String,
    upstream: Arc<UpstreamPiece>,
    language: Language,
}

impl fmt::Debug for ConsentPrompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsentPrompt")
            .field("client_id", &self.pending.details.client_id)
            .finish_non_exhaustive()
    }
}

impl ConsentPrompt {
    /// The view model, for hosts that render their own page (built on each call).
    pub fn view(&self) -> ConsentView {
        let d = &self.pending.details;
        ConsentView {
            client_name: d.client_name.clone(),
            client_id: d.client_id.clone(),
            redirect_uri: d.redirect_uri.as_str().to_owned(),
            redirect_host: d.redirect_uri.host().to_owned(),
            scopes: d.scope.iter().map(str::to_owned).collect(),
            upstream_name: self.upstream.name.clone(),
            upstream_scopes: self.upstream.scopes.clone(),
            resource: d.resource.clone(),
            loopback_warning: d.redirect_uri.is_loopback(),
            client_domain: metadata_document_host(&d.client_id),
            form_tx: self.form_tx.clone(),
            form_csrf: self.form_csrf.clone(),
        }
    }

    /// The record to store under its key until the decision comes back.
    pub fn pending_record(&self) -> &PendingConsent {
        &self.pending
    }

    /// The browser-binding cookie every page reply must carry.
    pub fn set_cookie(&self) -> &str {
        &self.cookie
    }

    fn render(&self) -> Reply {
        let d = &self.pending.details;
        let fields = ConsentPageFields {
            client_name: d.client_name(),
            client_id: d.client_id(),
            verified_domain: metadata_document_host(d.client_id()),
            redirect_uri: d.redirect_uri(),
            scope: d.scope(),
            resource: d.resource(),
        };
        let (tx, csrf, upstream) = (&self.form_tx, &self.form_csrf, &self.upstream);
        crate::page::consent_page(&fields, tx, csrf, upstream, self.language)
    }

    /// The default page in `language` (English unless set; pick it with
    /// [`Language::negotiate`] from the browser's `Accept-Language`).
    pub fn in_language(mut self, language: Language) -> Self {
        self.language = language;
        self
    }

    /// The exact `Content-Security-Policy` the default page is sent with, for a host that
    /// renders its own page from [`view`](Self::view): its `form-action` must allow our
    /// origin, the upstream and the client's redirect origin, since browsers check it on
    /// the redirects that follow the form (docs/http-contract.md#consent-form).
    pub fn content_security_policy(&self) -> String {
        let redirect_uri = self.pending.details.redirect_uri();
        crate::page::consent_csp(&self.upstream.origin, redirect_uri)
    }

    /// The default page: escaped, no external resources, one form (`decision` =
    /// `approve` | `deny`), with the security headers and the cookie.
    pub fn page(&self) -> Reply {
        self.render().with_cookie(self.cookie.clone())
    }

    /// Takes the pending record and the page apart.
    pub fn into_parts(self) -> (PendingConsent, Reply) {
        let page = self.render().with_cookie(self.cookie);
        (self.pending, page)
    }
}

/// A consent page that was shown and not yet answered. Store it under
/// [`PendingConsent::key`]; take it (get and delete, atomically) on the decision.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PendingConsent {
    key: StoreKey,
    details: AuthorizationDetails,
    expires_at: UnixTime,
    mac: RecordMac,
}

impl Sealed for PendingConsent {
    const LABEL: &'static str = "pending consent v1";
    fn feed(&self, w: &mut MacWriter) {
        w.fixed(&self.key.0);
        self.details.feed(w);
        w.u64(self.expires_at.0);
    }
    fn mac(&self) -> &RecordMac {
        &self.mac
    }
}

impl PendingConsent {
    /// The store key (a hash of the form's transaction handle).
    pub fn key(&self) -> &StoreKey {
        &self.key
    }
    /// When it may be deleted.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
    /// What the user is asked to approve.
    pub fn details(&self) -> &AuthorizationDetails {
        &self.details
    }
}

/// The user's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// "Approve".
    Approve,
    /// "Deny".
    Deny,
}

/// A parsed consent form body.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsentForm {
    tx: String,
    csrf: String,
    choice: Choice,
    /// The host looks the record up by it and the decision checks it: hashed once.
    pending_key: StoreKey,
}

impl fmt::Debug for ConsentForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsentForm")
            .field("choice", &self.choice)
            .finish_non_exhaustive()
    }
}

impl ConsentForm {
    /// Parses the `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Result<Self, ConsentError> {
        let p = Params::parse(body)?;
        let tx = p.required("tx", 64)?;
        let csrf = p.required("csrf", 64)?;
        let choice = match p.required("decision", 16)? {
            "approve" => Choice::Approve,
            "deny" => Choice::Deny,
            _ => return Err(ConsentError::InvalidDecision),
        };
        if unb64_32(tx).is_none() {
            return Err(ParamError::Invalid("tx").into());
        }
        Ok(Self {
            tx: tx.to_owned(),
            csrf: csrf.to_owned(),
            choice,
            pending_key: StoreKey::derive("consent tx", tx.as_bytes()),
        })
    }

    /// The key of the pending record to take.
    pub fn pending_key(&self) -> StoreKey {
        self.pending_key
    }

    /// What the user chose.
    pub fn choice(&self) -> Choice {
        self.choice
    }
}

/// The outcome of a verified consent decision.
#[derive(Debug)]
#[must_use]
pub enum Decision {
    /// Approved in this browser: the proof to go upstream.
    Approved(ConsentGiven),
    /// Denied after seeing the page: tell the client `access_denied` (with `state`, `iss`).
    Denied(ClientRedirect),
}

/// Proof that this browser approved this client, redirect URI, scope and resource on a
/// page we rendered, within its lifetime, once.
///
/// Private fields, no `Clone`, no `Default`, no `Deserialize`, no public constructor:
/// outside this crate it can only be obtained from [`Gate::decide`] (or a remembered
/// consent in [`Gate::authorize`]), and [`Gate::upstream_redirect`] consumes it. The
/// compile-fail tests in `tests/ui/compile_fail/` prove each of these.
#[must_use = "consent given is only useful to go upstream"]
pub struct ConsentGiven {
    details: AuthorizationDetails,
    remember_cookie: Option<String>,
}

impl fmt::Debug for ConsentGiven {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsentGiven")
            .field("client_id", &self.details.client_id)
            .finish_non_exhaustive()
    }
}

impl ConsentGiven {
    /// Consumed by the upstream redirect, the only step that takes this proof (R25, R34):
    /// what was approved, and the remember-consent cookie to set with the redirect.
    pub(crate) fn into_parts(self) -> (AuthorizationDetails, Option<String>) {
        (self.details, self.remember_cookie)
    }

    /// What was approved.
    pub fn details(&self) -> &AuthorizationDetails {
        &self.details
    }
}

fn browser_secret(browser: &BrowserContext<'_>, name: &str) -> Option<[u8; 32]> {
    let v = cookie::find(browser.cookies, name)?;
    unb64_32(v)
}

impl Gate {
    /// Validates an authorization request against the client's registration and, unless a
    /// remembered consent applies, prepares the consent page (docs/design.md#typestate, first two
    /// steps).
    ///
    /// `client` is the registration the host looked up by
    /// [`AuthorizeRequest::client_key`] (`None` when there is none).
    pub fn authorize(
        &self,
        request: AuthorizeRequest,
        client: Option<&ClientRecord>,
        browser: BrowserContext<'_>,
        now: UnixTime,
        entropy: &mut (impl Entropy + ?Sized),
    ) -> Result<Authorization, AuthorizeError> {
        let details = self.validate(request, client)?;
        // Read as "no cookies", an oversized header would silently fail the form (A21).
        if browser.cookies_oversized() {
            return Err(AuthorizeError::CookieHeaderTooLarge);
        }
        if let Some(consent) = remembered(self, &details, browser, now) {
            return Ok(Authorization::Remembered(consent));
        }
        Ok(Authorization::NeedsConsent(
            self.prompt(details, browser, now, entropy),
        ))
    }

    fn csrf_token(&self, browser: &[u8; 32], tx: &str) -> [u8; 32] {
        let mut w = self.config.keys.mac("consent csrf");
        if self.config.faults().csrf_unbound {
            // A3 fault: the token depends on the server-side transaction only.
            w.str(tx);
            return w.finish();
        }
        w.fixed(browser).str(tx);
        w.finish()
    }

    pub(crate) fn prompt(
        &self,
        details: AuthorizationDetails,
        browser: BrowserContext<'_>,
        now: UnixTime,
        entropy: &mut (impl Entropy + ?Sized),
    ) -> ConsentPrompt {
        let mode = self.config.cookie_mode;
        let cookie_name = cookie::name(mode, BROWSER_COOKIE);
        let secret = browser_secret(&browser, &cookie_name).unwrap_or_else(|| fresh32(entropy));
        let tx = b64(&fresh32(entropy));
        let csrf = b64(&self.csrf_token(&secret, &tx));
        let lifetime = self.config.lifetimes.consent;
        let mut pending = PendingConsent {
            key: StoreKey::derive("consent tx", tx.as_bytes()),
            details,
            expires_at: now.plus(lifetime),
            mac: UNSEALED,
        };
        pending.mac = pending.compute_mac(&self.config.keys);
        // The browser cookie lives as long as the longest page it protects.
        let cookie = cookie::set(mode, &cookie_name, &b64(&secret), lifetime);
        ConsentPrompt {
            pending,
            form_tx: tx,
            form_csrf: csrf,
            cookie,
            upstream: Arc::clone(&self.config.upstream_piece),
            language: Language::default(),
        }
    }

    /// Verifies a consent decision (docs/design.md#typestate, third step).
    ///
    /// `pending` is the record the host *took* under [`ConsentForm::pending_key`]. The
    /// CSRF token must be bound to this browser's cookie (R28, constant time); `Origin`
    /// and `Sec-Fetch-Site` are checked as defence in depth (A3).
    pub fn decide(
        &self,
        form: ConsentForm,
        pending: Option<PendingConsent>,
        browser: BrowserContext<'_>,
        now: UnixTime,
    ) -> Result<Decision, ConsentError> {
        if self.is_cross_site(&browser) {
            return Err(ConsentError::CrossSite);
        }
        let pending = pending.ok_or(ConsentError::UnknownTransaction)?;
        if !pending.mac_is_valid(&self.config.keys) {
            return Err(ConsentError::TamperedRecord);
        }
        if pending.key != form.pending_key() {
            return Err(ConsentError::UnknownTransaction);
        }
        if now >= pending.expires_at {
            return Err(ConsentError::Expired);
        }
        if browser.cookies_oversized() {
            return Err(ConsentError::CookieHeaderTooLarge);
        }
        let cookie_name = cookie::name(self.config.cookie_mode, BROWSER_COOKIE);
        let secret = match browser_secret(&browser, &cookie_name) {
            Some(s) => s,
            None if self.config.faults().csrf_unbound => [0; 32],
            None => return Err(ConsentError::CsrfMismatch),
        };
        let expected = self.csrf_token(&secret, &form.tx);
        let matches = unb64_32(&form.csrf).is_some_and(|p| crate::crypto::ct_eq(&expected, &p));
        if !matches {
            return Err(ConsentError::CsrfMismatch);
        }
        let details = pending.details;
        match form.choice {
            Choice::Deny => Ok(Decision::Denied(ClientRedirect::error(
                &details.redirect_uri,
                "access_denied",
                details.client_state.as_deref(),
                &self.config.issuer,
            ))),
            Choice::Approve => {
                let remember_cookie = (self.config.consent_policy == ConsentPolicy::Remember)
                    .then(|| self.remember_cookie(&details, &browser, now));
                Ok(Decision::Approved(ConsentGiven {
                    details,
                    remember_cookie,
                }))
            }
        }
    }

    fn is_cross_site(&self, browser: &BrowserContext<'_>) -> bool {
        // `Origin: null` is what a form POST from a `Referrer-Policy: no-referrer` page
        // sends (Fetch §3.1): not evidence either way; the CSRF token decides.
        let bad_origin = browser
            .origin
            .is_some_and(|o| o != "null" && o != self.issuer_origin());
        let bad_site = browser
            .sec_fetch_site
            .is_some_and(|s| s != "same-origin" && s != "none");
        bad_origin || bad_site
    }

    fn remember_digest(&self, d: &AuthorizationDetails) -> [u8; 16] {
        let mut w = self.config.keys.mac("remembered consent");
        let tag = if self.config.faults().consent_per_browser {
            // A1/A4 fault: "this browser approved something" counts for every client.
            w.finish()
        } else {
            w.str(&d.client_id)
                .str(d.redirect_uri.as_str())
                .str(d.scope.as_str())
                .str(&d.resource);
            w.finish()
        };
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag[..16]);
        out
    }

    /// Valid, unexpired remembered entries from the browser's cookie.
    fn remembered_entries(
        &self,
        browser: &BrowserContext<'_>,
        now: UnixTime,
    ) -> Vec<([u8; 16], u64)> {
        let name = cookie::name(self.config.cookie_mode, REMEMBER_COOKIE);
        let Some((body, tag)) =
            cookie::find(browser.cookies, &name).and_then(|v| v.split_once('.'))
        else {
            return Vec::new();
        };
        let (Some(body), Some(tag)) = (unb64(body), unb64(tag)) else {
            return Vec::new();
        };
        if body.len() % REMEMBER_ENTRY != 0
            || body.len() > MAX_REMEMBERED * REMEMBER_ENTRY
            || !{
                let mut w = self.config.keys.mac("remember cookie");
                w.bytes(&body);
                w.verify(&tag)
            }
        {
            return Vec::new();
        }
        body.chunks_exact(REMEMBER_ENTRY)
            .filter_map(|c| {
                let mut d = [0u8; 16];
                d.copy_from_slice(&c[..16]);
                let exp = u64::from_be_bytes(c[16..].try_into().ok()?);
                (exp > now.0).then_some((d, exp))
            })
            .collect()
    }

    fn remember_cookie(
        &self,
        d: &AuthorizationDetails,
        browser: &BrowserContext<'_>,
        now: UnixTime,
    ) -> String {
        let digest = self.remember_digest(d);
        let mut entries = self.remembered_entries(browser, now);
        entries.retain(|(e, _)| *e != digest);
        entries.push((digest, now.plus(self.config.lifetimes.remembered_consent).0));
        let skip = entries.len().saturating_sub(MAX_REMEMBERED);
        let mut body = Vec::with_capacity(entries.len() * REMEMBER_ENTRY);
        for (d, exp) in &entries[skip..] {
            body.extend_from_slice(d);
            body.extend_from_slice(&exp.to_be_bytes());
        }
        let mut w = self.config.keys.mac("remember cookie");
        w.bytes(&body);
        let tag = w.finish();
        let name = cookie::name(self.config.cookie_mode, REMEMBER_COOKIE);
        let value = format!("{}.{}", b64(&body), b64(&tag));
        cookie::set(
            self.config.cookie_mode,
            &name,
            &value,
            self.config.lifetimes.remembered_consent,
        )
    }
}

/// A remembered consent, if the policy allows it for this exact request (R31, A4).
pub(crate) fn remembered(
    gate: &Gate,
    details: &AuthorizationDetails,
    browser: BrowserContext<'_>,
    now: UnixTime,
) -> Option<ConsentGiven> {
    // A metadata document's client id is shared by every installation of the client:
    // an approval given to one copy must not let another in silently (R59).
    if gate.config.consent_policy != ConsentPolicy::Remember
        || is_metadata_document_url(&details.client_id)
    {
        return None;
    }
    // Only a navigation the user started (`none`: typed, bookmarked, opened from another
    // app) or one from our own origin. `same-site` is a sibling subdomain or, on loopback,
    // another port: a page we do not control must not start a silent trip (R71, A20). A
    // missing header (a non-browser, or an old browser) prompts.
    if !matches!(browser.sec_fetch_site, Some("none" | "same-origin")) {
        return None;
    }
    let digest = gate.remember_digest(details);
    gate.remembered_entries(&browser, now)
        .iter()
        .any(|(d, _)| crate::crypto::ct_eq(d, &digest))
        .then(|| ConsentGiven {
            details: details.clone(),
            remember_cookie: None,
        })
}

impl Record for PendingConsent {
    const KIND: Kind = Kind::Pending;
    fn store_key(&self) -> StoreKey {
        self.key
    }
    fn expiry(&self) -> Option<UnixTime> {
        Some(self.expires_at)
    }
}

impl From<ConsentPrompt> for Step {
    /// Store the pending consent, then send the page.
    fn from(prompt: ConsentPrompt) -> Self {
        let (pending, page) = prompt.into_parts();
        Step {
            ops: vec![Op::put(&pending)],
            reply: page,
        }
    }
}

#[cfg(test)]
#[path = "tests/consent_checks.rs"]
mod checks;
