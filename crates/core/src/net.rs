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
    /// The port has a kernel twin (the host path): what is for the director goes up to it.
    pub twin: bool,
    /// The addresses the twin holds now, as the kernel reports them (the configured ones, a
    /// link-local, and whatever an operator or keepalived added).
    pub host: Vec<IpAddr>,
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
            twin: false,
            host: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    pub ports: Vec<PortNet>,
}

/// Is `a` in `net/len` (false across families)?
pub fn in_prefix(a: IpAddr, net: IpAddr, len: u8) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => in_prefix4(a, n, len),
        (IpAddr::V6(a), IpAddr::V6(n)) => in_prefix6(a, n, len),
        _ => false,
    }
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

    /// Does the kernel hold `a` on any twin? (The kernel takes a packet for any of its
    /// addresses on any interface, so the ingress port's twin may take it.)
    pub fn host_holds(&self, a: IpAddr) -> bool {
        self.ports.iter().any(|p| p.host.contains(&a))
    }

    /// Is a packet to `dst` received on `port` for the host: the port has a twin, and `dst` is
    /// an address the kernel holds or link-local multicast (VRRP 224.0.0.18 and ff02::12, IPVS
    /// sync 224.0.0.81, OSPF, MLD, router advertisements)? Only asked of packets the data
    /// plane does not forward.
    pub fn to_host(&self, port: u16, dst: IpAddr) -> bool {
        if !self.port(port).is_some_and(|p| p.twin) {
            return false;
        }
        let link_multicast = match dst {
            IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
            IpAddr::V6(a) => a.segments()[0] == 0xff02,
        };
        link_multicast || self.host_holds(dst)
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

    /// The same routes as [`Network::route`], flattened for lookups on the packet path:
    /// (network, mask, port) per subnet in port order, then the first gateway of each family.
    pub fn route_index(&self) -> RouteIndex {
        let mut r = RouteIndex::default();
        for (i, p) in self.ports.iter().enumerate() {
            for &(n, l) in &p.v4 {
                let mask = if l == 0 { 0 } else { u32::MAX << (32 - l.min(32)) };
                r.v4.push((u32::from(n) & mask, mask, i as u16));
            }
            for &(n, l) in &p.v6 {
                let mask = if l == 0 {
                    0
                } else {
                    u128::MAX << (128 - l.min(128) as u32)
                };
                r.v6.push((u128::from(n) & mask, mask, i as u16));
            }
            if r.gw4.is_none() {
                r.gw4 = p.gateway4.map(|g| (i as u16, g));
            }
            if r.gw6.is_none() {
                r.gw6 = p.gateway6.map(|g| (i as u16, g));
            }
        }
        r
    }

    /// The director's source address on `port` for tunnels and ICMP it originates.
    pub fn source4(&self, port: u16) -> Option<Ipv4Addr> {
        self.port(port).and_then(|p| p.v4.first().map(|&(a, _)| a))
    }

    pub fn source6(&self, port: u16) -> Option<Ipv6Addr> {
        self.port(port).and_then(|p| p.v6.first().map(|&(a, _)| a))
    }
}

/// [`Network::route`]'s answers from flat arrays: what a new connection's route to its client
/// costs is a few compares, not a walk over every port's address lists.
#[derive(Debug, Clone, Default)]
pub struct RouteIndex {
    v4: Vec<(u32, u32, u16)>,
    v6: Vec<(u128, u128, u16)>,
    gw4: Option<(u16, Ipv4Addr)>,
    gw6: Option<(u16, Ipv6Addr)>,
}

impl RouteIndex {
    #[inline]
    pub fn route(&self, dst: IpAddr) -> Option<(u16, IpAddr)> {
        match dst {
            IpAddr::V4(d) => {
                let d32 = u32::from(d);
                match self.v4.iter().find(|&&(n, m, _)| d32 & m == n) {
                    Some(&(_, _, port)) => Some((port, dst)),
                    None => self.gw4.map(|(port, g)| (port, IpAddr::V4(g))),
                }
            }
            IpAddr::V6(d) => {
                let d128 = u128::from(d);
                match self.v6.iter().find(|&&(n, m, _)| d128 & m == n) {
                    Some(&(_, _, port)) => Some((port, dst)),
                    None => self.gw6.map(|(port, g)| (port, IpAddr::V6(g))),
                }
            }
        }
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

    #[test]
    fn to_host_needs_a_twin_and_an_address_the_kernel_holds() {
        let mut p0 = PortNet::new([2, 0, 0, 0, 0, 1]);
        p0.v4.push(("10.0.0.1".parse().unwrap(), 24));
        let mut p1 = PortNet::new([2, 0, 0, 0, 0, 2]);
        p1.twin = true;
        p1.host = vec!["192.168.1.1".parse().unwrap(), "fe80::1".parse().unwrap()];
        let n = Network { ports: vec![p0, p1] };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(n.to_host(1, ip("192.168.1.1")));
        assert!(n.to_host(1, ip("fe80::1")));
        assert!(n.to_host(1, ip("224.0.0.18")), "VRRP");
        assert!(n.to_host(1, ip("224.0.0.81")), "IPVS sync");
        assert!(n.to_host(1, ip("ff02::12")));
        assert!(!n.to_host(1, ip("224.0.1.1")), "not link-local scope");
        assert!(!n.to_host(1, ip("192.168.1.2")));
        assert!(!n.to_host(0, ip("192.168.1.1")), "port 0 has no twin");
        assert!(!n.to_host(0, ip("224.0.0.18")));
        assert!(!n.to_host(7, ip("192.168.1.1")), "no such port");
    }

    #[test]
    fn the_route_index_answers_as_the_walk_does() {
        let mut p0 = PortNet::new([2, 0, 0, 0, 0, 1]);
        p0.v4.push(("10.0.0.1".parse().unwrap(), 24));
        p0.v6.push(("2001:db8::1".parse().unwrap(), 64));
        p0.gateway4 = Some("10.0.0.254".parse().unwrap());
        let mut p1 = PortNet::new([2, 0, 0, 0, 0, 2]);
        p1.v4.push(("192.168.1.1".parse().unwrap(), 24));
        p1.v4.push(("172.16.0.1".parse().unwrap(), 12));
        p1.gateway6 = Some("2001:db8:1::fe".parse().unwrap());
        let n = Network { ports: vec![p0, p1] };
        let idx = n.route_index();
        for a in [
            "10.0.0.7",
            "192.168.1.9",
            "172.31.2.3",
            "172.32.0.1",
            "8.8.8.8",
            "2001:db8::5",
            "2001:db8:9::1",
            "::1",
        ] {
            let a: IpAddr = a.parse().unwrap();
            assert_eq!(idx.route(a), n.route(a), "{a}");
        }
        assert_eq!(
            Network { ports: vec![] }
                .route_index()
                .route("1.2.3.4".parse().unwrap()),
            None
        );
    }
}
