//! Every command handler, through the same path a connection takes (parse, execute,
//! reply), with a clock and a memory figure the tests set. Replies are shown compactly:
//! `OK`, `(error) ERR ...`, `5`, `"bulk"`, `nil`, `[a, b]`, `nil[]`.

use crate::commands::{After, execute};
use crate::resp::{Parsed, Parser};
use crate::server::{Client, Config, Env, Memory, Server};

struct Session {
    server: Server,
    client: Client,
    /// Unix ms.
    now: u64,
    used_memory: usize,
}

const START: u64 = 1_700_000_000_000;

fn session() -> Session {
    let config = Config { port: 6379, maxmemory: 0, max_bulk: 1 << 20, idle_timeout: 0 };
    let mut server = Server::new(config, 7);
    let client = server.connect();
    Session { server, client, now: START, used_memory: 1000 }
}

/// Decodes one RESP2 reply from the front of `bytes` into the compact form.
fn render(bytes: &[u8], at: &mut usize) -> String {
    let line_end = bytes[*at..].windows(2).position(|w| w == b"\r\n").expect("CRLF") + *at;
    let line = String::from_utf8_lossy(&bytes[*at + 1..line_end]).into_owned();
    let kind = bytes[*at];
    *at = line_end + 2;
    match kind {
        b'+' => line,
        b'-' => format!("(error) {line}"),
        b':' => line,
        b'$' if line == "-1" => "nil".into(),
        b'$' => {
            let len: usize = line.parse().unwrap();
            let data = &bytes[*at..*at + len];
            assert_eq!(&bytes[*at + len..*at + len + 2], b"\r\n");
            *at += len + 2;
            format!("\"{}\"", data.escape_ascii())
        }
        b'*' if line == "-1" => "nil[]".into(),
        b'*' => {
            let n: usize = line.parse().unwrap();
            let items: Vec<String> = (0..n).map(|_| render(bytes, at)).collect();
            format!("[{}]", items.join(", "))
        }
        other => panic!("not a reply: {:?}", other as char),
    }
}

impl Session {
    fn env(&self) -> Env {
        Env {
            now_ms: self.now,
            now_us: self.now * 1000 + 123,
            uptime_ms: self.now - START,
            memory: Memory { used: self.used_memory, heap: 1 << 20, ram: 64 << 20 },
        }
    }

    /// Runs raw request bytes (one or more requests) and returns the raw replies.
    fn raw(&mut self, input: &[u8]) -> (Vec<u8>, After) {
        let mut parser = Parser::new(self.server.config.max_bulk);
        let mut out = Vec::new();
        let mut at = 0;
        let mut after = After::Continue;
        while at < input.len() {
            match parser.parse(&input[at..]) {
                Ok(Parsed::Request { used }) => {
                    let req = parser.request(&input[at..]);
                    if !req.is_empty() {
                        let env = self.env();
                        after = execute(&mut self.server, &mut self.client, &env, &req, &mut out);
                    }
                    at += used;
                }
                Ok(Parsed::Incomplete { .. }) => panic!("incomplete request"),
                Err(e) => panic!("protocol error {e:?}"),
            }
        }
        (out, after)
    }

    /// Runs one command given as its arguments.
    fn args(&mut self, args: &[&[u8]]) -> String {
        let mut input = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            input.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            input.extend_from_slice(a);
            input.extend_from_slice(b"\r\n");
        }
        let (out, _) = self.raw(&input);
        let mut at = 0;
        let shown = render(&out, &mut at);
        assert_eq!(at, out.len(), "one reply per command");
        shown
    }

    /// Runs one command given as words.
    fn run(&mut self, line: &str) -> String {
        let words: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        self.args(&words)
    }

    fn check(&mut self, cases: &[(&str, &str)]) {
        for (line, expected) in cases {
            assert_eq!(self.run(line), *expected, "{line}");
        }
    }
}

