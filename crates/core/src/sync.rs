//! IPVS's connection-synchronisation protocol, version 1 (Linux `ip_vs_sync.c`): the wire
//! format, a message builder that batches records up to the sync daemon's `maxlen`, and a
//! decoder that checks every length before it trusts it.
//!
//! A message is an 8-byte header (reserved 0, syncid, size, count, version 1, spare 0) and
//! `count` records. A record is a 24-byte fixed part (type with bit 0 = IPv6, protocol,
//! version (top 4 bits) and size, flags, state, client/virtual/destination ports, fwmark,
//! timeout in seconds) and the client, virtual and destination addresses (4 or 16 bytes each),
//! then optional TLV parameters; records start on 4-byte boundaries. All fields big-endian.
//!
//! The decoder takes a message whole or not at all: a header that lies about its size, a
//! record that runs past the end, an unknown record version or a malformed parameter refuses
//! the whole message (the kernel drops the rest of the buffer at the first such error; taking
//! nothing is the stricter reading, and a half-applied message is never possible). A record
//! the kernel would skip alone (an unknown protocol, a state out of range, an unknown mandatory
//! parameter) is skipped and counted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::proto;

/// 224.0.0.81, IPVS's sync group.
pub const DEFAULT_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const DEFAULT_PORT: u16 = 8848;
pub const DEFAULT_TTL: u8 = 1;
/// The kernel's default `maxlen` on a 1,500-byte link: the MTU less IP and UDP headers.
pub const DEFAULT_MAXLEN: usize = 1472;
pub const HEADER_LEN: usize = 8;
pub const V4_LEN: usize = 36;
pub const V6_LEN: usize = 72;
/// The smallest `maxlen` that holds one IPv6 record.
pub const MIN_MAXLEN: usize = HEADER_LEN + V6_LEN;
pub const PROTO_VERSION: u8 = 1;

/// IPVS connection flags (`include/uapi/linux/ip_vs.h`).
pub mod flags {
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    /// FullNAT (DPVS's forwarding mode 5; IPVS has none).
    pub const FULLNAT: u32 = 0x0005;
    pub const SYNC: u32 = 0x0020;
    pub const HASHED: u32 = 0x0040;
    pub const NOOUTPUT: u32 = 0x0080;
    pub const INACTIVE: u32 = 0x0100;
    pub const SEQ_MASK: u32 = 0x0600;
    /// IP_VS_CONN_F_IN_SEQ: the record's sequence option shifts the client's numbers.
    pub const IN_SEQ: u32 = 0x0400;
    pub const NO_CPORT: u32 = 0x0800;
    pub const TEMPLATE: u32 = 0x1000;
    pub const ONE_PACKET: u32 = 0x2000;
    /// What a backup takes from a record (IP_VS_CONN_F_BACKUP_MASK).
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
}

/// Option types of the TLV parameters; bit 0x40 (IPVS_OPT_F_PARAM) marks an optional one.
const OPT_SEQ_DATA: u8 = 1;
const OPT_PE_DATA: u8 = 2;
const OPT_PE_NAME: u8 = 3;
const OPT_F_PARAM: u8 = 1 << 6;
const SEQ_OPTIONS_LEN: usize = 24;
/// rvs's own option (optional, so a Linux backup skips it): a FullNAT connection's local
/// address and port, and how the client's address is delivered.
const OPT_FULLNAT: u8 = 8;

/// One connection (or persistence template) as the protocol carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConn {
    pub protocol: u8,
    /// IPVS flags: forwarding method, INACTIVE, NOOUTPUT, TEMPLATE...
    pub flags: u32,
    /// The protocol's state number in IPVS's order (TCP: NONE 0, ESTABLISHED 1, ...).
    pub state: u16,
    pub client: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub fwmark: u32,
    /// Seconds the receiver keeps it without news.
    pub timeout_s: u32,
    /// What a FullNAT connection needs besides IPVS's fields.
    pub fullnat: Option<SyncFullNat>,
}

/// A FullNAT connection's own state, in two options: the sequence shift in IPVS's own
/// sequence option (`in_seq`: from `init_seq` on, the client's numbers move by `delta`, as
/// the FTP helper's do) and the local address, port and delivery flags in an optional rvs
/// option a Linux backup skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncFullNat {
    pub laddr: IpAddr,
    pub lport: u16,
    /// The client's first sequence number after its SYN (where the PROXY header went).
    pub isn: u32,
    /// The PROXY header's length (0: none).
    pub proxy_len: u8,
    pub proxy_v2: bool,
    pub toa: bool,
}

