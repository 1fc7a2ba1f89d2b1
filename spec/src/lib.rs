//! The consent-gate protocol with an attacker: one [`World`] around the **real** core.
//!
//! The World holds the host's store (the [`kit`]'s [`kit::Store`]: the core's bytes by kind
//! and key, with atomic *take* for single-use records, written only by the one executor
//! [`kit::Store::apply`]), each browser's cookie jar (the kit's), the pages,
//! upstream URLs and callback URLs each browser has seen, what each party received at its
//! redirect URIs and token endpoint calls, a clock and a deterministic entropy counter.
//! Every server-side step calls `consent_gate`'s public API exactly as a host does, so
//! the thing checked is the code, not a model of it (docs/design.md#model-check,
//! docs/conventions.md#check-the-real-core).
//!
//! One World, three drivers (docs/conventions.md#one-world-three-drivers):
//! * stateright explores every interleaving to a bound (`tests/model_check.rs`);
//! * proptest-state-machine runs long random sequences against an abstract reference
//!   model (`tests/refinement.rs`);
//! * the `flow` fuzz target picks actions from [`World::actions`] by index.
//!
//! ```
//! use consent_gate_spec::{Action, Browser, Faults, Outcome, Party, World};
//!
//! let mut w = World::new(Faults::NONE);
//! // The victim follows the honest client's link, approves, and the upstream waves it
//! // through; the honest client redeems its code.
//! assert_eq!(w.step(Action::Open { browser: Browser::Victim, link: 0 }), Outcome::ConsentPage);
//! w.step(Action::Approve { browser: Browser::Victim, page: 0 });
//! assert_eq!(w.step(Action::Upstream { browser: Browser::Victim, redirect: 0 }), Outcome::AtCallback);
//! w.step(Action::Callback { browser: Browser::Victim, url: 0 });
//! let got = w.step(Action::RedeemCode { party: Party::Honest, code: 0 });
//! assert!(matches!(got, Outcome::Tokens { party: Party::Honest, .. }));
//! w.check_invariants().unwrap();
//! ```
//!
//! A fuzzer drives it with bytes as indices into the enabled actions:
//!
//! ```
//! # use consent_gate_spec::{Faults, World};
//! let mut w = World::new(Faults::NONE);
//! for byte in [0u8, 7, 3, 200, 1] {
//!     let actions = w.actions();
//!     if actions.is_empty() { break; }
//!     w.step(actions[usize::from(byte) % actions.len()]);
//!     if let Err(v) = w.check_invariants() { panic!("{v}"); }
//! }
//! ```
//!
//! ## What each step calls
//!
//! | action | the core, in the host's order |
//! |---|---|
//! | `Register` | `Gate::register`; store the client |
//! | `Open` | `AuthorizeRequest::parse`; get the client; `Gate::authorize` → store the `PendingConsent`, set the browser cookie (or, remembered, `Gate::upstream_redirect`) |
//! | `Approve`, `Deny`, `ForgedPost` | `ConsentForm::parse`; **take** the pending record; `Gate::decide` → `Gate::upstream_redirect` (store the transaction, set the binding cookie) or the `access_denied` redirect |
//! | `Upstream`, `ForwardUpstreamUrl` | the model upstream only: the browser lands on our callback |
//! | `MixUp` | the model upstream, for the attacker's authorization server (A13); then as `Callback`, in the victim's browser, with that server's `iss` |
//! | `Callback`, `ReplayCallback` | `Callback::parse`; **take** the transaction; `Gate::verify_callback` (store back `reinsert()`, only with the A7 fault, in builds with `--cfg consent_gate_faults`); the upstream token exchange and user lookup; get the client; `Gate::issue_code` → store the code, clear the binding cookie, redirect |
//! | `RedeemCode` | `TokenRequest::parse`; get the client; **take** the code; `Gate::redeem_code` → store grant, refresh and redeemed code; on `CodeReused` delete the grant; then `Gate::verify_bearer` + `BearerClaims::confirm` (with the grant's installation mark, `Store::grant`) |
//! | `Refresh` | `TokenRequest::parse`; get client, refresh record, grant and its installation mark; `Gate::redeem_refresh` → store the refresh records; on `RefreshReused` delete the grant; then the bearer check |
//!
//! Every "store …" and "delete …" above is the one executor, [`kit::Store::apply`], applying
//! the operations of the step's `Step`; the World reads records back only to keep its ghost.
//!
//! Each [`Outcome`] is what the step did at the protocol's level; [`World::check_invariants`]
//! checks P1–P7 on the ghost record ([`Ghost`]) of what the server did and what each user
//! clicked. [`minimize`] cuts a failing trace down for a reader.
//!
//! The actors, the attacker's powers, the properties, the bounds and their measured cost
//! are described in `spec/README.md`.
//!
//! ## The kit
//!
//! The pieces other checkers share live here too, so that each exists once
//! (docs/conventions.md#one-kit): [`kit`] (the store and its one `Step` executor, the gate
//! builder, the test host, the cookie jar, the clients, the GitHub double), [`Faults`] (the
//! core's switches, or a one-valued stand-in without `--cfg consent_gate_faults`),
//! [`entropy`] (deterministic randomness) and [`oracle`] (the redirect-matching reference).
//! The World is built from the same kit.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod action;
mod actors;
pub mod entropy;
mod host;
mod ledger;
pub mod kit;
pub mod oracle;
mod props;
mod token_endpoint;
mod world;

pub use action::{Action, Outcome, Refusal, minimize};
pub use actors::{
    EPOCH, EVIL_AS_ISSUER, EVIL_ORIGIN, EVIL_REDIRECT, HONEST_REDIRECT, ISSUER, RESOURCE,
    TRICK_REDIRECT, UPSTREAM_AUTHORIZE,
};
pub use kit::Faults;
pub use ledger::{Ghost, HeldCode, HeldRefresh, HeldToken, Inbox, Issued, IssuedCode, SingleUse};
pub use props::{Goal, Property, Violation};
pub use world::{
    Bounds, Browser, BrowserState, CallbackUrl, Identity, Link, LinkClient, Page, Party, Seen,
    Setup, TICKS, Terms, World,
};
