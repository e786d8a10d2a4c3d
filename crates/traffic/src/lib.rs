//! Deterministic demo traffic: Ethernet/IPv4 TCP and UDP frames from many clients to a VIP,
//! with valid checksums, written as a pcap. The same seed always gives the same bytes.

pub mod workload;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;

/// splitmix64: tiny, fast, and good enough to vary addresses and sizes reproducibly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

pub const GATEWAY_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
pub const OUTSIDE_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xa0];
pub const INSIDE_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xb0];

/// The MAC rvs's demo and tests give real server `ip` (static neighbor entries).
pub fn server_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x11, o[0], o[1], o[2], o[3]]
}

/// The demo's NAT service: clients behind a router (203.0.113.254) talk to VIP:port, which
/// rvs balances round robin over `servers`. Every flow is a whole TCP conversation: the
/// client's SYN, ACK, request and FIN, and the server's SYN-ACK, response and FIN, interleaved
/// across flows the way a busy link mixes them. Server packets are in the same capture (they
/// arrive on the outside port too) so that replies always follow their requests.
#[derive(Debug, Clone)]
pub struct NatDemo {
    pub vip: Ipv4Addr,
    pub port: u16,
    pub servers: Vec<(Ipv4Addr, u16)>,
    pub flows: u32,
    pub seed: u64,
}

impl Default for NatDemo {
    fn default() -> Self {
        NatDemo {
            vip: Ipv4Addr::new(10, 0, 0, 100),
            port: 80,
            servers: (2..5).map(|i| (Ipv4Addr::new(192, 168, 1, i), 8080)).collect(),
            flows: 3000,
            seed: 1,
        }
    }
}

/// What the demo expects rvs to send: frames out of each port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoExpect {
    pub to_servers: u64,
    pub to_clients: u64,
}

impl NatDemo {
    /// Client number `i`'s address and port.
    pub fn client(&self, i: u32) -> (Ipv4Addr, u16) {
        (
            Ipv4Addr::from(0xc633_6400 + 1 + (i % 250)),
            20000 + (i / 250) as u16,
        )
    }

    /// The server round robin gives flow `i` (flows open in order).
    pub fn server_of(&self, i: u32) -> (Ipv4Addr, u16) {
        self.servers[i as usize % self.servers.len()]
    }

    pub fn frames(&self) -> (Vec<Vec<u8>>, DemoExpect) {
        let mut rng = Rng::new(self.seed);
        let mut rounds: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 8];
        for i in 0..self.flows {
            let (c, cp) = self.client(i);
            let (s, sp) = self.server_of(i);
            let req = payload(&mut rng, i, 20, 400);
            let resp = payload(&mut rng, i, 100, 1400);
            let to_vip = |flags, data: &[u8]| tcp_v4(c, self.vip, cp, self.port, flags, data);
            let from_rs = |flags, data: &[u8]| {
                let mut f = tcp_v4(s, c, sp, cp, flags, data);
                f[0..6].copy_from_slice(&INSIDE_MAC);
                f[6..12].copy_from_slice(&server_mac(s));
                f
            };
            let conversation = [
                to_vip(TCP_SYN, &[]),
                from_rs(TCP_SYN | TCP_ACK, &[]),
                to_vip(TCP_ACK, &[]),
                to_vip(TCP_ACK | TCP_PSH, &req),
                from_rs(TCP_ACK | TCP_PSH, &resp),
                to_vip(TCP_FIN | TCP_ACK, &[]),
                from_rs(TCP_FIN | TCP_ACK, &[]),
                to_vip(TCP_ACK, &[]),
            ];
            for (r, f) in rounds.iter_mut().zip(conversation) {
                r.push(f);
            }
        }
        let frames: Vec<Vec<u8>> = rounds.into_iter().flatten().collect();
        let expect = DemoExpect {
            to_servers: self.flows as u64 * 5,
            to_clients: self.flows as u64 * 3,
        };
        (frames, expect)
    }
}

