//! The harness only ever talks to this machine: every target URL and bind address is checked.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result, bail};
use reqwest::Url;
use reqwest::header::HeaderValue;

/// Parses `url` and accepts it only if it is `http` to a loopback host (`127.0.0.0/8`, `::1`
/// or `localhost`).
pub fn loopback_url(url: &str) -> Result<Url> {
    let parsed = Url::parse(url).with_context(|| format!("invalid URL {url:?}"))?;
    if parsed.scheme() != "http" {
        bail!("URL {url:?}: only plain http to loopback is allowed, got scheme {:?}", parsed.scheme());
    }
    let host = parsed.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ok = match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    };
    if !ok {
        bail!("URL {url:?}: the harness only sends traffic to loopback (127.0.0.1, ::1, localhost)");
    }
    Ok(parsed)
}

/// Accepts a bind address only if its IP is loopback.
pub fn loopback_bind(ip: IpAddr, port: u16) -> Result<SocketAddr> {
    if !ip.is_loopback() {
        bail!("bind address {ip}: the harness only listens on loopback");
    }
    Ok(SocketAddr::new(ip, port))
}

/// Parses a `Name: value` header argument.
pub fn parse_header(arg: &str) -> Result<(reqwest::header::HeaderName, HeaderValue)> {
    let (name, value) =
        arg.split_once(':').with_context(|| format!("header {arg:?}: expected \"Name: value\""))?;
    let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
        .with_context(|| format!("header {arg:?}: invalid name"))?;
    let value =
        HeaderValue::from_str(value.trim()).with_context(|| format!("header {name}: invalid value"))?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_targets() {
        for url in [
            "http://127.0.0.1:8080/v1/chat/completions",
            "http://127.0.0.2/x",
            "http://[::1]:9000/",
            "http://localhost:1/api",
            "http://LOCALHOST/",
        ] {
            assert!(loopback_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn refuses_anything_else() {
        for url in [
            "http://10.0.0.1/",
            "http://example.com/",
            "https://127.0.0.1/",
            "http://localhost.example.com/",
            "http://[2001:db8::1]/",
            "not a url",
            "file:///etc/passwd",
        ] {
            let err = loopback_url(url).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!err.is_empty(), "{url} was accepted");
        }
    }

    #[test]
    fn bind_is_loopback_only() {
        assert!(loopback_bind("127.0.0.1".parse().unwrap(), 0).is_ok());
        assert!(loopback_bind("0.0.0.0".parse().unwrap(), 0).is_err());
    }

    #[test]
    fn parses_headers() {
        let (n, v) = parse_header("Content-Type: application/json").unwrap();
        assert_eq!(n.as_str(), "content-type");
        assert_eq!(v, "application/json");
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }
}
