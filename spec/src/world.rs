//! The World's vocabulary and state: who acts, what each party has seen, what the host
//! stores, and which actions are enabled.
//!
//! Everything here is plain data (`Clone + Debug + Hash + Eq`, `BTreeMap`, `Vec`), so that
//! stateright can fingerprint a state and proptest can shrink a run
//! (docs/conventions.md#plain-data-state, docs/conventions.md#one-world-three-drivers). Handles are
//! picked *by index* into what a party has seen (docs/conventions.md#handles-by-index), never as
//! raw nonces.

use std::fmt;
use std::sync::Arc;

use consent_gate::{ConsentPolicy, Gate, Kind, StoreKey, UnixTime};

use crate::action::Action;
use crate::kit::{self, Faults};
use crate::ledger::{Ghost, Inbox};

/// A browser: the victim's, or the attacker's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Browser {
    /// The victim's browser: logged in at the upstream, which approves it silently.
    Victim,
    /// The attacker's own browser, which it drives through the flow and whose cookies it
    /// reads and keeps.
    Attacker,
}

impl Browser {
    /// Both browsers, in a fixed order.
    pub const ALL: [Browser; 2] = [Browser::Victim, Browser::Attacker];

    /// The upstream account this browser is logged in to.
    pub fn identity(self) -> Identity {
        match self {
            Browser::Victim => Identity::Victim,
            Browser::Attacker => Identity::Attacker,
        }
    }

    pub(crate) fn ix(self) -> usize {
        self as usize
    }
}

/// An upstream account (a GitHub user).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// The victim's account (upstream user id 1).
    Victim,
    /// The attacker's account (upstream user id 2).
    Attacker,
}

impl Identity {
    /// The upstream user id.
    pub fn upstream_id(self) -> u64 {
        self.github().id
    }

    /// Its account at the kit's GitHub.
    pub fn github(self) -> kit::GithubUser {
        match self {
            Identity::Victim => kit::VICTIM,
            Identity::Attacker => kit::ATTACKER,
        }
    }

    /// The MCP subject the core derives from it (`gh:` + the id).
    pub fn subject(self) -> String {
        self.github().subject()
    }

    /// The identity signed in at the upstream as `user`, if one is.
    pub(crate) fn of_github(user: kit::GithubUser) -> Option<Self> {
        [Identity::Victim, Identity::Attacker]
            .into_iter()
            .find(|i| i.github() == user)
    }

    pub(crate) fn from_subject(subject: &str) -> Option<Self> {
        [Identity::Victim, Identity::Attacker]
            .into_iter()
            .find(|i| i.subject() == subject)
    }
}

/// Who receives what is sent to a redirect URI, and holds a PKCE verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    /// The honest MCP client (a web app at `https://app.example`).
    Honest,
    /// The attacker: every redirect URI that is not the honest client's reaches it.
    Attacker,
}

impl Party {
    /// Both parties, in a fixed order.
    pub const ALL: [Party; 2] = [Party::Honest, Party::Attacker];

    pub(crate) fn ix(self) -> usize {
        self as usize
    }
}

/// How far the world may go: the bounds that make the state space finite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// Fresh handles the server may mint: client ids, consent transactions, upstream
    /// states, codes and code-grant refresh tokens (one per successful minting step).
    pub nonces: u16,
    /// Refreshes that hand out a new refresh token (successors are derived from the
    /// presented token, not drawn, so they are bounded apart from `nonces`). Presenting a
    /// token the party already refreshed is free: its successor is already held.
    pub refreshes: u16,
    /// Clock advances.
    pub ticks: u16,
    /// Clients the attacker may register.
    pub attacker_clients: u16,
}

impl Bounds {
    /// The CI bound (docs/conventions.md#check-the-real-core): 5 nonces.
    pub const CI: Bounds = Bounds {
        nonces: 5,
        refreshes: 2,
        ticks: 1,
        attacker_clients: 1,
    };
    /// The nightly bound: 6 nonces, the rest as in CI.
    pub const NIGHTLY: Bounds = Bounds {
        nonces: 6,
        refreshes: 2,
        ticks: 1,
        attacker_clients: 1,
    };
    /// Practically unbounded, for long random runs (proptest, fuzzing).
    pub const LONG: Bounds = Bounds {
        nonces: u16::MAX,
        refreshes: u16::MAX,
        ticks: u16::MAX,
        attacker_clients: 4,
    };
}

/// The tick sizes the exhaustive checker tries: past the code lifetime and the refresh
/// grace window (61 s), and past consent pages and upstream transactions (601 s).
pub const TICKS: [u32; 2] = [61, 601];

