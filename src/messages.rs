//! The consent page's words in each language we ship, and the choice among them from the
//! browser's `Accept-Language` (R69). Plain text only: the page escapes and assembles.

/// A language of the consent page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Language {
    /// English, the default.
    #[default]
    English,
    /// German.
    German,
}

/// The longest `Accept-Language` header read; a longer one counts as absent.
const MAX_ACCEPT_LANGUAGE: usize = 1024;

impl Language {
    /// Every language we ship, the default first.
    pub const ALL: [Language; 2] = [Language::English, Language::German];

    /// Its BCP 47 tag (`<html lang>`).
    pub fn tag(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::German => "de",
        }
    }

    /// The best language of ours for an `Accept-Language` header (RFC 9110 §12.5.4): the
    /// range with the highest weight that names one of ours by its primary subtag (`de`,
    /// `de-AT`, `DE`), earlier ranges winning ties; `*` names the default. English when
    /// the header is absent, longer than 1 KiB, or names none of ours; a malformed range
    /// is skipped.
    pub fn negotiate(accept_language: Option<&str>) -> Language {
        let Some(header) = accept_language.filter(|h| h.len() <= MAX_ACCEPT_LANGUAGE) else {
            return Language::default();
        };
        let mut best: Option<(u16, Language)> = None;
        for range in header.split(',') {
            let mut parts = range.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let Some(weight) = weight(parts) else {
                continue;
            };
            let primary = tag.split('-').next().unwrap_or("");
            let ours = match primary {
                "*" => Some(Language::default()),
                p => Language::ALL
                    .into_iter()
                    .find(|l| p.eq_ignore_ascii_case(l.tag())),
            };
            if let Some(language) = ours.filter(|_| weight > 0) {
                if best.is_none_or(|(w, _)| weight > w) {
                    best = Some((weight, language));
                }
            }
        }
        best.map_or(Language::default(), |(_, language)| language)
    }

    /// Its words.
    pub(crate) fn messages(self) -> &'static Messages {
        match self {
            Language::English => &ENGLISH,
            Language::German => &GERMAN,
        }
    }
}

