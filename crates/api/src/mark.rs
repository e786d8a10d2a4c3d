//! The classifier: rvs has no iptables, so what `iptables -t mangle ... -j MARK` does for an
//! IPVS director is told here, by rules that mark new flows by protocol, destination prefix
//! and destination ports, for ipvsadm's `-f MARK` services.
//!
//! ```toml
//! [[mark]]                      # HTTP and HTTPS of one VIP, one sticky service
//! mark = 1
//! protocol = "tcp"              # optional: tcp, udp or sctp (default: all three)
//! destination = "10.0.0.100"    # an address (answered for ARP/ND) or a prefix routed here
//! ports = "80,443"              # optional: ports and ranges, "80,443,8000-8080" (default: all)
//! ```
//!
//! The first rule a new flow matches gives its mark; the `-f` service of that mark (and of the
//! destination's family) takes it, before any service of the address and port, as in IPVS. A
//! mark with no service leaves the flow to the address's services.

use std::fmt;
use std::net::IpAddr;

use rvs_core::model::{MarkRule, Protocol};
use serde::{Deserialize, Serialize};

/// A rule as a config file, the control protocol and the peer link carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct RawMark {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<String>,
}

/// A validated rule: one mark, for one protocol or all, one destination prefix, some port
/// ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MarkConfig {
    pub mark: u32,
    pub protocol: Option<Protocol>,
    pub dst: IpAddr,
    pub prefix_len: u8,
    /// Inclusive ranges, as given; empty for every port.
    pub ports: Vec<(u16, u16)>,
}

/// The core's rules of every configured rule, in order (what the tables are built with).
pub fn core_rules(marks: &[MarkConfig]) -> Vec<MarkRule> {
    marks.iter().flat_map(MarkConfig::rules).collect()
}

impl MarkConfig {
    /// The core's rules: one per port range.
    pub fn rules(&self) -> Vec<MarkRule> {
        let rule = |ports| MarkRule {
            mark: self.mark,
            protocol: self.protocol,
            dst: self.dst,
            prefix_len: self.prefix_len,
            ports,
        };
        if self.ports.is_empty() {
            return vec![rule((0, u16::MAX))];
        }
        self.ports.iter().map(|&p| rule(p)).collect()
    }

    /// The ports as they are written: `80,443,8000-8080`.
    pub fn ports_text(&self) -> Option<String> {
        if self.ports.is_empty() {
            return None;
        }
        let one = |&(lo, hi): &(u16, u16)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        };
        Some(self.ports.iter().map(one).collect::<Vec<_>>().join(","))
    }

    pub fn to_raw(&self) -> RawMark {
        RawMark {
            mark: Some(self.mark as i64),
            protocol: self.protocol.map(|p| p.name().to_string()),
            destination: Some(format!("{}/{}", self.dst, self.prefix_len)),
            ports: self.ports_text(),
        }
    }
}

impl fmt::Display for MarkConfig {
    /// The rule as the rvsadm command that adds it: `--add-mark 1 --proto tcp --dest
    /// 10.0.0.100/32 --dports 80,443`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--add-mark {}", self.mark)?;
        if let Some(p) = self.protocol {
            write!(f, " --proto {}", p.name())?;
        }
        write!(f, " --dest {}/{}", self.dst, self.prefix_len)?;
        if let Some(p) = self.ports_text() {
            write!(f, " --dports {p}")?;
        }
        Ok(())
    }
}

/// Validates a rule; each problem names its field under `prefix` (`mark[2]`, `mark`).
pub fn validate_mark(raw: &RawMark, prefix: &str) -> Result<MarkConfig, Vec<String>> {
    let mut e = Vec::new();
    let mark = match raw.mark {
        None => {
            e.push(format!(
                "{prefix}.mark: missing: the mark (1..=4294967295) a -f service names"
            ));
            0
        }
        Some(m) if (1..=u32::MAX as i64).contains(&m) => m as u32,
        Some(m) => {
            e.push(format!("{prefix}.mark: {m} is outside 1..=4294967295"));
            0
        }
    };
    let protocol = match raw.protocol.as_deref() {
        None | Some("all") => None,
        Some(p) => match p {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "sctp" => Some(Protocol::Sctp),
            _ => {
                e.push(format!(
                    "{prefix}.protocol: {p:?} is not one of tcp, udp, sctp, all"
                ));
                None
            }
        },
    };
    let (dst, prefix_len) = match raw.destination.as_deref() {
        None => {
            e.push(format!(
                "{prefix}.destination: missing: an address (10.0.0.100) or a prefix (10.0.0.0/24)"
            ));
            (IpAddr::from([0, 0, 0, 0]), 0)
        }
        Some(d) => match parse_prefix(d) {
            Ok(x) => x,
            Err(m) => {
                e.push(format!("{prefix}.destination: {m}"));
                (IpAddr::from([0, 0, 0, 0]), 0)
            }
        },
    };
    let ports = match raw.ports.as_deref().map(parse_ports) {
        None => Vec::new(),
        Some(Ok(p)) => p,
        Some(Err(m)) => {
            e.push(format!("{prefix}.ports: {m}"));
            Vec::new()
        }
    };
    if !e.is_empty() {
        return Err(e);
    }
    Ok(MarkConfig {
        mark,
        protocol,
        dst,
        prefix_len,
        ports,
    })
}