#[test]
fn connection_commands() {
    let mut s = session();
    s.check(&[
        ("PING", "PONG"),
        ("ping hello", "\"hello\""),
        ("PING a b", "(error) ERR wrong number of arguments for 'ping' command"),
        ("ECHO hi", "\"hi\""),
        ("ECHO", "(error) ERR wrong number of arguments for 'echo' command"),
        ("SELECT 0", "OK"),
        ("SELECT 1", "(error) ERR DB index is out of range"),
        ("SELECT x", "(error) ERR value is not an integer or out of range"),
        ("CLIENT ID", "1"),
        ("CLIENT GETNAME", "nil"),
        ("CLIENT SETNAME app1", "OK"),
        ("CLIENT GETNAME", "\"app1\""),
        ("CLIENT SETINFO lib-name redis-py", "OK"),
        ("CLIENT SETINFO lib-ver 5.0", "OK"),
        ("CLIENT SETINFO color red", "(error) ERR Unrecognized option 'color'"),
        ("CLIENT SETNAME", "(error) ERR wrong number of arguments for 'client|setname' command"),
        ("CLIENT KILL x", "(error) ERR unknown subcommand 'KILL'. Try CLIENT HELP."),
        ("TIME", "[\"1700000000\", \"123\"]"),
        ("HELLO 3", "(error) NOPROTO unsupported protocol version"),
        ("HELLO x", "(error) ERR Protocol version is not an integer or out of range"),
        (
            "HELLO 2",
            "[\"server\", \"redis\", \"version\", \"7.0.15\", \"proto\", 2, \"id\", 1, \"mode\", \"standalone\", \
             \"role\", \"master\", \"modules\", []]",
        ),
        ("NOSUCH a b", "(error) ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' "),
        ("nosuch", "(error) ERR unknown command 'nosuch', with args beginning with: "),
    ]);
    assert_eq!(
        s.args(&[b"CLIENT", b"SETNAME", b"a b"]),
        "(error) ERR Client names cannot contain spaces, newlines or special characters."
    );
    let (out, after) = s.raw(b"QUIT\r\n");
    assert_eq!((out.as_slice(), after), (&b"+OK\r\n"[..], After::Close));
}

#[test]
fn commands_are_found_by_name_in_any_case_and_only_by_their_whole_name() {
    use crate::commands::{COMMANDS, lookup};
    for spec in COMMANDS {
        let upper = spec.name.to_ascii_uppercase();
        assert_eq!(lookup(upper.as_bytes()).map(|s| s.name), Some(spec.name));
        assert_eq!(lookup(spec.name.as_bytes()).map(|s| s.name), Some(spec.name));
    }
    assert_eq!(lookup(b"IncrByFloat").map(|s| s.name), Some("incrbyfloat"));
    for unknown in [&b""[..], b"ge", b"gett", b"get\0", b"\0get", b"incrbyfloatincrbyfloat", b"g\xc3\xa9t"] {
        assert!(lookup(unknown).is_none(), "{:?}", unknown.escape_ascii().to_string());
    }
    let mut s = session();
    assert_eq!(
        s.args(&[b"get\0", b"k"]),
        "(error) ERR unknown command 'get\0', with args beginning with: 'k' "
    );
}

