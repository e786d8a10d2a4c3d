//! ipvsadm's listing formats (`ipvsadm -Ln`, `--stats --exact`), for rvsd's report and rvsadm.

use std::fmt::Write;
use std::net::IpAddr;

use rvs_core::model::{Forward, Persistence, Protocol};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealRow {
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
    pub weight: u32,
    pub active: u32,
    pub inactive: u32,
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    pub protocol: Protocol,
    pub vip: IpAddr,
    pub port: u16,
    pub scheduler: String,
    pub persistence: Option<Persistence>,
    pub reals: Vec<RealRow>,
}

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

/// `IP:port`, IPv6 in brackets, as ipvsadm -n prints addresses.
pub fn endpoint(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn service_line(out: &mut String, s: &ServiceRow) {
    let _ = write!(
        out,
        "{:<4} {} {}",
        proto(s.protocol),
        endpoint(s.vip, s.port),
        s.scheduler
    );
    if let Some(p) = s.persistence {
        let _ = write!(out, " persistent {}", p.timeout_s);
        let full = if s.vip.is_ipv4() { 32 } else { 128 };
        if p.prefix_len != full {
            match s.vip {
                IpAddr::V4(_) => {
                    let m = if p.prefix_len == 0 {
                        0
                    } else {
                        u32::MAX << (32 - p.prefix_len)
                    };
                    let _ = write!(out, " mask {}", std::net::Ipv4Addr::from(m));
                }
                IpAddr::V6(_) => {
                    let _ = write!(out, " mask {}", p.prefix_len);
                }
            }
        }
    }
    out.push('\n');
}

/// `ipvsadm -Ln`.
pub fn list(services: &[ServiceRow], table_size: usize) -> String {
    let mut out = format!("IP Virtual Server version 1.2.1 (size={table_size})\n");
    out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    for s in services {
        service_line(&mut out, s);
        for r in &s.reals {
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                endpoint(r.addr, r.port),
                r.forward.ipvs_name(),
                r.weight,
                r.active,
                r.inactive
            );
        }
    }
    out
}

/// `ipvsadm -Ln --stats --exact`.
pub fn list_stats(services: &[ServiceRow], table_size: usize) -> String {
    let mut out = format!("IP Virtual Server version 1.2.1 (size={table_size})\n");
    out.push_str("Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n");
    out.push_str("  -> RemoteAddress:Port\n");
    for s in services {
        let sum = |f: fn(&RealRow) -> u64| s.reals.iter().map(f).sum::<u64>();
        let _ = writeln!(
            out,
            "{:<4} {:<28} {:>8} {:>8} {:>8} {:>8} {:>8}",
            proto(s.protocol),
            endpoint(s.vip, s.port),
            sum(|r| r.conns),
            sum(|r| r.in_packets),
            sum(|r| r.out_packets),
            sum(|r| r.in_bytes),
            sum(|r| r.out_bytes)
        );
        for r in &s.reals {
            let _ = writeln!(
                out,
                "  -> {:<28} {:>8} {:>8} {:>8} {:>8} {:>8}",
                endpoint(r.addr, r.port),
                r.conns,
                r.in_packets,
                r.out_packets,
                r.in_bytes,
                r.out_bytes
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<ServiceRow> {
        vec![ServiceRow {
            protocol: Protocol::Tcp,
            vip: "10.0.0.100".parse().unwrap(),
            port: 80,
            scheduler: "wlc".into(),
            persistence: Some(Persistence {
                timeout_s: 300,
                prefix_len: 24,
            }),
            reals: vec![RealRow {
                addr: "192.168.1.2".parse().unwrap(),
                port: 80,
                forward: Forward::Nat,
                weight: 1,
                active: 0,
                inactive: 0,
                conns: 3,
                in_packets: 10,
                out_packets: 8,
                in_bytes: 1000,
                out_bytes: 800,
            }],
        }]
    }

    #[test]
    fn ipvsadm_ln_format() {
        assert_eq!(
            list(&rows(), 4096),
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port Scheduler Flags\n  \
             -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
             TCP  10.0.0.100:80 wlc persistent 300 mask 255.255.255.0\n  \
             -> 192.168.1.2:80               Masq    1      0          0         \n"
        );
    }

    #[test]
    fn stats_format() {
        let s = list_stats(&rows(), 4096);
        // Columns as ipvsadm's: the endpoint padded to 33, then five counters of width 8.
        let row = |first: &str| format!("{first:<33} {:>8} {:>8} {:>8} {:>8} {:>8}", 3, 10, 8, 1000, 800);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[1],
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes"
        );
        assert_eq!(lines[3], row("TCP  10.0.0.100:80"));
        assert_eq!(lines[4], row("  -> 192.168.1.2:80"));
    }
}
