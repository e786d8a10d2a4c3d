//! Internet checksums: RFC 1071 sums for building and verifying, RFC 1624 incremental updates
//! for rewriting. The forwarding path only ever uses the incremental form: a NAT rewrite
//! touches a handful of 16-bit words, so it costs a few adds whatever the packet's length.

use std::net::{Ipv4Addr, Ipv6Addr};

/// One's-complement sum of `data` as big-endian 16-bit words (odd tail padded with zero),
/// added to `initial`, not folded. Reads 64-bit words as they lie in memory and adds their
/// 32-bit halves: since 2^16 = 1 modulo 2^16 - 1, the folded sum of wider words is the sum of
/// the 16-bit ones, and the sum does not depend on byte order but for a swap of its two
/// bytes at the end (RFC 1071, 2.(B)).
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = 0u64;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_ne_bytes(c.try_into().expect("8 bytes"));
        acc += (w & 0xffff_ffff) + (w >> 32);
    }
    // The tail's words stay at even offsets from the start, as the sum needs.
    let mut rem = chunks.remainder();
    if let Some((w, r)) = rem.split_first_chunk::<4>() {
        acc += u32::from_ne_bytes(*w) as u64;
        rem = r;
    }
    if let Some((w, r)) = rem.split_first_chunk::<2>() {
        acc += u16::from_ne_bytes(*w) as u64;
        rem = r;
    }
    if let [b] = rem {
        acc += u16::from_ne_bytes([*b, 0]) as u64;
    }
    let native = fold(fold64(acc));
    fold64(initial as u64 + u16::from_be(native) as u64)
}

#[inline]
fn fold64(acc: u64) -> u32 {
    // Two rounds reach 32 bits from any 64-bit sum, without a loop's branch.
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    ((acc & 0xffff_ffff) + (acc >> 32)) as u32
}

/// Whether 32-bit words summed as plain integers into `acc` (a fixed-size header, in either
/// byte order: RFC 1071) make a one's-complement sum of 0xffff, the sum of a header whose
/// checksum is right. That sum is a multiple of 0xffff (2^16 is 1 modulo 0xffff) and not
/// zero; one division by a constant instead of four folds. The caller knows the sum is not
/// zero (an IPv4 header's version byte is not).
#[inline]
pub fn words_sum_ok(acc: u64) -> bool {
    acc.is_multiple_of(0xffff)
}

/// Folds a 32-bit one's-complement accumulator to 16 bits (two rounds reach 16 bits from any
/// 32-bit sum, without a loop's branch).
#[inline]
pub fn fold(acc: u32) -> u16 {
    let acc = (acc & 0xffff) + (acc >> 16);
    ((acc & 0xffff) + (acc >> 16)) as u16
}

/// The checksum field value for `data` (RFC 1071): the complement of the folded sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Pseudo-header sum for TCP/UDP over IPv4 (RFC 793/768).
#[inline]
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4_len: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    u16::from_be_bytes([s[0], s[1]]) as u32
        + u16::from_be_bytes([s[2], s[3]]) as u32
        + u16::from_be_bytes([d[0], d[1]]) as u32
        + u16::from_be_bytes([d[2], d[3]]) as u32
        + proto as u32
        + l4_len as u32
}

/// Pseudo-header sum for upper layers over IPv6 (RFC 8200 section 8.1).
#[inline]
pub fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, l4_len: u32) -> u32 {
    let mut acc = sum(&src.octets(), 0);
    acc = sum(&dst.octets(), acc);
    fold64(acc as u64 + (l4_len >> 16) as u64 + (l4_len & 0xffff) as u64 + next_header as u64)
}

/// RFC 1624 eqn. 3: the new checksum after a 16-bit word changes from `old` to `new`:
/// HC' = ~(~HC + ~m + m').
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let acc = (!check) as u32 + (!old) as u32 + new as u32;
    !fold(acc)
}

/// RFC 1624 eqn. 3 for several changed words at once: one fold however many words changed
/// (a NAT rewrite changes an address and a port, and the TTL).
#[inline]
pub fn update_words(check: u16, old: &[u16], new: &[u16]) -> u16 {
    let mut acc = (!check) as u32;
    for &o in old {
        acc += (!o) as u32;
    }
    for &n in new {
        acc += n as u32;
    }
    !fold(acc)
}

/// The same for a 32-bit field (an IPv4 address), as two words.
#[inline]
pub fn update32(check: u16, old: u32, new: u32) -> u16 {
    let acc = (!check) as u32
        + (!(old >> 16) as u16) as u32
        + (!(old as u16)) as u32
        + (new >> 16)
        + (new & 0xffff);
    !fold(acc)
}

/// The same for a 128-bit field (an IPv6 address), as eight words.
#[inline]
pub fn update128(check: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    let mut acc = (!check) as u32;
    for i in (0..16).step_by(2) {
        acc += (!u16::from_be_bytes([old[i], old[i + 1]])) as u32;
        acc += u16::from_be_bytes([new[i], new[i + 1]]) as u32;
    }
    !fold(acc)
}