#[test]
fn server_commands() {
    let mut s = session();
    s.check(&[
        ("DBSIZE", "0"),
        ("SET a 1", "OK"),
        ("SET b 2", "OK"),
        ("DBSIZE", "2"),
        ("FLUSHDB", "OK"),
        ("DBSIZE", "0"),
        ("SET a 1", "OK"),
        ("FLUSHALL ASYNC", "OK"),
        ("FLUSHALL now", "(error) ERR syntax error"),
        ("DBSIZE", "0"),
        ("CONFIG GET maxmemory", "[\"maxmemory\", \"0\"]"),
        ("CONFIG GET save", "[\"save\", \"\"]"),
        ("CONFIG GET appendonly", "[\"appendonly\", \"no\"]"),
        ("CONFIG GET max*", "[\"maxmemory\", \"0\", \"maxmemory-policy\", \"noeviction\"]"),
        ("CONFIG GET nothing", "[]"),
        ("CONFIG SET maxmemory 10mb", "OK"),
        ("CONFIG GET maxmemory", "[\"maxmemory\", \"10485760\"]"),
        ("CONFIG SET maxmemory lots", "(error) ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"),
        ("CONFIG SET save x", "(error) ERR Unknown option or number of arguments for CONFIG SET - 'save'"),
        ("CONFIG REWRITE", "(error) ERR unknown subcommand 'REWRITE'. Try CONFIG HELP."),
        ("CONFIG GET", "(error) ERR wrong number of arguments for 'config|get' command"),
    ]);
    let count = s.run("COMMAND COUNT");
    assert_eq!(count, crate::commands::COMMANDS.len().to_string());
    assert!(s.run("COMMAND INFO get").starts_with("[[\"get\", 2, [readonly, fast], 1, 1, 1,"));
    assert_eq!(s.run("COMMAND INFO nosuch"), "[nil[]]");
    assert!(s.run("COMMAND DOCS get").starts_with("[\"get\", [\"summary\", "));
    assert!(s.run("COMMAND").matches("[\"").count() >= crate::commands::COMMANDS.len());
}

#[test]
fn info_reports_the_heap_and_the_keyspace() {
    let mut s = session();
    s.used_memory = 3 * 1024 * 1024 / 2;
    s.check(&[("SET a 1", "OK"), ("SET b 2 EX 100", "OK"), ("GET a", "\"1\""), ("GET zz", "nil")]);
    let info = s.run("INFO");
    for line in [
        "# Server\\r\\nredis_version:7.0.15",
        "used_memory:1572864\\r\\n",
        "used_memory_human:1.50M\\r\\n",
        "maxmemory:0\\r\\n",
        "connected_clients:1\\r\\n",
        "keyspace_hits:1\\r\\n",
        "keyspace_misses:1\\r\\n",
        "# Keyspace\\r\\ndb0:keys=2,expires=1,avg_ttl=0",
    ] {
        assert!(info.contains(line), "{line} not in {info}");
    }
    let memory = s.run("INFO memory");
    assert!(memory.starts_with("\"# Memory") && !memory.contains("# Server"), "{memory}");
}

#[test]
fn strings() {
    let mut s = session();
    s.check(&[
        ("GET k", "nil"),
        ("SET k v", "OK"),
        ("GET k", "\"v\""),
        ("SET k w NX", "nil"),
        ("SET new w XX", "nil"),
        ("SET k w XX", "OK"),
        ("SET k x GET", "\"w\""),
        ("SET fresh x NX GET", "nil"),
        ("GET fresh", "\"x\""),
        ("SET k v NX XX", "(error) ERR syntax error"),
        ("SET k v EX 10 PX 100", "(error) ERR syntax error"),
        ("SET k v EX", "(error) ERR syntax error"),
        ("SET k v EX 10 KEEPTTL", "(error) ERR syntax error"),
        ("SET k v FOO", "(error) ERR syntax error"),
        ("SET k v EX 0", "(error) ERR invalid expire time in 'set' command"),
        ("SET k v EX -5", "(error) ERR invalid expire time in 'set' command"),
        ("SET k v EX 9223372036854775807", "(error) ERR invalid expire time in 'set' command"),
        ("SET k v EX ten", "(error) ERR value is not an integer or out of range"),
        ("SETNX k other", "0"),
        ("SETNX k2 other", "1"),
        ("SETEX k3 0 v", "(error) ERR invalid expire time in 'setex' command"),
        ("SETEX k3 10 v", "OK"),
        ("TTL k3", "10"),
        ("PSETEX k4 1500 v", "OK"),
        ("PTTL k4", "1500"),
        ("GETSET k2 newer", "\"other\""),
        ("GETSET none x", "nil"),
        ("GETDEL k2", "\"newer\""),
        ("GETDEL k2", "nil"),
        ("MSET a 1 b 2", "OK"),
        ("MSET a 1 b", "(error) ERR wrong number of arguments for 'mset' command"),
        ("MGET a b nope", "[\"1\", \"2\", nil]"),
        ("MSETNX a 5 c 3", "0"),
        ("MSETNX c 3 d 4", "1"),
        ("MGET c d", "[\"3\", \"4\"]"),
        ("LPUSH list x", "1"),
        ("MGET a list", "[\"1\", nil]"),
        ("GET list", "(error) WRONGTYPE Operation against a key holding the wrong kind of value"),
        ("SET list v GET", "(error) WRONGTYPE Operation against a key holding the wrong kind of value"),
        ("SET list v", "OK"),
        ("TYPE list", "string"),
    ]);
}

