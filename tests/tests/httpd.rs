//! httpd over virtio-net and QEMU's user network, with curl and raw TCP clients: the
//! HTTP details (the site over every card is in nic_matrix.rs).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tests::site::{curl_with as curl, free_port, raw};
use tests::{Running, Vm, workspace_root};

struct Server {
    run: Running,
    port: u16,
}

/// Boots httpd with `device` as its NIC and waits until it has an address.
fn boot(cmdline: &str, device: &str, machine: &str) -> Server {
    let port = free_port();
    let vm = Vm::app("httpd")
        .machine(machine)
        .cmdline(cmdline)
        .arg("-netdev")
        .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:80"))
        .arg("-device")
        .arg(device)
        .timeout(Duration::from_secs(180));
    let mut run = vm.spawn().expect("spawn QEMU");
    run.wait_for("httpd: listening on port 80").expect("httpd listens");
    if !cmdline.contains("ip=") {
        run.wait_for("net: DHCP gave ip 10.0.2.15/24").expect("DHCP lease");
    }
    Server { run, port }
}

fn boot_default() -> Server {
    boot("", "virtio-net-pci,netdev=n0", "pc")
}

fn site() -> PathBuf {
    workspace_root().join("apps/httpd/site")
}

/// Also the idle loop's polling, which under TCG runs only when asked for.
#[test]
fn legacy_virtio_with_static_address() {
    let srv =
        boot("ip=10.0.2.15/24 gw=10.0.2.2 haltpoll=400", "virtio-net-pci,netdev=n0,disable-modern=on", "pc");
    for _ in 0..20 {
        let (head, body) = curl(srv.port, "/", &[]);
        assert!(head.starts_with("HTTP/1.1 200"));
        assert_eq!(body.len(), 612);
    }
    assert!(
        srv.run.lines.iter().any(|l| l.text.contains("idle: polls up to 400 us before halting (haltpoll=)"))
    );
    assert!(srv.run.lines.iter().any(|l| l.text.contains("virtio-net (legacy PCI)")));
    assert!(srv.run.lines.iter().any(|l| l.text.contains("ip 10.0.2.15/24 gw Some([10, 0, 2, 2]) (static)")));
}

#[test]
fn modern_only_virtio_on_q35() {
    let srv = boot("", "virtio-net-pci,netdev=n0,disable-legacy=on", "q35");
    let (head, _) = curl(srv.port, "/docs/about.html", &[]);
    assert!(head.starts_with("HTTP/1.1 200"));
    assert!(srv.run.lines.iter().any(|l| l.text.contains("virtio-net (modern PCI)")));
    // q35 has an MCFG: configuration space goes through ECAM, not the legacy ports.
    assert!(srv.run.lines.iter().any(|l| l.text.contains("pci: ECAM at 0xb0000000")));
}

#[test]
fn microvm_modern_mmio_from_the_command_line() {
    // Without ACPI, QEMU appends `virtio_mmio.device=...` to the command line.
    let port = free_port();
    let vm = Vm::app("httpd")
        .machine("microvm,acpi=off")
        .arg("-global")
        .arg("virtio-mmio.force-legacy=false")
        .arg("-netdev")
        .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:80"))
        .arg("-device")
        .arg("virtio-net-device,netdev=n0")
        .timeout(Duration::from_secs(120));
    let mut run = vm.spawn().expect("spawn QEMU");
    run.wait_for("virtio_mmio.device=").expect("QEMU passes the device on the command line");
    run.wait_for("net: virtio-net (MMIO)").expect("modern MMIO transport");
    run.wait_for("net: DHCP gave ip").expect("DHCP");
    let (head, body) = curl(port, "/logo.png", &[]);
    assert!(head.starts_with("HTTP/1.1 200"));
    assert_eq!(body, std::fs::read(site().join("logo.png")).unwrap());
}

