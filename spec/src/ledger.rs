//! What the parties hold (each party's inbox of codes, tokens and errors) and the ghost
//! record of what the server did, which the properties read (`src/props.rs`).
//!
//! Plain data like the rest of the state (docs/conventions.md#plain-data-state); the ghost
//! keeps sets and multisets, not logs, so that two interleavings of independent steps meet
//! in one state.
//!
//! The host (`src/host.rs`, `src/token_endpoint.rs`) is the only writer, and writes each
//! entry as the step that caused it happens; the properties and the goals only read. A
//! mix-up (A13) needs no ghost of its own: an accepted foreign answer issues a code whose
//! account is not the consenting browser's, which P6 reads from [`Ghost::codes`] and
//! [`Ghost::issued`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use consent_gate::{StoreKey, UnixTime};

use crate::world::{Browser, Identity, Terms};

/// A code received at a redirect URI.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeldCode {
    /// The code.
    pub code: String,
    /// The client it was issued to (the receiver knows it from its link's `state`).
    pub client_id: String,
    /// The redirect URI it arrived at.
    pub redirect_uri: String,
    /// Ghost: the account the upstream authenticated (not visible to the receiver).
    pub subject: Identity,
    /// The store key of the code record (host knowledge, as for [`Page::pending`](crate::Page::pending)).
    pub key: StoreKey,
}

/// A refresh token held.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeldRefresh {
    /// The token.
    pub token: String,
    /// The client it belongs to.
    pub client_id: String,
    /// The redirect URI of the code it descends from.
    pub redirect_uri: String,
    /// The store key of its record (host knowledge, as for [`Page::pending`](crate::Page::pending)).
    pub key: StoreKey,
}

/// An access token held, as the resource server sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeldToken {
    /// The account it speaks for (from the verified bearer and its live grant).
    pub subject: Identity,
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the code it descends from.
    pub redirect_uri: String,
    /// Obtained by a refresh.
    pub refreshed: bool,
}

/// What a party received at its redirect URIs and its token endpoint calls.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Inbox {
    /// Codes received.
    pub codes: Vec<Arc<HeldCode>>,
    /// Error redirects received: (client id, error code).
    pub errors: BTreeSet<(Arc<str>, &'static str)>,
    /// Refresh tokens held.
    pub refresh: Vec<Arc<HeldRefresh>>,
    /// Access tokens held.
    pub tokens: BTreeSet<Arc<HeldToken>>,
    /// Refresh tokens this party has already refreshed once: their successor is held, so
    /// presenting them again cannot lengthen the chain ([`Bounds::refreshes`](crate::Bounds::refreshes)).
    pub refreshed: BTreeSet<StoreKey>,
}

/// An upstream redirect the server issued: ghost data for P1, P3, P6 and P7.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Issued {
    /// The browser that received the 303 and its binding cookie.
    pub browser: Browser,
    /// What the transaction is bound to (from the real transaction record).
    pub terms: Arc<Terms>,
    /// The transaction's store key.
    pub txn: StoreKey,
    /// From a remembered consent.
    pub remembered: bool,
    /// On a navigation the user started (`Sec-Fetch-Site: none`) or a click on our page,
    /// not on one a same-site page started (A20).
    pub user_started: bool,
    /// When.
    pub at: UnixTime,
}

/// A code the server issued: ghost data for P2, P4, P6 and P7.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssuedCode {
    /// The code's store key.
    pub code: StoreKey,
    /// The transaction it came from.
    pub txn: StoreKey,
    /// The account the upstream authenticated.
    pub subject: Identity,
    /// When.
    pub at: UnixTime,
}

/// The kinds of single-use record whose lifetime P7 checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SingleUse {
    /// A pending consent (the consent page's form), [`Lifetimes::consent`].
    ///
    /// [`Lifetimes::consent`]: consent_gate::Lifetimes::consent
    ConsentDecision,
    /// An upstream transaction (`state`), [`Lifetimes::transaction`].
    ///
    /// [`Lifetimes::transaction`]: consent_gate::Lifetimes::transaction
    UpstreamState,
    /// An authorization code, [`Lifetimes::code`].
    ///
    /// [`Lifetimes::code`]: consent_gate::Lifetimes::code
    Code,
}

/// What happened, recorded as it happened, for the properties (never read by the host).
///
/// Sets and multisets (`BTreeMap<_, count>`), not logs: two interleavings of independent
/// steps then reach the *same* state, which keeps the explored space small.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// Approvals the users clicked and the server accepted: (browser, what the page
    /// showed) → how many.
    pub clicked: BTreeMap<(Browser, Arc<Terms>), u16>,
    /// Upstream redirects issued.
    pub issued: BTreeSet<Issued>,
    /// Consent decisions accepted: pending key → how many times.
    pub decided: BTreeMap<StoreKey, u16>,
    /// Callbacks accepted: (transaction key, browser) → how many times.
    pub accepted: BTreeMap<(StoreKey, Browser), u16>,
    /// Codes issued.
    pub codes: BTreeSet<IssuedCode>,
    /// Successful code redemptions: code key → how many.
    pub redeemed: BTreeMap<StoreKey, u16>,
    /// Successful refreshes: (presented token's key, time).
    pub refreshed: BTreeSet<(StoreKey, UnixTime)>,
    /// Client redirects made: (client id, redirect URI).
    pub redirects: BTreeSet<(Arc<str>, Arc<str>)>,
    /// Single-use records accepted at or after the end of their lifetime.
    pub late: BTreeSet<(SingleUse, StoreKey)>,
    /// Host glue failures that cannot happen with a correct core (e.g. a fresh access
    /// token that does not verify).
    pub host_errors: BTreeSet<String>,
}