#[test]
fn set_expiry_options() {
    let mut s = session();
    let at = (START / 1000 + 100).to_string();
    let pat = (START + 5000).to_string();
    s.check(&[
        ("SET k v PX 2500", "OK"),
        ("PTTL k", "2500"),
        ("TTL k", "3"),
        ("SET k v2 KEEPTTL", "OK"),
        ("PTTL k", "2500"),
        ("SET k v3", "OK"),
        ("TTL k", "-1"),
        (&format!("SET k v EXAT {at}"), "OK"),
        ("TTL k", "100"),
        (&format!("SET k v PXAT {pat}"), "OK"),
        ("PTTL k", "5000"),
    ]);
}

#[test]
fn counters() {
    let mut s = session();
    s.check(&[
        ("INCR n", "1"),
        ("INCRBY n 10", "11"),
        ("DECR n", "10"),
        ("DECRBY n 3", "7"),
        ("INCRBY n x", "(error) ERR value is not an integer or out of range"),
        ("SET n 9223372036854775807", "OK"),
        ("INCR n", "(error) ERR increment or decrement would overflow"),
        ("SET n -9223372036854775808", "OK"),
        ("DECR n", "(error) ERR increment or decrement would overflow"),
        ("DECRBY n -9223372036854775808", "(error) ERR decrement would overflow"),
        ("SET s abc", "OK"),
        ("INCR s", "(error) ERR value is not an integer or out of range"),
        ("SET s 007", "OK"),
        ("INCR s", "(error) ERR value is not an integer or out of range"),
        ("SET f 10.50", "OK"),
        ("INCRBYFLOAT f 0.1", "\"10.6\""),
        ("INCRBYFLOAT f -5", "\"5.6\""),
        ("SET f 5.0e3", "OK"),
        ("INCRBYFLOAT f 2.0e2", "\"5200\""),
        ("INCRBYFLOAT f x", "(error) ERR value is not a valid float"),
        ("INCRBYFLOAT s 1", "\"8\""),
        ("SET s 1x", "OK"),
        ("INCRBYFLOAT s 1", "(error) ERR value is not a valid float"),
        ("INCRBYFLOAT nf 1.5", "\"1.5\""),
        ("INCRBYFLOAT f inf", "(error) ERR increment would produce NaN or Infinity"),
        ("LPUSH l a", "1"),
        ("INCR l", "(error) WRONGTYPE Operation against a key holding the wrong kind of value"),
        ("SET t 5 EX 100", "OK"),
        ("INCR t", "6"),
        ("TTL t", "100"),
    ]);
}

