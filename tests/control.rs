//! The control socket and rvsadm against a running rvsd (on pcap vdevs).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvs_traffic::{self as traffic, tcp_v4, TCP_ACK, TCP_PSH, TCP_SYN};

struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    sock: PathBuf,
    /// rvsd's stderr (every change is logged there), drained as it comes so that a full pipe
    /// never blocks the daemon.
    stderr: Arc<Mutex<String>>,
}

const CONFIG: &str = r#"
[dataplane]
workers = [@CPU@]
[eal]
memory = "no-huge"
memory_mb = 256
[control]
socket = "@DIR@/ctl/rvs.sock"
@CONTROL@
[[port]]
name = "outside"
device = "net_pcap_co@TAG@,rx_pcap=@DIR@/in.pcap,tx_pcap=@DIR@/out-o.pcap"
addresses = ["203.0.113.1/24", "2001:db8:ff::1/64"]
gateway = "203.0.113.254"
neighbors = [{ ip = "203.0.113.254", mac = "02:00:00:00:00:01" }]
[[port]]
name = "inside"
device = "net_pcap_ci@TAG@,rx_pcap=@DIR@/empty.pcap,tx_pcap=@DIR@/out-i.pcap"
addresses = ["192.168.1.1/24", "2001:db8:1::1/64"]
neighbors = [
    { ip = "192.168.1.2", mac = "02:11:c0:a8:01:02" },
    { ip = "192.168.1.3", mac = "02:11:c0:a8:01:03" },
    { ip = "192.168.1.4", mac = "02:11:c0:a8:01:04" },
]
"#;

impl Daemon {
    /// rvsd with no services, reading `input` on the outside port.
    fn start(tag: &str, cpu: u32, input: &[Vec<u8>], extra: &str) -> Daemon {
        Daemon::start_with(tag, cpu, input, extra, "")
    }