impl SyncFullNat {
    fn options_len(&self, v6: bool) -> usize {
        let seq = if self.proxy_len != 0 {
            2 + SEQ_OPTIONS_LEN
        } else {
            0
        };
        seq + 2 + if v6 { 16 } else { 4 } + 3
    }
}

impl SyncConn {
    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }

    fn is_v6(&self) -> bool {
        self.client.is_ipv6()
    }

    /// Bytes the record takes on the wire, with its options, padded to 4 as the kernel pads.
    pub fn wire_len(&self) -> usize {
        (self.len() + 3) & !3
    }

    /// The record's own length (what its size field says).
    fn len(&self) -> usize {
        let fixed = if self.is_v6() { V6_LEN } else { V4_LEN };
        fixed + self.fullnat.map_or(0, |f| f.options_len(self.is_v6()))
    }

    /// Appends the record to `out`. All three addresses must be of the client's family
    /// (records are built from one connection, so they are).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let len = self.len() as u16;
        let start = out.len();
        let mut fl = self.flags & !flags::HASHED & !flags::SEQ_MASK;
        if self.fullnat.is_some_and(|f| f.proxy_len != 0) {
            fl |= flags::IN_SEQ;
        }
        out.push(if self.is_v6() { 1 } else { 0 });
        out.push(self.protocol);
        out.extend_from_slice(&(len & 0x0fff).to_be_bytes());
        out.extend_from_slice(&fl.to_be_bytes());
        out.extend_from_slice(&self.state.to_be_bytes());
        out.extend_from_slice(&self.cport.to_be_bytes());
        out.extend_from_slice(&self.vport.to_be_bytes());
        out.extend_from_slice(&self.dport.to_be_bytes());
        out.extend_from_slice(&self.fwmark.to_be_bytes());
        out.extend_from_slice(&self.timeout_s.to_be_bytes());
        for a in [self.client, self.vaddr, self.daddr] {
            match (a, self.is_v6()) {
                (IpAddr::V4(a), false) => out.extend_from_slice(&a.octets()),
                (IpAddr::V6(a), true) => out.extend_from_slice(&a.octets()),
                (IpAddr::V4(a), true) => out.extend_from_slice(&a.to_ipv6_mapped().octets()),
                (IpAddr::V6(a), false) => {
                    out.extend_from_slice(&a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED).octets())
                }
            }
        }
        if let Some(f) = &self.fullnat {
            if f.proxy_len != 0 {
                // struct ip_vs_sync_conn_options: in_seq {init_seq, delta, previous_delta},
                // out_seq (unused: the server's numbers are not shifted).
                out.extend_from_slice(&[OPT_SEQ_DATA, SEQ_OPTIONS_LEN as u8]);
                out.extend_from_slice(&f.isn.to_be_bytes());
                out.extend_from_slice(&(f.proxy_len as u32).to_be_bytes());
                out.extend_from_slice(&[0; 16]);
            }
            let v6 = self.is_v6();
            let alen = if v6 { 16 } else { 4 };
            out.extend_from_slice(&[OPT_F_PARAM | OPT_FULLNAT, (alen + 3) as u8]);
            match f.laddr {
                IpAddr::V4(a) if !v6 => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) if v6 => out.extend_from_slice(&a.octets()),
                _ => out.extend_from_slice(&[0; 16][..alen]),
            }
            out.extend_from_slice(&f.lport.to_be_bytes());
            out.push(f.proxy_v2 as u8 | (f.toa as u8) << 1);
        }
        // Padding to 4, as the kernel leaves between records.
        while !(out.len() - start).is_multiple_of(4) {
            out.push(0);
        }
    }
}

/// Batches records into messages of at most `maxlen` bytes (and at most 255 records, the
/// count being one byte).
#[derive(Debug)]
pub struct MessageBuilder {
    syncid: u8,
    maxlen: usize,
    buf: Vec<u8>,
    count: u8,
}