#[test]
fn string_ranges() {
    let mut s = session();
    s.check(&[
        ("APPEND k Hello", "5"),
        ("APPEND k World", "10"),
        ("STRLEN k", "10"),
        ("STRLEN nope", "0"),
        ("GETRANGE k 0 3", "\"Hell\""),
        ("GETRANGE k -3 -1", "\"rld\""),
        ("GETRANGE k 0 -1", "\"HelloWorld\""),
        ("GETRANGE k 10 100", "\"\""),
        ("GETRANGE k 5 3", "\"\""),
        ("GETRANGE k -1 -5", "\"\""),
        ("GETRANGE k -100 2", "\"Hel\""),
        ("GETRANGE nope 0 -1", "\"\""),
        ("GETRANGE k a 1", "(error) ERR value is not an integer or out of range"),
        ("SETRANGE k 5 Redis", "10"),
        ("GET k", "\"HelloRedis\""),
        ("SETRANGE pad 3 ab", "5"),
        ("GET pad", "\"\\x00\\x00\\x00ab\""),
        ("SETRANGE k -1 x", "(error) ERR offset is out of range"),
        ("SETRANGE k 1048576 x", "(error) ERR string exceeds maximum allowed size (proto-max-bulk-len)"),
        ("EXISTS empty", "0"),
        ("LPUSH l a", "1"),
        ("APPEND l x", "(error) WRONGTYPE Operation against a key holding the wrong kind of value"),
        ("STRLEN l", "(error) WRONGTYPE Operation against a key holding the wrong kind of value"),
    ]);
    assert_eq!(s.args(&[b"SETRANGE", b"empty", b"0", b""]), "0");
    assert_eq!(s.run("EXISTS empty"), "0", "an empty SETRANGE creates nothing");
}

#[test]
fn keys_and_expiry() {
    let mut s = session();
    s.check(&[
        ("MSET a 1 b 2 c 3", "OK"),
        ("DEL a b nope", "2"),
        ("UNLINK c", "1"),
        ("EXISTS a", "0"),
        ("SET a 1", "OK"),
        ("EXISTS a a nope", "2"),
        ("TYPE a", "string"),
        ("TYPE nope", "none"),
        ("RENAME nope x", "(error) ERR no such key"),
        ("EXPIRE a 100", "1"),
        ("RENAME a b", "OK"),
        ("TTL b", "100"),
        ("EXISTS a", "0"),
        ("RENAME b b", "OK"),
        ("TTL nope", "-2"),
        ("SET p 1", "OK"),
        ("TTL p", "-1"),
        ("PTTL p", "-1"),
        ("EXPIRE p 10 NX", "1"),
        ("EXPIRE p 20 NX", "0"),
        ("EXPIRE p 20 XX", "1"),
        ("EXPIRE p 5 GT", "0"),
        ("EXPIRE p 30 GT", "1"),
        ("EXPIRE p 50 LT", "0"),
        ("EXPIRE p 15 LT", "1"),
        ("TTL p", "15"),
        ("EXPIRE p 1 NX XX", "(error) ERR NX and XX, GT or LT options at the same time are not compatible"),
        ("EXPIRE p 1 GT LT", "(error) ERR GT and LT options at the same time are not compatible"),
        ("EXPIRE p 1 SOON", "(error) ERR Unsupported option SOON"),
        ("EXPIRE p x", "(error) ERR value is not an integer or out of range"),
        ("EXPIRE p 9223372036854775807", "(error) ERR invalid expire time in 'expire' command"),
        ("PERSIST p", "1"),
        ("PERSIST p", "0"),
        ("EXPIRE p 10 XX", "0"),
        ("EXPIRE p 10 LT", "1"),
        ("PEXPIRE p 1234", "1"),
        ("PTTL p", "1234"),
        ("EXPIRE nope 10", "0"),
        ("EXPIRE p 0", "1"),
        ("EXISTS p", "0"),
    ]);
    let at = START / 1000 + 50;
    s.check(&[
        ("SET q 1", "OK"),
        (&format!("EXPIREAT q {at}"), "1"),
        ("TTL q", "50"),
        (&format!("PEXPIREAT q {}", START + 700), "1"),
        ("PTTL q", "700"),
        (&format!("EXPIREAT q {}", START / 1000 - 1), "1"),
        ("EXISTS q", "0"),
    ]);
}