/// The change of a 128-bit field (an IPv6 address) as RFC 1624 sums it: ~old + new over its
/// eight 16-bit words, unfolded (at most 16 x 0xffff), the very sum a word-by-word loop makes,
/// here two words at a time in each 64-bit half.
#[inline]
pub fn words_delta128(old: u128, new: u128) -> u32 {
    // The sum of a u64's four 16-bit words: pairs added in two 32-bit lanes, then the lanes.
    let words = |x: u64| {
        let y = (x & 0x0000_ffff_0000_ffff) + ((x >> 16) & 0x0000_ffff_0000_ffff);
        ((y & 0xffff_ffff) + (y >> 32)) as u32
    };
    let (o, n) = (!old, new);
    words(o as u64) + words((o >> 64) as u64) + words(n as u64) + words((n >> 64) as u64)
}

/// UDP over IPv4 may carry a zero checksum ("none"): leave it zero, and never produce a zero
/// from an update (RFC 768: a computed zero is sent as all ones).
#[inline]
pub fn update_udp16(check: u16, old: u16, new: u16) -> u16 {
    if check == 0 {
        return 0;
    }
    match update16(check, old, new) {
        0 => 0xffff,
        c => c,
    }
}

#[inline]
pub fn update_udp32(check: u16, old: u32, new: u32) -> u16 {
    if check == 0 {
        return 0;
    }
    match update32(check, old, new) {
        0 => 0xffff,
        c => c,
    }
}

/// CRC32c (Castagnoli), the SCTP checksum (RFC 4960 appendix B). SCTP has no incremental
/// form, so a port rewrite recomputes it over the packet.
pub fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0x82f6_3b78 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sum as RFC 1071 writes it: big-endian 16-bit words, one at a time.
    fn sum_by_words(data: &[u8], initial: u32) -> u16 {
        let mut acc = initial as u64;
        for w in data.chunks(2) {
            acc += ((w[0] as u64) << 8) | w.get(1).copied().unwrap_or(0) as u64;
        }
        fold(fold64(acc))
    }

    proptest::proptest! {
        #[test]
        fn the_wide_sum_is_the_sum_of_16_bit_words(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            initial in proptest::prelude::any::<u32>(),
            ones in proptest::prelude::any::<bool>(),
        ) {
            // All-ones data too: the sums that fold to 0xffff, where one's-complement has two
            // zeros.
            let data = if ones { vec![0xff; data.len()] } else { data };
            proptest::prop_assert_eq!(fold(sum(&data, initial)), sum_by_words(&data, initial));
        }
    }

    proptest::proptest! {
        /// Any 20 bytes with a nonzero word (a header, its checksum made right or not, in
        /// either byte order): the division's answer is the folded sum's.
        #[test]
        fn a_header_is_right_by_division_as_by_folding(
            mut h in proptest::prelude::any::<[u8; 20]>(),
            fix in proptest::prelude::any::<bool>(),
        ) {
            h[0] |= 0x40;
            if fix {
                h[10..12].copy_from_slice(&[0, 0]);
                let c = checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            let folded = sum_by_words(&h, 0) == 0xffff;
            let be = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]) as u64;
            let ne = |i: usize| u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]) as u64;
            proptest::prop_assert_eq!(words_sum_ok(be(0) + be(4) + be(8) + be(12) + be(16)), folded);
            proptest::prop_assert_eq!(words_sum_ok(ne(0) + ne(4) + ne(8) + ne(12) + ne(16)), folded);
            if fix {
                proptest::prop_assert!(folded);
            }
        }
    }

    proptest::proptest! {
        /// The two-words-at-a-time sum of an address change is the word-by-word one.
        #[test]
        fn an_address_change_sums_as_word_by_word(
            old in proptest::prelude::any::<u128>(),
            new in proptest::prelude::any::<u128>(),
        ) {
            let mut by_word = 0u32;
            for i in 0..8 {
                by_word += (!((old >> (16 * i)) as u16)) as u32 + ((new >> (16 * i)) as u16) as u32;
            }
            proptest::prop_assert_eq!(words_delta128(old, new), by_word);
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0)),
            0xddf2
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56], 0), 0x1234 + 0x5600);
        assert_eq!(
            fold(sum(&[0x12, 0x34, 0x56, 0x78, 0x9a], 0)),
            fold(0x1234 + 0x5678 + 0x9a00)
        );
    }

    #[test]
    fn wide_words_sum_like_16_bit_words() {
        // Against a plain 16-bit reference on every length up to 64 bytes.
        let data: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..=data.len() {
            let mut r = 0u32;
            for c in data[..n].chunks(2) {
                r += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
            }
            assert_eq!(fold(sum(&data[..n], 7)), fold(r + 7), "length {n}");
        }
    }

    #[test]
    fn incremental_equals_recompute_for_a_word() {
        let mut data = [0x45u8, 0x00, 0x00, 0x54, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01];
        let c = checksum(&data);
        data[4] = 0xab;
        data[5] = 0xcd;
        assert_eq!(update16(c, 0x1234, 0xabcd), checksum(&data));
    }

    #[test]
    fn several_words_at_once_equal_one_at_a_time() {
        let c = 0x1c46;
        let one = update16(
            update16(update16(c, 0x0a00, 0xc0a8), 0x0064, 0x0102),
            0x0050,
            0x1f90,
        );
        assert_eq!(
            update_words(c, &[0x0a00, 0x0064, 0x0050], &[0xc0a8, 0x0102, 0x1f90]),
            one
        );
    }

    #[test]
    fn crc32c_check_value() {
        // The standard check value for "123456789".
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        assert_eq!(update_udp16(0, 1, 2), 0);
        assert_eq!(update_udp32(0, 1, 2), 0);
    }
}
