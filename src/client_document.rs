//! Client ID Metadata Documents (R57): which client ids are document URLs, and how long a
//! fetched document may stand in for a registration. The gate fetches nothing: the host
//! fetches the URL ([`is_metadata_document_url`]) under its SSRF policy (R58) and hands
//! the bytes to `Gate::accept_metadata_document`, which validates them like a
//! registration (`src/register.rs`).

use crate::UnixTime;

/// The shortest time a document is trusted before it is fetched again, whatever its
/// headers say (a document that says `no-store` would otherwise be fetched on every
/// request of the flow).
pub const METADATA_DOCUMENT_MIN_SECONDS: u64 = 5 * 60;
/// The longest, whatever its headers say (a changed or withdrawn document takes effect
/// within a day).
pub const METADATA_DOCUMENT_MAX_SECONDS: u64 = 24 * 3600;
/// The largest document read.
pub const MAX_METADATA_DOCUMENT: usize = 16 * 1024;

/// Whether `client_id` is a Client ID Metadata Document URL: `https` (or `http` to a
/// loopback host, which only a gate in development mode accepts), a host, a path other
/// than `/`, no userinfo, no fragment, no query, no `.` or `..` segment, and exactly as
/// the URL parser serializes it (so that the id, the fetched URL and the document's own
/// `client_id` are one string). A registered client's id never is one.
pub fn is_metadata_document_url(client_id: &str) -> bool {
    metadata_document_host(client_id).is_some()
}

/// The host of a metadata document URL (the domain the consent page names as where the
/// document was published), or `None` when `client_id` is not one.
pub(crate) fn metadata_document_host(client_id: &str) -> Option<String> {
    let http = client_id.starts_with("http://");
    if client_id.len() > 2000 || !(client_id.starts_with("https://") || http) {
        return None;
    }
    let url = url::Url::parse(client_id).ok()?;
    let loopback = match url.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(name) => name == "localhost",
    };
    if http && !loopback {
        return None;
    }
    let plain = url.username().is_empty() && url.password().is_none();
    let no_extras = url.fragment().is_none() && url.query().is_none();
    let segments = url.path_segments()?.collect::<Vec<_>>();
    let path_ok = segments
        .iter()
        .all(|s| !s.is_empty() || segments.len() == 1)
        && segments != [""]
        && !client_id.contains("/./")
        && !client_id.contains("/../")
        && !client_id.ends_with("/.")
        && !client_id.ends_with("/..");
    let canonical = url.as_str() == client_id;
    let host = url.host_str()?;
    (plain && no_extras && path_ok && canonical).then(|| host.to_owned())
}

/// Until when a document fetched at `now` stands in for a registration: its
/// `Cache-Control: max-age` within [`METADATA_DOCUMENT_MIN_SECONDS`] and
/// [`METADATA_DOCUMENT_MAX_SECONDS`], the minimum without one (or with `no-store`,
/// `no-cache`, or a header we cannot read).
pub(crate) fn document_expiry(cache_control: Option<&str>, now: UnixTime) -> UnixTime {
    let max_age = cache_control.and_then(|header| {
        let directives = header.split(',').map(str::trim);
        let mut max_age = None;
        for directive in directives {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-store" || lower == "no-cache" {
                return None;
            }
            if let Some(n) = lower.strip_prefix("max-age=") {
                max_age = n.parse::<u64>().ok();
            }
        }
        max_age
    });
    let seconds = max_age.unwrap_or(0);
    now.plus(seconds.clamp(METADATA_DOCUMENT_MIN_SECONDS, METADATA_DOCUMENT_MAX_SECONDS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_https_urls_with_a_path_are_document_ids() {
        for ok in [
            "https://client.example/oauth/metadata.json",
            "https://client.example/app",
            "https://client.example:8443/m.json",
            "https://127.0.0.1:9000/doc.json",
        ] {
            assert!(is_metadata_document_url(ok), "{ok}");
        }
        assert!(is_metadata_document_url("http://127.0.0.1:9000/doc.json"));
        assert!(is_metadata_document_url("http://localhost:9000/doc.json"));
        for not in [
            "",
            "abcDEF0123456789abcdef",
            "http://client.example/doc.json",
            "http://10.0.0.1/doc.json",
            "https://client.example",
            "https://client.example/",
            "https://client.example/doc.json#frag",
            "https://client.example/doc.json?v=1",
            "https://user@client.example/doc.json",
            "https://client.example/a/../doc.json",
            "https://client.example/./doc.json",
            "https://client.example//doc.json",
            "https://client.example/doc/",
            "https://CLIENT.example/doc.json",
            "https://client.example:443/doc.json",
            "https://client.example/d%6fc.json ",
            " https://client.example/doc.json",
            "https://client.example/doc.json\n",
        ] {
            assert!(!is_metadata_document_url(not), "{not:?}");
        }
        assert_eq!(
            metadata_document_host("https://client.example/oauth/m.json").as_deref(),
            Some("client.example")
        );
    }

    #[test]
    fn caching_headers_are_honoured_within_the_floor_and_the_ceiling() {
        let now = UnixTime(1_000);
        let expiry = |h| document_expiry(h, now).0 - now.0;
        assert_eq!(expiry(None), METADATA_DOCUMENT_MIN_SECONDS);
        assert_eq!(expiry(Some("max-age=3600")), 3600);
        assert_eq!(expiry(Some("public, Max-Age=7200")), 7200);
        assert_eq!(expiry(Some("max-age=5")), METADATA_DOCUMENT_MIN_SECONDS);
        assert_eq!(
            expiry(Some("max-age=31536000")),
            METADATA_DOCUMENT_MAX_SECONDS
        );
        assert_eq!(
            expiry(Some("no-store, max-age=3600")),
            METADATA_DOCUMENT_MIN_SECONDS
        );
        assert_eq!(expiry(Some("max-age=-1")), METADATA_DOCUMENT_MIN_SECONDS);
        assert_eq!(expiry(Some("max-age=abc")), METADATA_DOCUMENT_MIN_SECONDS);
    }
}
