//! IPv6 neighbor discovery (RFC 4861): solicitations and advertisements, read and written in
//! one place for the data path (which answers solicitations for its addresses) and the data
//! plane (which asks for next hops, announces its VIPs and learns from advertisements).

use std::net::Ipv6Addr;

use super::ethernet::Mac;

/// ICMPv6 types.
pub const SOLICITATION: u8 = 135;
pub const ADVERTISEMENT: u8 = 136;

/// Option types.
const SOURCE_LLADDR: u8 = 1;
const TARGET_LLADDR: u8 = 2;

/// Advertisement flags (in the first byte after the checksum).
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// A solicitation or an advertisement: type, code, checksum, flags/reserved, target, then
/// options. 24 bytes before the options.
const FIXED_LEN: usize = 24;

/// The length of the messages rvs writes: the fixed part and one link-layer address option.
pub const MESSAGE_LEN: usize = FIXED_LEN + 8;

/// A received message, checked to hold its fixed part.
#[derive(Debug, Clone, Copy)]
pub struct NdMessage<'a> {
    msg: &'a [u8],
}

impl<'a> NdMessage<'a> {
    /// The ICMPv6 message `msg` (from its type byte), if it holds a whole fixed part.
    pub fn new_checked(msg: &'a [u8]) -> Option<NdMessage<'a>> {
        (msg.len() >= FIXED_LEN).then_some(NdMessage { msg })
    }

    pub fn msg_type(&self) -> u8 {
        self.msg[0]
    }

    pub fn target(&self) -> Ipv6Addr {
        let t: [u8; 16] = self.msg[8..24].try_into().expect("length checked");
        Ipv6Addr::from(t)
    }

    /// The target link-layer address option of an advertisement (what a neighbor table
    /// learns); None when absent or when an option's length is malformed.
    pub fn target_lladdr(&self) -> Option<Mac> {
        let mut opt = &self.msg[FIXED_LEN..];
        while opt.len() >= 8 {
            let len = opt[1] as usize * 8;
            if len == 0 || len > opt.len() {
                return None;
            }
            if opt[0] == TARGET_LLADDR {
                return opt[2..8].try_into().ok();
            }
            opt = &opt[len..];
        }
        None
    }
}

/// Writes an advertisement of `target` at `mac` into `msg` (MESSAGE_LEN bytes), checksum
/// zero: solicited (an answer) or not (an announcement); the override flag is always set.
pub fn write_advertisement(msg: &mut [u8], target: Ipv6Addr, mac: Mac, solicited: bool) {
    write(msg, ADVERTISEMENT, target, TARGET_LLADDR, mac);
    msg[4] = FLAG_OVERRIDE | if solicited { FLAG_SOLICITED } else { 0 };
}

/// Writes a solicitation for `target` from `mac` into `msg` (MESSAGE_LEN bytes), checksum
/// zero.
pub fn write_solicitation(msg: &mut [u8], target: Ipv6Addr, mac: Mac) {
    write(msg, SOLICITATION, target, SOURCE_LLADDR, mac);
}

fn write(msg: &mut [u8], msg_type: u8, target: Ipv6Addr, option: u8, mac: Mac) {
    let msg = &mut msg[..MESSAGE_LEN];
    msg.fill(0);
    msg[0] = msg_type;
    msg[8..24].copy_from_slice(&target.octets());
    msg[24] = option;
    msg[25] = 1; // length in units of 8 bytes
    msg[26..32].copy_from_slice(&mac);
}

/// Fills in the ICMPv6 checksum of `msg`, sent from `src` to `dst`.
pub fn fill_checksum(msg: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
    msg[2..4].fill(0);
    let pseudo = crate::checksum::pseudo_v6(src, dst, super::proto::ICMPV6, msg.len() as u32);
    let c = !crate::checksum::fold(crate::checksum::sum(msg, pseudo));
    msg[2..4].copy_from_slice(&c.to_be_bytes());
}

/// The solicited-node multicast group of `target` and its Ethernet address (RFC 4291 2.7.1).
pub fn solicited_node(target: Ipv6Addr) -> (Ipv6Addr, Mac) {
    let t = target.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | t[13] as u16,
        u16::from_be_bytes([t[14], t[15]]),
    );
    (group, [0x33, 0x33, 0xff, t[13], t[14], t[15]])
}

/// All nodes (ff02::1) and its Ethernet address.
pub fn all_nodes() -> (Ipv6Addr, Mac) {
    (
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        [0x33, 0x33, 0, 0, 0, 1],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_and_checks() {
        let target: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let mac = [2, 0, 0, 0, 0, 0xa0];
        let mut msg = [0u8; MESSAGE_LEN];
        write_advertisement(&mut msg, target, mac, true);
        let src = target;
        let dst: Ipv6Addr = "2001:db8::7".parse().unwrap();
        fill_checksum(&mut msg, src, dst);
        let pseudo = crate::checksum::pseudo_v6(src, dst, 58, MESSAGE_LEN as u32);
        assert_eq!(crate::checksum::fold(crate::checksum::sum(&msg, pseudo)), 0xffff);
        let m = NdMessage::new_checked(&msg).unwrap();
        assert_eq!(
            (m.msg_type(), m.target(), m.target_lladdr()),
            (ADVERTISEMENT, target, Some(mac))
        );
        assert_eq!(msg[4], 0x60, "solicited and override");
        write_solicitation(&mut msg, target, mac);
        let m = NdMessage::new_checked(&msg).unwrap();
        assert_eq!(
            (m.msg_type(), m.target_lladdr()),
            (SOLICITATION, None),
            "a source option"
        );
        assert!(NdMessage::new_checked(&msg[..23]).is_none());
        let mut bad = msg;
        bad[25] = 0;
        assert_eq!(NdMessage::new_checked(&bad).unwrap().target_lladdr(), None);
        assert_eq!(solicited_node(target).1, [0x33, 0x33, 0xff, 0, 1, 0]);
    }
}
