//! What FullNAT tells a real server about the client: HAProxy's PROXY protocol header (version
//! 1, a text line; version 2, binary) and the TOA TCP option (kind 254, DPVS's and the Linux
//! `toa` module's format). Both are written from the connection's addresses, so a header
//! written again (for a retransmitted first segment) is the same bytes, of the same length.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

/// Version 1's longest line (`PROXY TCP6` with two full IPv6 addresses), and the room a header
/// needs.
pub const MAX_LEN: usize = 107;

/// Version 2's signature.
pub const V2_SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// TOA's option kind, and its length for an IPv4 and an IPv6 client.
pub const TOA_KIND: u8 = 254;
pub const TOA_LEN_V4: usize = 8;
pub const TOA_LEN_V6: usize = 20;

/// Writes the PROXY header of a TCP connection from `client` to `dst` (the address the
/// client connected to) into `out`; returns its length. Both must be of one family.
pub fn write_header(v2: bool, client: SocketAddr, dst: SocketAddr, out: &mut [u8; MAX_LEN]) -> usize {
    if v2 {
        out[..12].copy_from_slice(&V2_SIGNATURE);
        out[12] = 0x21; // version 2, PROXY command
        let mut at = 16;
        match (client.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                out[13] = 0x11; // TCP over IPv4
                out[at..at + 4].copy_from_slice(&s.octets());
                out[at + 4..at + 8].copy_from_slice(&d.octets());
                at += 8;
            }
            (s, d) => {
                out[13] = 0x21; // TCP over IPv6
                out[at..at + 16].copy_from_slice(&v6(s));
                out[at + 16..at + 32].copy_from_slice(&v6(d));
                at += 32;
            }
        }
        out[at..at + 2].copy_from_slice(&client.port().to_be_bytes());
        out[at + 2..at + 4].copy_from_slice(&dst.port().to_be_bytes());
        at += 4;
        out[14..16].copy_from_slice(&((at - 16) as u16).to_be_bytes());
        return at;
    }
    let fam = if client.is_ipv4() { "TCP4" } else { "TCP6" };
    let mut w = &mut out[..];
    let before = w.len();
    // At most 107 bytes (the spec's bound): the write cannot fail.
    let _ = write!(
        w,
        "PROXY {fam} {} {} {} {}\r\n",
        client.ip(),
        dst.ip(),
        client.port(),
        dst.port()
    );
    before - w.len()
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// The length of the PROXY header of such a connection.
pub fn header_len(v2: bool, client: SocketAddr, dst: SocketAddr) -> usize {
    write_header(v2, client, dst, &mut [0; MAX_LEN])
}

/// Writes the TOA option for `client` into `out` (8 bytes for IPv4, 20 for IPv6); returns its
/// length.
pub fn write_toa(client: SocketAddr, out: &mut [u8]) -> usize {
    out[0] = TOA_KIND;
    out[2..4].copy_from_slice(&client.port().to_be_bytes());
    match client.ip() {
        IpAddr::V4(a) => {
            out[1] = TOA_LEN_V4 as u8;
            out[4..8].copy_from_slice(&a.octets());
            TOA_LEN_V4
        }
        IpAddr::V6(a) => {
            out[1] = TOA_LEN_V6 as u8;
            out[4..20].copy_from_slice(&a.octets());
            TOA_LEN_V6
        }
    }
}

/// A PROXY header read back (for tests and tools): the client's and the destination's
/// addresses, and the header's length.
pub fn parse_header(b: &[u8]) -> Option<(SocketAddr, SocketAddr, usize)> {
    if b.starts_with(&V2_SIGNATURE) {
        if b.len() < 16 || b[12] != 0x21 {
            return None;
        }
        let len = u16::from_be_bytes([b[14], b[15]]) as usize;
        let body = b.get(16..16 + len)?;
        let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
        return match b[13] {
            0x11 if len >= 12 => {
                let s = std::net::Ipv4Addr::new(body[0], body[1], body[2], body[3]);
                let d = std::net::Ipv4Addr::new(body[4], body[5], body[6], body[7]);
                Some(((s, port(8)).into(), (d, port(10)).into(), 16 + len))
            }
            0x21 if len >= 36 => {
                let s = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&body[..16]).ok()?);
                let d = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&body[16..32]).ok()?);
                Some(((s, port(32)).into(), (d, port(34)).into(), 16 + len))
            }
            _ => None,
        };
    }
    let end = b.windows(2).take(MAX_LEN).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&b[..end]).ok()?;
    let mut w = line.split(' ');
    if w.next()? != "PROXY" || !matches!(w.next()?, "TCP4" | "TCP6") {
        return None;
    }
    let (s, d): (IpAddr, IpAddr) = (w.next()?.parse().ok()?, w.next()?.parse().ok()?);
    let (sp, dp): (u16, u16) = (w.next()?.parse().ok()?, w.next()?.parse().ok()?);
    Some(((s, sp).into(), (d, dp).into(), end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_is_the_spec_line() {
        let c: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let d: SocketAddr = "10.0.0.100:80".parse().unwrap();
        let mut out = [0; MAX_LEN];
        let n = write_header(false, c, d, &mut out);
        assert_eq!(&out[..n], b"PROXY TCP4 198.51.100.7 10.0.0.100 40000 80\r\n");
        assert_eq!(parse_header(&out[..n]), Some((c, d, n)));
        assert_eq!(header_len(false, c, d), n);
    }

    #[test]
    fn v1_longest_fits() {
        let c: SocketAddr = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535".parse().unwrap();
        assert_eq!(header_len(false, c, c), 104);
    }

    #[test]
    fn v2_layout() {
        let c: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let d: SocketAddr = "10.0.0.100:80".parse().unwrap();
        let mut out = [0; MAX_LEN];
        let n = write_header(true, c, d, &mut out);
        assert_eq!(n, 28);
        assert_eq!(&out[..12], &V2_SIGNATURE);
        assert_eq!(&out[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&out[16..20], &[198, 51, 100, 7]);
        assert_eq!(&out[24..28], &[0x9c, 0x40, 0, 80]);
        assert_eq!(parse_header(&out[..n]), Some((c, d, 28)));
        let c6: SocketAddr = "[2001:db8::7]:40000".parse().unwrap();
        let d6: SocketAddr = "[2001:db8::100]:443".parse().unwrap();
        let n = write_header(true, c6, d6, &mut out);
        assert_eq!((n, out[13]), (52, 0x21));
        assert_eq!(parse_header(&out[..n]), Some((c6, d6, 52)));
    }

    #[test]
    fn toa_layout() {
        let mut out = [0; 20];
        assert_eq!(write_toa("198.51.100.7:40000".parse().unwrap(), &mut out), 8);
        assert_eq!(&out[..8], &[254, 8, 0x9c, 0x40, 198, 51, 100, 7]);
        assert_eq!(write_toa("[2001:db8::7]:1".parse().unwrap(), &mut out), 20);
        assert_eq!(&out[..4], &[254, 20, 0, 1]);
    }

    #[test]
    fn garbage_is_not_a_header() {
        assert_eq!(parse_header(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(parse_header(b"PROXY TCP4 x y 1 2\r\n"), None);
        assert_eq!(parse_header(&V2_SIGNATURE), None);
    }
}