#[test]
fn keys_expire_lazily_as_the_clock_moves() {
    let mut s = session();
    s.check(&[("SET k v EX 10", "OK"), ("SET keep v", "OK")]);
    s.now += 4_000;
    s.check(&[("TTL k", "6"), ("PTTL k", "6000")]);
    s.now += 5_999;
    s.check(&[("PTTL k", "1"), ("GET k", "\"v\"")]);
    s.now += 1;
    s.check(&[
        ("GET k", "nil"),
        ("TTL k", "-2"),
        ("EXISTS k", "0"),
        ("DBSIZE", "1"),
        ("KEYS *", "[\"keep\"]"),
    ]);
    assert!(s.run("INFO stats").contains("expired_keys:1"));
}

#[test]
fn glob_keys_scan_and_random() {
    let mut s = session();
    s.check(&[("RANDOMKEY", "nil"), ("MSET user:1 a user:2 b order:1 c", "OK"), ("LPUSH user:list x", "1")]);
    let mut keys = s.run("KEYS user:?");
    assert!(keys == "[\"user:1\", \"user:2\"]" || keys == "[\"user:2\", \"user:1\"]", "{keys}");
    keys = s.run("KEYS *");
    assert_eq!(keys.matches('"').count(), 8, "{keys}");
    let random = s.run("RANDOMKEY");
    assert!(["\"user:1\"", "\"user:2\"", "\"order:1\"", "\"user:list\""].contains(&random.as_str()));
    // A full scan with a small COUNT finds every matching key once.
    let mut found = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let reply = s.run(&format!("SCAN {cursor} MATCH user:* COUNT 1"));
        let (next, rest) = reply.trim_start_matches("[\"").split_once("\", [").unwrap();
        found.extend(rest.trim_end_matches("]]").split(", ").filter(|k| !k.is_empty()).map(str::to_owned));
        cursor = next.to_string();
        if cursor == "0" {
            break;
        }
    }
    found.sort();
    assert_eq!(found, ["\"user:1\"", "\"user:2\"", "\"user:list\""]);
    assert_eq!(s.run("SCAN 0 TYPE list COUNT 100"), "[\"0\", [\"user:list\"]]");
    s.check(&[
        ("SCAN x", "(error) ERR invalid cursor"),
        ("SCAN 0 COUNT 0", "(error) ERR syntax error"),
        ("SCAN 0 MATCH", "(error) ERR syntax error"),
    ]);
}

#[test]
fn lists() {
    let mut s = session();
    s.check(&[
        ("RPUSH l a b c", "3"),
        ("LPUSH l z", "4"),
        ("LRANGE l 0 -1", "[\"z\", \"a\", \"b\", \"c\"]"),
        ("LRANGE l 1 2", "[\"a\", \"b\"]"),
        ("LRANGE l -2 100", "[\"b\", \"c\"]"),
        ("LRANGE l 5 10", "[]"),
        ("LRANGE nope 0 -1", "[]"),
        ("LLEN l", "4"),
        ("LINDEX l 0", "\"z\""),
        ("LINDEX l -1", "\"c\""),
        ("LINDEX l 9", "nil"),
        ("LINDEX l x", "(error) ERR value is not an integer or out of range"),
        ("LPOP l", "\"z\""),
        ("RPOP l", "\"c\""),
        ("LPOP l 5", "[\"a\", \"b\"]"),
        ("EXISTS l", "0"),
        ("LPOP l", "nil"),
        ("LPOP l 2", "nil[]"),
        ("RPUSH l a", "1"),
        ("LPOP l -1", "(error) ERR value is out of range, must be positive"),
        ("LPOP l 0", "[]"),
        ("RPOP l 1 2", "(error) ERR wrong number of arguments for 'rpop' command"),
        ("SET s v", "OK"),
        ("LPUSH s a", "(error) WRONGTYPE Operation against a key holding the wrong kind of value"),
        ("LLEN s", "(error) WRONGTYPE Operation against a key holding the wrong kind of value"),
    ]);
}

