//! What the notifier may connect to (SECURITY.md, Notifications): a receiver URL is the
//! operator's input, but it is fetched from inside the deployment, so an address on the
//! loopback, link-local (cloud metadata: 169.254.169.254, fd00:ec2::254), private, shared
//! (100.64/10), unique-local or otherwise internal range is refused unless
//! `--notify-allow-private`, and `http://` unless `--notify-allow-http`.
//!
//! The check runs where the connection is made — a DNS resolver for the HTTP client that drops
//! such addresses — so a name that resolves to a public address when the subscription is
//! added and to an internal one later (DNS rebinding) is refused all the same; a URL whose
//! host is an address literal is checked before the request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is for the public internet (not loopback, private, link-local, …).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 is EC2's metadata)
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || ip.to_ipv4().is_some_and(|v4| !public_v4(v4))) // IPv4-compatible
}

/// Why a receiver URL is refused, if it is.
pub fn check_url(url: &str, allow_http: bool, allow_private: bool) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => return Err("the receiver must be https:// (plain http:// only with --notify-allow-http)".into()),
        other => return Err(format!("unsupported scheme {other}")),
    }
    if !(parsed.username().is_empty() && parsed.password().is_none()) {
        return Err("a receiver URL may not carry credentials".into());
    }
    let ip = match parsed.host() {
        None => return Err("the receiver URL has no host".into()),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(url::Host::Domain(d)) => match d.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) if d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost") => {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
            // A name: checked when it is resolved, at each connection.
            Err(_) => return Ok(()),
        },
    };
    if !allow_private && !is_public(ip) {
        return Err(format!("{ip} is a loopback, private, link-local or otherwise internal address (allowed only with --notify-allow-private)"));
    }
    Ok(())
}

/// The HTTP client's resolver: the system's, less every address that is not public (unless
/// allowed); a name left with none fails to connect.
#[derive(Debug)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address (refused: SSRF protection)").into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_and_public_ones_pass() {
        for url in [
            "https://127.0.0.1/x",
            "https://localhost/x",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00:ec2::254]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
        ] {
            assert!(check_url(url, false, false).is_err(), "{url}");
            assert!(check_url(url, false, true).is_ok(), "{url} with --notify-allow-private");
        }
        assert!(check_url("https://93.184.215.14/hook", false, false).is_ok());
        assert!(check_url("https://hooks.example.com/hook", false, false).is_ok());
        assert!(check_url("http://hooks.example.com/hook", false, false).unwrap_err().contains("https"));
        assert!(check_url("http://hooks.example.com/hook", true, false).is_ok());
        assert!(check_url("https://user:pw@hooks.example.com/", false, false).is_err());
        assert!(check_url("ftp://hooks.example.com/", true, true).is_err());
    }
}
