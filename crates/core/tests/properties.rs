//! Properties: incremental checksum updates equal recomputation, NAT rewrites of arbitrary
//! packets keep every checksum valid, and no input whatsoever panics the entry point.

mod support;

use proptest::prelude::*;
use rvs_core::checksum::{checksum, update128, update16, update32};
use rvs_core::{Frame, VecFrame, Verdict};
use support::*;

/// One's complement has two zeros: 0x0000 and 0xffff are the same sum.
fn same_checksum(a: u16, b: u16) -> bool {
    a == b || (a | b == 0xffff && a & b == 0)
}

fn words(n: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), n..n + 1)
}

proptest! {
    #[test]
    fn update16_equals_recompute(mut data in prop::collection::vec(any::<u8>(), 2..300), at in any::<prop::sample::Index>(), new in any::<u16>()) {
        data.truncate(data.len() & !1);
        let i = at.index(data.len() / 2) * 2;
        let before = checksum(&data);
        let old = u16::from_be_bytes([data[i], data[i + 1]]);
        data[i..i + 2].copy_from_slice(&new.to_be_bytes());
        prop_assert!(same_checksum(update16(before, old, new), checksum(&data)));
    }

    #[test]
    fn update32_equals_recompute(mut data in prop::collection::vec(any::<u8>(), 4..300), at in any::<prop::sample::Index>(), new in any::<u32>()) {
        data.truncate(data.len() & !1);
        let i = at.index(data.len() / 2 - 1) * 2;
        let before = checksum(&data);
        let old = u32::from_be_bytes(data[i..i + 4].try_into().unwrap());
        data[i..i + 4].copy_from_slice(&new.to_be_bytes());
        prop_assert!(same_checksum(update32(before, old, new), checksum(&data)));
    }

    #[test]
    fn update128_equals_recompute(prefix in words(8), old in any::<[u8; 16]>(), new in any::<[u8; 16]>(), suffix in words(20)) {
        let mut data = [prefix.clone(), old.to_vec(), suffix.clone()].concat();
        let before = checksum(&data);
        data[8..24].copy_from_slice(&new);
        prop_assert!(same_checksum(update128(before, &old, &new), checksum(&data)));
    }

    /// Any client, port and payload: the NAT'ed frame (both directions) verifies in etherparse.
    #[test]
    fn nat_rewrites_keep_checksums_valid(c in any::<[u8; 2]>(), cport in 1024u16.., payload in prop::collection::vec(any::<u8>(), 0..1400), udp in any::<bool>()) {
        let t = tables();
        let mut d = director();
        let client = [198, 51, c[0], c[1]];
        let (inbound, reply) = if udp {
            (udp4(IN0, client, [10, 0, 0, 100], 64, cport, 53, &payload), udp4(from_rs(ip4([192, 168, 1, 2])), [192, 168, 1, 2], client, 64, 5353, cport, &payload))
        } else {
            (tcp4(IN0, client, [10, 0, 0, 100], 64, cport, 80, SYN, &payload), tcp4(from_rs(ip4([192, 168, 1, 2])), [192, 168, 1, 2], client, 64, 8080, cport, SYNACK, &payload))
        };
        for (port, frame) in [(0, inbound), (1, reply)] {
            let mut f = VecFrame::new(&frame);
            let v = d.process(&t, port, &mut f, 0);
            prop_assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
            verify(f.data());
        }
    }

    /// Arbitrary bytes never panic; every frame gets a verdict and drops are counted.
    #[test]
    fn arbitrary_bytes_never_panic(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..40), port in 0u16..3) {
        let t = tables();
        let mut d = director();
        let mut vfs: Vec<VecFrame> = frames.iter().map(|f| VecFrame::new(f)).collect();
        let mut out = vec![Verdict::Neighbor; vfs.len()];
        d.process_burst(&t, port, &mut vfs, 0, &mut out);
        prop_assert_eq!(d.stats.rx as usize, frames.len());
        let dropped = out.iter().filter(|v| matches!(v, Verdict::Drop(_))).count() as u64;
        prop_assert_eq!(d.drops.total(), dropped);
    }

    /// Valid frames of every kind with random bytes overwritten: the deep paths see damaged
    /// headers, quotes and lengths, and must still never panic.
    #[test]
    fn damaged_valid_frames_never_panic(which in 0usize..10, edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let t = tables();
        let mut d = director();
        // A connection for each kind so that follow-up frames reach the connection paths.
        for f in seeds().iter().take(4) {
            d.process(&t, 0, &mut VecFrame::new(f), 0);
        }
        let mut frame = seeds()[which].clone();
        for (at, byte) in edits {
            let i = at.index(frame.len());
            frame[i] = byte;
        }
        let keep = cut.index(frame.len() + 1);
        frame.truncate(keep.max(1));
        let mut f = VecFrame::new(&frame);
        let _ = d.process(&t, 0, &mut f, 1);
        let mut f = VecFrame::with_headroom(&frame, 0);
        let _ = d.process(&t, 1, &mut f, 2);
    }
}

fn seeds() -> Vec<Vec<u8>> {
    use etherparse::{icmpv4::DestUnreachableHeader, Icmpv4Type};
    let reply = tcp4(IN0, [10, 0, 0, 100], CLIENT, 62, 80, 40000, SYNACK, b"");
    vec![
        tcp4(IN0, CLIENT, [10, 0, 0, 100], 64, 40000, 80, SYN, b"hello"),
        tcp4(IN0, CLIENT, [10, 0, 0, 102], 64, 40001, 80, SYN, &[1; 1460]),
        udp6(IN0, CLIENT6, "2001:db8::100", 64, 4000, 53, b"q"),
        tcp6(IN0, CLIENT6, "2001:db8::102", 64, 4001, 80, SYN, &[2; 1430]),
        icmp4(
            IN0,
            GW4,
            [10, 0, 0, 100],
            64,
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Host),
            &ip_of(&reply)[..28],
            false,
        ),
        echo4(IN0, CLIENT, [10, 0, 0, 100], 64, false),
        echo6(IN0, CLIENT6, "2001:db8::100", 64, false),
        tcp4(
            L2 { vlan: Some(7), ..IN0 },
            CLIENT,
            [10, 0, 0, 101],
            64,
            40002,
            80,
            ACK,
            b"x",
        ),
        {
            let mut body = v6("2001:db8::100").to_vec();
            body.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]);
            let ns = etherparse::Icmpv6Type::Unknown {
                type_u8: 135,
                code_u8: 0,
                bytes5to8: [0; 4],
            };
            icmp6(IN0, GW6, "2001:db8::100", 255, ns, &body)
        },
        tcp4(IN0, CLIENT, [10, 0, 0, 103], 64, 40003, 443, SYN, b""),
    ]
}