#[test]
fn hashes() {
    let mut s = session();
    s.check(&[
        ("HSET h f1 v1 f2 v2", "2"),
        ("HSET h f1 new", "0"),
        ("HSET h f1", "(error) ERR wrong number of arguments for 'hset' command"),
        ("HSET h f1 v f2", "(error) ERR wrong number of arguments for 'hset' command"),
        ("HGET h f1", "\"new\""),
        ("HGET h nope", "nil"),
        ("HGET nope f", "nil"),
        ("HLEN h", "2"),
        ("HEXISTS h f2", "1"),
        ("HMGET h f1 x f2", "[\"new\", nil, \"v2\"]"),
        ("HMSET h f3 v3", "OK"),
        ("HDEL h f1 f3 nope", "2"),
        ("HGETALL h", "[\"f2\", \"v2\"]"),
        ("HKEYS h", "[\"f2\"]"),
        ("HVALS h", "[\"v2\"]"),
        ("HGETALL nope", "[]"),
        ("HINCRBY h n 5", "5"),
        ("HINCRBY h n -7", "-2"),
        ("HINCRBY h f2 1", "(error) ERR hash value is not an integer"),
        ("HINCRBY h n x", "(error) ERR value is not an integer or out of range"),
        ("HSET h big 9223372036854775807", "1"),
        ("HINCRBY h big 1", "(error) ERR increment or decrement would overflow"),
        ("HDEL h f2 n big", "3"),
        ("EXISTS h", "0"),
        ("SET s v", "OK"),
        ("HGET s f", "(error) WRONGTYPE Operation against a key holding the wrong kind of value"),
        ("HSET s f v", "(error) WRONGTYPE Operation against a key holding the wrong kind of value"),
    ]);
}

#[test]
fn sets() {
    let mut s = session();
    s.check(&[
        ("SADD s a b c a", "3"),
        ("SADD s c d", "1"),
        ("SCARD s", "4"),
        ("SISMEMBER s a", "1"),
        ("SISMEMBER s z", "0"),
        ("SREM s a z", "1"),
        ("SCARD nope", "0"),
        ("SPOP nope", "nil"),
        ("SPOP nope 3", "[]"),
        ("SPOP s -1", "(error) ERR value is out of range, must be positive"),
        ("SET str v", "OK"),
        ("SADD str a", "(error) WRONGTYPE Operation against a key holding the wrong kind of value"),
    ]);
    let members = s.run("SMEMBERS s");
    assert_eq!(members.matches('"').count(), 6, "{members}");
    let one = s.run("SPOP s");
    let rest = s.run("SPOP s 5");
    assert_eq!(one.matches('"').count() + rest.matches('"').count(), 6, "{one} {rest}");
    assert!(!rest.contains(&one));
    s.check(&[("EXISTS s", "0")]);
}

