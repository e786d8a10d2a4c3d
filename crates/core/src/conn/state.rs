//! Connection states and their timeouts, as data tables (IPVS `ip_vs_proto_tcp.c`).
//!
//! TCP uses IPVS's three tables: INPUT (client to server) and OUTPUT (server replies) for NAT,
//! where the director sees both directions, and INPUT-ONLY for DR and TUN, where it sees only
//! the client's packets. The event is the segment's most significant flag: RST, then SYN, then
//! FIN, then ACK; a segment with none of them changes nothing.

/// IPVS's TCP states, in its order (the column order of the tables below).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    SynAck,
}

pub const TCP_STATES: usize = 11;

impl TcpState {
    const ALL: [TcpState; TCP_STATES] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    pub fn from_u8(v: u8) -> TcpState {
        Self::ALL[(v as usize).min(TCP_STATES - 1)]
    }

    /// The name `ipvsadm -Lc` shows.
    pub fn name(self) -> &'static str {
        [
            "NONE",
            "ESTABLISHED",
            "SYN_SENT",
            "SYN_RECV",
            "FIN_WAIT",
            "TIME_WAIT",
            "CLOSE",
            "CLOSE_WAIT",
            "LAST_ACK",
            "LISTEN",
            "SYNACK",
        ][self as usize]
    }
}

/// Which table a packet steps: the direction as the director sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to real server, NAT.
    Input = 0,
    /// Real server to client, NAT.
    Output = 1,
    /// Client to real server on a DR/TUN connection (replies bypass the director).
    InputOnly = 2,
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// [direction][event: syn, fin, ack, rst][current state] -> next state.
const TCP_TABLE: [[[TcpState; TCP_STATES]; 4]; 3] = [
    // INPUT:  sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR], // syn
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW], // fin
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES], // ack
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR], // rst
    ],
    // OUTPUT
    [
        [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The next TCP state for a segment with `flags` (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10).
pub fn tcp_next(state: TcpState, dir: Direction, flags: u8) -> TcpState {
    let event = if flags & 0x04 != 0 {
        3
    } else if flags & 0x02 != 0 {
        0
    } else if flags & 0x01 != 0 {
        1
    } else if flags & 0x10 != 0 {
        2
    } else {
        return state;
    };
    TCP_TABLE[dir as usize][event][state as usize]
}

/// SCTP is tracked coarsely: INIT opens, ABORT or SHUTDOWN COMPLETE closes, anything else in
/// between is established. (IPVS walks the full association state machine; the timeouts of
/// the states that matter, established and closed, are the same.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SctpState {
    Init = 0,
    Established = 1,
    Closed = 2,
}

impl SctpState {
    pub fn from_u8(v: u8) -> SctpState {
        match v {
            0 => SctpState::Init,
            1 => SctpState::Established,
            _ => SctpState::Closed,
        }
    }

    pub fn name(self) -> &'static str {
        ["INIT", "ESTABLISHED", "CLOSED"][self as usize]
    }

    /// The state's number in IPVS's SCTP machine, for the sync protocol (INIT1, ESTABLISHED,
    /// CLOSED).
    pub fn ipvs(self) -> u16 {
        match self {
            SctpState::Init => 1,
            SctpState::Established => 8,
            SctpState::Closed => 13,
        }
    }

    /// An IPVS SCTP state number folded into the coarse states: the shutdown states and
    /// beyond are closing, the handshake states are INIT.
    pub fn from_ipvs(v: u16) -> SctpState {
        match v {
            8 => SctpState::Established,
            9.. => SctpState::Closed,
            _ => SctpState::Init,
        }
    }
}

/// How many SCTP states IPVS numbers (IP_VS_SCTP_S_LAST).
pub const SCTP_IPVS_STATES: u16 = 14;

pub fn sctp_next(state: SctpState, first_chunk: Option<u8>) -> SctpState {
    use crate::wire::sctp::chunk;
    match first_chunk {
        Some(chunk::ABORT) | Some(chunk::SHUTDOWN_COMPLETE) => SctpState::Closed,
        Some(chunk::INIT) if state != SctpState::Established => SctpState::Init,
        Some(_) if state == SctpState::Closed => SctpState::Closed,
        Some(_) => SctpState::Established,
        None => state,
    }
}

