//! The upstream leg: [`UpstreamRedirect`] (only from a [`ConsentGiven`]), the callback's
//! browser binding, and the token exchange as data (R33–R41).

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::authorize::AuthorizationDetails;
use crate::config::UpstreamConfig;
use crate::consent::ConsentGiven;
use crate::cookie;
use crate::crypto::{
    B64x32, MacWriter, RecordMac, Sealed, StoreKey, UNSEALED, b64, fresh32, pkce_s256,
    sha256_labeled,
};
use crate::params::append_pair;
use crate::reply::Reply;
use crate::step::{Kind, Op, Record, Step};
use crate::{Entropy, Gate, UnixTime};

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
    pub(crate) key: StoreKey,
    pub(crate) details: AuthorizationDetails,
    pub(crate) binding_hash: [u8; 32],
    /// A hash of the upstream this trip was sent to (R67: mix-up; checked on the callback).
    pub(crate) upstream_hash: [u8; 32],
    pub(crate) expires_at: UnixTime,
    pub(crate) mac: RecordMac,
}

impl Sealed for TransactionRecord {
    const LABEL: &'static str = "transaction v2";
    fn feed(&self, w: &mut MacWriter) {
        w.fixed(&self.key.0);
        self.details.feed(w);
        w.fixed(&self.binding_hash)
            .fixed(&self.upstream_hash)
            .u64(self.expires_at.0);
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

pub(crate) fn binding_cookie_name(gate: &Gate, transaction: &StoreKey) -> String {
    // One cookie per transaction, so parallel flows in one browser do not clobber each
    // other (the Cloudflare demo's single cookie does). Named after the transaction's
    // store key (a hash of the upstream `state`, already computed): 48 bits of a hash of a
    // 256-bit secret tell the browser nothing it could use.
    let mut name = cookie::name_owned(gate.config.cookie_mode, "cg-bind-");
    name.push_str(&hex::encode(&transaction.as_bytes()[..6]));
    name
}

/// What a transaction records of its upstream: a hash of the upstream's identity (its
/// issuer, or its token endpoint when it has none).
pub(crate) fn upstream_hash(upstream: &UpstreamConfig) -> [u8; 32] {
    sha256_labeled("upstream", upstream.identity().as_bytes())
}

impl Gate {
    pub(crate) fn upstream_verifier(&self, state: &str) -> B64x32 {
        // Derived, not stored: the store never holds the upstream PKCE verifier (R37).
        let mut w = self.config.keys.mac("upstream pkce");
        w.str(state);
        B64x32::encode(&w.finish())
    }

    pub(crate) fn upstream_nonce(&self, state: &str) -> B64x32 {
        // Derived like the verifier: the OpenID `nonce` is bound to this trip's `state`,
        // which only the transaction's browser and the upstream saw (R67).
        let mut w = self.config.keys.mac("upstream nonce");
        w.str(state);
        B64x32::encode(&w.finish())
    }

    pub(crate) fn upstream_hash(&self) -> [u8; 32] {
        self.upstream_hash
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
        let (details, remember_cookie) = consent.into_parts();
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
        if self.config.upstream.id_token.is_some() {
            append_pair(&mut location, "nonce", self.upstream_nonce(&state).as_str());
        }
        let lifetime = self.config.lifetimes.transaction;
        let key = StoreKey::derive("upstream state", state.as_bytes());
        let mut transaction = TransactionRecord {
            key,
            details,
            binding_hash: sha256_labeled("binding", binding.as_bytes()),
            upstream_hash: self.upstream_hash(),
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
        cookies.extend(remember_cookie);
        UpstreamRedirect {
            transaction,
            location,
            cookies,
        }
    }
}

impl Record for TransactionRecord {
    const KIND: Kind = Kind::Transaction;
    fn store_key(&self) -> StoreKey {
        self.key
    }
    fn expiry(&self) -> Option<UnixTime> {
        Some(self.expires_at)
    }
}

impl From<UpstreamRedirect> for Step {
    /// Store the transaction, then send the 303 that sets its binding cookie.
    fn from(redirect: UpstreamRedirect) -> Self {
        let (transaction, reply) = redirect.into_parts();
        Step {
            ops: vec![Op::put(&transaction)],
            reply,
        }
    }
}
