//! Checks of httpd's site over HTTP, for the tests that boot it on one card or another:
//! the site's files, one request with curl, every file byte-for-byte with a 404, and
//! pipelined requests on one keep-alive connection.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A host port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// httpd's embedded site, as built.
pub fn dir() -> PathBuf {
    crate::workspace_root().join("apps/httpd/site")
}

/// Every file of the site, subdirectories included.
pub fn files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { walk(&p, out) } else { out.push(p) }
        }
    }
    let mut all = Vec::new();
    walk(&dir(), &mut all);
    all
}

/// One GET with curl: the response head and body.
pub fn curl(port: u16, path: &str) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "-m", "30", "-D", "-", "-o", "-"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs (apt-get install curl)");
    assert!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
    let raw = out.stdout;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    (String::from_utf8_lossy(&raw[..split]).into_owned(), raw[split..].to_vec())
}

/// Every site file byte-for-byte, and a 404 for a missing one.
pub fn assert_served(port: u16) {
    let all = files();
    assert!(all.len() >= 4, "the site has files");
    for path in all {
        let url = format!("/{}", path.strip_prefix(dir()).unwrap().display());
        let (head, body) = curl(port, &url);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{url}: {head}");
        assert_eq!(body, std::fs::read(&path).unwrap(), "{url} byte-for-byte");
    }
    let (head, _) = curl(port, "/missing.html");
    assert!(head.starts_with("HTTP/1.1 404 Not Found"), "{head}");
}

/// `rounds` times, three pipelined requests on one keep-alive connection, each answered.
pub fn assert_pipelined(port: u16, rounds: usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let css = std::fs::read(dir().join("style.css")).unwrap();
    for _ in 0..rounds {
        s.write_all(&b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.windows(css.len()).filter(|w| *w == css.as_slice()).count() < 3 {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(String::from_utf8_lossy(&got).matches("HTTP/1.1 200 OK").count(), 3);
    }
}