/// Hostile clients: a slow one (a byte every 0.7 s), silent connections, binary
/// garbage and a 1 MiB request line. Others keep being served, and once the hostile
/// connections are gone the heap is back near where it was.
#[test]
fn hostile_clients_do_not_stop_service_or_leak() {
    let mut srv = boot("log=debug -- idle=3", "virtio-net-pci,netdev=n0", "pc");
    let port = srv.port;
    // Warm up: one full connection, then note the heap once it is reaped.
    let _ = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let _ = srv.run.wait_for("; heap ");
    let idle = srv.run.heap_figure().expect("a heap figure");

    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        for b in b"GET / H" {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(700));
        }
    });
    // QEMU's hostfwd accepts with a backlog of 1 (every third connect waits out a SYN
    // retransmit), so the burst of silent connections stays small.
    let silent: Vec<TcpStream> =
        (0..12).filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok()).collect();
    let reply = raw(port, &[0u8, 0xff, 0x13, 0x37, b'\r', b'\n', b'\r', b'\n']);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    let mut huge = b"GET /".to_vec();
    huge.resize(1 << 20, b'a');
    let reply = raw(port, &huge);
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    for _ in 0..20 {
        let (head, body) = curl(port, "/", &[]);
        assert!(head.starts_with("HTTP/1.1 200") && body.len() == 612);
    }
    drop(silent);
    slow.join().unwrap();
    // Idle connections time out after 3 s; give the reaper a moment after that.
    std::thread::sleep(Duration::from_secs(5));
    let _ = raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    std::thread::sleep(Duration::from_secs(1));
    let after = srv.run.heap_figure().expect("a heap figure");
    assert!(after <= idle + 128 * 1024, "heap {idle} bytes idle, {after} after the hostile clients");
}

/// One response as a strict HTTP/1.1 client reads it (RFC 9112): a status line, header
/// fields with token names, trimmed values and no control characters, CRLF line ends,
/// `Server`, `Date` and one `Connection`, and a body framed by exactly one
/// `Content-Length` (none for HEAD and 304, whose responses must then have no body).
#[derive(Debug)]
struct Response {
    status: u16,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// The value of a field that must appear at most once.
    fn field(&self, name: &str) -> Option<&str> {
        let mut values = self.fields.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let value = values.next().map(|(_, v)| v.as_str());
        assert!(values.next().is_none(), "{name} appears twice: {self:?}");
        value
    }

    fn closes(&self) -> bool {
        self.field("Connection") == Some("close")
    }
}

/// A connection that reads responses strictly and checks nothing follows them.
struct Client {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client { stream, pending: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads more bytes into `pending`; false at the end of the stream.
    fn fill(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(e) => panic!("reading a response: {e} (got {:?})", String::from_utf8_lossy(&self.pending)),
        }
    }

    /// The next response; `to_head` says it answers a HEAD request.
    fn response(&mut self, to_head: bool) -> Response {
        let head_len = loop {
            if let Some(i) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.fill(),
                "closed before a complete head: {:?}",
                String::from_utf8_lossy(&self.pending)
            );
        };
        let head: Vec<u8> = self.pending.drain(..head_len).collect();
        let head = std::str::from_utf8(&head).expect("an ASCII head");
        let mut lines = head[..head.len() - 4].split("\r\n");
        let status_line = lines.next().unwrap();
        let (status, reason) = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.split_once(' '))
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        assert!(status.len() == 3 && !reason.is_empty(), "bad status line {status_line:?}");
        let status: u16 = status.parse().unwrap();
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        let mut fields = Vec::new();
        for line in lines {
            let (name, value) = line.split_once(": ").unwrap_or_else(|| panic!("bad field line {line:?}"));
            assert!(!name.is_empty() && name.bytes().all(token), "bad field name in {line:?}");
            assert!(
                value.trim() == value && !value.bytes().any(|b| b.is_ascii_control()),
                "bad value {line:?}"
            );
            fields.push((name.to_owned(), value.to_owned()));
        }
        let mut response = Response { status, fields, body: Vec::new() };
        assert!(response.field("Transfer-Encoding").is_none());
        assert_eq!(response.field("Server"), Some("chameleon-httpd"));
        assert!(response.field("Date").is_some_and(|d| d.ends_with(" GMT")), "{response:?}");
        assert!(matches!(response.field("Connection"), Some("close" | "keep-alive")), "{response:?}");
        let length = response.field("Content-Length").map(|n| n.parse::<usize>().expect("a decimal length"));
        if status == 304 {
            assert_eq!(length, None, "a 304 with Content-Length: {response:?}");
        }
        let length = length.unwrap_or_else(|| {
            assert!(to_head || status == 304, "no Content-Length: {response:?}");
            0
        });
        if !to_head && status != 304 {
            while self.pending.len() < length {
                assert!(self.fill(), "closed inside a body: {response:?}");
            }
            response.body = self.pending.drain(..length).collect();
        }
        response
    }

    /// Sends `request` and reads its response.
    fn exchange(&mut self, request: &[u8]) -> Response {
        self.send(request);
        self.response(request.starts_with(b"HEAD "))
    }

    /// Nothing more comes, and the server closes the connection within `within`.
    fn expect_closed(&mut self, within: Duration) {
        self.stream.set_read_timeout(Some(within)).unwrap();
        let more = self.fill();
        assert!(
            !more && self.pending.is_empty(),
            "after the last response: {:?}",
            String::from_utf8_lossy(&self.pending)
        );
    }

    /// Nothing arrives for `quiet` (the connection stays open).
    fn expect_silence(&mut self, quiet: Duration) {
        self.stream.set_read_timeout(Some(quiet)).unwrap();
        let mut buf = [0u8; 1024];
        match self.stream.read(&mut buf) {
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            other => panic!("expected silence, got {other:?}: {:?}", String::from_utf8_lossy(&buf)),
        }
        assert!(self.pending.is_empty(), "{:?}", String::from_utf8_lossy(&self.pending));
        self.stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
}

