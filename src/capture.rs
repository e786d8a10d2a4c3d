//! Users' captures: reading pcap and pcapng files of Ethernet frames (with errors that name the
//! file and the frame), a one-line tshark-like summary of a frame, and the first difference
//! between an expected capture and what a port sent, named by field.
//!
//! Frames are decoded for people by etherparse, an implementation independent of rvs's own
//! parsers, so a difference report never repeats a bug of the code it checks.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};
use pcap_file::DataLink;

/// Why a capture cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureError {
    pub file: PathBuf,
    pub why: String,
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.why)
    }
}

impl std::error::Error for CaptureError {}

/// Reads every frame of a pcap or pcapng capture of Ethernet frames. A file that is neither,
/// a frame cut short by the capture's snap length, a file cut short, or another link type is
/// an error naming the frame.
pub fn read_capture(path: &Path) -> Result<Vec<Vec<u8>>, CaptureError> {
    let err = |why: String| CaptureError {
        file: path.to_path_buf(),
        why,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| err(format!("cannot be read: {e}")))?;
    let magic = bytes
        .get(0..4)
        .map(|m| u32::from_le_bytes(m.try_into().expect("4 bytes")));
    match magic {
        Some(0x0a0d_0d0a) => read_pcapng(&bytes).map_err(err),
        Some(0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1) => read_pcap(&bytes).map_err(err),
        _ => Err(err(
            "is not a pcap or pcapng capture (unknown magic number)".into()
        )),
    }
}

fn check_frame(n: usize, data: &[u8], original: u32) -> Result<Vec<u8>, String> {
    if (data.len() as u32) < original {
        return Err(format!(
            "frame {n} was captured cut to {} of its {original} bytes (capture with a snap length of 0: tcpdump -s 0)",
            data.len()
        ));
    }
    if data.len() < 14 {
        return Err(format!(
            "frame {n} is {} bytes, shorter than an Ethernet header",
            data.len()
        ));
    }
    Ok(data.to_vec())
}

fn read_pcap(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut r = pcap_file::pcap::PcapReader::new(bytes).map_err(|e| format!("not a valid pcap file: {e}"))?;
    let link = r.header().datalink;
    if link != DataLink::ETHERNET {
        return Err(format!(
            "link type {link:?}: rvs replays Ethernet frames only (capture on an Ethernet interface)"
        ));
    }
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let n = out.len() + 1;
        let p = p.map_err(|e| format!("frame {n}: {e} (the file is cut short or corrupt)"))?;
        out.push(check_frame(n, &p.data, p.orig_len)?);
    }
    Ok(out)
}

fn read_pcapng(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use pcap_file::pcapng::Block;
    let mut r =
        pcap_file::pcapng::PcapNgReader::new(bytes).map_err(|e| format!("not a valid pcapng file: {e}"))?;
    let mut links = Vec::new();
    let mut out = Vec::new();
    while let Some(b) = r.next_block() {
        let n = out.len() + 1;
        let b = b.map_err(|e| format!("frame {n}: {e} (the file is cut short or corrupt)"))?;
        match b {
            Block::InterfaceDescription(i) => links.push(i.linktype),
            Block::EnhancedPacket(p) => {
                let link = links.get(p.interface_id as usize).copied();
                if link != Some(DataLink::ETHERNET) {
                    return Err(format!(
                        "frame {n}: interface {} has link type {link:?}: rvs replays Ethernet frames only",
                        p.interface_id
                    ));
                }
                out.push(check_frame(n, &p.data, p.original_len)?);
            }
            Block::SimplePacket(p) => {
                if links.first() != Some(&DataLink::ETHERNET) {
                    return Err(format!("frame {n}: not an Ethernet interface"));
                }
                out.push(check_frame(n, &p.data, p.original_len)?);
            }
            _ => {}
        }
    }
    Ok(out)
}