/// Everything that fixes a world before its first step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Setup {
    /// The core's fault switches ([`Faults::NONE`] unless built with the cfg).
    pub faults: Faults,
    /// The server's consent policy.
    pub policy: ConsentPolicy,
    /// How far the world may go.
    pub bounds: Bounds,
    /// The gate accepts Client ID Metadata Documents, and the attacker's clients are
    /// documents it publishes on its own domain instead of registrations (R57).
    pub documents: bool,
}

impl Setup {
    /// `faults` at the CI bound, with [`ConsentPolicy::Remember`] when the fault needs it
    /// to matter (`consent_per_browser`) and [`ConsentPolicy::Always`] otherwise.
    pub fn new(faults: Faults) -> Self {
        #[cfg(consent_gate_faults)]
        let remember = faults.consent_per_browser;
        #[cfg(not(consent_gate_faults))]
        let remember = false;
        let policy = if remember {
            ConsentPolicy::Remember
        } else {
            ConsentPolicy::Always
        };
        Setup {
            faults,
            policy,
            bounds: Bounds::CI,
            documents: false,
        }
    }
}

/// The server: a gate built from the setup. Two servers are equal when their setups are
/// (the gate is a deterministic function of it).
#[derive(Clone)]
pub(crate) struct Server {
    pub(crate) setup: Setup,
    pub(crate) gate: Arc<Gate>,
    /// The upstream, driven only through its lenient (stateless) methods: nothing of it
    /// belongs in the state.
    pub(crate) github: Arc<kit::FakeGithub>,
}

impl PartialEq for Server {
    fn eq(&self, other: &Self) -> bool {
        self.setup == other.setup
    }
}
impl Eq for Server {}
impl std::hash::Hash for Server {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.setup.hash(state);
    }
}
impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.setup.fmt(f)
    }
}

/// What a consent page showed: the terms of an approval (R27).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Terms {
    /// Client id.
    pub client_id: String,
    /// The exact redirect URI.
    pub redirect_uri: String,
    /// The MCP scopes, space-separated.
    pub scope: String,
    /// The MCP resource.
    pub resource: String,
}

/// A consent page as the browser holds it: the form's hidden values and what it showed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Page {
    /// The form's `tx`.
    pub tx: String,
    /// The form's `csrf`.
    pub csrf: String,
    /// What the page showed.
    pub terms: Terms,
    /// The store key of its pending record (what the host would take; used only to skip
    /// steps that cannot change anything, [`World::live_actions`]).
    pub pending: StoreKey,
    /// When it was shown.
    pub shown_at: UnixTime,
}

/// A callback URL a browser was sent to, with the store key of the transaction its
/// `state` names (host knowledge, as for [`Page::pending`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallbackUrl {
    /// The URL.
    pub url: String,
    /// The transaction's store key.
    pub txn: StoreKey,
}

/// Who a link is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkClient {
    /// The honest client.
    Honest,
    /// The attacker's `n`-th registered client.
    Attacker(u16),
}

/// An `/authorize` link, before the client id is filled in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Link {
    /// Which client.
    pub client: LinkClient,
    /// The `redirect_uri` it carries.
    pub redirect_uri: String,
    /// Whose PKCE challenge it carries (that party can redeem the code).
    pub pkce: Party,
    /// The client `state` it carries.
    pub state: String,
    /// Who made it.
    pub crafted_by: Party,
}

/// A browser: its cookie jar and what it was shown or sent to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrowserState {
    /// The kit's cookie jar, signed in at the upstream as this browser's account. The
    /// victim's honours deletions; the attacker keeps every cookie it was ever given (it can
    /// read and replay its own cookies). Neither tracks `Max-Age`: only the server's own
    /// expiry checks count (a stronger attacker).
    pub jar: kit::Browser,
    /// Consent pages shown.
    pub pages: Vec<Arc<Page>>,
    /// Upstream authorization URLs it was redirected to.
    pub upstream: Vec<Arc<str>>,
    /// Callback URLs the upstream sent it to.
    pub callbacks: Vec<Arc<CallbackUrl>>,
}

/// Who a step's fresh values are drawn for. Each has its own counter, so that steps of
/// different actors commute: the victim's page gets the same handles whether or not the
/// attacker acted first, and the two interleavings meet in one state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Minter {
    /// Set-up (the honest client's registration).
    Init,
    /// Requests from a browser (pages, upstream states, codes issued at its callback).
    Browser(Browser),
    /// The attacker's registrations.
    Registrar,
    /// A party's token endpoint calls.
    Token(Party),
}