impl MessageBuilder {
    pub fn new(syncid: u8, maxlen: usize) -> MessageBuilder {
        let maxlen = maxlen.clamp(MIN_MAXLEN, u16::MAX as usize);
        let mut b = MessageBuilder {
            syncid,
            maxlen,
            buf: Vec::with_capacity(maxlen),
            count: 0,
        };
        b.reset();
        b
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.buf
            .extend_from_slice(&[0, self.syncid, 0, 0, 0, PROTO_VERSION, 0, 0]);
        self.count = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds a record; when it does not fit, the message so far is returned (complete) and the
    /// record starts the next one.
    pub fn push(&mut self, c: &SyncConn) -> Option<Vec<u8>> {
        let full = self.count == u8::MAX || self.buf.len() + c.wire_len() > self.maxlen;
        let done = if full { self.finish() } else { None };
        c.encode(&mut self.buf);
        self.count += 1;
        done
    }

    /// The message being built, if it holds any record; the builder starts afresh.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        let size = self.buf.len() as u16;
        self.buf[2..4].copy_from_slice(&size.to_be_bytes());
        self.buf[4] = self.count;
        let msg = std::mem::replace(&mut self.buf, Vec::with_capacity(self.maxlen));
        self.reset();
        Some(msg)
    }
}

/// Why a message was refused whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncError {
    /// Shorter than a header.
    TooShort,
    /// The header's size is not the datagram's.
    SizeMismatch,
    /// Another cluster's syncid (the receiver filters on a non-zero syncid).
    Syncid,
    /// Version 0 (the pre-2.6.39 format) or an unknown version: rvs speaks version 1 only.
    Version,
    /// A record runs past the message, or its size is too small for its type.
    Truncated,
    /// A record of an unknown record version or type.
    RecordVersion,
    /// A malformed option (zero length, past the record, given twice, wrong size).
    BadOption,
}

impl SyncError {
    pub const ALL: [SyncError; 7] = [
        SyncError::TooShort,
        SyncError::SizeMismatch,
        SyncError::Syncid,
        SyncError::Version,
        SyncError::Truncated,
        SyncError::RecordVersion,
        SyncError::BadOption,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SyncError::TooShort => "too_short",
            SyncError::SizeMismatch => "size_mismatch",
            SyncError::Syncid => "syncid",
            SyncError::Version => "version",
            SyncError::Truncated => "truncated",
            SyncError::RecordVersion => "record_version",
            SyncError::BadOption => "bad_option",
        }
    }
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A decoded message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub syncid: u8,
    pub conns: Vec<SyncConn>,
    /// Records skipped alone (unknown protocol, state out of range, unknown mandatory option).
    pub skipped: usize,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// How many states a protocol has in IPVS (a record's state must be below it).
fn states_of(protocol: u8) -> Option<u16> {
    match protocol {
        proto::TCP => Some(crate::conn::state::TCP_STATES as u16),
        proto::UDP => Some(1),
        proto::SCTP => Some(crate::conn::state::SCTP_IPVS_STATES),
        _ => None,
    }
}

/// Decodes a datagram. `syncid` is the receiver's filter: 0 takes every syncid.
pub fn decode(b: &[u8], syncid: u8) -> Result<Message, SyncError> {
    if b.len() < 4 {
        return Err(SyncError::TooShort);
    }
    if be16(b, 2) as usize != b.len() {
        return Err(SyncError::SizeMismatch);
    }
    if syncid != 0 && b[1] != syncid {
        return Err(SyncError::Syncid);
    }
    if b.len() < HEADER_LEN || b[0] != 0 || b[5] != PROTO_VERSION || be16(b, 6) != 0 {
        return Err(SyncError::Version);
    }
    let count = b[4] as usize;
    let mut msg = Message {
        syncid: b[1],
        conns: Vec::with_capacity(count),
        skipped: 0,
    };
    let mut at = HEADER_LEN;
    for _ in 0..count {
        if at + V4_LEN > b.len() {
            return Err(SyncError::Truncated);
        }
        let ver_size = be16(b, at + 2);
        let size = (ver_size & 0x0fff) as usize;
        if ver_size >> 12 != 0 {
            return Err(SyncError::RecordVersion);
        }
        if size < V4_LEN || at + size > b.len() {
            return Err(SyncError::Truncated);
        }
        match record(&b[at..at + size])? {
            Some(c) => msg.conns.push(c),
            None => msg.skipped += 1,
        }
        at += (size + 3) & !3;
    }
    Ok(msg)
}