fn mac(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

/// A frame in one line, as tshark would show its layers:
/// `02:00:00:00:00:01 > 02:00:00:00:00:a0 IPv4 198.51.100.7 > 10.0.0.100 ttl 64 TCP 40000 > 80 [SYN] len 0`.
pub fn summary(frame: &[u8]) -> String {
    let mut s = match frame.get(0..12) {
        Some(h) => format!("{} > {}", mac(&h[6..12]), mac(&h[0..6])),
        None => return format!("{} bytes (not Ethernet)", frame.len()),
    };
    let p = match SlicedPacket::from_ethernet(frame) {
        Ok(p) => p,
        Err(e) => return format!("{s} undecodable: {e}"),
    };
    if let Some(LinkSlice::Ethernet2(e)) = &p.link {
        if p.net.is_none() {
            s += &format!(" ethertype 0x{:04x}", e.ether_type().0);
        }
    }
    for v in p.vlan.iter() {
        if let etherparse::VlanSlice::SingleVlan(v) = v {
            s += &format!(" vlan {}", v.vlan_identifier().value());
        }
    }
    match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let h = ip.header();
            s += &format!(
                " IPv4 {} > {} ttl {}",
                h.source_addr(),
                h.destination_addr(),
                h.ttl()
            );
            if h.is_fragmenting_payload() {
                s += " fragment";
            }
        }
        Some(NetSlice::Ipv6(ip)) => {
            let h = ip.header();
            s += &format!(
                " IPv6 {} > {} hlim {}",
                h.source_addr(),
                h.destination_addr(),
                h.hop_limit()
            );
        }
        None => {}
    }
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let flags: Vec<&str> = [
                (t.syn(), "SYN"),
                (t.fin(), "FIN"),
                (t.rst(), "RST"),
                (t.psh(), "PSH"),
                (t.ack(), "ACK"),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
            s += &format!(
                " TCP {} > {} [{}] seq {} len {}",
                t.source_port(),
                t.destination_port(),
                flags.join(","),
                t.sequence_number(),
                t.payload().len()
            );
        }
        Some(TransportSlice::Udp(u)) => {
            s += &format!(
                " UDP {} > {} len {}",
                u.source_port(),
                u.destination_port(),
                u.payload().len()
            );
        }
        Some(TransportSlice::Icmpv4(i)) => s += &format!(" ICMP type {} code {}", i.type_u8(), i.code_u8()),
        Some(TransportSlice::Icmpv6(i)) => s += &format!(" ICMPv6 type {} code {}", i.type_u8(), i.code_u8()),
        None => {
            if frame.get(12..14) == Some(&[0x08, 0x06]) {
                s += " ARP";
            }
        }
    }
    s
}

/// The first way `got` differs from `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// 1-based frame number.
    pub frame: usize,
    pub field: String,
    pub expected: String,
    pub got: String,
    pub expected_summary: String,
    pub got_summary: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "frame {} differs in {}: expected {}, got {}",
            self.frame, self.field, self.expected, self.got
        )?;
        writeln!(f, "  expected: {}", self.expected_summary)?;
        write!(f, "  got:      {}", self.got_summary)
    }
}

/// Compares frame by frame; the first difference, or None when both are the same.
pub fn first_difference(expected: &[Vec<u8>], got: &[Vec<u8>]) -> Option<Difference> {
    for (i, (e, g)) in expected.iter().zip(got).enumerate() {
        if e == g {
            continue;
        }
        let (field, ev, gv) = differing_field(e, g);
        return Some(Difference {
            frame: i + 1,
            field,
            expected: ev,
            got: gv,
            expected_summary: summary(e),
            got_summary: summary(g),
        });
    }
    let n = expected.len().min(got.len());
    if expected.len() == got.len() {
        return None;
    }
    let missing = |f: Option<&Vec<u8>>| f.map_or("(no frame)".to_string(), |f| summary(f));
    Some(Difference {
        frame: n + 1,
        field: "frame count".into(),
        expected: format!("{} frames", expected.len()),
        got: format!("{} frames", got.len()),
        expected_summary: missing(expected.get(n)),
        got_summary: missing(got.get(n)),
    })
}

/// Names the field holding the first differing byte, with both values.
fn differing_field(e: &[u8], g: &[u8]) -> (String, String, String) {
    let at = e
        .iter()
        .zip(g)
        .position(|(a, b)| a != b)
        .unwrap_or(e.len().min(g.len()));
    if at >= e.len().min(g.len()) {
        return (
            "frame length".into(),
            format!("{} bytes", e.len()),
            format!("{} bytes", g.len()),
        );
    }
    for (name, range) in fields(e) {
        if range.contains(&at) {
            let end = range.end.min(e.len()).min(g.len());
            let show = |b: &[u8]| -> String {
                let v = &b[range.start..end];
                match name.as_str() {
                    "eth.dst" | "eth.src" => mac(v),
                    "ip.src" | "ip.dst" if v.len() == 4 => format!("{}.{}.{}.{}", v[0], v[1], v[2], v[3]),
                    "ip.src" | "ip.dst" if v.len() == 16 => {
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(v).expect("16 bytes")).to_string()
                    }
                    _ if v.len() <= 4 => {
                        let n = v.iter().fold(0u64, |n, &x| n << 8 | x as u64);
                        format!("{n} (0x{n:0w$x})", w = v.len() * 2)
                    }
                    _ => format!("{:02x?}", &v[..v.len().min(16)]),
                }
            };
            let (ev, gv) = (show(e), show(g));
            return (name, ev, gv);
        }
    }
    (
        "frame byte".into(),
        format!("{at}: 0x{:02x}", e[at]),
        format!("{at}: 0x{:02x}", g[at]),
    )
}

