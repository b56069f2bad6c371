//! The URL a load run sends to, checked and resolved once before the run starts.

use std::net::{SocketAddr, ToSocketAddrs};

/// A parsed, resolved `http://` URL.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as the user gave it.
    pub url: String,
    /// Where connections go (the first address the host resolves to).
    pub addr: SocketAddr,
    /// The `Host` header: the URL's authority.
    pub authority: String,
    /// What goes on the request line: path and query.
    pub path_and_query: String,
}

impl Target {
    /// Checks the URL and resolves its host. The error is one line that names
    /// the problem and the fix.
    pub fn parse(url: &str) -> Result<Target, String> {
        let Some((scheme, _)) = url.split_once("://") else {
            return Err(format!(
                "{url:?} is not a URL: it needs a scheme, as in http://{url}"
            ));
        };
        if scheme.eq_ignore_ascii_case("https") {
            return Err(format!(
                "{url}: https is not supported; every server in this book speaks plain http on \
                 loopback, so use http://"
            ));
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!(
                "{url}: the scheme {scheme:?} is not supported; use http://"
            ));
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|error| format!("{url:?} is not a valid URL ({error}); check it for typos"))?;
        let host = uri
            .host()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| format!("{url:?} has no host; write it as http://HOST:PORT/PATH"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let addr = (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| {
                format!("unknown host {host:?} in {url}: check the name, or use 127.0.0.1")
            })?;
        let authority = uri
            .authority()
            .map(|authority| authority.as_str().to_string())
            .unwrap_or_else(|| host.to_string());
        let path_and_query = uri
            .path_and_query()
            .map(|path| path.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        Ok(Target {
            url: url.to_string(),
            addr,
            authority,
            path_and_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves_loopback() {
        let target = Target::parse("http://127.0.0.1:8001/sleep?ms=5").unwrap();
        assert_eq!(target.addr, "127.0.0.1:8001".parse().unwrap());
        assert_eq!(target.authority, "127.0.0.1:8001");
        assert_eq!(target.path_and_query, "/sleep?ms=5");
        let bare = Target::parse("http://localhost:9").unwrap();
        assert_eq!(bare.path_and_query, "/");
        assert!(bare.addr.ip().is_loopback());
    }

    #[test]
    fn bad_urls_get_one_line_with_a_fix() {
        for (url, says) in [
            ("127.0.0.1:8001/", "needs a scheme"),
            ("https://127.0.0.1/", "https is not supported"),
            ("ftp://127.0.0.1/", "not supported"),
            ("http://exa mple/", "not a valid URL"),
            ("http://no-such-host.invalid/", "unknown host"),
        ] {
            let error = Target::parse(url).unwrap_err();
            assert!(error.contains(says), "{url}: {error}");
            assert!(!error.contains('\n'), "{url}: {error}");
        }
    }
}