impl Minter {
    pub(crate) fn ix(self) -> usize {
        match self {
            Minter::Init => 0,
            Minter::Browser(b) => 1 + b.ix(),
            Minter::Registrar => 3,
            Minter::Token(p) => 4 + p.ix(),
        }
    }
}

/// The World: the server (the real core plus the host's store), two browsers, the honest
/// client, the attacker, the auto-approving upstream and the clock.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct World {
    pub(crate) server: Server,
    pub(crate) now: UnixTime,
    pub(crate) mints: [u32; 6],
    pub(crate) left: Bounds,
    pub(crate) store: kit::Store,
    pub(crate) browsers: [BrowserState; 2],
    pub(crate) links: Arc<Vec<Link>>,
    pub(crate) inboxes: [Inbox; 2],
    pub(crate) honest_client: Arc<str>,
    pub(crate) attacker_clients: Vec<Arc<str>>,
    pub(crate) ghost: Ghost,
}

/// A read-only view of what the parties have seen, to pick indices from.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    /// The links in circulation.
    pub links: &'a [Link],
    /// The victim's browser.
    pub victim: &'a BrowserState,
    /// The attacker's browser.
    pub attacker: &'a BrowserState,
    /// The honest client's inbox.
    pub honest: &'a Inbox,
    /// The attacker's inbox.
    pub attacker_inbox: &'a Inbox,
}

fn indices<T>(items: &[T]) -> impl Iterator<Item = u16> + '_ {
    (0..items.len()).map(|i| u16::try_from(i).unwrap_or(u16::MAX))
}

impl World {
    /// Every enabled action, in a deterministic order (stateright needs that to rebuild
    /// paths). A fuzzer can pick `actions()[i % len]`.
    pub fn actions(&self) -> Vec<Action> {
        let mut out = Vec::new();
        let mint = self.left.nonces > 0;
        if mint && self.left.attacker_clients > 0 {
            out.push(Action::Register);
        }
        for browser in Browser::ALL {
            let b = &self.browsers[browser.ix()];
            if mint {
                for (i, link) in self.links.iter().enumerate() {
                    if self.may_open(browser, link) {
                        let link = u16::try_from(i).unwrap_or(u16::MAX);
                        out.push(Action::Open { browser, link });
                    }
                }
                if browser == Browser::Victim && self.remembers() {
                    for link in indices(&self.links) {
                        out.push(Action::SameSiteOpen { link });
                    }
                }
            }
            for page in indices(&b.pages) {
                if mint {
                    out.push(Action::Approve { browser, page });
                }
                out.push(Action::Deny { browser, page });
            }
            for redirect in indices(&b.upstream) {
                out.push(Action::Upstream { browser, redirect });
            }
            if mint {
                for url in indices(&b.callbacks) {
                    out.push(Action::Callback { browser, url });
                }
            }
        }
        let x = &self.browsers[Browser::Attacker.ix()];
        if mint {
            for page in indices(&x.pages) {
                for legacy in [false, true] {
                    out.push(Action::ForgedPost { page, legacy });
                }
            }
        }
        for redirect in indices(&x.upstream) {
            out.push(Action::ForwardUpstreamUrl { redirect });
        }
        if mint {
            for url in indices(&x.callbacks) {
                out.push(Action::ReplayCallback { url });
            }
            // A13: any upstream URL of the victim's may reach the attacker's own
            // authorization server instead of the upstream.
            let v = &self.browsers[Browser::Victim.ix()];
            for redirect in indices(&v.upstream) {
                out.push(Action::MixUp { redirect });
            }
        }
        for party in Party::ALL {
            let inbox = &self.inboxes[party.ix()];
            if mint {
                for code in indices(&inbox.codes) {
                    out.push(Action::RedeemCode { party, code });
                }
            }
            for token in indices(&inbox.refresh) {
                if self.may_refresh(party, token) {
                    out.push(Action::Refresh { party, token });
                }
            }
        }
        if self.left.ticks > 0 {
            for secs in TICKS {
                out.push(Action::Tick { secs });
            }
        }
        out
    }

    /// [`World::actions`] without the steps that provably change nothing: a decision on a
    /// page whose pending record is gone, a callback (or a mix-up's) whose transaction is gone, a
    /// redemption of a code or a refresh token the store no longer holds, an upstream visit
    /// whose callback URL the browser already has. Each such step is refused before any
    /// record is touched, so it only re-finds the state it started from; the exhaustive
    /// checker explores this list, which is the same state space reached with less work.
    pub fn live_actions(&self) -> Vec<Action> {
        let mut actions = self.actions();
        actions.retain(|a| self.may_change(*a));
        actions
    }