/// Each header field of `f` (as decoded) and the bytes it spans.
fn fields(f: &[u8]) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out: Vec<(String, std::ops::Range<usize>)> = vec![
        ("eth.dst".into(), 0..6),
        ("eth.src".into(), 6..12),
        ("eth.type".into(), 12..14),
    ];
    let Ok(p) = SlicedPacket::from_ethernet(f) else {
        return out;
    };
    if p.vlan.is_some() {
        out.push(("vlan".into(), 14..18));
    }
    let base = f.as_ptr() as usize;
    let l4 = match &p.net {
        Some(NetSlice::Ipv4(ip)) => {
            let l3 = ip.header().slice().as_ptr() as usize - base;
            for (n, r) in [
                ("ip.version_ihl", 0..1),
                ("ip.tos", 1..2),
                ("ip.total_length", 2..4),
                ("ip.id", 4..6),
                ("ip.flags_fragment", 6..8),
                ("ip.ttl", 8..9),
                ("ip.protocol", 9..10),
                ("ip.checksum", 10..12),
                ("ip.src", 12..16),
                ("ip.dst", 16..20),
            ] {
                out.push((n.into(), l3 + r.start..l3 + r.end));
            }
            ip.payload().payload.as_ptr() as usize - base
        }
        Some(NetSlice::Ipv6(ip)) => {
            let l3 = ip.header().slice().as_ptr() as usize - base;
            for (n, r) in [
                ("ip.version_class_flow", 0..4),
                ("ip.payload_length", 4..6),
                ("ip.next_header", 6..7),
                ("ip.hop_limit", 7..8),
                ("ip.src", 8..24),
                ("ip.dst", 24..40),
            ] {
                out.push((n.into(), l3 + r.start..l3 + r.end));
            }
            ip.payload().payload.as_ptr() as usize - base
        }
        None => return out,
    };
    let named: &[(&str, std::ops::Range<usize>)] = match &p.transport {
        Some(TransportSlice::Tcp(_)) => &[
            ("tcp.src_port", 0..2),
            ("tcp.dst_port", 2..4),
            ("tcp.seq", 4..8),
            ("tcp.ack", 8..12),
            ("tcp.offset_flags", 12..14),
            ("tcp.window", 14..16),
            ("tcp.checksum", 16..18),
            ("tcp.urgent", 18..20),
        ],
        Some(TransportSlice::Udp(_)) => &[
            ("udp.src_port", 0..2),
            ("udp.dst_port", 2..4),
            ("udp.length", 4..6),
            ("udp.checksum", 6..8),
        ],
        Some(TransportSlice::Icmpv4(_)) | Some(TransportSlice::Icmpv6(_)) => {
            &[("icmp.type", 0..1), ("icmp.code", 1..2), ("icmp.checksum", 2..4)]
        }
        None => &[],
    };
    for (n, r) in named {
        out.push(((*n).into(), l4 + r.start..l4 + r.end));
    }
    let header_end = out.last().map_or(l4, |(_, r)| r.end);
    let payload_start = match &p.transport {
        Some(TransportSlice::Tcp(t)) => t.payload().as_ptr() as usize - base,
        _ => header_end,
    };
    if payload_start > header_end {
        out.push(("tcp.options".into(), header_end..payload_start));
    }
    out.push(("payload".into(), payload_start..f.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_traffic::{tcp_v4, udp_v4, TCP_SYN};

    #[test]
    fn a_changed_ttl_and_a_changed_port_are_named() {
        let a = tcp_v4(
            "198.51.100.7".parse().unwrap(),
            "10.0.0.100".parse().unwrap(),
            40000,
            80,
            TCP_SYN,
            b"",
        );
        let mut b = a.clone();
        b[22] = 63;
        let d = first_difference(std::slice::from_ref(&a), &[b]).unwrap();
        assert_eq!((d.frame, d.field.as_str()), (1, "ip.ttl"));
        assert_eq!((d.expected.as_str(), d.got.as_str()), ("64 (0x40)", "63 (0x3f)"));
        assert_eq!(
            d.expected_summary,
            "02:00:00:00:00:01 > 02:00:00:00:00:a0 IPv4 198.51.100.7 > 10.0.0.100 ttl 64 TCP 40000 > 80 [SYN] seq 1000 len 0"
        );
        let mut c = a.clone();
        c[36..38].copy_from_slice(&8080u16.to_be_bytes());
        let d = first_difference(std::slice::from_ref(&a), &[c]).unwrap();
        assert_eq!(d.field, "tcp.dst_port");
        let mut e = a.clone();
        e[33] = 101;
        assert_eq!(
            first_difference(std::slice::from_ref(&a), &[e]).unwrap().expected,
            "10.0.0.100"
        );
        assert_eq!(
            first_difference(std::slice::from_ref(&a), std::slice::from_ref(&a)),
            None
        );
        let d = first_difference(&[a.clone(), a.clone()], std::slice::from_ref(&a)).unwrap();
        assert_eq!(
            (d.frame, d.field.as_str(), d.got_summary.as_str()),
            (2, "frame count", "(no frame)")
        );
    }

    #[test]
    fn udp_payload_and_length() {
        let a = udp_v4(
            "198.51.100.7".parse().unwrap(),
            "10.0.0.100".parse().unwrap(),
            5000,
            53,
            b"query",
        );
        let mut b = a.clone();
        let last = b.len() - 1;
        b[last] ^= 1;
        assert_eq!(
            first_difference(std::slice::from_ref(&a), &[b]).unwrap().field,
            "payload"
        );
        let mut c = a.clone();
        c.push(0);
        assert_eq!(
            first_difference(std::slice::from_ref(&a), &[c]).unwrap().field,
            "frame length"
        );
        assert!(summary(&a).ends_with("UDP 5000 > 53 len 5"), "{}", summary(&a));
    }
}
