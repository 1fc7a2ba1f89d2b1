//! A hostile harness around the real core, for the `hostile` target
//! (docs/conventions.md#handles-by-index, docs/conventions.md#one-world-three-drivers). The
//! `flow` target steps the spec crate's World; this one keeps the attacker powers that World
//! does not model yet, and is built from the same kit (`consent_gate_spec::kit`: the gate
//! builder, the store and its one `Step` executor, the cookie jar, the GitHub double): leaked callback URLs and codes ([`Leak`]), spliced callbacks (R37),
//! lost replies ([`Follow::LoseCallbackReply`]), links and registrations with arbitrary
//! redirect URIs ([`REDIRECTS`]), a loopback client, a denial at the upstream.
//!
//! Parties: the victim's browser, the attacker's browser, the honest MCP client on the
//! victim's machine (client "App", registered `http://127.0.0.1/callback` and
//! `https://app.example`), the attacker's client ("Totally Legit",
//! `https://evil.example/cb`), and the kit's GitHub, which approves a returning user at
//! once and binds its single-use codes to PKCE. The server is the real [`Gate`] plus the
//! kit's store with atomic *take*.
//!
//! Every action names what it uses **by index into what its party has seen** (pages,
//! upstream links, callback URLs, codes): never a raw nonce, so libFuzzer reaches deep
//! interleavings. Browsers are the kit's cookie jars: cookies kept per `Set-Cookie`
//! (`Max-Age`, deletion), sent on top-level GETs, never on a cross-site POST (SameSite=Lax)
//! unless the browser is a legacy one.
//!
//! Shape: [`Hostile::init_state`], [`Hostile::step`] and [`Hostile::invariants`] over a
//! plain-data state [`St`] (docs/design.md#fuzzing; docs/conventions.md#one-world-three-drivers).
//! Properties, numbered as the spec crate's (docs/design.md#properties), each with the fault
//! switch that must break it:
//! * **P1** no upstream redirect without a consent approved *in that browser* by its user
//!   (forged: `csrf_unbound`; remembered for another client: `consent_per_browser`).
//! * **P2** the attacker never holds a code the server sent it, nor a token, for the
//!   victim's identity, unless the victim approved the attacker's client on a page.
//! * **P3** no callback completes in a browser other than the one that consented
//!   (`callback_unbound`).
//! * **P4** no single-use value is accepted twice: consent tx, upstream state
//!   (`state_reusable`), MCP code (`code_reusable`).
//! * **P5** every redirect goes to the upstream or to a registered redirect URI of the
//!   client, exactly (`redirect_prefix_match`); errors before consent never redirect.
//! * **P6** the honest client never accepts a code for the attacker's identity (A6;
//!   through a mix-up's `iss`: `issuer_unchecked`).
//! * **Glue**: what a correct core cannot produce (a rendered form that does not parse, a
//!   fresh token without a live grant).
//!
//! (P7, lifetimes, is the spec World's alone.)

mod browser;
mod callback;
mod codec;

pub use codec::encode;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use consent_gate::{ConsentPolicy, Gate, StoreKey, UnixTime};
use consent_gate_spec::kit::{self, FakeGithub, GithubUser, Store};

/// A party: its browser, and the programs on its machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Who {
    /// The victim (and the honest MCP client on the victim's machine).
    Victim,
    /// The attacker.
    Attacker,
}

/// What can leak from the victim to the attacker (history, logs, Referer; A7/A8 premises).
///
/// A callback URL leaks only once the victim's browser has loaded it (A7: a *used*
/// URL). An unused one carries a live upstream code: after A2's forwarded upstream URL,
/// the attacker's own browser holds the binding cookie for that `state`, so loading the
/// leaked URL itself would hand it a code for the victim's identity (found by this target
/// when unused URLs could leak; `regressions/flow-a2-unused-callback-leak`). What stops
/// A2 is the victim's browser arriving first: the host *takes* the transaction, so the
/// failed binding check burns it.
///
/// The victim's *upstream authorization URL* never leaks here, on purpose: with its
/// `state` and PKCE challenge the attacker can authorize at the upstream as itself and
/// have the victim's browser load the resulting callback. State, binding cookie and
/// upstream PKCE all match, so no server-side check can tell it apart (login CSRF, A6;
/// found by this target when the leak was modelled). Keeping that URL private is R56's
/// job (`Referrer-Policy: no-referrer` on the 303 and the consent page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leak {
    /// A callback URL the victim's browser loaded or holds.
    Callback,
    /// An MCP code the honest client received for its own flow.
    Code,
}

/// How far a browser follows the redirects after an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    /// To the end: upstream, callback, client.
    All,
    /// Not to the upstream: the upstream URL is kept (A2's attacker copies it).
    BeforeUpstream,
    /// Not to our callback: the callback URL is kept (A6's attacker captures it).
    BeforeCallback,
    /// The callback is handled but its reply is lost (a dropped connection, a closed
    /// tab): the browser keeps its cookies and the user may load it again.
    LoseCallbackReply,
}

