//! Why a frame was dropped. Every reason is a counter: a drop is never silent.

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $name:ident => $label:literal,)*) => {
        /// Why the data path dropped a frame. `Copy`, one byte, and each one indexes a counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[$doc])* $name,)*
        }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];
            pub const COUNT: usize = Self::ALL.len();

            /// Stable snake_case name, as shown in stats.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$name => $label,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an Ethernet header.
    EthTruncated => "eth_truncated",
    /// An 802.1Q tag cut short.
    VlanTruncated => "vlan_truncated",
    /// QinQ or stacked tags: one tag is supported.
    VlanStacked => "vlan_stacked",
    /// Neither IPv4, IPv6 nor ARP.
    UnknownEthertype => "unknown_ethertype",
    ArpTruncated => "arp_truncated",
    /// ARP for something other than IPv4 over Ethernet.
    ArpUnsupported => "arp_unsupported",
    /// An ARP request for an address the director does not own.
    ArpNotForUs => "arp_not_for_us",
    /// An IPv6 neighbor solicitation for an address the director does not own, or not valid
    /// (hop limit other than 255, truncated).
    NdNotForUs => "nd_not_for_us",
    Ipv4Truncated => "ipv4_truncated",
    Ipv4BadVersion => "ipv4_bad_version",
    /// Header length below 20 bytes.
    Ipv4BadIhl => "ipv4_bad_ihl",
    /// Total length shorter than the header.
    Ipv4BadTotalLen => "ipv4_bad_total_len",
    /// Total length beyond the end of the frame.
    Ipv4TotalLenBeyondFrame => "ipv4_total_len_beyond_frame",
    Ipv4BadChecksum => "ipv4_bad_checksum",
    Ipv6Truncated => "ipv6_truncated",
    Ipv6BadVersion => "ipv6_bad_version",
    Ipv6PayloadLenBeyondFrame => "ipv6_payload_len_beyond_frame",
    Ipv6ExtTruncated => "ipv6_ext_truncated",
    Ipv6TooManyExtHeaders => "ipv6_too_many_ext_headers",
    /// A fragment of a protocol rvs does not follow across fragments (ICMP, SCTP, others);
    /// TCP and UDP fragments are forwarded as their first fragment was.
    Fragment => "fragment",
    /// A fragment that came before its first fragment, with the worker's hold full.
    FragHoldFull => "frag_hold_full",
    /// A held fragment whose first fragment did not come in time.
    FragTimeout => "frag_timeout",
    /// A first fragment with the worker's fragment table full: the rest of its datagram
    /// could not follow it.
    FragTableFull => "frag_table_full",
    TcpTruncated => "tcp_truncated",
    TcpBadDataOffset => "tcp_bad_data_offset",
    UdpTruncated => "udp_truncated",
    UdpBadLength => "udp_bad_length",
    SctpTruncated => "sctp_truncated",
    IcmpTruncated => "icmp_truncated",
    /// An ICMP error whose quoted packet is too short to identify a flow.
    IcmpQuoteTruncated => "icmp_quote_truncated",
    /// An ICMP error about a flow the director does not track.
    IcmpNoConn => "icmp_no_conn",
    /// ICMP the director neither answers nor translates.
    IcmpUnhandled => "icmp_unhandled",
    /// An L4 protocol no service can use.
    UnsupportedProtocol => "unsupported_protocol",
    /// Not addressed to a VIP or a director address, and not a reply of a tracked flow.
    NotForUs => "not_for_us",
    /// A new flow from a source no client can have: a VIP, a director address, 0.0.0.0/8,
    /// 127/8, multicast, 240/4 and broadcast (::, ::1, multicast, v4-mapped for IPv6). Spoofed,
    /// or looped back: never forwarded.
    MartianSource => "martian_source",
    /// The shared persistence-template table had no room for a new client's template.
    TemplateTableFull => "template_table_full",
    /// A packet that would make a connection has a bad TCP/UDP checksum (CRC32c for SCTP):
    /// junk does not fill the connection table.
    BadL4Checksum => "bad_l4_checksum",
    /// Addressed to a VIP on a protocol/port without a virtual service.
    NoService => "no_service",
    /// A TCP segment without SYN (SCTP without INIT) that matches no connection: IPVS
    /// schedules only on the opening packet.
    NoConnNotInitial => "no_conn_not_initial",
    /// The service has no real server that may take a new connection.
    NoRealServer => "no_real_server",
    /// The connection table is full: new flows are refused, live ones never evicted.
    ConnTableFull => "conn_table_full",
    /// TTL or hop limit would reach zero.
    TtlExceeded => "ttl_exceeded",
    /// No port or gateway reaches the next hop.
    NoRoute => "no_route",
    /// The frame has no headroom for the tunnel header.
    NoHeadroom => "no_headroom",
    /// The frame has no room at its end for what FullNAT inserts (the PROXY header, TOA).
    NoTailroom => "no_tailroom",
    /// A FullNAT service has no local address of the client's family.
    NoLocalAddress => "no_local_address",
    /// Every local port this worker owns on the service's local addresses is in use: add
    /// local addresses. A live tuple is never reused.
    LocalPortsExhausted => "local_ports_exhausted",
    /// A tunnelled packet over the MTU that may be fragmented: rvs does not fragment.
    TunNeedsFragmentation => "tun_needs_fragmentation",
}

/// Per-worker drop counters, one per reason, written only by their worker.
#[derive(Debug, Clone)]
pub struct DropCounters {
    counts: [u64; DropReason::COUNT],
}

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters {
            counts: [0; DropReason::COUNT],
        }
    }
}

impl DropCounters {
    #[inline]
    pub fn count(&mut self, r: DropReason) {
        self.counts[r as usize] += 1;
    }

    pub fn get(&self, r: DropReason) -> u64 {
        self.counts[r as usize]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The reasons with a non-zero count, in declaration order.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexes_dense() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn counters_count() {
        let mut c = DropCounters::default();
        c.count(DropReason::Fragment);
        c.count(DropReason::Fragment);
        c.count(DropReason::NoService);
        assert_eq!(c.get(DropReason::Fragment), 2);
        assert_eq!(c.total(), 3);
        assert_eq!(c.nonzero().count(), 2);
    }
}