#[test]
fn sorted_sets() {
    let mut s = session();
    s.check(&[
        ("ZADD z 1 a 2 b 3 c", "3"),
        ("ZADD z 1.5 a", "0"),
        ("ZADD z CH 1 a 9 d", "2"),
        ("ZRANGE z 0 -1", "[\"a\", \"b\", \"c\", \"d\"]"),
        ("ZRANGE z 0 1 WITHSCORES", "[\"a\", \"1\", \"b\", \"2\"]"),
        ("ZRANGE z 0 0 REV", "[\"d\"]"),
        ("ZRANGE z 5 9", "[]"),
        ("ZRANGE z 0 1 BYSCORE", "(error) ERR syntax error"),
        ("ZSCORE z c", "\"3\""),
        ("ZSCORE z nope", "nil"),
        ("ZCARD z", "4"),
        ("ZADD z NX 100 a 4 e", "1"),
        ("ZSCORE z a", "\"1\""),
        ("ZADD z XX 0.5 a 7 f", "0"),
        ("ZSCORE z f", "nil"),
        ("ZADD z GT 0.1 a", "0"),
        ("ZADD z LT 0.1 a", "0"),
        ("ZSCORE z a", "\"0.1\""),
        ("ZADD z INCR 2 a", "\"2.1\""),
        ("ZADD z NX INCR 2 a", "nil"),
        ("ZADD z INCR 1 a 2 b", "(error) ERR INCR option supports a single increment-element pair"),
        ("ZADD z NX XX 1 a", "(error) ERR XX and NX options at the same time are not compatible"),
        ("ZADD z GT LT 1 a", "(error) ERR GT, LT, and/or NX options at the same time are not compatible"),
        ("ZADD z 1", "(error) ERR wrong number of arguments for 'zadd' command"),
        ("ZADD z 1 a 2", "(error) ERR syntax error"),
        ("ZADD z x a", "(error) ERR value is not a valid float"),
        ("ZADD z nan a", "(error) ERR value is not a valid float"),
        ("ZADD z -inf low", "1"),
        ("ZPOPMIN z", "[\"low\", \"-inf\"]"),
        ("ZPOPMIN z 2", "[\"b\", \"2\", \"a\", \"2.1\"]"),
        ("ZREM z c e nope", "2"),
        ("ZPOPMIN z -1", "(error) ERR value is out of range, must be positive"),
        ("ZPOPMIN z 10", "[\"d\", \"9\"]"),
        ("EXISTS z", "0"),
        ("ZPOPMIN z", "[]"),
        ("ZADD z XX 1 a", "0"),
        ("EXISTS z", "0"),
        ("SET s v", "OK"),
        ("ZADD s 1 a", "(error) WRONGTYPE Operation against a key holding the wrong kind of value"),
    ]);
}

#[test]
fn maxmemory_refuses_writes_and_keeps_data() {
    let mut s = session();
    s.check(&[("CONFIG SET maxmemory 5000", "OK"), ("SET a 1", "OK"), ("LPUSH l x", "1")]);
    s.used_memory = 6000;
    const OOM: &str = "(error) OOM command not allowed when used memory > 'maxmemory'.";
    s.check(&[
        ("SET b 2", OOM),
        ("LPUSH l y", OOM),
        ("INCR a", OOM),
        ("GET a", "\"1\""),
        ("DEL l", "1"),
        ("FLUSHALL", "OK"),
    ]);
    s.used_memory = 1000;
    s.check(&[("SET b 2", "OK"), ("GET b", "\"2\"")]);
}

#[test]
fn inline_and_pipelined_requests() {
    let mut s = session();
    let (out, _) = s.raw(b"PING\r\nSET \"a key\" 'a value'\r\nGET \"a key\"\r\n\r\n*1\r\n$4\r\nPING\r\n");
    assert_eq!(out, b"+PONG\r\n+OK\r\n$7\r\na value\r\n+PONG\r\n");
    let mut pipeline = Vec::new();
    for i in 0..10_000 {
        pipeline.extend_from_slice(
            format!("*2\r\n$4\r\nINCR\r\n${}\r\nc{}\r\n", (i % 7).to_string().len() + 1, i % 7).as_bytes(),
        );
    }
    let (out, _) = s.raw(&pipeline);
    assert_eq!(out.iter().filter(|&&b| b == b':').count(), 10_000);
    s.check(&[("GET c0", "\"1429\""), ("GET c6", "\"1428\"")]);
}

#[test]
fn binary_safe_keys_and_values() {
    let mut s = session();
    assert_eq!(s.args(&[b"SET", b"k\0\r\n", b"\xff\x00\r\n"]), "OK");
    assert_eq!(s.args(&[b"GET", b"k\0\r\n"]), "\"\\xff\\x00\\r\\n\"");
    assert_eq!(s.args(&[b"STRLEN", b"k\0\r\n"]), "4");
}
