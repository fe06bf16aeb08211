//! Checks of httpd's site over HTTP, for the tests that boot it on one card or another:
//! the site's files, one request with curl, every file byte-for-byte with a 404, status
//! codes, pipelined requests on one keep-alive connection, many clients at once, and a
//! connection that outlives a link blip.

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
    curl_with(port, path, &[])
}

/// One request with curl and `extra` arguments: the response head and body.
pub fn curl_with(port: u16, path: &str, extra: &[&str]) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "-m", "30", "-D", "-", "-o", "-"])
        .args(extra)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl runs (apt-get install curl)");
    assert!(out.status.success(), "curl {path}: {}", String::from_utf8_lossy(&out.stderr));
    let raw = out.stdout;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    (String::from_utf8_lossy(&raw[..split]).into_owned(), raw[split..].to_vec())
}

/// Every site file byte-for-byte with its length and a date, and a 404 for a missing
/// one.
pub fn assert_served(port: u16) {
    let all = files();
    assert!(all.len() >= 4, "the site has files");
    for path in all {
        let url = format!("/{}", path.strip_prefix(dir()).unwrap().display());
        let (head, body) = curl(port, &url);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{url}: {head}");
        assert_eq!(body, std::fs::read(&path).unwrap(), "{url} byte-for-byte");
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())), "{url}: {head}");
        assert!(head.contains("Date: "), "{url}: {head}");
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

/// One keep-alive connection to httpd, for checks that a connection outlives something.
#[derive(Debug)]
pub struct KeepAlive {
    stream: TcpStream,
}

impl KeepAlive {
    pub fn connect(port: u16) -> KeepAlive {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        KeepAlive { stream }
    }

    /// GETs `path` on this connection: the status line and the body (by its
    /// Content-Length).
    pub fn get(&mut self, path: &str) -> (String, Vec<u8>) {
        self.send_get(path);
        self.response()
    }

    /// Sends a GET for `path` without waiting for the answer.
    pub fn send_get(&mut self, path: &str) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        self.stream.write_all(request.as_bytes()).expect("the connection takes the request");
    }

    /// The next response: its status line and body (by its Content-Length).
    pub fn response(&mut self) -> (String, Vec<u8>) {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("a Content-Length");
                if got.len() >= end + 4 + length {
                    let status = head.lines().next().unwrap_or_default().to_owned();
                    return (status, got[end + 4..end + 4 + length].to_vec());
                }
            }
            let n = self.stream.read(&mut buf).expect("the connection answers");
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    }
}

/// A link blip of about a second through QEMU's monitor (`set_link NETDEV off`, then
/// `on`) with a keep-alive connection open: the stack logs the link going down and
/// coming back and gets a DHCP lease again; the connection serves the page before, and
/// answers a request sent while the link was down (QEMU's user network sends it again
/// once the link is back), as does a new connection.
pub fn link_blip(run: &mut crate::Running, monitor: &mut impl Write, netdev: &str, port: u16) {
    let page = std::fs::read(dir().join("index.html")).unwrap();
    let mut conn = KeepAlive::connect(port);
    assert_eq!(conn.get("/index.html"), ("HTTP/1.1 200 OK".to_owned(), page.clone()));
    monitor.write_all(format!("set_link {netdev} off\n").as_bytes()).unwrap();
    run.wait_for("net: link down").expect("the stack sees the link go down");
    conn.send_get("/index.html");
    std::thread::sleep(Duration::from_secs(1));
    monitor.write_all(format!("set_link {netdev} on\n").as_bytes()).unwrap();
    run.wait_for("net: link up").expect("and come back");
    run.wait_for("net: DHCP gave ip 10.0.2.15/24").expect("DHCP again after the link came back");
    assert_eq!(
        conn.response(),
        ("HTTP/1.1 200 OK".to_owned(), page.clone()),
        "the request sent while the link was down"
    );
    assert_eq!(conn.get("/index.html"), ("HTTP/1.1 200 OK".to_owned(), page.clone()), "and one more after");
    let (head, body) = curl(port, "/index.html");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, page);
}

/// Sends raw bytes; everything that comes back until the server closes (or 10 s pass).
pub fn raw(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

/// The status codes: 200 for HEAD without a body, content types, 404 (a missing file, a
/// path out of the site), 405 with `Allow`, 400 for text and for binary that is not
/// HTTP, 431 for a 64 KiB header, 413 for a body; then a 200 again.
pub fn assert_status_codes(port: u16) {
    let reply = raw(port, b"HEAD /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 200 OK") && reply.contains("Content-Length: 612"), "{reply}");
    assert!(reply.ends_with("\r\n\r\n"), "HEAD must send no body: {reply}");
    let (head, _) = curl(port, "/");
    assert!(head.contains("Content-Type: text/html; charset=utf-8"), "{head}");
    let (head, _) = curl(port, "/logo.png");
    assert!(head.contains("Content-Type: image/png"), "{head}");
    let (head, _) = curl(port, "/missing.html");
    assert!(head.starts_with("HTTP/1.1 404 Not Found"), "{head}");
    let (head, _) = curl_with(port, "/../etc/passwd", &["--path-as-is"]);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = curl_with(port, "/", &["-X", "DELETE"]);
    assert!(head.starts_with("HTTP/1.1 405") && head.contains("Allow: GET, HEAD"), "{head}");
    let reply = raw(port, b"THIS IS NOT HTTP\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request"), "{reply}");
    let reply = raw(port, &[0x16, 0x03, 0x01, 0x02, 0x00, 0xff, 0xfe]);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.resize(64 * 1024, b'a');
    big.extend_from_slice(b"\r\n\r\n");
    let reply = raw(port, &big);
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    let reply = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    let (head, _) = curl(port, "/");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// `clients` keep-alive connections open at once (opened in batches of 10: QEMU's
/// hostfwd listens with a backlog of 1, so the last may connect seconds after the
/// first), each fetching the page once, then again every 2 s while it waits for all to
/// be open (httpd closes a connection idle for 10 s), then `requests` more times.
pub fn assert_concurrent_clients(port: u16, clients: usize, requests: usize) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;
    let page = std::fs::read(dir().join("index.html")).unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let ok = ("HTTP/1.1 200 OK".to_owned(), page);
    let mut threads = Vec::new();
    while threads.len() < clients {
        for _ in 0..10.min(clients - threads.len()) {
            let (ok, open) = (ok.clone(), open.clone());
            threads.push(std::thread::spawn(move || {
                let mut conn = KeepAlive::connect(port);
                assert_eq!(conn.get("/"), ok, "the first request");
                open.fetch_add(1, Ordering::SeqCst);
                // A client that failed never counts: the others go on after two minutes,
                // and its panic shows at the join.
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut last = Instant::now();
                while open.load(Ordering::SeqCst) < clients && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                    if last.elapsed() >= Duration::from_secs(2) {
                        assert_eq!(conn.get("/"), ok, "a request while waiting for the others");
                        last = Instant::now();
                    }
                }
                for i in 0..requests {
                    assert_eq!(conn.get("/"), ok, "request {i} with all open");
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for t in threads {
        t.join().expect("client thread");
    }
    assert_eq!(open.load(Ordering::SeqCst), clients, "all open at once");
}