/// One record (exactly its `size` bytes): Ok(None) when it is skipped alone.
fn record(r: &[u8]) -> Result<Option<SyncConn>, SyncError> {
    let v6 = match r[0] {
        0 => false,
        1 => true,
        _ => return Err(SyncError::RecordVersion),
    };
    let fixed = if v6 { V6_LEN } else { V4_LEN };
    if r.len() < fixed {
        return Err(SyncError::Truncated);
    }
    // Options: type, length, data; each known one at most once.
    let mut seen = 0u16;
    let mut skip = false;
    let mut at = fixed;
    let mut seq: Option<(u32, u32)> = None;
    let mut fnat: Option<(IpAddr, u16, u8)> = None;
    while at < r.len() {
        if at + 2 > r.len() {
            return Err(SyncError::BadOption);
        }
        let (ty, len) = (r[at], r[at + 1] as usize);
        at += 2;
        if len == 0 || at + len > r.len() {
            return Err(SyncError::BadOption);
        }
        match ty & !OPT_F_PARAM {
            t @ (OPT_SEQ_DATA | OPT_PE_DATA | OPT_PE_NAME) => {
                let bit = 1u16 << t;
                if seen & bit != 0 || (t == OPT_SEQ_DATA && len != SEQ_OPTIONS_LEN) {
                    return Err(SyncError::BadOption);
                }
                seen |= bit;
                // Persistence-engine data (SIP Call-ID) needs an engine rvs does not have.
                if t != OPT_SEQ_DATA {
                    skip = true;
                } else {
                    seq = Some((be32(r, at), be32(r, at + 4)));
                }
            }
            OPT_FULLNAT => {
                let bit = 1u16 << OPT_FULLNAT;
                let alen = if v6 { 16 } else { 4 };
                if seen & bit != 0 || len != alen + 3 {
                    return Err(SyncError::BadOption);
                }
                seen |= bit;
                let laddr = if v6 {
                    let o: [u8; 16] = r[at..at + 16].try_into().expect("16 bytes");
                    IpAddr::V6(Ipv6Addr::from(o))
                } else {
                    let o: [u8; 4] = r[at..at + 4].try_into().expect("4 bytes");
                    IpAddr::V4(Ipv4Addr::from(o))
                };
                fnat = Some((laddr, be16(r, at + alen), r[at + alen + 2]));
            }
            _ if ty & OPT_F_PARAM == 0 => skip = true,
            _ => {}
        }
        at += len;
    }
    let flags = be32(r, 4);
    let state = be16(r, 8);
    let protocol = r[1];
    let template = flags & flags::TEMPLATE != 0;
    if !template {
        match states_of(protocol) {
            Some(n) if state < n => {}
            _ => skip = true,
        }
    }
    if skip {
        return Ok(None);
    }
    let addr = |i: usize| -> IpAddr {
        if v6 {
            let o: [u8; 16] = r[24 + 16 * i..40 + 16 * i].try_into().expect("16 bytes");
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            let o: [u8; 4] = r[24 + 4 * i..28 + 4 * i].try_into().expect("4 bytes");
            IpAddr::V4(Ipv4Addr::from(o))
        }
    };
    let fullnat = fnat.map(|(laddr, lport, f)| {
        // A delta too large for a PROXY header is no shift rvs made: none.
        let (isn, delta) = seq.unwrap_or((0, 0));
        let proxy_len = u8::try_from(delta)
            .ok()
            .filter(|&d| d as usize <= crate::wire::proxy::MAX_LEN);
        SyncFullNat {
            laddr,
            lport,
            isn,
            proxy_len: proxy_len.unwrap_or(0),
            proxy_v2: f & 1 != 0,
            toa: f & 2 != 0,
        }
    });
    // The sequence flags say what rvs makes of them: a FullNAT shift, or nothing (the FTP
    // helper's adjustments, which rvs has no helper for).
    let seq_flags = if fullnat.is_some_and(|f| f.proxy_len != 0) {
        flags::IN_SEQ
    } else {
        0
    };
    Ok(Some(SyncConn {
        protocol,
        flags: (flags & flags::BACKUP_MASK & !flags::SEQ_MASK) | seq_flags | flags::SYNC,
        state,
        cport: be16(r, 10),
        vport: be16(r, 12),
        dport: be16(r, 14),
        fwmark: be32(r, 16),
        timeout_s: be32(r, 20),
        client: addr(0),
        vaddr: addr(1),
        daddr: addr(2),
        fullnat,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(client: &str, cport: u16) -> SyncConn {
        SyncConn {
            protocol: proto::TCP,
            flags: flags::DROUTE | flags::NOOUTPUT,
            state: 1,
            client: client.parse().unwrap(),
            cport,
            vaddr: if client.contains(':') {
                "2001:db8::100".parse().unwrap()
            } else {
                "10.0.0.100".parse().unwrap()
            },
            vport: 80,
            daddr: if client.contains(':') {
                "2001:db8:1::2".parse().unwrap()
            } else {
                "192.168.1.2".parse().unwrap()
            },
            dport: 80,
            fwmark: 0,
            timeout_s: 900,
            fullnat: None,
        }
    }

    #[test]
    fn a_v4_record_has_the_kernels_layout() {
        let mut out = Vec::new();
        conn("203.0.113.7", 40000).encode(&mut out);
        assert_eq!(out.len(), V4_LEN);
        assert_eq!(&out[..4], &[0, 6, 0, 36]);
        assert_eq!(be32(&out, 4), 0x83);
        assert_eq!(be16(&out, 8), 1);
        assert_eq!((be16(&out, 10), be16(&out, 12), be16(&out, 14)), (40000, 80, 80));
        assert_eq!(be32(&out, 20), 900);
        assert_eq!(&out[24..28], &[203, 0, 113, 7]);
        assert_eq!(&out[28..32], &[10, 0, 0, 100]);
        assert_eq!(&out[32..36], &[192, 168, 1, 2]);
    }

    #[test]
    fn messages_round_trip_and_respect_maxlen() {
        let mut b = MessageBuilder::new(7, 200);
        let mut msgs = Vec::new();
        let sent: Vec<SyncConn> = (0..10)
            .map(|i| {
                if i % 3 == 0 {
                    conn("2001:db8:9::1", i)
                } else {
                    conn("203.0.113.7", i)
                }
            })
            .collect();
        for c in &sent {
            msgs.extend(b.push(c));
        }
        msgs.extend(b.finish());
        assert!(b.finish().is_none(), "an empty builder gives no message");
        let mut got = Vec::new();
        for m in &msgs {
            assert!(m.len() <= 200);
            let d = decode(m, 7).unwrap();
            assert_eq!(d.syncid, 7);
            got.extend(d.conns);
        }
        let want: Vec<SyncConn> = sent
            .iter()
            .map(|c| SyncConn {
                flags: c.flags | flags::SYNC,
                ..*c
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn no_message_holds_more_than_255_records() {
        let mut b = MessageBuilder::new(0, 65535);
        let mut msgs = Vec::new();
        for i in 0..300 {
            msgs.extend(b.push(&conn("203.0.113.7", i)));
        }
        msgs.extend(b.finish());
        assert_eq!(msgs.len(), 2);
        assert_eq!(decode(&msgs[0], 0).unwrap().conns.len(), 255);
    }

    fn one() -> Vec<u8> {
        let mut b = MessageBuilder::new(3, DEFAULT_MAXLEN);
        b.push(&conn("203.0.113.7", 1));
        b.push(&conn("203.0.113.8", 2));
        b.finish().unwrap()
    }

    #[test]
    fn lies_and_foreign_messages_are_refused_whole() {
        let m = one();
        assert_eq!(decode(&m[..3], 0), Err(SyncError::TooShort));
        assert_eq!(decode(&m[..m.len() - 1], 0), Err(SyncError::SizeMismatch));
        assert_eq!(decode(&m, 4), Err(SyncError::Syncid));
        assert_eq!(decode(&m, 3).unwrap().conns.len(), 2);
        assert_eq!(
            decode(&m, 0).unwrap().conns.len(),
            2,
            "syncid 0 takes every syncid"
        );
        let mut v0 = m.clone();
        v0[0] = 2; // a version 0 header: count first
        assert_eq!(decode(&v0, 0), Err(SyncError::Version));
        let mut more = m.clone();
        more[4] = 3; // claims a third record
        assert_eq!(decode(&more, 0), Err(SyncError::Truncated));
        let mut long = m.clone();
        long[HEADER_LEN + V4_LEN + 3] = 200; // second record's size past the end
        assert_eq!(decode(&long, 0), Err(SyncError::Truncated));
        let mut ver = m.clone();
        ver[HEADER_LEN + 2] = 0x10; // record version 1
        assert_eq!(decode(&ver, 0), Err(SyncError::RecordVersion));
        let mut short = m.clone();
        short[HEADER_LEN + 3] = 20; // a v4 record of 20 bytes
        assert_eq!(decode(&short, 0), Err(SyncError::Truncated));
        let mut ty = m;
        ty[HEADER_LEN] = 4;
        assert_eq!(decode(&ty, 0), Err(SyncError::RecordVersion));
    }

    /// A message with one record carrying `opts` after its addresses.
    fn with_options(opts: &[u8]) -> Vec<u8> {
        let mut r = Vec::new();
        conn("203.0.113.7", 1).encode(&mut r);
        r.extend_from_slice(opts);
        let size = r.len() as u16;
        r[2..4].copy_from_slice(&size.to_be_bytes());
        while r.len() % 4 != 0 {
            r.push(0);
        }
        let mut m = vec![0, 0, 0, 0, 1, 1, 0, 0];
        m.extend_from_slice(&r);
        let total = m.len() as u16;
        m[2..4].copy_from_slice(&total.to_be_bytes());
        m
    }

    #[test]
    fn options_are_checked_and_unknown_mandatory_ones_skip_the_record() {
        let mut seq = vec![OPT_SEQ_DATA, 24];
        seq.extend_from_slice(&[0; 24]);
        assert_eq!(decode(&with_options(&seq), 0).unwrap().conns.len(), 1);
        let mut twice = seq.clone();
        twice.extend_from_slice(&seq);
        assert_eq!(decode(&with_options(&twice), 0), Err(SyncError::BadOption));
        assert_eq!(
            decode(&with_options(&[OPT_SEQ_DATA, 4, 0, 0, 0, 0]), 0),
            Err(SyncError::BadOption)
        );
        assert_eq!(decode(&with_options(&[9, 0]), 0), Err(SyncError::BadOption));
        assert_eq!(decode(&with_options(&[9, 8, 1]), 0), Err(SyncError::BadOption));
        let d = decode(&with_options(&[9, 2, 1, 1]), 0).unwrap();
        assert_eq!((d.conns.len(), d.skipped), (0, 1), "an unknown mandatory option");
        let d = decode(&with_options(&[9 | OPT_F_PARAM, 2, 1, 1]), 0).unwrap();
        assert_eq!(
            (d.conns.len(), d.skipped),
            (1, 0),
            "an unknown optional parameter"
        );
        let d = decode(&with_options(&[OPT_PE_NAME, 3, b's', b'i', b'p']), 0).unwrap();
        assert_eq!(d.skipped, 1, "persistence-engine data rvs cannot use");
    }

    #[test]
    fn unknown_protocols_and_states_skip_one_record() {
        let mut c = conn("203.0.113.7", 1);
        c.state = 11;
        let mut b = MessageBuilder::new(0, DEFAULT_MAXLEN);
        b.push(&c);
        b.push(&SyncConn {
            protocol: 47,
            ..conn("203.0.113.7", 2)
        });
        b.push(&conn("203.0.113.7", 3));
        let mut tpl = conn("203.0.113.0", 0);
        tpl.flags |= flags::TEMPLATE;
        tpl.state = 1;
        b.push(&tpl);
        let d = decode(&b.finish().unwrap(), 0).unwrap();
        assert_eq!(d.skipped, 2);
        assert_eq!(d.conns.len(), 2);
        assert!(d.conns[1].is_template());
    }

    #[test]
    fn any_bytes_decode_or_refuse_without_panicking() {
        let m = one();
        for cut in 0..m.len() {
            let _ = decode(&m[..cut], 0);
        }
        let mut x = 0x1234_5678u32;
        for _ in 0..20_000 {
            let mut b = m.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x as usize % b.len();
                b[i] = (x >> 8) as u8;
            }
            let _ = decode(&b, 0);
        }
    }
}