/// One action of the world. `u8`s index the lists of what the acting party has seen.
/// Its byte format is in `codec.rs`.
#[derive(Clone, Debug, PartialEq, Eq)]
// The fields are named for what they pick; each variant's documentation says how.
#[allow(missing_docs)]
pub enum Op {
    /// The honest client opens `/authorize` in the victim's browser for one of its
    /// redirect URIs (`Sec-Fetch-Site: none`: the system browser is opened).
    HonestStart { redirect: u8 },
    /// The attacker crafts an `/authorize` link (any client; `redirect` < 128 one of its
    /// registered redirect URIs, else one from [`REDIRECTS`]; its own PKCE) and opens it itself or gets the victim to open it,
    /// from a web page (`cross-site`) or from outside the browser (`none`).
    Link {
        client: u8,
        redirect: u8,
        victim: bool,
        from_page: bool,
    },
    /// A browser's user answers a consent page shown in that browser; `follow` says how
    /// far the browser goes (the attacker stops to copy the upstream URL, A2).
    Answer {
        who: Who,
        page: u8,
        approve: bool,
        follow: Follow,
    },
    /// The victim's browser POSTs an approval built from a page the attacker saw (A3). A
    /// legacy browser sends no `Origin`/`Sec-Fetch-Site` and ignores SameSite.
    ForgedAnswer { page: u8, legacy: bool },
    /// A browser visits an upstream authorization URL (its own, or one the attacker sent);
    /// the upstream approves at once, or the user denies there.
    Upstream {
        who: Who,
        link: u8,
        deny: bool,
        follow: Follow,
    },
    /// A browser loads a callback URL (its own, or one the attacker sent: A6/A7 replays).
    /// With `lost`, the server handles the request but its reply never reaches the
    /// browser (a dropped connection, a closed tab), so the user loads it again.
    Callback { who: Who, link: u8, lost: bool },
    /// The attacker splices the upstream code of one known callback with the state of
    /// another and loads it in a browser (code injection, R37).
    Splice {
        who: Who,
        code_from: u8,
        state_from: u8,
    },
    /// Something of the victim's leaks to the attacker.
    Leak { what: Leak, idx: u8 },
    /// A party redeems an MCP code it holds, as a client it picks (A8, A9).
    Redeem { who: Who, code: u8, client: u8 },
    /// A party refreshes a refresh token it holds.
    Refresh { who: Who, token: u8 },
    /// The attacker registers another client for a redirect URI from [`REDIRECTS`].
    Register { redirect: u8 },
    /// Time passes: 1 s, 30 s, 61 s, 601 s, 1 h or 1 day.
    Tick { step: u8 },
    /// A13, mix-up: a victim's upstream authorization URL reaches the attacker's own
    /// authorization server ([`EVIL_AS`]) instead, which signs in at GitHub as the attacker
    /// with it and sends the victim's browser to our callback with that code and its own
    /// RFC 9207 `iss`. Only `iss` tells this answer apart (see [`Leak`] for the same answer
    /// naming GitHub), so the callback must refuse it.
    MixUp { link: u8 },
}

/// The issuer of the attacker's own authorization server (A13).
pub const EVIL_AS: &str = "https://as.evil.example";

/// Redirect URIs an attacker may write into a link or a registration: registered ones,
/// loopback port variants, and A10's tricks against the honest registrations.
pub const REDIRECTS: &[&str] = &[
    "http://127.0.0.1/callback",
    "https://app.example",
    "https://evil.example/cb",
    "http://127.0.0.1:53682/callback",
    "https://app.example.evil.example/cb",
    "https://app.example@evil.example/cb",
    "http://127.0.0.1/callback/../evil",
    "http://127.0.0.1.evil.example/callback",
    "https://app.example/cb?next=https://evil.example",
    "https://evil.example/cb?x=1",
    "http://localhost:4242/callback",
    "",
];

const TICKS: [u64; 6] = [1, 30, 61, 601, 3600, 86_400];
const ATTACKER_VERIFIER: &str = "attacker-verifier-0123456789abcdefghijklmnopqrstuv";
/// Most actions per input: every attack in docs/requirements.md#attacks takes fewer than ten, and a
/// shorter input runs faster (a full flow is ~25 MACs).
pub const MAX_OPS: usize = 24;
const MAX_CLIENTS: usize = 6;

/// A broken property: the `hostile` target panics with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// P1…P6 or Glue (the spec crate's numbering) and a short name.
    pub property: &'static str,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hostile invariant {}: {}", self.property, self.detail)
    }
}

fn fail<T>(property: &'static str, detail: impl Into<String>) -> Result<T, Violation> {
    Err(Violation {
        property,
        detail: detail.into(),
    })
}

fn s256(verifier: &str) -> String {
    kit::s256(verifier)
}

impl Who {
    /// Its account at the kit's GitHub.
    fn github(self) -> GithubUser {
        match self {
            Who::Victim => kit::VICTIM,
            Who::Attacker => kit::ATTACKER,
        }
    }

