//! Pieces of the high-availability tests: keepalived in a namespace, an HTTP/1.1 keep-alive
//! server, the client that holds long-lived connections and measures a failover, and a
//! decoder of IPVS sync messages written from the kernel's struct layout (not rvs's code).

#![allow(dead_code)]

use std::process::{Command, Stdio};

use super::netns::Lab;

/// A threaded HTTP/1.1 server (keep-alive) on 0.0.0.0:argv[2] answering argv[1].
pub const KEEPALIVE_SERVER: &str = r#"
import http.server, socketserver, sys
name = sys.argv[1].encode() + b"\n"
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(name)))
        self.end_headers()
        self.wfile.write(name)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("0.0.0.0", int(sys.argv[2])), H).serve_forever()
"#;

/// argv: VIP, seconds, output file, streams. `streams` keep-alive connections each send a
/// request every 100 ms; a loop makes a new connection for a request every 100 ms. Writes
/// JSON: each stream's local port, answers, first error; each new request's time and outcome;
/// each stream answer's time.
pub const FAILOVER_CLIENT: &str = r#"
import http.client, json, sys, threading, time
vip, dur, out, n = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
end = time.time() + dur
streams, news, answers = [None] * n, [], []
lock = threading.Lock()
def stream(i):
    r = {"port": 0, "ok": 0, "error": None, "servers": []}
    try:
        c = http.client.HTTPConnection(vip, 80, timeout=15)
        c.connect()
        r["port"] = c.sock.getsockname()[1]
        while time.time() < end:
            c.request("GET", "/")
            body = c.getresponse().read().decode().strip()
            r["ok"] += 1
            if body not in r["servers"]:
                r["servers"].append(body)
            with lock:
                answers.append(time.time())
            time.sleep(0.1)
    except Exception as e:
        r["error"] = "%s at %.3f" % (repr(e), time.time())
    streams[i] = r
def fresh():
    while time.time() < end:
        t = time.time()
        try:
            c = http.client.HTTPConnection(vip, 80, timeout=1)
            c.request("GET", "/")
            c.getresponse().read()
            c.close()
            news.append([t, True])
        except Exception:
            news.append([t, False])
        time.sleep(max(0, 0.1 - (time.time() - t)))
ts = [threading.Thread(target=stream, args=(i,)) for i in range(n)] + [threading.Thread(target=fresh)]
for t in ts:
    t.start()
for t in ts:
    t.join()
json.dump({"streams": streams, "new": news, "answers": sorted(answers)}, open(out, "w"))
"#;

/// Starts [`FAILOVER_CLIENT`] in namespace `ns` for `secs` seconds with `streams` streams to
/// `vip`; its JSON lands in the returned path (under `dir`) when it ends.
pub fn start_streams(
    ns: &str,
    dir: &std::path::Path,
    vip: &str,
    secs: u32,
    streams: usize,
) -> (std::process::Child, String) {
    let script = dir.join("client.py");
    std::fs::write(&script, FAILOVER_CLIENT).unwrap();
    let result = dir.join("client.json").display().to_string();
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "python3", script.to_str().unwrap(), vip])
        .arg(secs.to_string())
        .arg(&result)
        .arg(streams.to_string())
        .spawn()
        .unwrap();
    (child, result)
}

/// Reads a pcap of UDP datagrams and decodes each payload as an IPVS sync message, following
/// the kernel's `struct ip_vs_sync_mesg` and `struct ip_vs_sync_v4/v6` (include/net/ip_vs.h,
/// net/netfilter/ipvs/ip_vs_sync.c). Prints JSON: one object per connection record.
pub const SYNC_DECODER: &str = r#"
import json, socket, struct, sys
data = open(sys.argv[1], "rb").read()
magic = struct.unpack("<I", data[:4])[0]
end = "<" if magic == 0xa1b2c3d4 else ">"
at, out = 24, []
while at + 16 <= len(data):
    _, _, incl, _ = struct.unpack(end + "IIII", data[at:at + 16])
    if at + 16 + incl > len(data):
        break
    frame = data[at + 16:at + 16 + incl]
    at += 16 + incl
    if struct.unpack("!H", frame[12:14])[0] != 0x0800:
        continue
    ihl = (frame[14] & 15) * 4
    if frame[23] != 17:
        continue
    msg = frame[14 + ihl + 8:]
    reserved, syncid, size, count, version, spare = struct.unpack("!BBHBbH", msg[:8])
    assert reserved == 0 and version == 1 and spare == 0 and size == len(msg), (reserved, version, size, len(msg))
    p = 8
    for _ in range(count):
        typ, proto, ver_size, flags, state, cport, vport, dport, fwmark, timeout = struct.unpack("!BBHIHHHHII", msg[p:p + 24])
        n = ver_size & 0x0fff
        fam, alen = (socket.AF_INET6, 16) if typ & 1 else (socket.AF_INET, 4)
        a = [socket.inet_ntop(fam, msg[p + 24 + k * alen:p + 24 + (k + 1) * alen]) for k in range(3)]
        out.append({"syncid": syncid, "protocol": proto, "flags": flags, "state": state,
                    "client": a[0], "cport": cport, "vaddr": a[1], "vport": vport,
                    "daddr": a[2], "dport": dport, "fwmark": fwmark, "timeout": timeout})
        p += (n + 3) & ~3