    /// With `control` lines in the config's [control] table.
    fn start_with(tag: &str, cpu: u32, input: &[Vec<u8>], extra: &str, control: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_string();
        traffic::write_pcap(&dir.path().join("in.pcap"), input).unwrap();
        traffic::write_pcap(&dir.path().join("empty.pcap"), &[]).unwrap();
        let cfg = CONFIG
            .replace("@DIR@", &d)
            .replace("@CPU@", &cpu.to_string())
            .replace("@TAG@", &format!("{tag}{}", std::process::id()))
            .replace("@CONTROL@", control)
            + extra;
        std::fs::write(dir.path().join("rvs.toml"), cfg).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rvsd"))
            .arg("--config")
            .arg(dir.path().join("rvs.toml"))
            .args(["--duration", "120"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let (pipe, sink) = (child.stderr.take().unwrap(), stderr.clone());
            std::thread::spawn(move || {
                for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push_str(&(l + "\n"));
                }
            });
        }
        let sock = dir.path().join("ctl/rvs.sock");
        let start = Instant::now();
        while UnixStream::connect(&sock).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "rvsd did not open its control socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon {
            child: Some(child),
            dir,
            sock,
            stderr,
        }
    }

    fn adm(&self, args: &str) -> Output {
        Command::new(common::rvsadm_bin())
            .arg("--socket")
            .arg(&self.sock)
            .args(args.split_whitespace())
            .output()
            .unwrap()
    }

    /// `rvsadm -R` with `text` on its standard input; its output.
    fn restore(&self, text: &str) -> Output {
        let p = Command::new(common::rvsadm_bin())
            .arg("--socket")
            .arg(&self.sock)
            .arg("-R")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        p.stdin.as_ref().unwrap().write_all(text.as_bytes()).unwrap();
        p.wait_with_output().unwrap()
    }

    /// rvsadm that must succeed; its stdout.
    fn ok(&self, args: &str) -> String {
        let o = self.adm(args);
        assert!(
            o.status.success(),
            "rvsadm {args}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// SIGTERM; rvsd's report. The directory (pcaps) lives on until `self` is dropped.
    fn stop(&mut self) -> String {
        let child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "rvsd: {text}\n{}",
            self.stderr.lock().unwrap()
        );
        text
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A raw NDJSON session.
struct Session {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

impl Session {
    fn open(sock: &Path) -> Session {
        let w = UnixStream::connect(sock).unwrap();
        w.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let r = BufReader::new(w.try_clone().unwrap());
        Session { w, r }
    }

    fn send(&mut self, line: &str) -> serde_json::Value {
        self.w.write_all(line.as_bytes()).unwrap();
        self.w.write_all(b"\n").unwrap();
        self.read()
    }

    fn read(&mut self) -> serde_json::Value {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l:?}"))
    }
}

/// NAT rr for 10.0.0.100:80 over the three servers the config knows.
const NAT_RR: &str = r#"
[[service]]
address = "10.0.0.100:80"
scheduler = "rr"
real = [
    { address = "192.168.1.2:8080", method = "nat" },
    { address = "192.168.1.3:8080", method = "nat" },
    { address = "192.168.1.4:8080", method = "nat" },
]
"#;

const SETUP: &[&str] = &[
    "-A -t 10.0.0.100:80 -s wlc -p 300 -M 255.255.255.0",
    "-a -t 10.0.0.100:80 -r 192.168.1.2:8080 -m -w 3 -x 100 -y 50",
    "-a -t 10.0.0.100:80 -r 192.168.1.3:8080 -m",
    "-A -u 10.0.0.100:53 -s sh -b sh-fallback,sh-port",
    "-a -u 10.0.0.100:53 -r 192.168.1.4:53 -g -w 2",
    "-A -t [2001:db8::100]:443 -s mh -b mh-port",
    "-a -t [2001:db8::100]:443 -r [2001:db8:1::5]:443 -g",
];

const GOLDEN_LN: &str = "\
IP Virtual Server version 1.2.1 (size=1048576)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.100:80 wlc persistent 300 mask 255.255.255.0
  -> 192.168.1.2:8080             Masq    3      0          0         
  -> 192.168.1.3:8080             Masq    1      0          0         
UDP  10.0.0.100:53 sh (sh-fallback,sh-port)
  -> 192.168.1.4:53               Route   2      0          0         
TCP  [2001:db8::100]:443 mh (mh-port)
  -> [2001:db8:1::5]:443          Route   1      0          0         
";

const GOLDEN_SAVE: &str = "\
-A -t 10.0.0.100:80 -s wlc -p 300 -M 255.255.255.0
-a -t 10.0.0.100:80 -r 192.168.1.2:8080 -m -w 3 -x 100 -y 50
-a -t 10.0.0.100:80 -r 192.168.1.3:8080 -m -w 1
-A -u 10.0.0.100:53 -s sh -b sh-fallback,sh-port
-a -u 10.0.0.100:53 -r 192.168.1.4:53 -g -w 2
-A -t [2001:db8::100]:443 -s mh -b mh-port
-a -t [2001:db8::100]:443 -r [2001:db8:1::5]:443 -g -w 1
";

#[test]
fn rvsadm_listings_and_save_restore_round_trip() {
    let mut d = Daemon::start("a", 0, &[], "");
    for cmd in SETUP {
        d.ok(cmd);
    }
    assert_eq!(d.ok("-Ln"), GOLDEN_LN);
    assert!(
        d.ok("-L").contains("TCP  10.0.0.100:http wlc persistent 300"),
        "without -n, service names"
    );
    assert_eq!(d.ok("-S -n"), GOLDEN_SAVE);
    assert_eq!(d.ok("-Ln --timeout"), "Timeout (tcp tcpfin udp): 900 120 300\n");
    d.ok("--set 600 0 30");
    assert_eq!(d.ok("-Ln --timeout"), "Timeout (tcp tcpfin udp): 600 120 30\n");
    assert!(d.ok("-Ln --thresholds").contains(&format!(
        "  -> {:<28} 100        50         0          0",
        "192.168.1.2:8080"
    )));
    assert!(d
        .ok("-Ln --persistent-conn")
        .contains("Weight    PersistConn ActiveConn InActConn"));
    assert!(d
        .ok("-Ln --stats --exact")
        .contains("Conns   InPkts  OutPkts  InBytes OutBytes"));
    assert!(d
        .ok("-Ln --rate")
        .contains("CPS    InPPS   OutPPS    InBPS   OutBPS"));
    assert!(d
        .ok("-Lnc")
        .starts_with("IPVS connection entries\npro expire state       source"));
    assert_eq!(
        d.ok("-Ln -u 10.0.0.100:53").lines().count(),
        4,
        "one service listed, without the version line (as ipvsadm)"
    );

    // rvsadm -S | rvsadm -C; rvsadm -R
    let saved = d.ok("-S -n");
    d.ok("-C");
    assert_eq!(d.ok("-S -n"), "");
    assert!(d.restore(&saved).status.success());
    assert_eq!(d.ok("-S -n"), saved, "restore gives back exactly what was saved");
    assert_eq!(d.ok("-Ln"), GOLDEN_LN);

    // Edits and deletions, as ipvsadm does them.
    d.ok("-e -t 10.0.0.100:80 -r 192.168.1.3:8080 -m -w 0");
    d.ok("-E -t 10.0.0.100:80 -s rr");
    d.ok("-d -u 10.0.0.100:53 -r 192.168.1.4:53");
    d.ok("-D -t [2001:db8::100]:443");
    assert_eq!(
        d.ok("-S -n"),
        "-A -t 10.0.0.100:80 -s rr\n-a -t 10.0.0.100:80 -r 192.168.1.2:8080 -m -w 3 -x 100 -y 50\n\
         -a -t 10.0.0.100:80 -r 192.168.1.3:8080 -m -w 0\n-A -u 10.0.0.100:53 -s sh -b sh-fallback,sh-port\n"
    );
    // The status op reports the time a change takes to reach every worker.
    let mut s = Session::open(&d.sock);
    let st = s.send(r#"{"id":1,"op":"status"}"#);
    assert_eq!(st["ok"], true);
    assert!(st["result"]["change_visible_us"][1].as_u64().is_some(), "{st}");
    let counters = st["result"]["counters"].as_array().unwrap();
    assert!(
        counters.iter().any(|c| c[0] == "rx"),
        "every worker counter by name: {st}"
    );
    println!(
        "change visibility (median, max us): {}",
        st["result"]["change_visible_us"]
    );
    d.stop();
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let mut d = Daemon::start("b", 1, &[], "");
    for cmd in SETUP {
        d.ok(cmd);
    }
    let before = d.ok("-S -n");
    let svc = r#""service":{"protocol":"tcp","address":"10.0.0.100:80"}"#;
    let cases: Vec<(String, &str, &str)> = vec![
        ("{not json".into(), "bad_request", "malformed JSON"),
        (r#"{"id":1,"op":"explode"}"#.into(), "bad_request", "unknown variant `explode`"),
        (r#"{"id":2,"op":"set_timeouts","tcp":"fast","tcpfin":0,"udp":0}"#.into(), "bad_request", "invalid type"),
        (r#"{"id":3,"op":"clear","now":true}"#.into(), "bad_request", "unknown field `now`"),
        (r#"{"id":4,"op":"delete_service","service":{"protocol":"tcp","address":"10.9.9.9:80"}}"#.into(), "not_found", "no service tcp 10.9.9.9:80"),
        (r#"{"id":5,"op":"add_service","service":{"protocol":"tcp","address":"10.0.0.100:80"}}"#.into(), "exists", "already exists"),
        (format!(r#"{{"id":6,"op":"add_real",{svc},"real":{{"address":"192.168.1.2:8080","method":"nat"}}}}"#), "exists", "already a real server"),
        (format!(r#"{{"id":7,"op":"add_real",{svc},"real":{{"address":"192.168.1.999:80","method":"nat"}}}}"#), "invalid", "real.address: \"192.168.1.999:80\" is not an IPv4/IPv6 socket address"),
        (r#"{"id":8,"op":"add_service","service":{"protocol":"tcp","address":"10.0.0.200:99999"}}"#.into(), "invalid", "service.address: \"10.0.0.200:99999\""),
        (format!(r#"{{"id":9,"op":"add_real",{svc},"real":{{"address":"192.168.1.9:8080","method":"nat","weight":-1}}}}"#), "invalid", "real.weight: -1 is outside 0..=65535"),
        (r#"{"id":10,"op":"add_service","service":{"protocol":"tcp","address":"10.0.0.200:80","scheduler":"fastest"}}"#.into(), "invalid", "service.scheduler: unknown scheduler \"fastest\""),
        (format!(r#"{{"id":11,"op":"add_real",{svc},"real":{{"address":"192.168.1.9:8080","method":"dr"}}}}"#), "invalid", "DR and TUN cannot change the port"),
        (format!(r#"{{"id":12,"op":"delete_real",{svc},"address":"192.168.1.77:8080"}}"#), "not_found", "is not a real server"),
        (r#"{"id":13,"op":"restore","services":[{"address":"10.0.0.1:80"},{"address":"10.0.0.1:80"}]}"#.into(), "exists", "given twice"),
        (r#"{"id":14,"op":"restore","services":[{"address":"10.0.0.1:80","real":[{"address":"192.168.1.2","weight":70000}]}]}"#.into(), "invalid", "services[0]: service.real[0].weight"),
        (r#"{"id":15,"op":"set_timeouts","tcp":99999999,"tcpfin":0,"udp":0}"#.into(), "invalid", "tcp: 99999999 is more than"),
        (r#"{"id":16,"op":"add_service","service":{"protocol":"tcp","address":"10.0.0.200:80","announce":"sometimes"}}"#.into(), "invalid", "service.announce: \"sometimes\" is not one of always, follow-host"),
        (r#"{"id":17,"op":"add_service","service":{"protocol":"tcp","address":"10.0.0.200:80","announce":"follow-host"}}"#.into(), "invalid", "service.announce: follow-host needs a port with a host_interface"),
        (r#"{"id":18,"op":"add_service","service":{"address":"10.0.0.200:80","check":{"type":"http","status":[700],"rise":0}}}"#.into(), "invalid", "service.check.status[0]: 700 is not an HTTP status"),
        (r#"{"id":19,"op":"add_service","service":{"address":"10.0.0.200:80","check":{"type":"ping"}}}"#.into(), "invalid", "service.check.type: \"ping\" is not one of tcp, http, https, udp, exec, agent"),
        (format!(r#"{{"id":20,"op":"add_real",{svc},"real":{{"address":"192.168.1.9:8080","method":"nat","check":{{"type":"exec","command":["/nonexistent/check"]}}}}}}"#), "invalid", "real.check.command: \"/nonexistent/check\" is not an executable file"),
        (r#"{"id":21,"op":"edit_service","service":{"address":"10.0.0.100:80","check":{"type":"tcp","rise":0}}}"#.into(), "invalid", "service.check.rise: 0 is outside 1..=100"),
    ];
    let mut s = Session::open(&d.sock);
    for (line, code, msg) in &cases {
        let r = s.send(line);
        assert_eq!(r["ok"], false, "{line}: {r}");
        assert_eq!(r["error"]["code"], *code, "{line}: {r}");
        let m = r["error"]["message"].as_str().unwrap();
        assert!(m.contains(msg), "{line}: {m:?} lacks {msg:?}");
        assert_eq!(d.ok("-S -n"), before, "{line} changed the tables");
    }
    // An oversized line: an error, then the connection closes; the daemon goes on.
    let mut big = Session::open(&d.sock);
    let huge = format!(r#"{{"id":99,"op":"clear","x":"{}"}}"#, "a".repeat(70 * 1024));
    let r = big.send(&huge);
    assert_eq!(r["error"]["code"], "too_long", "{r}");
    // A client that disconnects in the middle of a request changes nothing either.
    let mut half = UnixStream::connect(&d.sock).unwrap();
    half.write_all(br#"{"id":100,"op":"cle"#).unwrap();
    drop(half);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(d.ok("-S -n"), before);
    // rvsadm's own refusals: exit status 1 and the daemon's message.
    let o = d.adm("-a -t 10.0.0.100:80 -r 192.168.1.9:81 -g");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("DR and TUN cannot change the port"));
    assert_eq!(d.ok("-S -n"), before);
    d.stop();
}

#[test]
fn sixteen_clients_at_once_while_one_hangs_mid_line() {
    let mut d = Daemon::start("c", 0, &[], "");
    d.ok("-A -t 10.0.0.100:80 -s rr");
    // A client that sends half a line and waits: it must not hold up anyone.
    let mut hanging = UnixStream::connect(&d.sock).unwrap();
    hanging.write_all(br#"{"id":1,"op":"li"#).unwrap();
    let start = Instant::now();
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let sock = d.sock.clone();
            std::thread::spawn(move || {
                let mut s = Session::open(&sock);
                for k in 0..25 {
                    let r = if k % 5 == 0 {
                        s.send(&format!(
                            r#"{{"id":{k},"op":"add_real","service":{{"protocol":"tcp","address":"10.0.0.100:80"}},"real":{{"address":"192.168.1.{}:80","method":"nat"}}}}"#,
                            10 + t * 10 + k / 5
                        ))
                    } else {
                        s.send(&format!(r#"{{"id":{k},"op":"list"}}"#))
                    };
                    assert_eq!(r["ok"], true, "{r}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(8), "16 clients took {took:?}");
    assert_eq!(
        d.ok("-S -n").lines().count(),
        1 + 16 * 5,
        "every client's adds landed"
    );
    // The hanging client is cut off once its line has waited too long.
    hanging.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut l = String::new();
    BufReader::new(hanging).read_line(&mut l).unwrap();
    assert!(l.contains("\"timeout\""), "{l}");
    d.stop();
}

/// Established flows keep going to their real server while 1,000 changes are made.
#[test]
fn a_thousand_changes_under_replay_load_move_no_established_flow() {
    const FLOWS: u32 = 48;
    const ROUNDS: u32 = 3000;
    let vip = Ipv4Addr::new(10, 0, 0, 100);
    let client = |i: u32| (Ipv4Addr::new(198, 51, 100, 1 + (i % 200) as u8), 30000 + i as u16);
    let mut input = Vec::new();
    for i in 0..FLOWS {
        let (c, p) = client(i);
        input.push(tcp_v4(c, vip, p, 80, TCP_SYN, &[]));
    }
    for r in 0..ROUNDS {
        for i in 0..FLOWS {
            let (c, p) = client(i);
            input.push(tcp_v4(c, vip, p, 80, TCP_ACK | TCP_PSH, &r.to_be_bytes()));
        }
    }
    let mut d = Daemon::start("d", 1, &input, NAT_RR);
    let mut s = Session::open(&d.sock);
    let svc = r#""service":{"protocol":"tcp","address":"10.0.0.100:80"}"#;
    let rx_at_start = s.send(r#"{"id":4999,"op":"status"}"#)["result"]["ports"][0]["rx"]
        .as_u64()
        .unwrap();
    let start = Instant::now();
    for k in 0..1000u32 {
        let line = match k % 4 {
            // Weight edits of the flows' own servers, down to quiesced.
            0 => format!(
                r#"{{"id":{k},"op":"edit_real",{svc},"real":{{"address":"192.168.1.{}:8080","method":"nat","weight":{}}}}}"#,
                2 + k % 3,
                k % 4
            ),
            // Other services come and go.
            1 => format!(
                r#"{{"id":{k},"op":"add_service","service":{{"address":"10.9.{}.{}:80","scheduler":"wlc","real":[{{"address":"192.168.1.9:80","method":"nat"}}]}}}}"#,
                k / 250,
                k % 250
            ),
            2 => format!(
                r#"{{"id":{k},"op":"delete_service","service":{{"protocol":"tcp","address":"10.9.{}.{}:80"}}}}"#,
                (k - 1) / 250,
                (k - 1) % 250
            ),
            // And servers of the flows' service are added and removed.
            _ => {
                if k % 8 == 3 {
                    format!(
                        r#"{{"id":{k},"op":"add_real",{svc},"real":{{"address":"192.168.1.20:8080","method":"nat"}}}}"#
                    )
                } else {
                    format!(r#"{{"id":{k},"op":"delete_real",{svc},"address":"192.168.1.20:8080"}}"#)
                }
            }
        };
        let r = s.send(&line);
        assert_eq!(r["ok"], true, "change {k}: {r}");
    }
    let changes_took = start.elapsed();
    let st = s.send(r#"{"id":5000,"op":"status"}"#);
    let rx_at_end = st["result"]["ports"][0]["rx"].as_u64().unwrap();
    // Let the replay finish.
    let total = (FLOWS * (ROUNDS + 1)) as u64;
    let wait = Instant::now();
    loop {
        let st = s.send(r#"{"id":5001,"op":"status"}"#);
        if st["result"]["ports"][0]["rx"].as_u64() == Some(total) || wait.elapsed() > Duration::from_secs(60)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Counters show the replay; -Z zeroes them (the replay is over, so they stay zero).
    std::thread::sleep(Duration::from_millis(300));
    let stats = d.ok("-Ln --stats --exact");
    assert!(
        stats.contains(&format!("{:<33} {:>8} {:>8}", "TCP  10.0.0.100:80", FLOWS, total)),
        "{stats}"
    );
    d.ok("-Z");
    let zeroed = d.ok("-Ln --stats --exact");
    assert!(
        zeroed.contains(&format!("{:<33} {:>8} {:>8}", "TCP  10.0.0.100:80", 0, 0)),
        "{zeroed}"
    );
    let out_path = d.path("out-i.pcap");
    let report = d.stop();
    assert!(report.contains("drops: none"), "{report}");
    let out = traffic::read_pcap(&out_path).unwrap();
    let out: Vec<&Vec<u8>> = out.iter().filter(|f| f[12..14] == [0x08, 0x00]).collect();
    assert_eq!(out.len() as u64, total, "every packet was forwarded\n{report}");
    let mut server_of = std::collections::HashMap::new();
    for f in &out {
        let c = (
            Ipv4Addr::new(f[26], f[27], f[28], f[29]),
            u16::from_be_bytes([f[34], f[35]]),
        );
        let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
        let first = *server_of.entry(c).or_insert(dst);
        assert_eq!(dst, first, "flow {c:?} moved from {first} to {dst}");
    }
    assert_eq!(server_of.len(), FLOWS as usize);
    println!(
        "1000 changes in {changes_took:?} ({:?} per change) while the replay went from packet \
         {rx_at_start} to {rx_at_end} of {total}; visibility (median, max us) {}; every packet on \
         its original server",
        changes_took / 1000,
        st["result"]["change_visible_us"]
    );
}

#[test]
fn repeated_keys_slow_lines_and_idle_clients_do_not_get_their_way() {
    let mut d = Daemon::start_with(
        "h",
        0,
        &[],
        "",
        "request_timeout = 2\nidle_timeout = 4\nmax_clients = 8",
    );
    d.ok("-A -t 10.0.0.100:80 -s rr");
    let mut s = Session::open(&d.sock);
    // A repeated key is refused, not "the last one wins" (this one would clear the table).
    let r = s.send(r#"{"id":1,"op":"list","op":"clear"}"#);
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the key \"op\" is given twice"),
        "{r}"
    );
    let r = s.send(
        r#"{"id":2,"op":"add_service","service":{"address":"10.0.0.101:80","address":"10.0.0.102:80"}}"#,
    );
    assert_eq!(r["error"]["code"], "bad_request", "nested too: {r}");
    assert!(d.ok("-Ln").contains("10.0.0.100:80"), "nothing cleared");
    assert!(!d.ok("-Ln").contains("10.0.0.101"), "nothing added");

    // Idle longer than the request deadline, then a line in two halves: the deadline runs
    // from the first byte.
    std::thread::sleep(Duration::from_millis(2500));
    s.w.write_all(br#"{"id":3,"op""#).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let r = s.send(r#":"list"}"#);
    assert_eq!(r["ok"], true, "{r}");

    // A byte every 300 ms is still cut off at the deadline.
    let mut drip = UnixStream::connect(&d.sock).unwrap();
    let started = Instant::now();
    let mut cut = None;
    for b in br#"{"id":4,"op":"list","padding":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"# {
        if drip.write_all(&[*b]).is_err() {
            cut = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let cut = cut.unwrap_or_else(|| started.elapsed());
    assert!(cut < Duration::from_secs(5), "the drip was cut off ({cut:?})");
    let mut l = String::new();
    let _ = BufReader::new(drip).read_line(&mut l);
    assert!(l.contains("\"timeout\""), "{l}");

    // A client that says nothing is closed after the idle time.
    let idle = UnixStream::connect(&d.sock).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    let mut l = String::new();
    BufReader::new(idle).read_line(&mut l).unwrap();
    assert!(l.contains("\"idle\""), "{l}");
    assert!(
        t.elapsed() >= Duration::from_secs(3) && t.elapsed() < Duration::from_secs(8),
        "{:?}",
        t.elapsed()
    );
    d.stop();
}

#[test]
fn an_administrator_gets_through_two_hundred_idle_clients() {
    let mut d = Daemon::start("i", 0, &[], "");
    d.ok("-A -t 10.0.0.100:80 -s rr");
    let idle: Vec<UnixStream> = (0..200).map(|_| UnixStream::connect(&d.sock).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let out = d.ok("-Ln");
    assert!(out.contains("10.0.0.100:80 rr"), "{out}");
    assert!(t.elapsed() < Duration::from_secs(5));
    // The first idle clients made room: they were told, and closed.
    let mut first = BufReader::new(idle.into_iter().next().unwrap());
    let mut l = String::new();
    first
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    first.read_line(&mut l).unwrap();
    assert!(l.contains("\"evicted\""), "{l}");
    // Changes are logged with who made them.
    let log = d.stderr.lock().unwrap().clone();
    assert!(
        log.contains("rvsd: control: uid 0 pid ") && log.contains(": applied: {\"op\":\"add_service\""),
        "{log}"
    );
    d.stop();
}

#[test]
fn a_socket_directory_others_can_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cfg = CONFIG
        .replace("@DIR@/ctl/rvs.sock", &format!("{}/rvs.sock", open.display()))
        .replace("@DIR@", dir.path().to_str().unwrap())
        .replace("@CPU@", "0")
        .replace("@TAG@", &format!("w{}", std::process::id()))
        .replace("@CONTROL@", "");
    traffic::write_pcap(&dir.path().join("in.pcap"), &[]).unwrap();
    traffic::write_pcap(&dir.path().join("empty.pcap"), &[]).unwrap();
    std::fs::write(dir.path().join("rvs.toml"), &cfg).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--config")
        .arg(dir.path().join("rvs.toml"))
        .args(["--duration", "5"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the control socket's directory is writable by others (mode 777)"),
        "{err}"
    );
    // rvsd makes its own directory 0750, and a group can be granted.
    let cfg = cfg
        .replace(
            &format!("{}/rvs.sock", open.display()),
            &format!("{}/mine/rvs.sock", dir.path().display()),
        )
        .replace("[control]\n", "[control]\ngroup = \"root\"\n");
    std::fs::write(dir.path().join("rvs.toml"), &cfg).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .arg("--config")
        .arg(dir.path().join("rvs.toml"))
        .args(["--duration", "1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mode = std::fs::metadata(dir.path().join("mine"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o750);
    let e = rvs_api::Config::from_toml(&cfg.replace("group = \"root\"", "group = \"no-such-group-rvs\""))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("control.group: \"no-such-group-rvs\" is not a group of this system"),
        "{e}"
    );
}

#[test]
fn counters_survive_a_restore_of_the_same_rules_and_a_delete_and_re_add() {
    // 30 half-open NAT connections (SYN_RECV: inactive, 60 s), 10 per real server.
    let input: Vec<Vec<u8>> = (0..30u16)
        .map(|i| {
            traffic::with_macs(
                tcp_v4(
                    Ipv4Addr::new(198, 51, 100, 7),
                    Ipv4Addr::new(10, 0, 0, 100),
                    30000 + i,
                    80,
                    TCP_SYN,
                    b"",
                ),
                traffic::GATEWAY_MAC,
                [0x02, 0, 0, 0, 0, 0xa0],
            )
        })
        .collect();
    let mut d = Daemon::start("k", 0, &input, NAT_RR);
    let line = |out: &str, real: &str| -> String {
        out.lines()
            .find(|l| l.contains(real))
            .unwrap_or_else(|| panic!("{real} in {out}"))
            .to_string()
    };
    let ten = "Masq    1      0          10";
    let start = Instant::now();
    while !line(&d.ok("-Ln"), "192.168.1.4:8080").contains(ten) {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", d.ok("-Ln"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats_before = line(&d.ok("-Ln --stats --exact"), "192.168.1.2:8080");
    // -S | -C; -R with the same rules (-R adds, as ipvsadm's does).
    let rules = d.ok("-S -n");
    d.ok("-C");
    assert!(d.restore(&rules).status.success());
    let after = d.ok("-Ln");
    for r in ["192.168.1.2:8080", "192.168.1.3:8080", "192.168.1.4:8080"] {
        assert!(line(&after, r).contains(ten), "after -R: {after}");
    }
    assert_eq!(
        line(&d.ok("-Ln --stats --exact"), "192.168.1.2:8080"),
        stats_before,
        "stats kept"
    );
    // Delete a server while its connections live, add it back: its books come back with it.
    d.ok("-d -t 10.0.0.100:80 -r 192.168.1.3:8080");
    d.ok("-a -t 10.0.0.100:80 -r 192.168.1.3:8080 -m");
    assert!(
        line(&d.ok("-Ln"), "192.168.1.3:8080").contains(ten),
        "{}",
        d.ok("-Ln")
    );
    d.stop();
}

#[test]
fn save_and_restore_five_thousand_real_servers() {
    let mut d = Daemon::start("f", 0, &[], "");
    let mut rules = String::new();
    for s in 0..10 {
        rules += &format!("-A -t 10.0.{s}.100:80 -s rr\n");
        // In ipvsadm's order (address, then port), as -S writes them.
        for a in 0..200 {
            for r in (a..500).step_by(200) {
                rules += &format!(
                    "-a -t 10.0.{s}.100:80 -r 192.168.1.{}:{} -m -w 1\n",
                    2 + a,
                    8000 + r
                );
            }
        }
    }
    let restore = |d: &Daemon, text: &str| {
        let o = d.restore(text);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    restore(&d, &rules);
    let saved = d.ok("-S -n");
    assert_eq!(saved.lines().count(), 10 + 5000);
    assert_eq!(saved, rules, "-S gives back the rules");
    d.ok("-C");
    assert_eq!(d.ok("-S -n"), "");
    restore(&d, &saved);
    assert_eq!(
        d.ok("-S -n"),
        saved,
        "-S | -C; -R round trip at 5,000 real servers"
    );
    let st = Session::open(&d.sock).send(r#"{"id":9,"op":"status"}"#);
    assert_eq!(st["result"]["services"], 10, "{st}");
    let bytes = st["result"]["tables_bytes"].as_u64().unwrap();
    assert!(
        (5000 * 32..20_000_000).contains(&bytes),
        "the services' memory is reported: {bytes}"
    );
    // A restore cut off before its last part changes nothing.
    let mut s = Session::open(&d.sock);
    let r = s.send(r#"{"id":1,"op":"restore","services":[],"more":true}"#);
    assert_eq!(r["ok"], true, "{r}");
    drop(s);
    assert_eq!(d.ok("-S -n"), saved);
    d.stop();
}

/// `-R` as ipvsadm's: line by line, each line a command, an error reported with its line and
/// the rest applied; it adds to the table; empty input changes nothing.
#[test]
fn restore_runs_each_line_reports_bad_ones_and_adds_to_the_table() {
    let d = Daemon::start("r", 0, &[], "");
    let restore = |text: &str| d.restore(text);
    d.ok("-A -t 10.0.9.1:80 -s rr");
    let o = restore("");
    assert!(o.status.success());
    assert_eq!(
        d.ok("-S -n"),
        "-A -t 10.0.9.1:80 -s rr\n",
        "empty input changes nothing"
    );
    let o = restore(
        "-A -t 10.0.9.2:80 -s wrr\n\
         -a -t 10.0.9.2:80 -r 192.168.1.2:80 -m -w 2\n\
         -A -t 10.0.9.1:80 -s rr\n\
         -a -t 10.0.9.2:80 -r bogus -m\n\
         -L -n\n\
         --set 600 100 60\n\
         -E -t 10.0.9.1:80 -s lc\n",
    );
    assert!(!o.status.success(), "some lines failed");
    let err = String::from_utf8_lossy(&o.stderr);
    for n in ["line 3:", "line 4:", "line 5:"] {
        assert!(err.contains(n), "{n} in {err}");
    }
    assert!(!err.contains("line 1:") && !err.contains("line 6:"), "{err}");
    assert_eq!(
        d.ok("-S -n"),
        "-A -t 10.0.9.1:80 -s lc\n-A -t 10.0.9.2:80 -s wrr\n-a -t 10.0.9.2:80 -r 192.168.1.2:80 -m -w 2\n",
        "what was there stays, the good lines are applied in order"
    );
    assert_eq!(d.ok("-L --timeout"), "Timeout (tcp tcpfin udp): 600 100 60\n");
}

#[test]
fn save_restore_round_trip_with_marks_port_zero_ipv6_and_tunnels() {
    let d = Daemon::start("m", 0, &[], "");
    for cmd in [
        "--add-mark 1 --proto tcp --dest 10.0.0.100 --dports 80,443",
        "--add-mark 2 --dest 2001:db8:100::/64",
        "-A -f 1 -s rr -p 600",
        "-a -f 1 -r 192.168.1.2 -m",
        "-a -f 1 -r 192.168.1.3 -m -w 2",
        "-A -f 2 -6 -s wlc",
        "-a -f 2 -6 -r 2001:db8:1::5 -g",
        "-A -t 10.0.0.101:0 -s sh -p",
        "-a -t 10.0.0.101:0 -r 192.168.1.4 -g",
        "-A -t [2001:db8::100]:443 -s wrr",
        "-a -t [2001:db8::100]:443 -r [2001:db8:1::6]:443 -m",
        "-A -u 10.0.0.102:53 -s rr -o",
        "-a -u 10.0.0.102:53 -r 192.168.1.4:53 -i --tun-type ipip",
    ] {
        d.ok(cmd);
    }
    let want = "\
-A -t 10.0.0.101:0 -s sh -p 360
-a -t 10.0.0.101:0 -r 192.168.1.4:0 -g -w 1
-A -u 10.0.0.102:53 -s rr -o
-a -u 10.0.0.102:53 -r 192.168.1.4:53 -i -w 1 --tun-type ipip
-A -t [2001:db8::100]:443 -s wrr
-a -t [2001:db8::100]:443 -r [2001:db8:1::6]:443 -m -w 1
-A -f 1 -s rr -p 600
-a -f 1 -r 192.168.1.2:0 -m -w 1
-a -f 1 -r 192.168.1.3:0 -m -w 2
-A -f 2 -6 -s wlc
-a -f 2 -6 -r [2001:db8:1::5]:0 -g -w 1
";
    assert_eq!(d.ok("-S -n"), want);
    let marks = "\
--add-mark 1 --proto tcp --dest 10.0.0.100/32 --dports 80,443
--add-mark 2 --dest 2001:db8:100::/64
";
    let saved = d.ok("-S -n --marks");
    assert_eq!(saved, format!("{marks}{want}"));
    assert_eq!(
        d.ok("-L --marks"),
        "Mark       Prot Destination                              Ports\n\
         1          tcp  10.0.0.100/32                            80,443\n\
         2          all  2001:db8:100::/64                        all\n"
    );
    assert!(d
        .ok("-Ln")
        .contains("\nFWM  1 rr persistent 600\n  -> 192.168.1.2:0"));
    assert!(d.ok("-Ln").contains("\nFWM  2 IPv6 wlc\n"));
    assert!(d
        .ok("-Ln --tun-info")
        .contains("  -> 192.168.1.4:53               Tunnel  ipip          1      0          0"));
    assert_eq!(
        d.ok("-Ln -f 2 -6").lines().count(),
        4,
        "one mark service, no version line"
    );

    // Everything away, then back from the save: the same table and rules.
    d.ok("-C");
    d.ok("--delete-mark 1 --proto tcp --dest 10.0.0.100 --dports 80,443");
    d.ok("--delete-mark 2 --dest 2001:db8:100::/64");
    assert_eq!(d.ok("-S -n --marks"), "");
    let o = d.restore(&saved);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(d.ok("-S -n --marks"), saved);

    // Bad mark commands are refused and change nothing.
    for bad in [
        "--add-mark 1 --proto tcp --dest 10.0.0.100 --dports 80,443",
        "--delete-mark 3 --dest 10.0.0.0/8",
        "--add-mark 4 --dest 10.0.0.1/8",
        "-A -f 1 -s rr",
        "-a -f 9 -r 192.168.1.2 -m",
    ] {
        let o = d.adm(bad);
        assert!(!o.status.success(), "{bad} is refused");
    }
    assert_eq!(d.ok("-S -n --marks"), saved);
}

/// FullNAT services through rvsadm: local addresses added and removed at run time, the save
/// restores them, and bad FullNAT changes are refused with nothing changed.
#[test]
fn fullnat_local_addresses_at_run_time_and_their_refusals() {
    let mut d = Daemon::start("f", 1, &[], "");
    for cmd in [
        "-A -t 10.0.0.104:80 -s rr --proxy-protocol v2 --toa on",
        "-P -t 10.0.0.104:80 -z 192.168.1.250",
        "-P -t 10.0.0.104:80 -z 192.168.1.251",
        "-a -t 10.0.0.104:80 -r 192.168.7.2:8080 --fullnat",
        "-a -t 10.0.0.104:80 -r 192.168.7.3:8080 --fullnat -w 2",
    ] {
        d.ok(cmd);
    }
    let want = "\
-A -t 10.0.0.104:80 -s rr --proxy-protocol v2 --toa on
-P -t 10.0.0.104:80 -z 192.168.1.250
-P -t 10.0.0.104:80 -z 192.168.1.251
-a -t 10.0.0.104:80 -r 192.168.7.2:8080 --fullnat -w 1
-a -t 10.0.0.104:80 -r 192.168.7.3:8080 --fullnat -w 2
";
    assert_eq!(d.ok("-S -n"), want);
    assert!(
        d.ok("-Ln")
            .contains("  -> 192.168.7.2:8080             FullNat 1"),
        "{}",
        d.ok("-Ln")
    );
    assert_eq!(
        d.ok("-G"),
        "VIP:VPORT                    TOTAL   SNAT_IP\n\
         10.0.0.104:80                2       192.168.1.250\n\
         10.0.0.104:80                2       192.168.1.251\n"
    );
    // -E without the FullNAT options keeps them (ipvsadm's -E knows nothing of them).
    d.ok("-E -t 10.0.0.104:80 -s wrr");
    assert!(d
        .ok("-S -n")
        .starts_with("-A -t 10.0.0.104:80 -s wrr --proxy-protocol v2 --toa on\n"));
    d.ok("-Q -t 10.0.0.104:80 -z 192.168.1.251");
    let saved = d.ok("-S -n");
    assert!(!saved.contains("192.168.1.251"), "{saved}");
    d.ok("-C");
    assert!(d.restore(&saved).status.success());
    assert_eq!(d.ok("-S -n"), saved, "a save restores FullNAT services whole");

    for (bad, says) in [
        ("-P -t 10.0.0.104:80 -z 192.168.1.250", "already a local address"),
        ("-Q -t 10.0.0.104:80 -z 192.168.1.99", "is not a local address"),
        (
            "-P -t 10.0.0.104:80 -z 2001:db8::1",
            "not of the service's family",
        ),
        ("-P -t 10.0.0.104:80 -z 0.0.0.0", "cannot be a local address"),
        ("-P -t 10.0.0.199:80 -z 192.168.1.250", "no service"),
        (
            "-a -t 10.0.0.104:80 -r 192.168.7.4:8080 -m",
            "all fullnat or none",
        ),
        ("-A -u 10.0.0.105:53 --toa on", "TCP"),
    ] {
        let o = d.adm(bad);
        assert_eq!(o.status.code(), Some(1), "{bad}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(says), "{bad}: {e}");
        assert_eq!(d.ok("-S -n"), saved, "{bad} changed the table");
    }
    d.stop();
}
