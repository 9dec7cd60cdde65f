//! `[http_authz]`: Envoy's HTTP ext_authz protocol and forward-auth proxies.

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

/// Settings of the HTTP ext_authz endpoint (`/ext_authz/…`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpAuthzConfig {
    /// Peers whose forwarding headers (`X-Forwarded-Uri`, `X-Original-URI`,
    /// `X-Forwarded-Method`, `X-Forwarded-Host`) are believed. Empty by default: nobody's.
    pub trusted_proxies: Vec<Cidr>,
}

impl HttpAuthzConfig {
    /// Whether `peer` is one of the trusted proxies.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|cidr| cidr.contains(peer))
    }
}

/// An address block such as `127.0.0.1/32` or `fd00::/8`; a bare address is a single host.
#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refused = || format!("http_authz.trusted_proxies: {text:?} is not an address/prefix");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| refused())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(refused)?,
        };
        Ok(Self { network, prefix })
    }
}

impl Cidr {
    /// Whether `peer` lies in this block. An IPv4-mapped IPv6 peer is compared as IPv4.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, peer) {
            (IpAddr::V4(net), IpAddr::V4(peer)) => same_prefix(
                u128::from(u32::from(net)),
                u128::from(u32::from(peer)),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(peer)) => {
                same_prefix(u128::from(net), u128::from(peer), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn same_prefix(network: u128, peer: u128, bits: u8, prefix: u8) -> bool {
    let host_bits = u32::from(bits - prefix);
    if host_bits >= 128 {
        return true;
    }
    (network >> host_bits) == (peer >> host_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_contain_exactly_their_addresses() {
        let loopback: Cidr = "127.0.0.1/32".parse().unwrap();
        assert!(loopback.contains(ip("127.0.0.1")));
        assert!(loopback.contains(ip("::ffff:127.0.0.1")));
        assert!(!loopback.contains(ip("127.0.0.2")));
        let private: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(private.contains(ip("10.200.3.4")) && !private.contains(ip("11.0.0.1")));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(ip("192.0.2.1")) && !any.contains(ip("2001:db8::1")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for bad in [
            "",
            "localhost",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "::/129",
            "10.0.0.0/",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