    /// Whether the server remembers consent: only then can a same-site navigation differ
    /// from any other (A20), so only then is [`Action::SameSiteOpen`] explored.
    pub(crate) fn remembers(&self) -> bool {
        self.server.setup.policy == ConsentPolicy::Remember
    }

    fn may_change(&self, a: Action) -> bool {
        let page = |b: Browser, i: u16| {
            let p = &self.browsers[b.ix()].pages[usize::from(i)];
            self.store.contains(Kind::Pending, &p.pending)
        };
        let callback = |b: Browser, i: u16| {
            let c = &self.browsers[b.ix()].callbacks[usize::from(i)];
            self.store.contains(Kind::Transaction, &c.txn)
        };
        let upstream = |from: Browser, to: Browser, i: u16| {
            let url = &self.browsers[from.ix()].upstream[usize::from(i)];
            let user = to.identity().github();
            self.server
                .github
                .wave_through(user, url)
                .is_none_or(|back| {
                    !self.browsers[to.ix()]
                        .callbacks
                        .iter()
                        .any(|c| c.url == back)
                })
        };
        match a {
            Action::Approve { browser, page: i } | Action::Deny { browser, page: i } => {
                page(browser, i)
            }
            Action::ForgedPost { page: i, .. } => page(Browser::Attacker, i),
            Action::Callback { browser, url } => callback(browser, url),
            Action::ReplayCallback { url } => callback(Browser::Attacker, url),
            Action::MixUp { redirect } => self
                .mix_up_callback(redirect)
                .is_none_or(|c| self.store.contains(Kind::Transaction, &c.txn)),
            Action::Upstream { browser, redirect } => upstream(browser, browser, redirect),
            Action::ForwardUpstreamUrl { redirect } => {
                upstream(Browser::Attacker, Browser::Victim, redirect)
            }
            Action::RedeemCode { party, code } => {
                let c = &self.inboxes[party.ix()].codes[usize::from(code)];
                self.store.contains(Kind::Code, &c.key)
            }
            Action::Refresh { party, token } => {
                let r = &self.inboxes[party.ix()].refresh[usize::from(token)];
                self.store.contains(Kind::Refresh, &r.key)
            }
            Action::Register
            | Action::Open { .. }
            | Action::SameSiteOpen { .. }
            | Action::Tick { .. } => true,
        }
    }

    /// A refresh is enabled while the bound allows a new token, and always for a token
    /// the party already refreshed (its successor is held: a repeat inside the grace
    /// window, or a reuse the server must refuse).
    pub(crate) fn may_refresh(&self, party: Party, token: u16) -> bool {
        let inbox = &self.inboxes[party.ix()];
        inbox
            .refresh
            .get(usize::from(token))
            .is_some_and(|held| self.left.refreshes > 0 || inbox.refreshed.contains(&held.key))
    }

    pub(crate) fn may_open(&self, browser: Browser, link: &Link) -> bool {
        match browser {
            Browser::Victim => true,
            Browser::Attacker => matches!(link.client, LinkClient::Attacker(_)),
        }
    }

    /// What the parties have seen (to choose indices, or to inspect a trace).
    pub fn seen(&self) -> Seen<'_> {
        Seen {
            links: &self.links,
            victim: &self.browsers[Browser::Victim.ix()],
            attacker: &self.browsers[Browser::Attacker.ix()],
            honest: &self.inboxes[Party::Honest.ix()],
            attacker_inbox: &self.inboxes[Party::Attacker.ix()],
        }
    }

    /// The host's store.
    pub fn store(&self) -> &kit::Store {
        &self.store
    }

    /// The ghost record of what happened.
    pub fn ghost(&self) -> &Ghost {
        &self.ghost
    }

    /// The current time.
    pub fn now(&self) -> UnixTime {
        self.now
    }

    /// The setup this world was built with.
    pub fn setup(&self) -> Setup {
        self.server.setup
    }

    /// What is left of the bounds.
    pub fn left(&self) -> Bounds {
        self.left
    }

    /// The honest client's id.
    pub fn honest_client(&self) -> &str {
        &self.honest_client
    }

    /// The attacker's client ids, in registration order.
    pub fn attacker_clients(&self) -> &[Arc<str>] {
        &self.attacker_clients
    }
}
