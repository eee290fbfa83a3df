//! Per-listener IP allowlists: CIDR blocks, IPv4 and IPv6. A connection
//! from anywhere else is closed before a byte is read or written.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::access::admission::canonical;

/// One block of addresses: `10.0.0.0/8`, `2001:db8::/32`, or one address
/// (`192.0.2.7`, the same as `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the block. An IPv4 client on a dual-stack socket
    /// (`::ffff:a.b.c.d`) is its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("'{s}' is not an address or a CIDR block like 10.0.0.0/8 or 2001:db8::/32");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net = canonical(addr.trim().parse::<IpAddr>().map_err(|_| bad())?);
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(bad)?,
        };
        let block = Self { net, prefix };
        // Host bits set (10.1.2.3/8) are most likely a typo for something
        // narrower: refuse rather than silently widen.
        if !block.is_network_address() {
            return Err(format!(
                "'{s}' has bits set past its /{prefix} prefix; write the network address of the block"
            ));
        }
        Ok(block)
    }
}

impl Cidr {
    fn is_network_address(&self) -> bool {
        match self.net {
            IpAddr::V4(n) => {
                let host = u32::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
                u32::from(n) & host == 0
            }
            IpAddr::V6(n) => {
                let host = u128::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
                u128::from(n) & host == 0
            }
        }
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> Self {
        c.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// Whether a list lets `ip` in: an empty list lets everyone in.
pub(crate) fn allows(list: &[Cidr], ip: IpAddr) -> bool {
    list.is_empty() || list.iter().any(|c| c.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses_in_both_families() {
        let v4 = cidr("10.0.0.0/8");
        assert!(v4.contains(ip("10.255.1.2")));
        assert!(v4.contains(ip("::ffff:10.0.0.1")), "mapped IPv4");
        assert!(!v4.contains(ip("11.0.0.1")));
        assert!(!v4.contains(ip("::1")));
        let one = cidr("192.0.2.7");
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6 = cidr("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all = cidr("0.0.0.0/0");
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::2")));
        assert!(cidr("::/0").contains(ip("fe80::1")));
        assert!(allows(&[], ip("203.0.113.9")), "no list: everyone");
        assert!(!allows(&[v4, v6], ip("127.0.0.1")));
    }

    #[test]
    fn malformed_blocks_are_refused_with_the_reason() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/x",
            "host",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let err = "10.1.2.3/8".parse::<Cidr>().unwrap_err();
        assert!(err.contains("network address"), "{err}");
    }
}