fn payload(rng: &mut Rng, seq: u32, min: u64, max: u64) -> Vec<u8> {
    let n = (min + rng.below(max - min + 1)) as usize;
    (0..n).map(|j| (seq as usize + j) as u8).collect()
}

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// Ethernet + IPv4 + TCP (no options) with valid checksums.
pub fn tcp_v4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    tcp_v4_seq(src, dst, sport, dport, flags, 1000, data)
}

/// The same with sequence number `seq`.
pub fn tcp_v4_seq(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
    data: &[u8],
) -> Vec<u8> {
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[4..8].copy_from_slice(&seq.to_be_bytes());
    l4[12] = 5 << 4;
    l4[13] = flags;
    l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
    l4.extend_from_slice(data);
    ipv4_frame(src, dst, 6, l4, 16)
}

/// Ethernet + IPv6 + TCP (no options) with valid checksums.
pub fn tcp_v6(
    src: std::net::Ipv6Addr,
    dst: std::net::Ipv6Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[4..8].copy_from_slice(&1000u32.to_be_bytes());
    l4[12] = 5 << 4;
    l4[13] = flags;
    l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
    l4.extend_from_slice(data);
    let mut pseudo = Vec::with_capacity(40 + l4.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 6]);
    pseudo.extend_from_slice(&l4);
    let c = internet_checksum(&pseudo);
    l4[16..18].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::with_capacity(54 + l4.len());
    f.extend_from_slice(&OUTSIDE_MAC);
    f.extend_from_slice(&GATEWAY_MAC);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    f.extend_from_slice(&[6, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&l4);
    f
}

/// Ethernet + IPv4 + UDP with valid checksums.
pub fn udp_v4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 8];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    l4.extend_from_slice(data);
    ipv4_frame(src, dst, 17, l4, 6)
}

fn ipv4_frame(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, mut l4: Vec<u8>, csum_at: usize) -> Vec<u8> {
    let mut pseudo = Vec::with_capacity(12 + l4.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&l4);
    let mut c = internet_checksum(&pseudo);
    if proto == 17 && c == 0 {
        c = 0xffff; // RFC 768: a computed zero is sent as all ones
    }
    l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());

    let mut f = Vec::with_capacity(34 + l4.len());
    f.extend_from_slice(&OUTSIDE_MAC);
    f.extend_from_slice(&GATEWAY_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = internet_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

/// The frame with its IPv4 TTL set (header checksum recomputed).
pub fn with_ttl(mut f: Vec<u8>, ttl: u8) -> Vec<u8> {
    f[22] = ttl;
    f[24..26].fill(0);
    let c = internet_checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// Splits an Ethernet/IPv4 frame (20-byte header) into fragments of at most `chunk` payload
/// bytes (a multiple of 8) with identification `id`, as a host at a small MTU sends it.
pub fn fragment_v4(frame: &[u8], chunk: usize, id: u16) -> Vec<Vec<u8>> {
    assert!(
        chunk.is_multiple_of(8) && chunk > 0,
        "fragments hold multiples of 8 bytes"
    );
    let (head, payload) = frame.split_at(34);
    let n = payload.len().div_ceil(chunk);
    (0..n)
        .map(|i| {
            let part = &payload[i * chunk..((i + 1) * chunk).min(payload.len())];
            let mut f = head.to_vec();
            f[16..18].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
            f[18..20].copy_from_slice(&id.to_be_bytes());
            let more = if i + 1 < n { 0x2000 } else { 0 };
            f[20..22].copy_from_slice(&(more | (i * chunk / 8) as u16).to_be_bytes());
            f[24..26].fill(0);
            let c = internet_checksum(&f[14..34]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(part);
            f
        })
        .collect()
}

/// The datagram that IPv4 fragments (in any order, all there) make, as one frame: what a
/// receiving host reassembles.
pub fn reassemble_v4(frags: &[Vec<u8>]) -> Vec<u8> {
    let mut v: Vec<&Vec<u8>> = frags.iter().collect();
    v.sort_by_key(|f| u16::from_be_bytes([f[20], f[21]]) & 0x1fff);
    let mut out = v[0][..34].to_vec();
    for f in &v {
        let len = u16::from_be_bytes([f[16], f[17]]) as usize;
        out.extend_from_slice(&f[34..14 + len]);
    }
    let total = (out.len() - 14) as u16;
    out[16..18].copy_from_slice(&total.to_be_bytes());
    out[20..22].fill(0);
    out[24..26].fill(0);
    let c = internet_checksum(&out[14..34]);
    out[24..26].copy_from_slice(&c.to_be_bytes());
    out
}

/// The frame with new Ethernet addresses.
pub fn with_macs(mut f: Vec<u8>, src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f
}

/// Whether an Ethernet/IPv4/TCP-or-UDP frame's IPv4 header and L4 checksums verify.
pub fn checksums_valid(f: &[u8]) -> bool {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return false;
    }
    let ihl = (f[14] & 0x0f) as usize * 4;
    let total = u16::from_be_bytes([f[16], f[17]]) as usize;
    if internet_checksum(&f[14..14 + ihl]) != 0 || f.len() < 14 + total {
        return false;
    }
    let l4 = &f[14 + ihl..14 + total];
    let mut pseudo = Vec::with_capacity(12 + l4.len());
    pseudo.extend_from_slice(&f[26..34]);
    pseudo.extend_from_slice(&[0, f[23]]);
    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(l4);
    internet_checksum(&pseudo) == 0
}

/// RFC 1071 one's-complement sum, complemented. Written here on purpose rather than taken from
/// rvs-core: the frames this module builds are the expected outputs of the pcap and bench
/// checks, so their checksums must not come from the code under test.
fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += w as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes Ethernet frames to a pcap file, one microsecond apart.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) -> std::io::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(file, header).map_err(std::io::Error::other)?;
    for (i, f) in frames.iter().enumerate() {
        let ts = std::time::Duration::from_micros(i as u64);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f))
            .map_err(std::io::Error::other)?;
    }
    w.into_writer().flush()
}

