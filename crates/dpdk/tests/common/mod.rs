//! EAL set-up shared by the DPDK integration tests: one EAL per test process, no hugepages, and
//! a file prefix unique to the process so parallel test runs never collide.

#![allow(dead_code)]

use std::path::Path;
use std::sync::OnceLock;

use dpdk::Eal;

/// EAL arguments for a test process: no hugepages, no PCI scan, no shared config files.
pub fn test_eal_args() -> Vec<String> {
    let prefix = format!("rvs-test-{}", std::process::id());
    [
        "--no-huge",
        "-m",
        "256",
        "--no-shconf",
        "--no-telemetry",
        "--file-prefix",
        &prefix,
        "--no-pci",
        "-l",
        "0",
        "--log-level",
        "lib.eal:error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub fn eal() -> &'static Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    EAL.get_or_init(|| {
        let eal = Eal::init(test_eal_args()).expect("EAL init with --no-huge");
        remove_runtime_dir();
        eal
    })
}

/// With --no-shconf and --no-telemetry nothing uses EAL's runtime directory after init: remove
/// the empty one it made so test runs leave nothing behind.
pub fn remove_runtime_dir() {
    let _ = std::fs::remove_dir(format!("/var/run/dpdk/rvs-test-{}", std::process::id()));
}

/// Writes `frames` as an Ethernet pcap.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::DataLink;
    let file = std::fs::File::create(path).unwrap();
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(file, header).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let ts = std::time::Duration::from_micros(i as u64);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f)).unwrap();
    }
}

pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    use pcap_file::pcap::PcapReader;
    let mut r = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

/// A UDP/IPv4 frame whose payload carries `seq`, so reordering or corruption shows.
pub fn udp_frame(seq: u32, payload_len: usize) -> Vec<u8> {
    let mut f = vec![0u8; 42 + payload_len];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((28 + payload_len) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 100]);
    f[34..36].copy_from_slice(&4000u16.to_be_bytes());
    f[36..38].copy_from_slice(&53u16.to_be_bytes());
    f[38..40].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    for (i, b) in f[42..].iter_mut().enumerate() {
        *b = (seq as usize + i) as u8;
    }
    f[42..46].copy_from_slice(&seq.to_be_bytes());
    f
}
