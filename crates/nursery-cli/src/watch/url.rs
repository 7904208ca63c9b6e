//! Checks the URL before any attempt, so a URL that can never work is a usage error at once
//! (the reconnect loop would retry it forever).

use nursery_net::tungstenite::http::Uri;

/// Why a URL cannot be watched: a sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{url}` is not a WebSocket URL: {problem} (expected e.g. ws://127.0.0.1:9000/feed or wss://example.org/feed)")]
pub(super) struct InvalidUrl {
    url: String,
    problem: &'static str,
}

/// `Ok` for a `ws://` or `wss://` URL with a host.
pub(super) fn check(url: &str) -> Result<(), InvalidUrl> {
    let invalid = |problem| InvalidUrl {
        url: url.to_owned(),
        problem,
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| invalid("it does not parse as a URL"))?;
    match uri.scheme_str() {
        Some(scheme) if scheme.eq_ignore_ascii_case("ws") || scheme.eq_ignore_ascii_case("wss") => {
        }
        Some(_) => return Err(invalid("the scheme must be ws:// or wss://")),
        None => return Err(invalid("it has no scheme (ws:// or wss://)")),
    }
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(()),
        _ => Err(invalid("it has no host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls_pass() {
        assert_eq!(check("ws://127.0.0.1:9000/feed"), Ok(()));
        assert_eq!(check("wss://example.org"), Ok(()));
        assert_eq!(check("WS://[::1]:80/"), Ok(()));
    }

    #[test]
    fn anything_else_is_refused_with_its_problem() {
        let problem = |url| check(url).unwrap_err().problem;
        assert_eq!(problem("notaurl"), "it has no scheme (ws:// or wss://)");
        assert_eq!(
            problem("http://example.org/"),
            "the scheme must be ws:// or wss://"
        );
        assert_eq!(problem("ws://"), "it does not parse as a URL");
        assert_eq!(problem("ws:// bad"), "it does not parse as a URL");
        assert!(check("notaurl")
            .unwrap_err()
            .to_string()
            .starts_with("`notaurl` is not a WebSocket URL"));
    }
}