    /// Who is signed in at the upstream as `user`.
    fn of_github(user: GithubUser) -> Option<Who> {
        [Who::Victim, Who::Attacker]
            .into_iter()
            .find(|w| w.github() == user)
    }
}

fn subject(user: Who) -> String {
    user.github().subject()
}

/// A consent page a browser was shown.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Page {
    owner: Who,
    tx: String,
    csrf: String,
}

/// A URL someone holds: an upstream authorization URL or a callback query.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Link {
    owner: Who,
    url: String,
    attacker_knows: bool,
    /// A callback URL some browser already loaded (the server has seen it).
    used: bool,
}

/// An MCP code someone holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Held {
    holder: Who,
    value: String,
    /// Whose upstream identity it carries.
    user: Who,
    /// Sent by the server to the holder (not leaked).
    delivered: bool,
    client_id: String,
    /// The verifier the holder knows, if it started the flow.
    verifier: Option<String>,
}

/// A refresh token someone holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeldRefresh {
    holder: Who,
    token: String,
    client_id: String,
}

/// An approval a user gave on a page (ghost state for P1/P2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Approval {
    who: Who,
    client_id: String,
    redirect_uri: String,
    scope: String,
    at: UnixTime,
}

/// The whole world's state: plain data (Clone + Eq + Hash, BTreeMaps), as a model
/// checker needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct St {
    now: UnixTime,
    rng: u64,
    // The server's store (the kit's: every write is an operation of a core `Step`).
    store: Store,
    // Who registered which client, in order.
    client_list: Vec<(String, Who)>,
    // The browsers and what the parties have seen.
    jars: [kit::Browser; 2],
    pages: Vec<Page>,
    up_links: Vec<Link>,
    callbacks: Vec<Link>,
    held: Vec<Held>,
    held_refresh: Vec<HeldRefresh>,
    /// The honest client's flows: (its state, its verifier).
    honest_flows: Vec<(String, String)>,
    // The upstream: the kit's GitHub, with its single-use, PKCE-bound codes.
    github: FakeGithub,
    // Ghost state.
    approvals: Vec<Approval>,
    pending_owner: BTreeMap<StoreKey, Who>,
    txn_owner: BTreeMap<StoreKey, Who>,
    accepted: BTreeSet<(u8, StoreKey)>,
}

/// The hostile harness: the gate under test and the initial state.
#[derive(Debug)]
pub struct Hostile {
    gate: Gate,
    init: St,
}

fn jar_index(who: Who) -> usize {
    match who {
        Who::Victim => 0,
        Who::Attacker => 1,
    }
}

/// Index `i` into the elements of `v` that satisfy `keep`.
fn pick<T>(v: &[T], i: u8, keep: impl Fn(&T) -> bool) -> Option<usize> {
    let idx: Vec<usize> = (0..v.len()).filter(|&j| keep(&v[j])).collect();
    (!idx.is_empty()).then(|| idx[usize::from(i) % idx.len()])
}

fn visible(l: &Link, who: Who) -> bool {
    l.owner == who || l.attacker_knows
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn authorize_query(
    client_id: &str,
    redirect: Option<&str>,
    state: &str,
    challenge: &str,
) -> String {
    let mut q = format!("response_type=code&client_id={}", enc(client_id));
    if let Some(r) = redirect {
        q.push_str(&format!("&redirect_uri={}", enc(r)));
    }
    q.push_str(&format!(
        "&state={}&code_challenge={challenge}&code_challenge_method=S256",
        enc(state)
    ));
    q
}

/// The `hostile` target's input: the consent policy and the actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowInput {
    /// Run under [`ConsentPolicy::Remember`] (else `Always`).
    pub remember: bool,
    /// The actions, in order (at most [`MAX_OPS`] are run).
    pub ops: Vec<Op>,
}

struct Worlds {
    always: Hostile,
    remember: Hostile,
}

static WORLDS: std::sync::LazyLock<Worlds> = std::sync::LazyLock::new(|| {
    let faults = crate::fixture::faults_from_env();
    Worlds {
        always: Hostile::new(ConsentPolicy::Always, faults),
        remember: Hostile::new(ConsentPolicy::Remember, faults),
    }
});

/// Runs one input; the first violated property, with the actions up to it.
pub fn run(input: &FlowInput) -> Result<usize, (Violation, Vec<Op>)> {
    let w = if input.remember {
        &WORLDS.remember
    } else {
        &WORLDS.always
    };
    let mut st = w.init_state();
    let ops = &input.ops[..input.ops.len().min(MAX_OPS)];
    for (i, op) in ops.iter().enumerate() {
        if let Err(v) = w.step(&mut st, op).and_then(|()| w.invariants(&st)) {
            return Err((v, ops[..=i].to_vec()));
        }
    }
    Ok(ops.len())
}

/// The `hostile` target: panics on a violated property, printing the trace.
pub fn flow(input: &FlowInput) {
    if let Err((v, trace)) = run(input) {
        panic!("{v}\npolicy remember={}\ntrace: {trace:#?}", input.remember);
    }
}