/// Timeouts in seconds, IPVS's defaults; `ipvsadm --set tcp tcpfin udp` changes three of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: [u32; TCP_STATES],
    pub udp: u32,
    pub sctp: [u32; 3],
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            //    NONE  ES   SS   SR  FW   TW   CL  CW  LA  LI   SA
            tcp: [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120],
            udp: 300,
            sctp: [3, 900, 10],
        }
    }
}

impl Timeouts {
    /// `ipvsadm --set tcp tcpfin udp`: ESTABLISHED, FIN_WAIT and UDP; 0 leaves a value as it is.
    pub fn set(&mut self, tcp: u32, tcpfin: u32, udp: u32) {
        if tcp != 0 {
            self.tcp[TcpState::Established as usize] = tcp;
        }
        if tcpfin != 0 {
            self.tcp[TcpState::FinWait as usize] = tcpfin;
        }
        if udp != 0 {
            self.udp = udp;
        }
    }

    /// (tcp, tcpfin, udp) as `ipvsadm -L --timeout` prints them.
    pub fn shown(&self) -> (u32, u32, u32) {
        (
            self.tcp[TcpState::Established as usize],
            self.tcp[TcpState::FinWait as usize],
            self.udp,
        )
    }
}

#[cfg(test)]
mod tests {

    /// What the established fast path in `flow.rs` relies on: an ACK, or a segment without
    /// flags, leaves ESTABLISHED as it is, whichever way it goes.
    #[test]
    fn an_ack_leaves_established_alone_in_every_direction() {
        for dir in [Direction::Input, Direction::Output, Direction::InputOnly] {
            for flags in [0x10, 0x18, 0x00, 0x08] {
                assert_eq!(tcp_next(TcpState::Established, dir, flags), TcpState::Established);
            }
        }
    }

    use super::*;
    use Direction::*;

    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const FIN: u8 = 0x01;
    const RST: u8 = 0x04;

    #[test]
    fn nat_handshake_and_close() {
        let mut s = TcpState::None;
        s = tcp_next(s, Input, SYN);
        assert_eq!(s, TcpState::SynRecv);
        s = tcp_next(s, Output, SYN | ACK);
        assert_eq!(
            s,
            TcpState::SynRecv,
            "SYN-ACK from the server keeps SYN_RECV (syn wins over ack)"
        );
        s = tcp_next(s, Input, ACK);
        assert_eq!(s, TcpState::Established);
        s = tcp_next(s, Input, FIN | ACK);
        assert_eq!(s, TcpState::CloseWait);
        s = tcp_next(s, Output, FIN | ACK);
        assert_eq!(s, TcpState::TimeWait);
        s = tcp_next(s, Input, ACK);
        assert_eq!(s, TcpState::TimeWait);
    }

    #[test]
    fn input_only_for_dr_and_tun() {
        let mut s = tcp_next(TcpState::None, InputOnly, SYN);
        s = tcp_next(s, InputOnly, ACK);
        assert_eq!(s, TcpState::Established);
        s = tcp_next(s, InputOnly, FIN | ACK);
        assert_eq!(
            s,
            TcpState::FinWait,
            "input-only: the client's FIN means FIN_WAIT"
        );
        assert_eq!(tcp_next(s, InputOnly, RST), TcpState::Close);
        assert_eq!(
            tcp_next(TcpState::Established, InputOnly, 0x08),
            TcpState::Established,
            "no flag, no change"
        );
    }

    #[test]
    fn set_changes_three_timeouts_and_zero_keeps() {
        let mut t = Timeouts::default();
        assert_eq!(t.shown(), (900, 120, 300));
        t.set(600, 0, 30);
        assert_eq!(t.shown(), (600, 120, 30));
    }

    #[test]
    fn sctp_coarse_states() {
        use crate::wire::sctp::chunk;
        let s = sctp_next(SctpState::Init, Some(chunk::INIT));
        assert_eq!(s, SctpState::Init);
        let s = sctp_next(s, Some(0)); // DATA
        assert_eq!(s, SctpState::Established);
        assert_eq!(sctp_next(s, Some(chunk::ABORT)), SctpState::Closed);
    }
}
