//! The director's own addresses and routes: which port reaches an address, and through which
//! next hop. Small tables, scanned linearly (a director has a handful of ports).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::ethernet::Mac;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortNet {
    pub mac: Mac,
    pub v4: Vec<(Ipv4Addr, u8)>,
    pub v6: Vec<(Ipv6Addr, u8)>,
    pub gateway4: Option<Ipv4Addr>,
    pub gateway6: Option<Ipv6Addr>,
    pub mtu: u16,
}

impl PortNet {
    pub fn new(mac: Mac) -> PortNet {
        PortNet {
            mac,
            v4: Vec::new(),
            v6: Vec::new(),
            gateway4: None,
            gateway6: None,
            mtu: 1500,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    pub ports: Vec<PortNet>,
}

fn in_prefix4(a: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - len.min(32))
    };
    u32::from(a) & mask == u32::from(net) & mask
}

fn in_prefix6(a: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len.min(128) as u32)
    };
    u128::from(a) & mask == u128::from(net) & mask
}

impl Network {
    pub fn port(&self, port: u16) -> Option<&PortNet> {
        self.ports.get(port as usize)
    }

    /// Is `a` one of the director's own addresses?
    pub fn is_local(&self, a: IpAddr) -> bool {
        self.ports.iter().any(|p| match a {
            IpAddr::V4(a) => p.v4.iter().any(|&(x, _)| x == a),
            IpAddr::V6(a) => p.v6.iter().any(|&(x, _)| x == a),
        })
    }

    /// The egress port and next hop for `dst`: the port whose subnet holds it (next hop `dst`),
    /// else the first port with a gateway of that family.
    pub fn route(&self, dst: IpAddr) -> Option<(u16, IpAddr)> {
        let on_link = self.ports.iter().position(|p| match dst {
            IpAddr::V4(d) => p.v4.iter().any(|&(n, l)| in_prefix4(d, n, l)),
            IpAddr::V6(d) => p.v6.iter().any(|&(n, l)| in_prefix6(d, n, l)),
        });
        if let Some(i) = on_link {
            return Some((i as u16, dst));
        }
        self.ports.iter().enumerate().find_map(|(i, p)| match dst {
            IpAddr::V4(_) => p.gateway4.map(|g| (i as u16, IpAddr::V4(g))),
            IpAddr::V6(_) => p.gateway6.map(|g| (i as u16, IpAddr::V6(g))),
        })
    }

    /// The director's source address on `port` for tunnels and ICMP it originates.
    pub fn source4(&self, port: u16) -> Option<Ipv4Addr> {
        self.port(port).and_then(|p| p.v4.first().map(|&(a, _)| a))
    }

    pub fn source6(&self, port: u16) -> Option<Ipv6Addr> {
        self.port(port).and_then(|p| p.v6.first().map(|&(a, _)| a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_link_beats_gateway() {
        let mut p0 = PortNet::new([2, 0, 0, 0, 0, 1]);
        p0.v4.push(("10.0.0.1".parse().unwrap(), 24));
        p0.gateway4 = Some("10.0.0.254".parse().unwrap());
        let mut p1 = PortNet::new([2, 0, 0, 0, 0, 2]);
        p1.v4.push(("192.168.1.1".parse().unwrap(), 24));
        let n = Network { ports: vec![p0, p1] };
        assert_eq!(
            n.route("192.168.1.7".parse().unwrap()),
            Some((1, "192.168.1.7".parse().unwrap()))
        );
        assert_eq!(
            n.route("10.0.0.9".parse().unwrap()),
            Some((0, "10.0.0.9".parse().unwrap()))
        );
        assert_eq!(
            n.route("8.8.8.8".parse().unwrap()),
            Some((0, "10.0.0.254".parse().unwrap()))
        );
        assert_eq!(n.route("2001:db8::1".parse().unwrap()), None);
        assert!(n.is_local("192.168.1.1".parse().unwrap()));
        assert!(!n.is_local("192.168.1.2".parse().unwrap()));
    }
}