/// The most rules a director takes: a new flow is matched against them one after the other.
pub const MAX_MARKS: usize = 4096;

/// Validates a config file's rules (`mark[i]`), pushing each problem to `errors`.
pub fn validate_marks(raw: &[RawMark], errors: &mut Vec<String>) -> Vec<MarkConfig> {
    if raw.len() > MAX_MARKS {
        errors.push(format!("mark: {} rules; no more than {MAX_MARKS}", raw.len()));
    }
    let mut out: Vec<(usize, MarkConfig)> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        match validate_mark(r, &format!("mark[{i}]")) {
            Ok(m) => {
                if let Some((j, _)) = out.iter().find(|(_, x)| *x == m) {
                    errors.push(format!("mark[{i}]: repeats mark[{j}]"));
                }
                out.push((i, m));
            }
            Err(e) => errors.extend(e),
        }
    }
    out.into_iter().map(|(_, m)| m).collect()
}

/// `10.0.0.1`, `10.0.0.0/24`, `2001:db8::/64`: the address and its prefix length (a whole
/// address without one). Host bits set under the prefix are refused: they are a typo.
pub fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let a: IpAddr = a
        .parse()
        .map_err(|_| format!("{s:?} is not an address or a prefix (10.0.0.0/24)"))?;
    let max = if a.is_ipv6() { 128 } else { 32 };
    let len = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("{s:?}: the prefix length is not in 0..={max}")),
        },
    };
    if !is_network(a, len) {
        return Err(format!(
            "{s:?} has bits set after its /{len}: the network is meant"
        ));
    }
    Ok((a, len))
}

fn is_network(a: IpAddr, len: u8) -> bool {
    match a {
        IpAddr::V4(v) => u32::from(v) & u32::MAX.checked_shr(len as u32).unwrap_or(0) == 0,
        IpAddr::V6(v) => u128::from(v) & u128::MAX.checked_shr(len as u32).unwrap_or(0) == 0,
    }
}

/// `80`, `80,443`, `8000-8080`, `80,8000-8080`: inclusive ranges.
pub fn parse_ports(s: &str) -> Result<Vec<(u16, u16)>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("{part:?} in {s:?} is not a port (0..=65535) or a range (8000-8080)"))
        };
        let r = match part.split_once('-') {
            Some((lo, hi)) => (port(lo)?, port(hi)?),
            None => {
                let p = port(part)?;
                (p, p)
            }
        };
        if r.0 > r.1 {
            return Err(format!("{part:?} in {s:?}: the range runs backwards"));
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(mark: i64, proto: Option<&str>, dst: &str, ports: Option<&str>) -> RawMark {
        RawMark {
            mark: Some(mark),
            protocol: proto.map(str::to_string),
            destination: Some(dst.into()),
            ports: ports.map(str::to_string),
        }
    }

    #[test]
    fn a_rule_becomes_one_core_rule_per_port_range() {
        let m = validate_mark(
            &raw(1, Some("tcp"), "10.0.0.100", Some("80,443,8000-8080")),
            "mark",
        )
        .unwrap();
        assert_eq!(m.prefix_len, 32);
        let r = m.rules();
        assert_eq!(r.len(), 3);
        assert!(r[2].matches(Protocol::Tcp, "10.0.0.100".parse().unwrap(), 8040));
        assert!(!r[2].matches(Protocol::Udp, "10.0.0.100".parse().unwrap(), 8040));
        assert!(!r[0].matches(Protocol::Tcp, "10.0.0.101".parse().unwrap(), 80));
        assert_eq!(
            m.to_string(),
            "--add-mark 1 --proto tcp --dest 10.0.0.100/32 --dports 80,443,8000-8080"
        );
        assert_eq!(validate_mark(&m.to_raw(), "mark").unwrap(), m);
    }

    #[test]
    fn every_protocol_and_port_of_a_prefix() {
        let m = validate_mark(&raw(7, None, "2001:db8::/64", None), "mark").unwrap();
        let r = m.rules();
        assert_eq!(r.len(), 1);
        assert!(r[0].matches(Protocol::Sctp, "2001:db8::5".parse().unwrap(), 1));
        assert!(!r[0].matches(Protocol::Sctp, "2001:db9::5".parse().unwrap(), 1));
        assert!(!r[0].is_host());
    }

    #[test]
    fn bad_rules_name_each_field() {
        let e = validate_mark(
            &RawMark {
                mark: Some(0),
                protocol: Some("icmp".into()),
                destination: Some("10.0.0.1/24".into()),
                ports: Some("443-80".into()),
            },
            "mark[3]",
        )
        .unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with("mark[3].mark: 0 is outside"), "{e:?}");
        assert!(e[1].contains("\"icmp\" is not one of"), "{e:?}");
        assert!(e[2].contains("bits set after its /24"), "{e:?}");
        assert!(e[3].contains("runs backwards"), "{e:?}");
        let e = validate_mark(&RawMark::default(), "mark").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        for bad in ["80,", "http", "70000", "1-2-3"] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
        for bad in ["10.0.0.0/33", "::/129", "nothing", "10.0.0.0/x"] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
    }
}
