//! Direct routing (`-g`): the frame goes to the real server as it came, only its MACs change
//! (the server holds the VIP and answers the client itself).

use super::super::flow::{route, to_real};
use super::super::Verdict;
use crate::conn::{Addr, Conn};
use crate::tables::Tables;

/// A client's packet: to the real server by the route bound at the connection's creation.
#[inline]
pub(in crate::path) fn inbound<A: Addr>(t: &Tables, b: &mut [u8], c: &Conn<A>) -> Verdict {
    to_real(t, b, c)
}

/// An ICMP error sent to the VIP about the server's reply: to the server, as it is.
pub(in crate::path) fn icmp_to_real<A: Addr>(t: &Tables, b: &mut [u8], c: &Conn<A>) -> Verdict {
    route(t, b, c.raddr.ip())
}