/// A range's weight in thousandths (`q=0.5`: 500; none: 1000); `None` when malformed.
fn weight<'a>(mut params: impl Iterator<Item = &'a str>) -> Option<u16> {
    let Some(param) = params.next() else {
        return Some(1000);
    };
    let (name, value) = param.split_once('=')?;
    if !name.trim().eq_ignore_ascii_case("q") || params.next().is_some() {
        return None;
    }
    // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
    let value = value.trim();
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    let digits_ok = frac.len() <= 3 && frac.bytes().all(|b| b.is_ascii_digit());
    let thousandths = frac.bytes().chain(std::iter::repeat(b'0')).take(3);
    let thousandths = thousandths.fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match (int, digits_ok) {
        ("0", true) => Some(thousandths),
        ("1", true) if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The words of the consent page. Pieces around a value are split where the value goes.
pub(crate) struct Messages {
    /// The page title.
    pub(crate) title: &'static str,
    /// The headline, around the host that receives access.
    pub(crate) headline: [&'static str; 2],
    /// "If you approve, you sign in with {upstream} and {host} receives access to
    /// {resource} on your behalf."
    pub(crate) lead: [&'static str; 4],
    /// Before the full redirect URI.
    pub(crate) full_address: &'static str,
    /// Before the client's self-chosen name.
    pub(crate) name_label: &'static str,
    /// After it: the name is the client's own claim.
    pub(crate) unverified: &'static str,
    /// When the client gave no name.
    pub(crate) unnamed: &'static str,
    /// After a metadata document client's name (or its absence), around the domain that
    /// published the document.
    pub(crate) published: [&'static str; 2],
    /// Before the client id.
    pub(crate) client_id: &'static str,
    /// Above the MCP scopes.
    pub(crate) scopes: &'static str,
    /// Above the upstream scopes, around the upstream's name.
    pub(crate) upstream_scopes: [&'static str; 2],
    /// The loopback warning: its title and text.
    pub(crate) loopback: [&'static str; 2],
    /// The closing advice.
    pub(crate) deny_hint: &'static str,
    /// The form's accessible name.
    pub(crate) decision: &'static str,
    /// The buttons.
    pub(crate) approve: &'static str,
    /// The buttons.
    pub(crate) deny: &'static str,
}

const ENGLISH: Messages = Messages {
    title: "Give access?",
    headline: ["Give access to ", "?"],
    lead: [
        "If you approve, you sign in with ",
        " and ",
        " receives access to ",
        " on your behalf.",
    ],
    full_address: "Full address:",
    name_label: "The application calls itself",
    unverified: "(not verified: any application can choose any name)",
    unnamed: "The application gives no name.",
    published: ["Its metadata document is published by ", " (verified)."],
    client_id: "Client id:",
    scopes: "Permissions on this server:",
    upstream_scopes: ["This server will ask ", " for:"],
    loopback: [
        "Local application.",
        "Access goes to a program on this computer. Only approve if you just started \
         connecting an application here yourself.",
    ],
    deny_hint: "If you did not just ask to connect this application, choose Deny.",
    decision: "Your decision",
    approve: "Approve",
    deny: "Deny",
};

const GERMAN: Messages = Messages {
    title: "Zugriff erlauben?",
    headline: ["Zugriff für ", " erlauben?"],
    lead: [
        "Wenn Sie zustimmen, melden Sie sich bei ",
        " an und ",
        " erhält in Ihrem Namen Zugriff auf ",
        ".",
    ],
    full_address: "Vollständige Adresse:",
    name_label: "Die Anwendung nennt sich",
    unverified: "(nicht überprüft: jede Anwendung kann jeden Namen wählen)",
    unnamed: "Die Anwendung nennt keinen Namen.",
    published: ["Ihr Metadatendokument veröffentlicht ", " (überprüft)."],
    client_id: "Client-ID:",
    scopes: "Berechtigungen auf diesem Server:",
    upstream_scopes: ["Dieser Server wird ", " um Folgendes bitten:"],
    loopback: [
        "Lokale Anwendung.",
        "Der Zugriff geht an ein Programm auf diesem Computer. Stimmen Sie nur zu, wenn \
         Sie gerade selbst eine Anwendung hier verbinden.",
    ],
    deny_hint: "Wenn Sie nicht gerade selbst eine Anwendung verbinden wollten, wählen Sie \
                Ablehnen.",
    decision: "Ihre Entscheidung",
    approve: "Zustimmen",
    deny: "Ablehnen",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_weights_and_primary_subtags() {
        use Language::*;
        let cases = [
            (None, English),
            (Some(""), English),
            (Some("de"), German),
            (Some("de-AT"), German),
            (Some("DE-de"), German),
            (Some("fr, de;q=0.5"), German),
            (Some("en;q=0.4, de;q=0.9"), German),
            (Some("de;q=0.5, en;q=0.5"), German),
            (Some("en, de"), English),
            (Some("de;q=0"), English),
            (Some("de;q=0.000, en;q=0.001"), English),
            (Some("*;q=0.3, de;q=0.2"), English),
            (Some("fr-CH, fr;q=0.9"), English),
            (Some("de;q=2"), English),
            (Some("de;q=0.5555"), English),
            (Some("de;q=1.000"), German),
            (Some("de;q=1.001"), English),
            (Some("de;level=1"), English),
            (Some("de;q"), English),
            (Some("deutsch"), English),
            (Some(",,;;==,de"), German),
        ];
        for (header, want) in cases {
            assert_eq!(Language::negotiate(header), want, "{header:?}");
        }
        let long = format!("{}de", "x, ".repeat(400));
        assert_eq!(Language::negotiate(Some(&long)), English, "over 1 KiB");
    }

    #[test]
    fn every_language_has_every_word() {
        for language in Language::ALL {
            let m = language.messages();
            let words = [
                m.title,
                m.full_address,
                m.name_label,
                m.unverified,
                m.unnamed,
            ];
            let words = words
                .into_iter()
                .chain([m.client_id, m.scopes, m.deny_hint]);
            let words = words.chain([m.decision, m.approve, m.deny]);
            let words = words
                .chain(m.headline)
                .chain(m.lead)
                .chain(m.upstream_scopes);
            for word in words.chain(m.loopback) {
                assert!(!word.is_empty(), "{language:?}");
                assert!(!word.contains(['<', '>', '&', '"']), "{language:?}: {word}");
            }
        }
    }
}
