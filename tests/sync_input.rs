//! The backup sync daemon under bad input and a flood (root): rvsd with a twin in one
//! namespace, a sender in another on the same link sending IPVS sync messages to
//! 224.0.0.81:8848. Each malformed or foreign message is a counted refusal that installs
//! nothing; a flood of valid ones is installed or counted as lost, never stalls the workers.

mod common;

use std::time::Duration;

use common::netns::{
    config_head, control, daemon_counter, director_and_neighbor, sh, wait_for_socket, wait_until, Lab, Rvsd,
};

/// argv: kind, count. Builds messages by the kernel's layout (struct ip_vs_sync_mesg and
/// ip_vs_sync_v4) and sends them from the sender's address.
const SENDER: &str = r#"
import socket, struct, sys
kind, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("10.92.0.2"))
def rec(cport, vport=80, daddr="10.92.0.21", state=1):
    return struct.pack("!BBHIHHHHII", 0, 6, 36, 0x83, state, cport, vport, 80, 0, 900) + \
        socket.inet_aton("10.92.0.7") + socket.inet_aton("10.92.0.100") + socket.inet_aton(daddr)
def msg(recs, syncid=7, version=1, size=None, count=None):
    body = b"".join(recs)
    n = len(recs) if count is None else count
    return struct.pack("!BBHBbH", 0, syncid, 8 + len(body) if size is None else size, n, version, 0) + body
for i in range(count):
    if kind == "good":
        m = msg([rec(1000 + i)])
    elif kind == "syncid":
        m = msg([rec(2000 + i)], syncid=9)
    elif kind == "version":
        m = msg([rec(3000 + i)], version=0)
    elif kind == "size":
        m = msg([rec(4000 + i)], size=200)
    elif kind == "count":
        m = msg([rec(5000 + i)], count=2)
    elif kind == "service":
        m = msg([rec(6000 + i, vport=81)])
    elif kind == "flood":
        m = msg([rec((10000 + i * 40 + k) % 65536) for k in range(40)])
    s.sendto(m, ("224.0.0.81", 8848))
"#;

#[test]
fn malformed_and_foreign_sync_messages_are_counted_and_change_nothing_and_a_flood_does_not_stall() {
    let mut lab = Lab::new("sy");
    let p = lab.p.clone();
    let (d, s, port) = director_and_neighbor(&mut lab, "10.92.0");
    let socket = lab.socket();
    let config = config_head(&socket)
        + &format!(
            r#"
{port}[metrics]
listen = "127.0.0.1:9109"
[[sync_daemon]]
state = "backup"
mcast_interface = "{p}td"
syncid = 7
[[service]]
address = "10.92.0.100:80"
scheduler = "rr"
real = [{{ address = "10.92.0.21:80", method = "dr" }}]
"#
        );
    let rvsd = Rvsd::start_in(&lab, Some(&d), &config);
    wait_for_socket(&socket);
    // The twin's kernel must have joined the group before anything is sent.
    std::thread::sleep(Duration::from_millis(500));
    let send = |kind: &str, n: usize| {
        sh(&format!(
            "ip netns exec {s} python3 -c '{}' {kind} {n}",
            SENDER.replace('\'', "'\\''")
        ))
    };
    send("good", 3);
    wait_until(Duration::from_secs(5), || {
        (daemon_counter(&socket, "installed") == 3).then_some(())
    })
    .unwrap_or_else(|| panic!("3 installed: {}", daemon_counter(&socket, "installed")));
    for (kind, reason) in [
        ("syncid", "refused_syncid"),
        ("version", "refused_version"),
        ("size", "refused_size_mismatch"),
        ("count", "refused_truncated"),
        ("service", "refused_unknown_service"),
    ] {
        send(kind, 5);
        wait_until(Duration::from_secs(5), || {
            (daemon_counter(&socket, reason) == 5).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "{kind}: 5 counted as {reason}: {}",
                daemon_counter(&socket, reason)
            )
        });
        assert_eq!(
            daemon_counter(&socket, "installed"),
            3,
            "{kind} installed nothing"
        );
    }
    let v = control(&socket, r#"{"id":1,"op":"connections"}"#);
    assert_eq!(v["result"]["conns"].as_array().unwrap().len(), 3, "{v}");
    // The same counters for Prometheus.
    let m = std::process::Command::new("ip")
        .args(["netns", "exec", &d, "curl", "-s", "http://127.0.0.1:9109/metrics"])
        .output()
        .unwrap();
    let m = String::from_utf8_lossy(&m.stdout);
    for line in [
        "rvs_ha_events_total{event=\"refused_syncid\"} 5",
        "rvs_ha_events_total{event=\"installed\"} 3",
        &format!("rvs_sync_daemon_running{{role=\"backup\",interface=\"{p}td\"}} 1"),
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in /metrics:\n{m}");
    }

    // A flood: 4,000 messages of 40 records. Every record is installed, updated or counted
    // lost; the control plane answers all along (the workers never wait on the daemon).
    let flood = std::thread::spawn({
        let s = s.clone();
        move || {
            sh(&format!(
                "ip netns exec {s} python3 -c '{}' flood 4000",
                SENDER.replace('\'', "'\\''")
            ))
        }
    });
    let mut slowest = Duration::ZERO;
    while !flood.is_finished() {
        let t = std::time::Instant::now();
        control(&socket, r#"{"id":1,"op":"status"}"#);
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    flood.join().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let received = daemon_counter(&socket, "conns_received");
    let settled = daemon_counter(&socket, "installed")
        + daemon_counter(&socket, "updated")
        + daemon_counter(&socket, "queue_full")
        + daemon_counter(&socket, "refused_unknown_service");
    eprintln!(
        "flood: {received} records received, {} installed, {} lost to a full queue, {} messages lost by the kernel socket; slowest status {slowest:?}",
        daemon_counter(&socket, "installed"),
        daemon_counter(&socket, "queue_full"),
        4000 - (daemon_counter(&socket, "messages_received") - 8)
    );
    assert_eq!(settled, received, "every received record is accounted for");
    assert!(received > 3 + 5, "the flood arrived");
    assert!(
        slowest < Duration::from_secs(2),
        "the control plane kept answering ({slowest:?})"
    );
    let report = rvsd.stop();
    assert!(report.contains("rx"), "{report}");
}
