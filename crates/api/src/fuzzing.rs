//! The config parser and the control protocol under arbitrary input: the harnesses the
//! cargo-fuzz targets (`fuzz/`) and the corpus replay test share. Neither may panic; a
//! request that parses must serialize to a line that parses back to the same request, and a
//! service it carries goes through the same validation the daemon runs.

use crate::config::{validate_service, Config};
use crate::proto::{Op, Request};

pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = Config::from_toml(text) {
            assert!(!c.ports.is_empty(), "a valid config has a port");
        }
    }
}

pub fn control(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        let Ok(req) = Request::parse(line) else {
            continue;
        };
        let again = Request::parse(&req.to_line()).expect("a parsed request serializes to one that parses");
        assert_eq!(again, req, "the round trip keeps the request");
        match &req.op {
            Op::AddService { service } | Op::EditService { service } => {
                let _ = validate_service(service, &[]);
            }
            Op::Restore { services, .. } => {
                for s in services {
                    let _ = validate_service(s, &[]);
                }
            }
            _ => {}
        }
    }
}
