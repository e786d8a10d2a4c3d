//! Network namespaces, veth pairs and rvsd processes for the end-to-end tests (root only).
//! Every namespace and link carries a prefix unique to the test and is removed when the test
//! ends, pass or fail.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn sh(cmd: &str) {
    let out = Command::new("bash").args(["-ec", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A threaded static-file HTTP server on argv[1]:argv[2], serving the current directory.
const HTTP_SERVER: &str = "import http.server, socket, socketserver, sys
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    if ':' in sys.argv[1]:
        address_family = socket.AF_INET6
S((sys.argv[1], int(sys.argv[2])), http.server.SimpleHTTPRequestHandler).serve_forever()
";

/// Namespaces, links and processes of one test; all removed on drop.
pub struct Lab {
    pub p: String,
    netns: Vec<String>,
    links: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        assert!(
            is_root(),
            "the end-to-end tests need root (network namespaces, af_packet)"
        );
        // Interface names are at most 15 bytes: keep the prefix short.
        Lab {
            p: format!("{tag}{}", std::process::id() % 10000),
            netns: vec![],
            links: vec![],
            children: vec![],
        }
    }

    /// A directory for rvsd's control sockets, which rvsd creates itself (0750): the socket's
    /// directory must be writable by no one else, so not /tmp itself.
    pub fn ctl_dir(&self) -> String {
        std::env::temp_dir()
            .join(format!("{}-ctl", self.p))
            .display()
            .to_string()
    }

    /// The control socket's path for this lab's rvsd.
    pub fn socket(&self) -> String {
        format!("{}/rvs.sock", self.ctl_dir())
    }

    pub fn ns(&mut self, name: &str) -> String {
        let n = format!("{}{name}", self.p);
        sh(&format!("ip netns add {n}; ip netns exec {n} ip link set lo up"));
        self.netns.push(n.clone());
        n
    }

    /// A veth pair; `a` stays in the root namespace (for rvsd or a bridge), `b` goes to `ns`.
    pub fn veth(&mut self, a: &str, b: &str, ns: Option<&str>) -> (String, String) {
        let (a, b) = (format!("{}{a}", self.p), format!("{}{b}", self.p));
        sh(&format!("ip link add {a} type veth peer name {b}"));
        self.links.push(a.clone());
        // Checksum offload off: af_packet must see complete checksums on both paths.
        sh(&format!("ethtool -K {a} tx off rx off >/dev/null; sysctl -qw net.ipv6.conf.{a}.disable_ipv6=1; ip link set {a} up"));
        match ns {
            Some(n) => sh(&format!("ip link set {b} netns {n}; ip netns exec {n} ethtool -K {b} tx off rx off >/dev/null; ip netns exec {n} ip link set {b} up")),
            None => sh(&format!("ethtool -K {b} tx off rx off >/dev/null; sysctl -qw net.ipv6.conf.{b}.disable_ipv6=1; ip link set {b} up")),
        }
        (a, b)
    }

    /// A veth pair with `a` in namespace `ns_a` and `b` in `ns_b`, both up, checksum offload
    /// off. Namespaces own them from then on (they go with the namespace).
    pub fn veth_between(&mut self, a: &str, ns_a: &str, b: &str, ns_b: &str) -> (String, String) {
        let (a, b) = (format!("{}{a}", self.p), format!("{}{b}", self.p));
        sh(&format!("ip link add {a} type veth peer name {b}"));
        self.links.push(a.clone());
        for (dev, ns) in [(&a, ns_a), (&b, ns_b)] {
            sh(&format!(
                "ip link set {dev} netns {ns}; ip netns exec {ns} ethtool -K {dev} tx off rx off >/dev/null; ip netns exec {ns} ip link set {dev} up"
            ));
        }
        (a, b)
    }

    /// Runs `cmd` in namespace `ns` in the background until the lab ends.
    pub fn spawn_in(&mut self, ns: &str, cmd: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// Runs `cmd` in the root namespace in the background until the lab ends.
    pub fn spawn_in_root(&mut self, cmd: &[&str]) {
        let child = Command::new(cmd[0])
            .args(&cmd[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    pub fn bridge(&mut self, name: &str, ports: &[&str]) {
        let br = format!("{}{name}", self.p);
        sh(&format!(
            "ip link add {br} type bridge; sysctl -qw net.ipv6.conf.{br}.disable_ipv6=1; ip link set {br} up"
        ));
        self.links.push(br.clone());
        for p in ports {
            sh(&format!("ip link set {p} master {br}"));
        }
    }

    pub fn http_server(&mut self, ns: &str, addr: &str, name: &str) {
        self.http_server_on(ns, addr, 8000, name);
    }

    /// python3's HTTP server in `ns` on `addr:port`, answering `name`; returns its pid (so a
    /// test can kill it), once it answers.
    pub fn http_server_on(&mut self, ns: &str, addr: &str, port: u16, name: &str) -> u32 {
        let dir = std::env::temp_dir().join(format!("{}-{name}", self.p));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), format!("{name}\n")).unwrap();
        // Not `python3 -m http.server`: its HTTPServer looks its own name up (getfqdn), and
        // a namespace whose DNS goes nowhere waits seconds for that.
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", "-c", HTTP_SERVER, addr])
            .arg(port.to_string())
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        let host = if addr.contains(':') {
            format!("[{addr}]")
        } else {
            addr.to_string()
        };
        wait_until(Duration::from_secs(15), || {
            curl(ns, &format!("http://{host}:{port}/"))
        })
        .unwrap_or_else(|| panic!("the HTTP server {name} in {ns} never answered"));
        pid
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.ctl_dir());
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for l in &self.links {
            let _ = Command::new("ip").args(["link", "del", l]).output();
        }
        for n in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

pub fn wait_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// One HTTP GET from inside `ns`; the body, or None on any failure.
pub fn curl(ns: &str, url: &str) -> Option<String> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-s",
            "--fail",
            "--max-time",
            "2",
            url,
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub struct Rvsd {
    child: Child,
    config: std::path::PathBuf,
}

impl Rvsd {
    pub fn start(lab: &Lab, config: &str) -> Rvsd {
        Rvsd::start_in(lab, None, config)
    }

    /// rvsd in network namespace `ns` (its ports and twins live there).
    pub fn start_in(lab: &Lab, ns: Option<&str>, config: &str) -> Rvsd {
        Rvsd::start_named(lab, ns, "rvs", config)
    }

    /// The same, with a config file of its own (several rvsd in one lab). Returns once the
    /// control socket answers (or rvsd has stopped, or 30 s have passed).
    ///
    /// DPDK's af_packet PMD names its fanout group after `getpid() ^ ifindex`, and groups are
    /// per namespace: two rvsd of concurrent tests in one namespace can draw the same group,
    /// and the second then fails to attach its port ("could not set PACKET_FANOUT"). Such a
    /// start is retried: a new process draws another group.
    pub fn start_named(lab: &Lab, ns: Option<&str>, name: &str, config: &str) -> Rvsd {
        let path = std::env::temp_dir().join(format!("{}-{name}.toml", lab.p));
        std::fs::write(&path, config).unwrap();
        let socket = config
            .lines()
            .find_map(|l| l.trim().strip_prefix("socket = \"")?.strip_suffix('"'))
            .map(std::path::PathBuf::from);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut cmd = match ns {
                // `ip netns exec` execs rvsd after entering the namespace: the pid stays rvsd's.
                Some(ns) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_rvsd")]);
                    c
                }
                None => Command::new(env!("CARGO_BIN_EXE_rvsd")),
            };
            let mut child = cmd
                .arg("--config")
                .arg(&path)
                .args(["--duration", "120"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let Some(sock) = &socket else {
                return Rvsd { child, config: path };
            };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if std::os::unix::net::UnixStream::connect(sock).is_ok() {
                    return Rvsd { child, config: path };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut err);
                    }
                    if err.contains("PACKET_FANOUT") && attempt < 4 {
                        eprintln!("rvsd drew a fanout group in use; starting it again: {err}");
                        break;
                    }
                    // Any other failure is the test's to see: put the error back in front.
                    eprintln!("rvsd stopped at start: {err}");
                    return Rvsd { child, config: path };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if start.elapsed() >= Duration::from_secs(30) {
                return Rvsd { child, config: path };
            }
        }
    }

    /// SIGKILL: rvsd dies at once (its twins vanish with it).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the report rvsd prints as it stops.
    pub fn stop(mut self) -> String {
        sh(&format!("kill -TERM {}", self.child.id()));
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "rvsd failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }
}

impl Drop for Rvsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// The start of an rvsd config for these tests: one worker on CPU 1, no hugepages, the
/// control socket at `socket`.
pub fn config_head(socket: &str) -> String {
    format!("[dataplane]\nworkers = [1]\n[eal]\nmemory = \"no-huge\"\n[control]\nsocket = \"{socket}\"\n")
}

/// Keeps the kernel of namespace `ns` off `dev`, the veth a DPDK af_packet port uses there (as
/// a NIC bound to DPDK is off the kernel's hands): no IPv4 taken in (strict reverse path), no
/// ARP answered, no IPv6.
pub fn off_kernel(ns: &str, dev: &str) {
    sh(&format!(
        "ip netns exec {ns} sysctl -qw net.ipv4.conf.{dev}.rp_filter=1 net.ipv4.conf.{dev}.arp_ignore=8 net.ipv6.conf.{dev}.disable_ipv6=1"
    ));
}

/// One request on rvsd's control socket; the response.
pub fn control(socket: &str, request: &str) -> serde_json::Value {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("the control socket");
    writeln!(s, "{request}").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

/// A sync or peer counter of rvsd behind `socket`, by name (`-L --daemon --stats`).
pub fn daemon_counter(socket: &str, name: &str) -> u64 {
    let v = control(socket, r#"{"id":1,"op":"daemons"}"#);
    v["result"]["counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c[0] == name)
        .and_then(|c| c[1].as_u64())
        .unwrap_or_else(|| panic!("{name} in {v}"))
}

/// rvsadm against `socket`: its standard output; a refusal fails the test.
pub fn rvsadm(socket: &str, args: &[&str]) -> String {
    let out = Command::new(super::rvsadm_bin())
        .args(["--socket", socket])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rvsadm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A director namespace and a neighbor namespace on one veth (`{net}.1` for rvsd's port,
/// `{net}.2` for the neighbor): the namespaces, and the `[[port]]` with its twin `{p}td`.
pub fn director_and_neighbor(lab: &mut Lab, net: &str) -> (String, String, String) {
    let p = lab.p.clone();
    let (d, s) = (lab.ns("d"), lab.ns("s"));
    let (d_dev, _) = lab.veth_between("dp", &d, "sp", &s);
    off_kernel(&d, &d_dev);
    sh(&format!("ip netns exec {s} ip addr add {net}.2/24 dev {p}sp"));
    let port = format!(
        "[[port]]\nname = \"lan\"\ndevice = \"net_af_packet_{p}d,iface={d_dev}\"\naddresses = [\"{net}.1/24\"]\nhost_interface = \"{p}td\"\n"
    );
    (d, s, port)
}

/// Waits until interface `dev` exists in the root namespace (a net_tap port rvsd creates).
pub fn wait_for_link(dev: &str) {
    wait_until(Duration::from_secs(30), || {
        Command::new("ip")
            .args(["link", "show", dev])
            .output()
            .ok()
            .filter(|o| o.status.success())
    })
    .unwrap_or_else(|| panic!("rvsd never made its tap {dev}"));
}

/// Waits until rvsd's control socket accepts connections (it is up).
pub fn wait_for_socket(socket: &str) {
    wait_until(Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(socket).ok().map(|_| ())
    })
    .unwrap_or_else(|| panic!("rvsd never opened {socket}"));
}

/// Two af_packet ports, `outside` on `d_out` and `inside` on `d_in`, each with a kernel twin
/// (`{p}to`, `{p}ti`) and the address given.
pub fn twin_ports(p: &str, d_out: &str, out_addr: &str, d_in: &str, in_addr: &str) -> String {
    format!(
        r#"
[[port]]
name = "outside"
device = "net_af_packet_{p}o,iface={d_out}"
addresses = ["{out_addr}"]
host_interface = "{p}to"
[[port]]
name = "inside"
device = "net_af_packet_{p}i,iface={d_in}"
addresses = ["{in_addr}"]
host_interface = "{p}ti"
"#
    )
}