print(json.dumps(out))
"#;

/// keepalived's VRRP process (no IPVS) in namespace `ns`, with `conf` as its configuration.
pub fn keepalived(lab: &mut Lab, ns: &str, name: &str, conf: &str) {
    let dir = std::env::temp_dir().join(format!("{}-ka-{name}", lab.p));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keepalived.conf");
    std::fs::write(&file, conf).unwrap();
    let (f, pid, vrrp) = (
        file.display().to_string(),
        dir.join("k.pid").display().to_string(),
        dir.join("v.pid").display().to_string(),
    );
    lab.spawn_in(
        ns,
        &[
            "keepalived",
            "--vrrp",
            "-n",
            "-l",
            "-f",
            &f,
            "-p",
            &pid,
            "-r",
            &vrrp,
        ],
    );
}

/// The VRRP instance of one director: `vips` on `ifname`, a higher priority on the first.
pub fn vrrp_instance(name: &str, ifname: &str, vrid: u8, priority: u8, vips: &[&str]) -> String {
    let addrs: String = vips.iter().map(|v| format!("        {v}\n")).collect();
    format!(
        "vrrp_instance {name} {{\n    state BACKUP\n    interface {ifname}\n    virtual_router_id {vrid}\n    priority {priority}\n    version 3\n    advert_int 0.5\n    preempt_delay 4\n    virtual_ipaddress {{\n{addrs}    }}\n}}\n"
    )
}

pub fn keepalived_globals(router_id: &str) -> String {
    format!(
        "global_defs {{\n    router_id {router_id}\n    dynamic_interfaces\n    vrrp_garp_master_delay 1\n    vrrp_garp_master_repeat 3\n}}\n"
    )
}

/// Whether `addr` is on `dev` in namespace `ns`.
pub fn holds(ns: &str, dev: &str, addr: &str) -> bool {
    Command::new("ip")
        .args(["-n", ns, "-o", "addr", "show", "dev", dev])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(" {addr}/")))
        .unwrap_or(false)
}

/// The sync records in a pcap, by the independent decoder.
pub fn decode_pcap(pcap: &str) -> Vec<serde_json::Value> {
    let out = Command::new("python3")
        .args(["-c", SYNC_DECODER, pcap])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "decoder: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
}

/// The same pcap through tshark's IPVS dissector: (client, cport, vaddr, vport, daddr, dport,
/// timeout, flags, state) per record, or None without tshark.
pub fn tshark_records(pcap: &str) -> Option<Vec<[String; 9]>> {
    let out = Command::new("tshark")
        .args([
            "-r",
            pcap,
            "-d",
            "udp.port==8848,ipvs",
            "-Y",
            "ipvs",
            "-T",
            "fields",
            "-E",
            "separator=/t",
        ])
        .args([
            "-e",
            "ipvs.caddr",
            "-e",
            "ipvs.cport",
            "-e",
            "ipvs.vaddr",
            "-e",
            "ipvs.vport",
            "-e",
            "ipvs.daddr",
            "-e",
            "ipvs.dport",
            "-e",
            "ipvs.timeout",
            "-e",
            "ipvs.flags.v1",
            "-e",
            "ipvs.state",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut v = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cols: Vec<Vec<String>> = line
            .split('\t')
            .map(|c| c.split(',').map(str::to_string).collect())
            .collect();
        for k in 0..cols[0].len() {
            let g = |i: usize| cols.get(i).and_then(|c| c.get(k)).cloned().unwrap_or_default();
            v.push([g(0), g(1), g(2), g(3), g(4), g(5), g(6), g(7), g(8)]);
        }
    }
    Some(v)
}