/// Reads every frame of a pcap file.
pub fn read_pcap(path: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut r = pcap_file::pcap::PcapReader::new(file).map_err(std::io::Error::other)?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.map_err(std::io::Error::other)?.data.into_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let t = NatDemo {
            flows: 50,
            ..Default::default()
        };
        assert_eq!(t.frames(), t.frames());
        let u = NatDemo { seed: 2, ..t.clone() };
        assert_ne!(t.frames().0, u.frames().0);
    }

    #[test]
    fn conversations_are_whole_and_syns_come_first() {
        let t = NatDemo {
            flows: 10,
            ..Default::default()
        };
        let (f, e) = t.frames();
        assert_eq!(f.len(), 80);
        assert_eq!(
            e,
            DemoExpect {
                to_servers: 50,
                to_clients: 30
            }
        );
        assert!(
            f[..10].iter().all(|x| x[47] == TCP_SYN),
            "the first round is every flow's SYN"
        );
    }

    #[test]
    fn checksums_verify_to_zero() {
        let f = tcp_v4(
            Ipv4Addr::new(10, 1, 0, 1),
            Ipv4Addr::new(10, 0, 0, 100),
            1234,
            80,
            TCP_SYN,
            b"abc",
        );
        assert_eq!(internet_checksum(&f[14..34]), 0, "IPv4 header sums to zero");
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&f[26..34]);
        pseudo.extend_from_slice(&[0, 6, 0, (f.len() - 34) as u8]);
        pseudo.extend_from_slice(&f[34..]);
        assert_eq!(
            internet_checksum(&pseudo),
            0,
            "TCP with pseudo-header sums to zero"
        );
    }

    #[test]
    fn pcap_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.pcap");
        let frames = NatDemo {
            flows: 5,
            ..Default::default()
        }
        .frames()
        .0;
        write_pcap(&p, &frames).unwrap();
        assert_eq!(read_pcap(&p).unwrap(), frames);
    }
}