/// Sends one request on a new connection and reads its response, which must close it.
fn once(port: u16, request: &[u8]) -> Response {
    let mut client = Client::connect(port);
    let response = client.exchange(request);
    assert!(response.closes(), "{response:?}");
    client.expect_closed(Duration::from_secs(10));
    response
}

/// A body that is itself a request must never be answered as one (issue 16, item 3):
/// bodies of unwanted requests are dropped, or the connection closes.
#[test]
fn unwanted_bodies_are_never_parsed_as_requests() {
    let srv = boot_default();
    let css = std::fs::read(site().join("style.css")).unwrap();
    let smuggled = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut client = Client::connect(srv.port);
    for method in ["POST", "PUT", "DELETE"] {
        let mut request =
            format!("{method} / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", smuggled.len())
                .into_bytes();
        request.extend_from_slice(smuggled);
        let response = client.exchange(&request);
        assert_eq!((response.status, response.closes()), (405, false), "{response:?}");
        let response = client.exchange(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((response.status, &response.body), (200, &css));
    }
    // The body arriving after the response, in two pieces, is dropped as well.
    client.exchange(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 37\r\n\r\n");
    std::thread::sleep(Duration::from_millis(300));
    client.send(&smuggled[..10]);
    std::thread::sleep(Duration::from_millis(300));
    client.send(&smuggled[10..]);
    let response = client.exchange(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((response.status, &response.body), (200, &css));
    // A 64 KiB body of requests: dropped, the connection stays usable.
    let mut big = smuggled.repeat(65536 / smuggled.len());
    big.resize(65536, b'\n');
    let mut request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n".to_vec();
    request.extend_from_slice(&big);
    assert_eq!(client.exchange(&request).status, 405);
    assert_eq!(client.exchange(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n").body, css);
    client.expect_silence(Duration::from_millis(500));

    // Larger, chunked, or held back for 100-continue: answered, then closed.
    let mut request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n".to_vec();
    request.extend_from_slice(&smuggled.repeat(100));
    assert_eq!(once(srv.port, &request).status, 405);
    let chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n25\r\nGET /index.html HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\nGET /index.html HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(once(srv.port, chunked).status, 405);
    let expect = b"PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 37\r\n\r\n";
    assert_eq!(once(srv.port, expect).status, 405);
    // Ambiguous framing (RFC 9112 §6.3) and codings it cannot decode.
    for (framing, status) in [
        ("Transfer-Encoding: chunked\r\nContent-Length: 37", 400),
        ("Content-Length: 37\r\nTransfer-Encoding: chunked", 400),
        ("Transfer-Encoding: chunked, gzip", 400),
        ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", 400),
        ("Transfer-Encoding: gzip, chunked", 501),
    ] {
        let mut request = format!("POST / HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n").into_bytes();
        request.extend_from_slice(smuggled);
        assert_eq!(once(srv.port, &request).status, status, "{framing}");
    }
    // GET and HEAD with a body: refused and closed (the body is not read).
    let mut request = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 37\r\n\r\n".to_vec();
    request.extend_from_slice(smuggled);
    assert_eq!(once(srv.port, &request).status, 413);
    let mut request = b"HEAD / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(once(srv.port, &request).status, 413);
}

/// Field values, repeated Host, Connection lists, request-target forms, versions and
/// line ends (issue 16, items 4 to 6).
#[test]
fn field_values_request_lines_and_versions() {
    let srv = boot_default();
    let port = srv.port;
    let css = std::fs::read(site().join("style.css")).unwrap();
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n",
    ] {
        assert_eq!(once(port, bad).status, 400, "{:?}", String::from_utf8_lossy(bad));
    }
    let mut client = Client::connect(port);
    // obs-text (Latin-1, not UTF-8) in a field value is legal.
    let response = client.exchange(b"GET /style.css HTTP/1.1\r\nHost: x\r\nX-Name: Ren\xe9\r\n\r\n");
    assert_eq!((response.status, &response.body), (200, &css));
    // Absolute form: the path is taken from the URI.
    let response = client.exchange(b"GET http://example.com/style.css HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((response.status, &response.body), (200, &css));
    // One empty line before a request is ignored.
    let response = client.exchange(b"\r\nGET /style.css HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((response.status, &response.body), (200, &css));
    // HTTP/1.2 is served as 1.1.
    let response = client.exchange(b"GET /style.css HTTP/1.2\r\nHost: x\r\n\r\n");
    assert_eq!((response.status, response.closes()), (200, false));
    // Bare LF line ends are accepted, and answered at once.
    let started = Instant::now();
    let response = client.exchange(b"GET /style.css HTTP/1.1\nHost: x\n\n");
    assert_eq!((response.status, &response.body), (200, &css));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    client.expect_silence(Duration::from_millis(300));
    // `close` anywhere in Connection wins.
    let response =
        client.exchange(b"GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close, keep-alive\r\n\r\n");
    assert_eq!((response.status, response.closes()), (200, true));
    client.expect_closed(Duration::from_secs(10));
    // Other major versions: 505.
    assert_eq!(once(port, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n").status, 505);
    assert_eq!(once(port, b"GET / HTTP/3.0\r\nHost: x\r\n\r\n").status, 505);
}

/// A connection with nothing asked is closed without a response; a head that is not
/// complete within `header=` seconds of its first byte gets 408, even if bytes keep
/// coming; a client that stops reading is dropped after `send=` seconds.
#[test]
fn idle_header_and_send_timeouts() {
    let mut srv = boot("log=debug -- idle=1 header=2 send=2", "virtio-net-pci,netdev=n0", "pc");
    let port = srv.port;
    // Silent from the start, and silent after a kept-alive response: closed quietly.
    let started = Instant::now();
    Client::connect(port).expect_closed(Duration::from_secs(10));
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    let mut client = Client::connect(port);
    assert_eq!(client.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status, 200);
    client.expect_closed(Duration::from_secs(10));

    // A head that stops: 408 after about 2 s.
    let started = Instant::now();
    let mut client = Client::connect(port);
    client.send(b"GET / HT");
    let response = client.response(false);
    assert_eq!((response.status, response.closes()), (408, true));
    client.expect_closed(Duration::from_secs(10));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(5), "{took:?}");
    // A head that trickles in faster than `idle` still has to finish within `header`.
    let started = Instant::now();
    let mut client = Client::connect(port);
    let mut writer = client.stream.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for byte in b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if writer.write_all(&[*byte]).is_err() || started.elapsed() > Duration::from_secs(6) {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    let response = client.response(false);
    assert_eq!(response.status, 408);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    trickle.join().unwrap();

    // 300 pipelined requests for a 96 KiB file, nothing read for 6 s: more than the
    // host's socket buffers can hold, so the server's writes stop and it gives up.
    let big = std::fs::read(site().join("big.txt")).unwrap();
    let mut client = Client::connect(port);
    client.send(&b"GET /big.txt HTTP/1.1\r\nHost: x\r\n\r\n".repeat(300));
    std::thread::sleep(Duration::from_secs(6));
    srv.run.wait_for("net: send timeout").expect("the server gives up on the reader");
    client.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while client.fill() {}
    assert!(client.pending.len() < 300 * big.len(), "all {} bytes arrived", client.pending.len());
    // And it still serves.
    assert_eq!(once(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status, 200);
}

/// Range requests, validators and conditional requests, directories and path
/// normalisation (issue 16, items 8 to 10).
#[test]
fn ranges_conditionals_and_directories() {
    let srv = boot_default();
    let big = std::fs::read(site().join("big.txt")).unwrap();
    let len = big.len();
    let mut client = Client::connect(srv.port);
    let mut get =
        |extra: &str| client.exchange(format!("GET /big.txt HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes());

    let full = get("");
    assert_eq!((full.status, &full.body), (200, &big));
    assert_eq!(full.field("Accept-Ranges"), Some("bytes"));
    let etag = full.field("ETag").expect("an ETag").to_owned();
    assert!(
        etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "{etag}"
    );
    let modified = full.field("Last-Modified").expect("a Last-Modified").to_owned();
    assert!(modified.len() == 29 && modified.ends_with(" GMT"), "{modified}");

    // Single ranges.
    for (range, first, last) in
        [("0-9", 0, 9), ("100-", 100, len - 1), ("-10", len - 10, len - 1), ("5-999999999", 5, len - 1)]
    {
        let part = get(&format!("Range: bytes={range}\r\n"));
        assert_eq!(part.status, 206, "{range}");
        assert_eq!(part.field("Content-Range"), Some(format!("bytes {first}-{last}/{len}").as_str()));
        assert_eq!(part.body, &big[first..=last], "{range}");
        assert_eq!(part.field("ETag"), Some(etag.as_str()));
    }
    let none = get(&format!("Range: bytes={len}-\r\n"));
    assert_eq!(none.status, 416);
    assert_eq!(none.field("Content-Range"), Some(format!("bytes */{len}").as_str()));
    // Several ranges, malformed ones, or another unit: the whole file.
    for range in ["bytes=0-1,5-6", "bytes=9-5", "bytes=x", "lines=1-2"] {
        let whole = get(&format!("Range: {range}\r\n"));
        assert_eq!((whole.status, whole.body.len()), (200, len), "{range}");
    }

    // Conditional GETs: 304 with the validators and no body.
    for (condition, status) in [
        (format!("If-None-Match: {etag}"), 304),
        (format!("If-None-Match: W/{etag}"), 304),
        (format!("If-None-Match: \"other\", {etag}"), 304),
        ("If-None-Match: *".to_owned(), 304),
        ("If-None-Match: \"other\"".to_owned(), 200),
        (format!("If-Modified-Since: {modified}"), 304),
        ("If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT".to_owned(), 200),
        ("If-Modified-Since: yesterday".to_owned(), 200),
        // If-None-Match decides when both are present.
        (format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {modified}"), 200),
        // If-Range that holds lets the range through; one that does not asks for all.
        (format!("If-Range: {etag}\r\nRange: bytes=0-9"), 206),
        (format!("If-Range: {modified}\r\nRange: bytes=0-9"), 206),
        ("If-Range: \"other\"\r\nRange: bytes=0-9".to_owned(), 200),
        (format!("If-Range: W/{etag}\r\nRange: bytes=0-9"), 200),
    ] {
        let response = get(&format!("{condition}\r\n"));
        assert_eq!(response.status, status, "{condition}");
        if status == 304 {
            assert!(response.body.is_empty() && response.field("Content-Type").is_none(), "{response:?}");
            assert_eq!(response.field("ETag"), Some(etag.as_str()));
            assert_eq!(response.field("Last-Modified"), Some(modified.as_str()));
        }
    }
    let response = client
        .exchange(format!("HEAD /big.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n").as_bytes());
    assert_eq!(response.status, 304);
    // HEAD ignores Range, and sends no body for errors either.
    let response = client.exchange(b"HEAD /big.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n");
    assert_eq!((response.status, response.field("Content-Length")), (200, Some(len.to_string().as_str())));
    let response = client.exchange(b"HEAD /missing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.status, 404);

    // Directories: redirected to their slash (query kept), served by their index.html
    // when they have one.
    let index = std::fs::read(site().join("index.html")).unwrap();
    let about = std::fs::read(site().join("docs/about.html")).unwrap();
    let response = client.exchange(b"GET /docs HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((response.status, response.field("Location")), (301, Some("/docs/")));
    let response = client.exchange(b"GET /docs?a=1&b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((response.status, response.field("Location")), (301, Some("/docs/?a=1&b")));
    assert_eq!(client.exchange(b"GET /docs/ HTTP/1.1\r\nHost: x\r\n\r\n").status, 404);
    for (path, body) in [
        ("/", &index),
        ("/a/../index.html", &index),
        ("/./index.html", &index),
        ("/%2e%2e/index.html", &index),
        ("/docs/../docs/./about.html", &about),
        ("/docs/..", &index),
    ] {
        let response = client.exchange(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!((response.status, &response.body), (200, body), "{path}");
    }
    for path in ["/../../etc/passwd", "/index.html/", "/docs/..%2f..%2fetc", "/docs/about.html/.."] {
        let response = client.exchange(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(response.status, 404, "{path}");
    }
    client.expect_silence(Duration::from_millis(300));
}
