//! The peer link under a stranger, a forger and a replay (root): rvsd with `[peer]` in a
//! namespace; a python client in another plays the peer with or without the key. Only a
//! correctly signed, newer, valid table changes anything; everything else is counted.

mod common;

use std::time::Duration;

use common::netns::{
    config_head, control, daemon_counter, director_and_neighbor, sh, wait_for_socket, wait_until, Lab, Rvsd,
};

const KEY: &str = "the pair-secret, long enough";

/// argv: case, key. Speaks the peer protocol from the listener's side of view: read the
/// nonce, answer HMAC(key, "rvs-peer-1" || nonce), then frames of length, JSON, and
/// HMAC(key, nonce || sequence || JSON).
const PEER: &str = r#"
import hmac, hashlib, json, socket, struct, sys, time
case, key = sys.argv[1], sys.argv[2].encode()
def table(ms, services):
    return json.dumps({"stamp": {"time_ms": ms, "origin": 42}, "timeouts": [900, 120, 300], "services": services}).encode()
svc = [{"protocol": "tcp", "address": "10.93.0.100:80", "scheduler": "rr",
        "real": [{"address": "10.93.0.21:80", "method": "dr", "weight": 1}]}]
now = int(time.time() * 1000)
s = socket.create_connection(("10.93.0.1", 8849), timeout=5)
nonce = b""
while len(nonce) < 32:
    nonce += s.recv(32 - len(nonce))
if case == "stranger":
    s.sendall(bytes(32))
else:
    s.sendall(hmac.new(key, b"rvs-peer-1" + nonce, hashlib.sha256).digest())
def frame(body, seq, n=nonce):
    return struct.pack("!I", len(body)) + body + hmac.new(key, n + struct.pack("!Q", seq) + body, hashlib.sha256).digest()
# A refused peer may be cut off mid-send: that is the point, not an error here.
try:
    if case == "forged":
        body = table(now, svc)
        s.sendall(struct.pack("!I", len(body)) + body + bytes(32))
    elif case == "good":
        s.sendall(frame(table(0, svc), 0))        # a config file's table: never applied
        s.sendall(frame(table(now, svc), 1))      # newer: applied
        s.sendall(frame(table(now - 1000, []), 2))  # older: ignored
        bad = [{"protocol": "tcp", "address": "10.93.0.101:80", "scheduler": "nope"}]
        s.sendall(frame(table(now + 1000, bad), 3))  # does not validate: nothing changes
        open(sys.argv[3], "wb").write(nonce + frame(table(now + 2000, []), 4))
    elif case == "replay":
        old = open(sys.argv[3], "rb").read()
        s.sendall(old[32:])                        # signed for another connection's nonce
except (BrokenPipeError, ConnectionResetError):
    pass
time.sleep(0.5)
s.close()
"#;

#[test]
fn only_a_signed_newer_valid_table_changes_anything() {
    let mut lab = Lab::new("pl");
    let (d, s, port) = director_and_neighbor(&mut lab, "10.93.0");
    let socket = lab.socket();
    let config = config_head(&socket)
        + &format!(
            r#"
{port}[peer]
listen = "10.93.0.1:8849"
address = "10.93.0.2:8849"
key = "{KEY}"
"#
        );
    let _rvsd = Rvsd::start_in(&lab, Some(&d), &config);
    wait_for_socket(&socket);
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("peer.py");
    std::fs::write(&script, PEER).unwrap();
    let saved = tmp.path().join("frame");
    let play = |case: &str, key: &str| {
        sh(&format!(
            "ip netns exec {s} python3 {} {case} '{key}' {}",
            script.display(),
            saved.display()
        ))
    };
    let services = || {
        control(&socket, r#"{"id":1,"op":"list"}"#)["result"]["services"]
            .as_array()
            .unwrap()
            .len()
    };
    let settle = |name: &str, want: u64| {
        wait_until(Duration::from_secs(5), || {
            (daemon_counter(&socket, name) == want).then_some(())
        })
        .unwrap_or_else(|| panic!("{name} = {want}: {}", daemon_counter(&socket, name)))
    };

    play("stranger", KEY);
    settle("peer_auth_failed", 1);
    play("good", "another key of 30 bytes or so!");
    settle("peer_auth_failed", 2);
    play("forged", KEY);
    settle("peer_bad_messages", 1);
    assert_eq!(services(), 0, "nothing changed");

    play("good", KEY);
    settle("peer_tables_invalid", 1);
    assert_eq!(daemon_counter(&socket, "peer_tables_applied"), 1);
    assert_eq!(
        daemon_counter(&socket, "peer_tables_older"),
        2,
        "the config file's table and the older one"
    );
    assert_eq!(
        services(),
        1,
        "the signed, newer, valid table was taken and the invalid one changed nothing"
    );

    play("replay", KEY);
    settle("peer_bad_messages", 2);
    assert_eq!(services(), 1, "a replayed message changes nothing");
}
