//! A `net_tap` port is a kernel interface: what the port transmits the kernel receives, and
//! what the kernel sends on the interface the port receives. This is the host path's
//! foundation (rvsd's twin interfaces). Needs root and /dev/net/tun; the interface lives in a
//! network namespace of this test thread's own, so it never touches the machine's.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::eal;
use dpdk::{Burst, Mempool, Port, PortConfig, DEFAULT_DATA_ROOM};

fn ip(ns_pid: u32, args: &str) -> std::process::Output {
    Command::new("nsenter")
        .args(["-t", &ns_pid.to_string(), "-n", "--"])
        .args(args.split_whitespace())
        .output()
        .expect("nsenter")
}

/// The thread id, for nsenter to find this thread's network namespace.
fn tid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

#[test]
fn a_tap_port_is_a_kernel_interface_both_ways() {
    if !std::path::Path::new("/dev/net/tun").exists() {
        panic!("/dev/net/tun is missing: the host path needs the tun driver");
    }
    // A namespace of this thread's own: the tap is created where its creator lives.
    // SAFETY: unshare(CLONE_NEWNET) only changes this thread's network namespace.
    assert_eq!(
        unsafe { libc::unshare(libc::CLONE_NEWNET) },
        0,
        "unshare needs root"
    );
    let me = tid();
    let pool = Mempool::new(eal(), "tap-pool", 2047, 32, DEFAULT_DATA_ROOM).unwrap();
    let mac = [0x02, 0x52, 0x56, 0, 0, 0x01];
    let port = Port::open(
        eal(),
        "net_tap_t0,iface=rvstap0,mac=02:52:56:00:00:01",
        &PortConfig::default(),
        &pool,
    )
    .expect("net_tap probes");
    port.start().unwrap();
    assert_eq!(port.mac().unwrap(), mac);
    let out = ip(me, "ip -o link show rvstap0");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("02:52:56:00:00:01"), "{text}");
    assert!(text.contains("UP"), "the tap is up once the port starts: {text}");
    assert!(ip(me, "ip addr add 10.99.0.1/24 dev rvstap0").status.success());
    assert!(
        ip(me, "ip neigh add 10.99.0.2 lladdr 02:52:56:00:00:02 dev rvstap0")
            .status
            .success()
    );

    // Kernel -> port: a ping from the kernel arrives as an ICMP echo request frame.
    let (mut rxq, mut txq) = port.take_queues().unwrap();
    let mut ping = Command::new("nsenter")
        .args([
            "-t",
            &me.to_string(),
            "-n",
            "--",
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "10.99.0.2",
        ])
        .spawn()
        .unwrap();
    let mut burst = Burst::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut echo = None;
    while echo.is_none() && Instant::now() < deadline {
        rxq[0].rx_burst(&mut burst);
        for m in burst.drain() {
            let d = m.data();
            if d.len() >= 42 && d[12..14] == [8, 0] && d[23] == 1 && d[34] == 8 {
                echo = Some(d.to_vec());
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = ping.wait();
    let echo = echo.expect("the kernel's echo request comes out of the tap port");
    assert_eq!(&echo[0..6], &[0x02, 0x52, 0x56, 0, 0, 0x02]);
    assert_eq!(&echo[6..12], &mac);

    // Port -> kernel: the echo turned into a reply and transmitted is counted by the kernel.
    let mut reply = echo.clone();
    reply[0..6].copy_from_slice(&mac);
    reply[6..12].copy_from_slice(&[0x02, 0x52, 0x56, 0, 0, 0x02]);
    let (src, dst): ([u8; 4], [u8; 4]) = (echo[26..30].try_into().unwrap(), echo[30..34].try_into().unwrap());
    reply[26..30].copy_from_slice(&dst);
    reply[30..34].copy_from_slice(&src);
    reply[34] = 0; // echo reply: the ICMP checksum moves by 0x0800
    let c = u16::from_be_bytes([reply[36], reply[37]]);
    let (s, carry) = c.overflowing_add(0x0800);
    let c = s + carry as u16;
    reply[36..38].copy_from_slice(&c.to_be_bytes());
    reply.truncate(echo.len());
    let before = rx_packets();
    let mut m = pool.alloc().unwrap();
    m.append(reply.len()).unwrap().copy_from_slice(&reply);
    let mut b = Burst::new();
    b.push(m).unwrap();
    assert_eq!(txq[0].tx_burst(&mut b), 1);
    let deadline = Instant::now() + Duration::from_secs(2);
    while rx_packets() == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        rx_packets() > before,
        "the kernel received the frame the port sent"
    );
    drop((rxq, txq));
    port.stop().unwrap();
    drop(port);
    let out = ip(me, "ip link show rvstap0");
    assert!(!out.status.success(), "the interface goes with the port");
}

/// The interface's received packets as the kernel counts them (this thread's namespace: /sys
/// shows the namespace it was mounted in, /proc/thread-self/net the thread's own).
fn rx_packets() -> u64 {
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
    dev.lines()
        .find_map(|l| l.trim_start().strip_prefix("rvstap0:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("rvstap0 in /proc/net/dev")
}
