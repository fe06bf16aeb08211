//! The command table and every command's handler, with Redis's argument forms, replies
//! and error texts.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt::Write;

use hashbrown::{HashMap, HashSet};

use crate::glob;
use crate::reply::{self, FmtVec};
use crate::resp::{Request, parse_i64};
use crate::server::{Client, Env, Server};
use crate::store::{Bytes, Entry, NO_EXPIRY, NoRoom, Value, ZSet};

/// What the connection does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Continue,
    /// `QUIT`: the reply is sent, then the connection closed.
    Close,
}

/// A handler's failure: the error reply's text (without the `-`).
type Failed = &'static str;
type Outcome = Result<(), Failed>;

/// What a handler works with.
struct Ctx<'a> {
    server: &'a mut Server,
    client: &'a mut Client,
    env: &'a Env,
    out: &'a mut Vec<u8>,
    after: After,
}

/// Command flags (as `COMMAND` lists them).
const WRITE: u8 = 1;
const READONLY: u8 = 2;
/// Refused when memory is over `maxmemory`.
const DENYOOM: u8 = 4;
const FAST: u8 = 8;

pub struct Spec {
    /// Lowercase, as Redis names commands in errors and `COMMAND`.
    pub name: &'static str,
    /// Redis's arity: `n` exactly n arguments (with the name), `-n` at least n.
    pub arity: i32,
    flags: u8,
    /// Key positions for `COMMAND`: first, last (-1: the last argument), step.
    keys: (i32, i32, i32),
    group: &'static str,
    summary: &'static str,
    handler: fn(&mut Ctx<'_>, &Request<'_>) -> Outcome,
}

impl core::fmt::Debug for Spec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name)
    }
}

macro_rules! commands {
    ($($name:literal $arity:literal $flags:expr, $keys:expr, $group:literal, $handler:ident, $summary:literal;)*) => {
        /// Every command, sorted by name (looked up by binary search of `NAME_KEYS`).
        pub const COMMANDS: &[Spec] = &[
            $(Spec { name: $name, arity: $arity, flags: $flags, keys: $keys, group: $group, summary: $summary, handler: $handler },)*
        ];
    };
}

const NONE: (i32, i32, i32) = (0, 0, 0);
const ONE: (i32, i32, i32) = (1, 1, 1);
const ALL: (i32, i32, i32) = (1, -1, 1);

commands! {
    "append" 3 WRITE | DENYOOM, ONE, "string", append, "Appends a string to the value of a key.";
    "client" -2 0, NONE, "connection", client, "Connection-level commands: ID, GETNAME, SETNAME, SETINFO.";
    "command" -1 0, NONE, "server", command, "Details about the commands.";
    "config" -2 0, NONE, "server", config, "Reads or sets configuration parameters.";
    "dbsize" 1 READONLY | FAST, NONE, "server", dbsize, "Returns the number of keys.";
    "decr" 2 WRITE | DENYOOM | FAST, ONE, "string", decr, "Decrements the integer value of a key by one.";
    "decrby" 3 WRITE | DENYOOM | FAST, ONE, "string", decrby, "Decrements the integer value of a key by a number.";
    "del" -2 WRITE, ALL, "generic", del, "Deletes keys.";
    "echo" 2 FAST, NONE, "connection", echo, "Returns the given string.";
    "exists" -2 READONLY | FAST, ALL, "generic", exists, "Counts the given keys that exist.";
    "expire" -3 WRITE | FAST, ONE, "generic", expire, "Sets a key's time to live in seconds.";
    "expireat" -3 WRITE | FAST, ONE, "generic", expireat, "Sets a key's expiry as a Unix time in seconds.";
    "flushall" -1 WRITE, NONE, "server", flushdb, "Removes all keys.";
    "flushdb" -1 WRITE, NONE, "server", flushdb, "Removes all keys of the database.";
    "get" 2 READONLY | FAST, ONE, "string", get, "Returns the string value of a key.";
    "getdel" 2 WRITE | FAST, ONE, "string", getdel, "Returns the string value of a key and deletes the key.";
    "getrange" 4 READONLY, ONE, "string", getrange, "Returns a substring of a string value.";
    "getset" 3 WRITE | DENYOOM | FAST, ONE, "string", getset, "Sets a key's string value and returns its old value.";
    "hdel" -3 WRITE | FAST, ONE, "hash", hdel, "Deletes fields of a hash.";
    "hello" -1 FAST, NONE, "connection", hello, "Handshakes with the server (protocol 2 only).";
    "hexists" 3 READONLY | FAST, ONE, "hash", hexists, "Tells whether a hash field exists.";
    "hget" 3 READONLY | FAST, ONE, "hash", hget, "Returns the value of a hash field.";
    "hgetall" 2 READONLY, ONE, "hash", hgetall, "Returns all fields and values of a hash.";
    "hincrby" 4 WRITE | DENYOOM | FAST, ONE, "hash", hincrby, "Increments the integer value of a hash field.";
    "hkeys" 2 READONLY, ONE, "hash", hkeys, "Returns the fields of a hash.";
    "hlen" 2 READONLY | FAST, ONE, "hash", hlen, "Returns the number of fields of a hash.";
    "hmget" -3 READONLY | FAST, ONE, "hash", hmget, "Returns the values of hash fields.";
    "hmset" -4 WRITE | DENYOOM | FAST, ONE, "hash", hmset, "Sets hash fields (deprecated form of HSET).";
    "hset" -4 WRITE | DENYOOM | FAST, ONE, "hash", hset, "Sets hash fields; returns how many were new.";
    "hvals" 2 READONLY, ONE, "hash", hvals, "Returns the values of a hash.";
    "incr" 2 WRITE | DENYOOM | FAST, ONE, "string", incr, "Increments the integer value of a key by one.";
    "incrby" 3 WRITE | DENYOOM | FAST, ONE, "string", incrby, "Increments the integer value of a key by a number.";
    "incrbyfloat" 3 WRITE | DENYOOM | FAST, ONE, "string", incrbyfloat, "Increments the value of a key by a floating point number.";
    "info" -1 0, NONE, "server", info, "Returns information about the server.";
    "keys" 2 READONLY, NONE, "generic", keys, "Returns the keys matching a pattern.";
    "lindex" 3 READONLY, ONE, "list", lindex, "Returns an element of a list by its index.";
    "llen" 2 READONLY | FAST, ONE, "list", llen, "Returns the length of a list.";
    "lpop" -2 WRITE | FAST, ONE, "list", lpop, "Removes and returns the first elements of a list.";
    "lpush" -3 WRITE | DENYOOM | FAST, ONE, "list", lpush, "Prepends elements to a list.";
    "lrange" 4 READONLY, ONE, "list", lrange, "Returns a range of elements of a list.";
    "mget" -2 READONLY | FAST, ALL, "string", mget, "Returns the string values of keys.";
    "mset" -3 WRITE | DENYOOM, (1, -1, 2), "string", mset, "Sets the string values of keys.";
    "msetnx" -3 WRITE | DENYOOM, (1, -1, 2), "string", msetnx, "Sets the string values of keys only if none exists.";
    "persist" 2 WRITE | FAST, ONE, "generic", persist, "Removes a key's expiry.";
    "pexpire" -3 WRITE | FAST, ONE, "generic", pexpire, "Sets a key's time to live in milliseconds.";
    "pexpireat" -3 WRITE | FAST, ONE, "generic", pexpireat, "Sets a key's expiry as a Unix time in milliseconds.";
    "ping" -1 FAST, NONE, "connection", ping, "Returns PONG, or the given string.";
    "psetex" 4 WRITE | DENYOOM, ONE, "string", psetex, "Sets a key's string value and time to live in milliseconds.";
    "pttl" 2 READONLY | FAST, ONE, "generic", pttl, "Returns a key's time to live in milliseconds.";
    "quit" -1 FAST, NONE, "connection", quit, "Closes the connection.";
    "randomkey" 1 READONLY, NONE, "generic", randomkey, "Returns a random key.";
    "rename" 3 WRITE, (1, 2, 1), "generic", rename, "Renames a key.";
    "rpop" -2 WRITE | FAST, ONE, "list", rpop, "Removes and returns the last elements of a list.";
    "rpush" -3 WRITE | DENYOOM | FAST, ONE, "list", rpush, "Appends elements to a list.";
    "sadd" -3 WRITE | DENYOOM | FAST, ONE, "set", sadd, "Adds members to a set.";
    "scan" -2 READONLY, NONE, "generic", scan, "Iterates over the keys.";
    "scard" 2 READONLY | FAST, ONE, "set", scard, "Returns the number of members of a set.";
    "select" 2 FAST, NONE, "connection", select, "Selects the database (only 0 exists).";
    "set" -3 WRITE | DENYOOM, ONE, "string", set, "Sets the string value of a key, with options.";
    "setex" 4 WRITE | DENYOOM, ONE, "string", setex, "Sets a key's string value and time to live in seconds.";
    "setnx" 3 WRITE | DENYOOM | FAST, ONE, "string", setnx, "Sets a key's string value only if the key does not exist.";
    "setrange" 4 WRITE | DENYOOM, ONE, "string", setrange, "Overwrites part of a string value from an offset.";
    "sismember" 3 READONLY | FAST, ONE, "set", sismember, "Tells whether a member belongs to a set.";
    "smembers" 2 READONLY, ONE, "set", smembers, "Returns the members of a set.";
    "spop" -2 WRITE | FAST, ONE, "set", spop, "Removes and returns random members of a set.";
    "srem" -3 WRITE | FAST, ONE, "set", srem, "Removes members from a set.";
    "strlen" 2 READONLY | FAST, ONE, "string", strlen, "Returns the length of a string value.";
    "time" 1 FAST, NONE, "server", time, "Returns the server's time.";
    "ttl" 2 READONLY | FAST, ONE, "generic", ttl, "Returns a key's time to live in seconds.";
    "type" 2 READONLY | FAST, ONE, "generic", type_, "Returns the type of a key's value.";
    "unlink" -2 WRITE | FAST, ALL, "generic", del, "Deletes keys.";
    "zadd" -4 WRITE | DENYOOM | FAST, ONE, "sorted_set", zadd, "Adds members to a sorted set, or updates their scores.";
    "zcard" 2 READONLY | FAST, ONE, "sorted_set", zcard, "Returns the number of members of a sorted set.";
    "zpopmin" -2 WRITE | FAST, ONE, "sorted_set", zpopmin, "Removes and returns the members with the lowest scores.";
    "zrange" -4 READONLY, ONE, "sorted_set", zrange, "Returns a range of members by index.";
    "zrem" -3 WRITE | FAST, ONE, "sorted_set", zrem, "Removes members from a sorted set.";
    "zscore" 3 READONLY | FAST, ONE, "sorted_set", zscore, "Returns the score of a member.";
}

/// Longest command name.
const NAME_MAX: usize = 16;

/// A command name as one integer: its bytes big-endian, each with bit 5 set (which
/// lowercases a letter and makes any other byte a non-letter: command names are all
/// letters, so the case is folded and nothing else can match), zero-padded to
/// `NAME_MAX`. The integers sort as the names do, so the lookup (once per request)
/// compares integers instead of calling `memcmp` per step of the search, which was most
/// of a pipelined PING's time.
const fn name_key(name: &[u8]) -> u128 {
    let mut bytes = [0u8; NAME_MAX];
    let mut i = 0;
    while i < name.len() && i < NAME_MAX {
        bytes[i] = name[i] | 0x20;
        i += 1;
    }
    u128::from_be_bytes(bytes)
}

/// `COMMANDS`' names as `name_key`s, in the same order; checked when compiled to be
/// strictly increasing (the table sorted, no name twice) and every name to fit.
static NAME_KEYS: [u128; COMMANDS.len()] = {
    let mut keys = [0u128; COMMANDS.len()];
    let mut i = 0;
    while i < COMMANDS.len() {
        let name = COMMANDS[i].name.as_bytes();
        assert!(!name.is_empty() && name.len() <= NAME_MAX);
        let mut j = 0;
        while j < name.len() {
            assert!(name[j].is_ascii_lowercase(), "command names are lowercase letters");
            j += 1;
        }
        keys[i] = name_key(name);
        assert!(i == 0 || keys[i - 1] < keys[i], "COMMANDS must be sorted by name");
        i += 1;
    }
    keys
};

/// The command named `name`, in any letter case.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    if name.is_empty() || name.len() > NAME_MAX {
        return None;
    }
    NAME_KEYS.binary_search(&name_key(name)).ok().map(|i| &COMMANDS[i])
}

fn arity_ok(arity: i32, argc: usize) -> bool {
    if arity >= 0 { argc == arity as usize } else { argc >= arity.unsigned_abs() as usize }
}

/// Runs one request (at least one argument) and appends its reply to `out`.
pub fn execute(
    server: &mut Server,
    client: &mut Client,
    env: &Env,
    req: &Request<'_>,
    out: &mut Vec<u8>,
) -> After {
    server.stats.commands_processed += 1;
    server.stats.peak_memory = server.stats.peak_memory.max(env.memory.used);
    let name = req.arg(0);
    let Some(spec) = lookup(name) else {
        unknown_command(req, out);
        return After::Continue;
    };
    if !arity_ok(spec.arity, req.len()) {
        let _ = write!(FmtVec(out), "-ERR wrong number of arguments for '{}' command\r\n", spec.name);
        return After::Continue;
    }
    if spec.flags & DENYOOM != 0 && server.over_maxmemory(&env.memory) {
        reply::error(out, reply::OOM);
        return After::Continue;
    }
    let mut ctx = Ctx { server, client, env, out, after: After::Continue };
    if let Err(message) = (spec.handler)(&mut ctx, req) {
        reply::error(ctx.out, message);
    }
    ctx.after
}

/// Redis's text: the name as sent, then up to 128 bytes of the first arguments quoted.
fn unknown_command(req: &Request<'_>, out: &mut Vec<u8>) {
    let mut text = Vec::new();
    text.extend_from_slice(b"ERR unknown command '");
    text.extend_from_slice(&req.arg(0)[..req.arg(0).len().min(128)]);
    text.extend_from_slice(b"', with args beginning with: ");
    let mut args = Vec::new();
    for arg in req.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push(b'\'');
        args.extend_from_slice(&arg[..arg.len().min(room)]);
        args.extend_from_slice(b"' ");
    }
    text.extend_from_slice(&args);
    out.push(b'-');
    out.extend(text.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

fn unknown_subcommand(ctx: &mut Ctx<'_>, sub: &[u8], container: &str) -> Outcome {
    let out = &mut *ctx.out;
    out.extend_from_slice(b"-ERR unknown subcommand '");
    out.extend(sub.iter().take(128).map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    let _ = write!(FmtVec(out), "'. Try {container} HELP.\r\n");
    Ok(())
}

fn sub_arity(ctx: &mut Ctx<'_>, ok: bool, name: &str) -> Result<bool, Failed> {
    if !ok {
        let _ = write!(FmtVec(ctx.out), "-ERR wrong number of arguments for '{name}' command\r\n");
    }
    Ok(ok)
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

fn int(arg: &[u8]) -> Result<i64, Failed> {
    parse_i64(arg).ok_or(reply::NOT_INTEGER)
}

/// A float as Redis's `string2ld`/`strtod` take it: no blanks, no NaN.
fn float(arg: &[u8]) -> Option<f64> {
    let text = core::str::from_utf8(arg).ok()?;
    if text.is_empty() || text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let value: f64 = match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => text.parse().ok()?,
    };
    (!value.is_nan()).then_some(value)
}

/// A count argument that must not be negative (`LPOP`, `SPOP`, `ZPOPMIN`).
fn count(arg: &[u8]) -> Result<usize, Failed> {
    match parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n as usize),
        _ => Err(reply::MUST_BE_POSITIVE),
    }
}

fn no_room(_: NoRoom) -> Failed {
    reply::OOM
}

/// A value's bytes copied for the store. Growth the heap cannot give (a long value, or a
/// collection doubling) is refused as over `maxmemory` rather than stopping the kernel:
/// every allocation on a write path whose size a client decides goes through a `try_`
/// reservation.
fn stored(bytes: &[u8]) -> Result<Vec<u8>, Failed> {
    let mut v = Vec::new();
    v.try_reserve_exact(bytes.len()).map_err(|_| reply::OOM)?;
    v.extend_from_slice(bytes);
    Ok(v)
}

/// Resolves Redis's `start`/`stop` index pair against `len`: `None` for an empty range.
fn index_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let stop = if stop < 0 { len + stop } else { stop.min(len - 1) };
    (start <= stop && start < len && stop >= 0).then_some((start as usize, stop as usize))
}

// ---- Lookups shared by the handlers ----

/// The live entry for `key`, counted as a hit or a miss.
fn read<'a>(server: &'a mut Server, key: &[u8], now: u64) -> Option<&'a mut Entry> {
    let Server { db, stats, .. } = server;
    let found = db.get(key, now);
    match found.is_some() {
        true => stats.keyspace_hits += 1,
        false => stats.keyspace_misses += 1,
    }
    found
}

macro_rules! typed {
    ($entry:expr, $variant:ident) => {
        match $entry {
            None => None,
            Some(Entry { value: Value::$variant(v), .. }) => Some(v),
            Some(_) => return Err(reply::WRONGTYPE),
        }
    };
}

// ---- Connection and server ----

fn ping(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    match req.len() {
        1 => reply::simple(ctx.out, "PONG"),
        2 => reply::bulk(ctx.out, req.arg(1)),
        _ => {
            let _ = write!(FmtVec(ctx.out), "-ERR wrong number of arguments for 'ping' command\r\n");
        }
    }
    Ok(())
}

fn echo(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    reply::bulk(ctx.out, req.arg(1));
    Ok(())
}

fn quit(ctx: &mut Ctx<'_>, _: &Request<'_>) -> Outcome {
    reply::ok(ctx.out);
    ctx.after = After::Close;
    Ok(())
}

fn select(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    match int(req.arg(1))? {
        0 => reply::ok(ctx.out),
        _ => return Err("ERR DB index is out of range"),
    }
    Ok(())
}

fn dbsize(ctx: &mut Ctx<'_>, _: &Request<'_>) -> Outcome {
    reply::integer(ctx.out, ctx.server.db.len() as i64);
    Ok(())
}

fn flushdb(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    match req.len() {
        1 => {}
        2 if eq(req.arg(1), "async") || eq(req.arg(1), "sync") => {}
        _ => return Err(reply::SYNTAX),
    }
    ctx.server.db.clear();
    reply::ok(ctx.out);
    Ok(())
}

fn time(ctx: &mut Ctx<'_>, _: &Request<'_>) -> Outcome {
    reply::array(ctx.out, 2);
    reply::bulk_integer(ctx.out, (ctx.env.now_us / 1_000_000) as i64);
    reply::bulk_integer(ctx.out, (ctx.env.now_us % 1_000_000) as i64);
    Ok(())
}

/// The Redis version this server answers as: clients pick features by it.
pub const REDIS_VERSION: &str = "7.0.15";

fn hello(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    if req.len() >= 2 {
        match parse_i64(req.arg(1)) {
            Some(2) => {}
            Some(_) => return Err("NOPROTO unsupported protocol version"),
            None => return Err("ERR Protocol version is not an integer or out of range"),
        }
    }
    let mut i = 2;
    let mut name = None;
    while i < req.len() {
        let more = req.len() - i - 1;
        if eq(req.arg(i), "setname") && more >= 1 {
            name = Some(req.arg(i + 1));
            i += 2;
        } else if eq(req.arg(i), "auth") && more >= 2 {
            return Err("WRONGPASS invalid username-password pair or user is disabled.");
        } else {
            let out = &mut *ctx.out;
            out.extend_from_slice(b"-ERR Syntax error in HELLO option '");
            out.extend(req.arg(i).iter().take(128).map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
            out.extend_from_slice(b"'\r\n");
            return Ok(());
        }
    }
    if let Some(name) = name {
        valid_name(name, "ERR Client names cannot contain spaces, newlines or special characters.")?;
        ctx.client.name = (!name.is_empty()).then(|| name.to_vec());
    }
    let out = &mut *ctx.out;
    reply::array(out, 14);
    for (field, value) in [("server", "redis"), ("version", REDIS_VERSION)] {
        reply::bulk(out, field.as_bytes());
        reply::bulk(out, value.as_bytes());
    }
    reply::bulk(out, b"proto");
    reply::integer(out, 2);
    reply::bulk(out, b"id");
    reply::integer(out, ctx.client.id as i64);
    for (field, value) in [("mode", "standalone"), ("role", "master")] {
        reply::bulk(out, field.as_bytes());
        reply::bulk(out, value.as_bytes());
    }
    reply::bulk(out, b"modules");
    reply::array(out, 0);
    Ok(())
}

/// Client names and library names: printable ASCII without blanks.
fn valid_name(name: &[u8], error: Failed) -> Outcome {
    match name.iter().all(|&b| (b'!'..=b'~').contains(&b)) {
        true => Ok(()),
        false => Err(error),
    }
}

fn client(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let sub = req.arg(1);
    if eq(sub, "id") {
        if sub_arity(ctx, req.len() == 2, "client|id")? {
            reply::integer(ctx.out, ctx.client.id as i64);
        }
    } else if eq(sub, "getname") {
        if sub_arity(ctx, req.len() == 2, "client|getname")? {
            reply::bulk_or_null(ctx.out, ctx.client.name.as_deref());
        }
    } else if eq(sub, "setname") {
        if sub_arity(ctx, req.len() == 3, "client|setname")? {
            let name = req.arg(2);
            valid_name(name, "ERR Client names cannot contain spaces, newlines or special characters.")?;
            ctx.client.name = (!name.is_empty()).then(|| name.to_vec());
            reply::ok(ctx.out);
        }
    } else if eq(sub, "setinfo") {
        if sub_arity(ctx, req.len() == 4, "client|setinfo")? {
            let (attr, value) = (req.arg(2), req.arg(3));
            let slot = if eq(attr, "lib-name") {
                valid_name(value, "ERR lib-name cannot contain spaces, newlines or special characters.")?;
                &mut ctx.client.lib_name
            } else if eq(attr, "lib-ver") {
                valid_name(value, "ERR lib-ver cannot contain spaces, newlines or special characters.")?;
                &mut ctx.client.lib_ver
            } else {
                let out = &mut *ctx.out;
                out.extend_from_slice(b"-ERR Unrecognized option '");
                out.extend(attr.iter().take(128).map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
                out.extend_from_slice(b"'\r\n");
                return Ok(());
            };
            *slot = (!value.is_empty()).then(|| value.to_vec());
            reply::ok(ctx.out);
        }
    } else {
        return unknown_subcommand(ctx, sub, "CLIENT");
    }
    Ok(())
}

/// The parameters `CONFIG GET` knows, with their values now.
fn config_params(ctx: &Ctx<'_>) -> [(&'static str, u64); 6] {
    let c = &ctx.server.config;
    [
        ("databases", 1),
        ("maxmemory", c.maxmemory),
        ("port", u64::from(c.port)),
        ("proto-max-bulk-len", c.max_bulk as u64),
        ("timeout", c.idle_timeout),
        ("hz", 10),
    ]
}

/// Parameters with a fixed text value: no persistence, no eviction.
const CONFIG_TEXT: [(&str, &str); 4] =
    [("save", ""), ("appendonly", "no"), ("maxmemory-policy", "noeviction"), ("bind", "*")];

/// Redis's memory sizes: a number with an optional unit (`k`, `kb`, `m`, `mb`, `g`, `gb`:
/// the `b` forms are powers of 1024).
pub fn memory_size(text: &[u8]) -> Option<u64> {
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    let number: u64 = core::str::from_utf8(&text[..digits]).ok()?.parse().ok()?;
    let unit: u64 = match text[digits..].to_ascii_lowercase().as_slice() {
        b"" | b"b" => 1,
        b"k" => 1000,
        b"kb" => 1024,
        b"m" => 1000 * 1000,
        b"mb" => 1024 * 1024,
        b"g" => 1000 * 1000 * 1000,
        b"gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(unit)
}

fn config(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let sub = req.arg(1);
    if eq(sub, "get") {
        if !sub_arity(ctx, req.len() >= 3, "config|get")? {
            return Ok(());
        }
        let mut pairs: Vec<(&str, Vec<u8>)> = Vec::new();
        let numbers = config_params(ctx);
        for pattern in req.iter().skip(2) {
            let lower = pattern.to_ascii_lowercase();
            let mut found = |name: &'static str, value: Vec<u8>| {
                if glob::matches(&lower, name.as_bytes()) && !pairs.iter().any(|(n, _)| *n == name) {
                    pairs.push((name, value));
                }
            };
            for (name, value) in numbers {
                let mut text = Vec::new();
                reply::decimal(&mut text, value as i64);
                found(name, text);
            }
            for (name, value) in CONFIG_TEXT {
                found(name, value.as_bytes().to_vec());
            }
        }
        reply::array(ctx.out, pairs.len() * 2);
        for (name, value) in pairs {
            reply::bulk(ctx.out, name.as_bytes());
            reply::bulk(ctx.out, &value);
        }
    } else if eq(sub, "set") {
        if !sub_arity(ctx, req.len() >= 4 && req.len().is_multiple_of(2), "config|set")? {
            return Ok(());
        }
        if req.len() == 4 && eq(req.arg(2), "maxmemory") {
            let bytes = memory_size(req.arg(3)).ok_or(
                "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value",
            )?;
            ctx.server.config.maxmemory = bytes;
            reply::ok(ctx.out);
        } else {
            let out = &mut *ctx.out;
            out.extend_from_slice(b"-ERR Unknown option or number of arguments for CONFIG SET - '");
            out.extend(req.arg(2).iter().take(128).map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
            out.extend_from_slice(b"'\r\n");
        }
    } else if eq(sub, "resetstat") {
        if sub_arity(ctx, req.len() == 2, "config|resetstat")? {
            ctx.server.stats = Default::default();
            ctx.server.db.expired = 0;
            reply::ok(ctx.out);
        }
    } else {
        return unknown_subcommand(ctx, sub, "CONFIG");
    }
    Ok(())
}

/// One command's `COMMAND INFO` entry (Redis 7's ten fields).
fn command_info(out: &mut Vec<u8>, spec: &Spec) {
    reply::array(out, 10);
    reply::bulk(out, spec.name.as_bytes());
    reply::integer(out, i64::from(spec.arity));
    let flags: Vec<&str> = [(WRITE, "write"), (READONLY, "readonly"), (DENYOOM, "denyoom"), (FAST, "fast")]
        .into_iter()
        .filter(|(bit, _)| spec.flags & bit != 0)
        .map(|(_, name)| name)
        .collect();
    reply::array(out, flags.len());
    for flag in flags {
        reply::simple(out, flag);
    }
    let (first, last, step) = spec.keys;
    reply::integer(out, i64::from(first));
    reply::integer(out, i64::from(last));
    reply::integer(out, i64::from(step));
    for _ in 0..4 {
        // ACL categories, tips, key specifications, subcommands: none given.
        reply::array(out, 0);
    }
}

fn command_docs(out: &mut Vec<u8>, spec: &Spec) {
    reply::bulk(out, spec.name.as_bytes());
    reply::array(out, 4);
    reply::bulk(out, b"summary");
    reply::bulk(out, spec.summary.as_bytes());
    reply::bulk(out, b"group");
    reply::bulk(out, spec.group.as_bytes());
}

fn command(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    if req.len() == 1 {
        reply::array(ctx.out, COMMANDS.len());
        for spec in COMMANDS {
            command_info(ctx.out, spec);
        }
        return Ok(());
    }
    let sub = req.arg(1);
    if eq(sub, "count") {
        if sub_arity(ctx, req.len() == 2, "command|count")? {
            reply::integer(ctx.out, COMMANDS.len() as i64);
        }
    } else if eq(sub, "info") {
        let names: Vec<Option<&Spec>> = req.iter().skip(2).map(lookup).collect();
        if req.len() == 2 {
            reply::array(ctx.out, COMMANDS.len());
            COMMANDS.iter().for_each(|spec| command_info(ctx.out, spec));
        } else {
            reply::array(ctx.out, names.len());
            for spec in names {
                match spec {
                    Some(spec) => command_info(ctx.out, spec),
                    None => reply::null_array(ctx.out),
                }
            }
        }
    } else if eq(sub, "docs") {
        let specs: Vec<&Spec> = match req.len() {
            2 => COMMANDS.iter().collect(),
            _ => req.iter().skip(2).filter_map(lookup).collect(),
        };
        reply::array(ctx.out, specs.len() * 2);
        for spec in specs {
            command_docs(ctx.out, spec);
        }
    } else {
        return unknown_subcommand(ctx, sub, "COMMAND");
    }
    Ok(())
}

/// Redis's `bytesToHuman`: `512B`, `1.50K`, `12.00M`, `1.00G`.
fn human(out: &mut Vec<u8>, bytes: u64) {
    let b = bytes as f64;
    let _ = match bytes {
        0..1024 => write!(FmtVec(out), "{bytes}B"),
        1024..1_048_576 => write!(FmtVec(out), "{:.2}K", b / 1024.0),
        1_048_576..1_073_741_824 => write!(FmtVec(out), "{:.2}M", b / 1_048_576.0),
        _ => write!(FmtVec(out), "{:.2}G", b / 1_073_741_824.0),
    };
}

fn info(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    const SECTIONS: [&str; 5] = ["server", "clients", "memory", "stats", "keyspace"];
    let wanted = |section: &str| {
        req.len() == 1
            || req
                .iter()
                .skip(1)
                .any(|a| eq(a, section) || eq(a, "all") || eq(a, "default") || eq(a, "everything"))
    };
    let (server, env) = (&*ctx.server, ctx.env);
    let mut text: Vec<u8> = Vec::new();
    for section in SECTIONS.into_iter().filter(|s| wanted(s)) {
        if !text.is_empty() {
            text.extend_from_slice(b"\r\n");
        }
        let mut w = FmtVec(&mut text);
        let _ = match section {
            "server" => write!(
                w,
                "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\nos:Chameleon unikernel x86_64\r\n\
                 arch_bits:64\r\nmultiplexing_api:async\r\nprocess_id:1\r\ntcp_port:{}\r\nserver_time_usec:{}\r\n\
                 uptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:10\r\nexecutable:kv\r\n",
                server.config.port,
                env.now_us,
                env.uptime_ms / 1000,
                env.uptime_ms / 86_400_000
            ),
            "clients" => write!(
                w,
                "# Clients\r\nconnected_clients:{}\r\nblocked_clients:0\r\ntracking_clients:0\r\n",
                server.connected_clients
            ),
            "memory" => {
                let m = env.memory;
                let _ = write!(w, "# Memory\r\nused_memory:{}\r\nused_memory_human:", m.used);
                human(w.0, m.used as u64);
                let _ =
                    write!(w, "\r\nused_memory_peak:{}\r\nused_memory_peak_human:", server.stats.peak_memory);
                human(w.0, server.stats.peak_memory as u64);
                let _ = write!(
                    w,
                    "\r\nused_memory_heap:{}\r\nused_memory_keyspace_table:{}\r\ntotal_system_memory:{}\r\n\
                     total_system_memory_human:",
                    m.heap,
                    server.db.table_bytes(),
                    m.ram
                );
                human(w.0, m.ram);
                let _ = write!(w, "\r\nmaxmemory:{}\r\nmaxmemory_human:", server.config.maxmemory);
                human(w.0, server.config.maxmemory);
                write!(w, "\r\nmaxmemory_policy:noeviction\r\nmem_allocator:talc\r\n")
            }
            "stats" => write!(
                w,
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
                 rejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:0\r\nkeyspace_hits:{}\r\n\
                 keyspace_misses:{}\r\n",
                server.stats.connections_received,
                server.stats.commands_processed,
                server.stats.rejected_connections,
                server.db.expired,
                server.stats.keyspace_hits,
                server.stats.keyspace_misses
            ),
            _ => {
                let _ = write!(w, "# Keyspace\r\n");
                if !server.db.is_empty() {
                    let _ = write!(
                        w,
                        "db0:keys={},expires={},avg_ttl=0\r\n",
                        server.db.len(),
                        server.db.volatile()
                    );
                }
                Ok(())
            }
        };
    }
    reply::bulk(ctx.out, &text);
    Ok(())
}

// ---- Keys ----

fn del(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let now = ctx.env.now_ms;
    let removed = req.iter().skip(1).filter(|key| ctx.server.db.delete(key, now)).count();
    reply::integer(ctx.out, removed as i64);
    Ok(())
}

fn exists(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let now = ctx.env.now_ms;
    let found = req.iter().skip(1).filter(|key| ctx.server.db.contains(key, now)).count();
    reply::integer(ctx.out, found as i64);
    Ok(())
}

fn type_(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let name = ctx.server.db.get(req.arg(1), ctx.env.now_ms).map_or("none", |e| e.value.type_name());
    reply::simple(ctx.out, name);
    Ok(())
}

fn rename(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let (from, to) = (req.arg(1), req.arg(2));
    let now = ctx.env.now_ms;
    if !ctx.server.db.contains(from, now) {
        return Err(reply::NO_SUCH_KEY);
    }
    if from != to {
        // Room first, so that a failure loses nothing.
        ctx.server.db.reserve_one().map_err(no_room)?;
        let entry = ctx.server.db.remove(from).ok_or(reply::NO_SUCH_KEY)?;
        ctx.server.db.set(to, entry.value, entry.expire_at).map_err(no_room)?;
    }
    reply::ok(ctx.out);
    Ok(())
}

fn keys(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let pattern = req.arg(1);
    let all = pattern == b"*";
    let found: Vec<&[u8]> =
        ctx.server.db.keys(ctx.env.now_ms).filter(|k| all || glob::matches(pattern, k)).collect();
    reply::array(ctx.out, found.len());
    for key in found {
        reply::bulk(ctx.out, key);
    }
    Ok(())
}

fn scan(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let cursor = core::str::from_utf8(req.arg(1))
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
        .ok_or("ERR invalid cursor")?;
    let (mut pattern, mut count, mut kind): (Option<&[u8]>, usize, Option<&[u8]>) = (None, 10, None);
    let mut i = 2;
    while i < req.len() {
        if i + 1 >= req.len() {
            return Err(reply::SYNTAX);
        }
        let value = req.arg(i + 1);
        if eq(req.arg(i), "match") {
            pattern = Some(value);
        } else if eq(req.arg(i), "count") {
            count = match int(value)? {
                n if n < 1 => return Err(reply::SYNTAX),
                n => n as usize,
            };
        } else if eq(req.arg(i), "type") {
            kind = Some(value);
        } else {
            return Err(reply::SYNTAX);
        }
        i += 2;
    }
    let mut found: Vec<Bytes> = Vec::new();
    let next = ctx.server.db.scan(cursor, count, ctx.env.now_ms, |e| {
        let matched = pattern.is_none_or(|p| glob::matches(p, &e.key))
            && kind.is_none_or(|k| eq(k, e.value.type_name()));
        if matched {
            found.push(e.key.clone());
        }
    });
    reply::array(ctx.out, 2);
    // Cursors stay below 2^63 (see `Db::scan`), so they are written as every integer is.
    reply::bulk_integer(ctx.out, next as i64);
    reply::array(ctx.out, found.len());
    for key in found {
        reply::bulk(ctx.out, &key);
    }
    Ok(())
}

fn randomkey(ctx: &mut Ctx<'_>, _: &Request<'_>) -> Outcome {
    let Server { db, rng, .. } = &mut *ctx.server;
    let key = db.random_key(ctx.env.now_ms, rng);
    reply::bulk_or_null(ctx.out, key.as_deref());
    Ok(())
}

/// The expiry options of `EXPIRE` and its kin (Redis 7).
fn expire_generic(ctx: &mut Ctx<'_>, req: &Request<'_>, unit_ms: i64, absolute: bool, name: &str) -> Outcome {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for option in req.iter().skip(3) {
        match () {
            _ if eq(option, "nx") => nx = true,
            _ if eq(option, "xx") => xx = true,
            _ if eq(option, "gt") => gt = true,
            _ if eq(option, "lt") => lt = true,
            _ => {
                let out = &mut *ctx.out;
                out.extend_from_slice(b"-ERR Unsupported option ");
                out.extend(option.iter().take(128).map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
                out.extend_from_slice(b"\r\n");
                return Ok(());
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return Err("ERR GT and LT options at the same time are not compatible");
    }
    let amount = int(req.arg(2))?;
    let now = ctx.env.now_ms as i64;
    let when =
        amount.checked_mul(unit_ms).and_then(|ms| if absolute { Some(ms) } else { ms.checked_add(now) });
    let Some(when) = when else {
        let _ = write!(FmtVec(ctx.out), "-ERR invalid expire time in '{name}' command\r\n");
        return Ok(());
    };
    let key = req.arg(1);
    let Some(entry) = ctx.server.db.get(key, now as u64) else {
        reply::integer(ctx.out, 0);
        return Ok(());
    };
    let current = entry.expire_at;
    let allowed = match (current == NO_EXPIRY, nx, xx, gt, lt) {
        (false, true, ..) => false,
        (true, _, true, ..) => false,
        // No expiry counts as an infinite one.
        (true, _, _, true, _) => false,
        (false, _, _, true, _) => when > current as i64,
        (false, _, _, _, true) => when < current as i64,
        _ => true,
    };
    if !allowed {
        reply::integer(ctx.out, 0);
        return Ok(());
    }
    if when <= now {
        ctx.server.db.remove(key);
        ctx.server.db.expired += 1;
    } else {
        ctx.server.db.set_expiry(key, when as u64);
    }
    reply::integer(ctx.out, 1);
    Ok(())
}

fn expire(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    expire_generic(ctx, req, 1000, false, "expire")
}

fn pexpire(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    expire_generic(ctx, req, 1, false, "pexpire")
}

fn expireat(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    expire_generic(ctx, req, 1000, true, "expireat")
}

fn pexpireat(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    expire_generic(ctx, req, 1, true, "pexpireat")
}

fn ttl_generic(ctx: &mut Ctx<'_>, req: &Request<'_>, ms: bool) -> Outcome {
    let now = ctx.env.now_ms;
    let left = match ctx.server.db.get(req.arg(1), now) {
        None => -2,
        Some(e) if e.expire_at == NO_EXPIRY => -1,
        Some(e) => {
            let left = e.expire_at.saturating_sub(now) as i64;
            if ms { left } else { (left + 500) / 1000 }
        }
    };
    reply::integer(ctx.out, left);
    Ok(())
}

fn ttl(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    ttl_generic(ctx, req, false)
}

fn pttl(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    ttl_generic(ctx, req, true)
}

fn persist(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let key = req.arg(1);
    let had = ctx.server.db.get(key, ctx.env.now_ms).is_some_and(|e| e.expire_at != NO_EXPIRY);
    if had {
        ctx.server.db.set_expiry(key, NO_EXPIRY);
    }
    reply::integer(ctx.out, i64::from(had));
    Ok(())
}

// ---- Strings ----

fn get(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let Ctx { server, out, env, .. } = ctx;
    let value = typed!(read(server, req.arg(1), env.now_ms), Str);
    reply::bulk_or_null(out, value.map(|v| &v[..]));
    Ok(())
}

fn check_size(ctx: &Ctx<'_>, len: usize) -> Outcome {
    match len <= ctx.server.config.max_bulk {
        true => Ok(()),
        false => Err(reply::TOO_BIG),
    }
}

/// `SET`'s options.
struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    /// Absolute expiry (Unix ms), if one was given.
    expire_at: Option<u64>,
}

fn set_options(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Result<Option<SetOptions>, Failed> {
    let mut o = SetOptions { nx: false, xx: false, get: false, keep_ttl: false, expire_at: None };
    let mut expiry: Option<(i64, bool, i64)> = None; // (amount, absolute, unit)
    let mut i = 3;
    while i < req.len() {
        let arg = req.arg(i);
        let has_next = i + 1 < req.len();
        if eq(arg, "nx") && !o.xx {
            o.nx = true;
        } else if eq(arg, "xx") && !o.nx {
            o.xx = true;
        } else if eq(arg, "get") {
            o.get = true;
        } else if eq(arg, "keepttl") && expiry.is_none() {
            o.keep_ttl = true;
        } else if let Some((absolute, unit)) =
            [("ex", false, 1000), ("px", false, 1), ("exat", true, 1000), ("pxat", true, 1)]
                .into_iter()
                .find(|(name, ..)| eq(arg, name))
                .map(|(_, a, u)| (a, u))
        {
            if o.keep_ttl || expiry.is_some() || !has_next {
                return Err(reply::SYNTAX);
            }
            expiry = Some((int(req.arg(i + 1))?, absolute, unit));
            i += 1;
        } else {
            return Err(reply::SYNTAX);
        }
        i += 1;
    }
    if let Some((amount, absolute, unit)) = expiry {
        let now = ctx.env.now_ms as i64;
        let when = (amount > 0)
            .then(|| amount.checked_mul(unit))
            .flatten()
            .and_then(|ms| if absolute { Some(ms) } else { ms.checked_add(now) });
        match when {
            Some(when) => o.expire_at = Some(when as u64),
            None => {
                let _ = write!(FmtVec(ctx.out), "-ERR invalid expire time in 'set' command\r\n");
                return Ok(None);
            }
        }
    }
    Ok(Some(o))
}

fn set(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let Some(o) = set_options(ctx, req)? else { return Ok(()) };
    let (key, value) = (req.arg(1), req.arg(2));
    check_size(ctx, value.len())?;
    let now = ctx.env.now_ms;
    let (exists, old_expiry, old) = match ctx.server.db.get(key, now) {
        None => (false, NO_EXPIRY, None),
        Some(Entry { value: Value::Str(v), expire_at, .. }) => (true, *expire_at, o.get.then(|| v.clone())),
        Some(_) if o.get => return Err(reply::WRONGTYPE),
        Some(e) => (true, e.expire_at, None),
    };
    let apply = !(o.nx && exists || o.xx && !exists);
    if apply {
        let expire_at = match (o.expire_at, o.keep_ttl) {
            (Some(at), _) => at,
            (None, true) => old_expiry,
            (None, false) => NO_EXPIRY,
        };
        ctx.server.db.set(key, Value::Str(stored(value)?), expire_at).map_err(no_room)?;
    }
    match (o.get, apply) {
        (true, _) => reply::bulk_or_null(ctx.out, old.as_deref()),
        (false, true) => reply::ok(ctx.out),
        (false, false) => reply::null(ctx.out),
    }
    Ok(())
}

fn setnx(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let (key, value) = (req.arg(1), req.arg(2));
    check_size(ctx, value.len())?;
    let exists = ctx.server.db.contains(key, ctx.env.now_ms);
    if !exists {
        ctx.server.db.set(key, Value::Str(stored(value)?), NO_EXPIRY).map_err(no_room)?;
    }
    reply::integer(ctx.out, i64::from(!exists));
    Ok(())
}

fn setex_generic(ctx: &mut Ctx<'_>, req: &Request<'_>, unit: i64, name: &str) -> Outcome {
    let amount = int(req.arg(2))?;
    let value = req.arg(3);
    check_size(ctx, value.len())?;
    let when = (amount > 0)
        .then(|| amount.checked_mul(unit))
        .flatten()
        .and_then(|ms| ms.checked_add(ctx.env.now_ms as i64));
    let Some(when) = when else {
        let _ = write!(FmtVec(ctx.out), "-ERR invalid expire time in '{name}' command\r\n");
        return Ok(());
    };
    ctx.server.db.set(req.arg(1), Value::Str(stored(value)?), when as u64).map_err(no_room)?;
    reply::ok(ctx.out);
    Ok(())
}

fn setex(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    setex_generic(ctx, req, 1000, "setex")
}

fn psetex(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    setex_generic(ctx, req, 1, "psetex")
}

fn getset(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let (key, value) = (req.arg(1), req.arg(2));
    check_size(ctx, value.len())?;
    let old = typed!(read(ctx.server, key, ctx.env.now_ms), Str).map(|v| v.clone());
    ctx.server.db.set(key, Value::Str(stored(value)?), NO_EXPIRY).map_err(no_room)?;
    reply::bulk_or_null(ctx.out, old.as_deref());
    Ok(())
}

fn getdel(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let key = req.arg(1);
    if typed!(read(ctx.server, key, ctx.env.now_ms), Str).is_none() {
        reply::null(ctx.out);
        return Ok(());
    }
    match ctx.server.db.remove(key) {
        Some(Entry { value: Value::Str(v), .. }) => reply::bulk(ctx.out, &v),
        _ => reply::null(ctx.out),
    }
    Ok(())
}

fn mget(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let Ctx { server, out, env, .. } = ctx;
    reply::array(out, req.len() - 1);
    for key in req.iter().skip(1) {
        match server.db.get(key, env.now_ms) {
            Some(Entry { value: Value::Str(v), .. }) => {
                server.stats.keyspace_hits += 1;
                reply::bulk(out, v);
            }
            found => {
                server.stats.keyspace_misses += u64::from(found.is_none());
                reply::null(out);
            }
        }
    }
    Ok(())
}

fn mset_pairs(ctx: &mut Ctx<'_>, req: &Request<'_>, name: &str) -> Result<bool, Failed> {
    if req.len().is_multiple_of(2) {
        let _ = write!(FmtVec(ctx.out), "-ERR wrong number of arguments for '{name}' command\r\n");
        return Ok(false);
    }
    for i in (2..req.len()).step_by(2) {
        check_size(ctx, req.arg(i).len())?;
    }
    Ok(true)
}

fn mset(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    if !mset_pairs(ctx, req, "mset")? {
        return Ok(());
    }
    for i in (1..req.len()).step_by(2) {
        ctx.server.db.set(req.arg(i), Value::Str(stored(req.arg(i + 1))?), NO_EXPIRY).map_err(no_room)?;
    }
    reply::ok(ctx.out);
    Ok(())
}

fn msetnx(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    if !mset_pairs(ctx, req, "msetnx")? {
        return Ok(());
    }
    let now = ctx.env.now_ms;
    let any = (1..req.len()).step_by(2).any(|i| ctx.server.db.contains(req.arg(i), now));
    if !any {
        for i in (1..req.len()).step_by(2) {
            ctx.server.db.set(req.arg(i), Value::Str(stored(req.arg(i + 1))?), NO_EXPIRY).map_err(no_room)?;
        }
    }
    reply::integer(ctx.out, i64::from(!any));
    Ok(())
}

fn incr_generic(ctx: &mut Ctx<'_>, key: &[u8], by: i64) -> Outcome {
    let now = ctx.env.now_ms;
    let entry = ctx.server.db.get_or_insert(key, now, || Value::Str(b"0".to_vec())).map_err(no_room)?;
    let Value::Str(v) = &mut entry.value else { return Err(reply::WRONGTYPE) };
    let current = parse_i64(v).ok_or(reply::NOT_INTEGER)?;
    let new = current.checked_add(by).ok_or(reply::OVERFLOW)?;
    v.clear();
    reply::decimal(v, new);
    reply::integer(ctx.out, new);
    Ok(())
}

fn incr(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    incr_generic(ctx, req.arg(1), 1)
}

fn decr(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    incr_generic(ctx, req.arg(1), -1)
}

fn incrby(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let by = int(req.arg(2))?;
    incr_generic(ctx, req.arg(1), by)
}

fn decrby(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let by = int(req.arg(2))?;
    if by == i64::MIN {
        return Err("ERR decrement would overflow");
    }
    incr_generic(ctx, req.arg(1), -by)
}

fn incrbyfloat(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let by = float(req.arg(2)).ok_or(reply::NOT_FLOAT)?;
    let now = ctx.env.now_ms;
    let key = req.arg(1);
    // Checked before the key is created, so a refused increment leaves no key behind.
    let current = match typed!(ctx.server.db.get(key, now), Str) {
        Some(v) => float(v).ok_or(reply::NOT_FLOAT)?,
        None => 0.0,
    };
    let new = current + by;
    if !new.is_finite() {
        return Err("ERR increment would produce NaN or Infinity");
    }
    let mut text = Vec::new();
    reply::format_float_fixed(new, &mut text);
    reply::bulk(ctx.out, &text);
    let entry = ctx.server.db.get_or_insert(key, now, || Value::Str(Vec::new())).map_err(no_room)?;
    entry.value = Value::Str(text);
    Ok(())
}

fn append(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let (key, tail) = (req.arg(1), req.arg(2));
    let max = ctx.server.config.max_bulk;
    let now = ctx.env.now_ms;
    let current = typed!(ctx.server.db.get(key, now), Str).map_or(0, |v| v.len());
    if current + tail.len() > max {
        return Err(reply::TOO_BIG);
    }
    let entry = ctx.server.db.get_or_insert(key, now, || Value::Str(Vec::new())).map_err(no_room)?;
    let Value::Str(v) = &mut entry.value else { return Err(reply::WRONGTYPE) };
    v.try_reserve(tail.len()).map_err(|_| reply::OOM)?;
    v.extend_from_slice(tail);
    reply::integer(ctx.out, v.len() as i64);
    Ok(())
}

fn strlen(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let len = typed!(ctx.server.db.get(req.arg(1), ctx.env.now_ms), Str).map_or(0, |v| v.len());
    reply::integer(ctx.out, len as i64);
    Ok(())
}

fn getrange(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let (start, end) = (int(req.arg(2))?, int(req.arg(3))?);
    let Ctx { server, out, env, .. } = ctx;
    let value = typed!(server.db.get(req.arg(1), env.now_ms), Str);
    let v: &[u8] = value.map_or(&[], |v| v);
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        reply::bulk(out, b"");
        return Ok(());
    }
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { (len + end).max(0) } else { end }.min(len - 1);
    if start > end || len == 0 {
        reply::bulk(out, b"");
    } else {
        reply::bulk(out, &v[start as usize..=end as usize]);
    }
    Ok(())
}

fn setrange(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let (key, patch) = (req.arg(1), req.arg(3));
    let offset = match int(req.arg(2))? {
        n if n < 0 => return Err("ERR offset is out of range"),
        n => n as u64,
    };
    let now = ctx.env.now_ms;
    let current = typed!(ctx.server.db.get(key, now), Str).map(|v| v.len());
    if patch.is_empty() {
        reply::integer(ctx.out, current.unwrap_or(0) as i64);
        return Ok(());
    }
    if offset + patch.len() as u64 > ctx.server.config.max_bulk as u64 {
        return Err(reply::TOO_BIG);
    }
    let entry = ctx.server.db.get_or_insert(key, now, || Value::Str(Vec::new())).map_err(no_room)?;
    let Value::Str(v) = &mut entry.value else { return Err(reply::WRONGTYPE) };
    let (offset, end) = (offset as usize, offset as usize + patch.len());
    if v.len() < end {
        v.try_reserve(end - v.len()).map_err(|_| reply::OOM)?;
        v.resize(end, 0);
    }
    v[offset..end].copy_from_slice(patch);
    reply::integer(ctx.out, v.len() as i64);
    Ok(())
}

// ---- Lists ----

fn push(ctx: &mut Ctx<'_>, req: &Request<'_>, front: bool) -> Outcome {
    let now = ctx.env.now_ms;
    typed!(ctx.server.db.get(req.arg(1), now), List);
    let entry =
        ctx.server.db.get_or_insert(req.arg(1), now, || Value::List(Box::default())).map_err(no_room)?;
    let Value::List(list) = &mut entry.value else { return Err(reply::WRONGTYPE) };
    let pushed = list.push((2..req.len()).map(|i| Bytes::from(req.arg(i))), front);
    let len = list.len();
    if pushed.is_err() {
        // A list this push would have created stays uncreated.
        if len == 0 {
            ctx.server.db.remove(req.arg(1));
        }
        return Err(reply::OOM);
    }
    reply::integer(ctx.out, len as i64);
    Ok(())
}

fn lpush(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    push(ctx, req, true)
}

fn rpush(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    push(ctx, req, false)
}

fn pop(ctx: &mut Ctx<'_>, req: &Request<'_>, front: bool) -> Outcome {
    if req.len() > 3 {
        let name = if front { "lpop" } else { "rpop" };
        let _ = write!(FmtVec(ctx.out), "-ERR wrong number of arguments for '{name}' command\r\n");
        return Ok(());
    }
    let wanted = if req.len() == 3 { Some(count(req.arg(2))?) } else { None };
    let key = req.arg(1);
    let Ctx { server, out, env, .. } = ctx;
    let Some(list) = typed!(server.db.get(key, env.now_ms), List) else {
        match wanted {
            Some(_) => reply::null_array(out),
            None => reply::null(out),
        }
        return Ok(());
    };
    let take = |list: &mut crate::list::List| list.pop(front);
    match wanted {
        None => reply::bulk_or_null(out, take(list).as_deref()),
        Some(n) => {
            let n = n.min(list.len());
            reply::array(out, n);
            for _ in 0..n {
                reply::bulk_or_null(out, take(list).as_deref());
            }
        }
    }
    if list.is_empty() {
        server.db.remove(key);
    }
    Ok(())
}

fn lpop(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    pop(ctx, req, true)
}

fn rpop(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    pop(ctx, req, false)
}

fn lrange(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let (start, stop) = (int(req.arg(2))?, int(req.arg(3))?);
    let Ctx { server, out, env, .. } = ctx;
    let list = typed!(server.db.get(req.arg(1), env.now_ms), List);
    match list.and_then(|l| index_range(start, stop, l.len()).map(|r| (l, r))) {
        None => reply::array(out, 0),
        Some((list, (from, to))) => {
            reply::array(out, to - from + 1);
            for element in list.iter_from(from).take(to - from + 1) {
                reply::bulk(out, element);
            }
        }
    }
    Ok(())
}

fn llen(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let len = typed!(ctx.server.db.get(req.arg(1), ctx.env.now_ms), List).map_or(0, |l| l.len());
    reply::integer(ctx.out, len as i64);
    Ok(())
}

fn lindex(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let index = int(req.arg(2))?;
    let Ctx { server, out, env, .. } = ctx;
    let list = typed!(server.db.get(req.arg(1), env.now_ms), List);
    let element = list.and_then(|l| {
        let i = if index < 0 { l.len() as i64 + index } else { index };
        usize::try_from(i).ok().and_then(|i| l.get(i))
    });
    reply::bulk_or_null(out, element.map(|e| &**e));
    Ok(())
}

// ---- Hashes ----

fn hset_generic(ctx: &mut Ctx<'_>, req: &Request<'_>, name: &str) -> Result<Option<usize>, Failed> {
    if req.len() % 2 == 1 {
        let _ = write!(FmtVec(ctx.out), "-ERR wrong number of arguments for '{name}' command\r\n");
        return Ok(None);
    }
    let now = ctx.env.now_ms;
    typed!(ctx.server.db.get(req.arg(1), now), Hash);
    let entry =
        ctx.server.db.get_or_insert(req.arg(1), now, || Value::Hash(Box::default())).map_err(no_room)?;
    let Value::Hash(hash) = &mut entry.value else { return Err(reply::WRONGTYPE) };
    hash.try_reserve((req.len() - 2) / 2).map_err(|_| reply::OOM)?;
    let mut added = 0;
    for i in (2..req.len()).step_by(2) {
        added += usize::from(hash.insert(req.arg(i).into(), req.arg(i + 1).into()).is_none());
    }
    Ok(Some(added))
}

fn hset(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    if let Some(added) = hset_generic(ctx, req, "hset")? {
        reply::integer(ctx.out, added as i64);
    }
    Ok(())
}

fn hmset(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    if hset_generic(ctx, req, "hmset")?.is_some() {
        reply::ok(ctx.out);
    }
    Ok(())
}

fn with_hash(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(Option<&mut HashMap<Bytes, Bytes>>, &mut Vec<u8>),
) -> Outcome {
    let Ctx { server, out, env, .. } = ctx;
    let hash = typed!(server.db.get(key, env.now_ms), Hash);
    f(hash.map(|h| &mut **h), out);
    Ok(())
}

fn hget(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    with_hash(ctx, req.arg(1), |h, out| {
        reply::bulk_or_null(out, h.and_then(|h| h.get(req.arg(2))).map(|v| &**v))
    })
}

fn hmget(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    with_hash(ctx, req.arg(1), |h, out| {
        reply::array(out, req.len() - 2);
        for field in req.iter().skip(2) {
            reply::bulk_or_null(out, h.as_ref().and_then(|h| h.get(field)).map(|v| &**v));
        }
    })
}

fn hexists(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    with_hash(ctx, req.arg(1), |h, out| {
        reply::integer(out, i64::from(h.is_some_and(|h| h.contains_key(req.arg(2)))))
    })
}

fn hlen(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    with_hash(ctx, req.arg(1), |h, out| reply::integer(out, h.map_or(0, |h| h.len()) as i64))
}

fn hgetall_generic(ctx: &mut Ctx<'_>, req: &Request<'_>, fields: bool, values: bool) -> Outcome {
    with_hash(ctx, req.arg(1), |h, out| {
        let Some(h) = h else {
            reply::array(out, 0);
            return;
        };
        reply::array(out, h.len() * (usize::from(fields) + usize::from(values)));
        for (f, v) in h.iter() {
            if fields {
                reply::bulk(out, f);
            }
            if values {
                reply::bulk(out, v);
            }
        }
    })
}

fn hgetall(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    hgetall_generic(ctx, req, true, true)
}

fn hkeys(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    hgetall_generic(ctx, req, true, false)
}

fn hvals(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    hgetall_generic(ctx, req, false, true)
}

fn hdel(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let key = req.arg(1);
    let Ctx { server, out, env, .. } = ctx;
    let Some(hash) = typed!(server.db.get(key, env.now_ms), Hash) else {
        reply::integer(out, 0);
        return Ok(());
    };
    let removed = req.iter().skip(2).filter(|f| hash.remove(*f).is_some()).count();
    if hash.is_empty() {
        server.db.remove(key);
    }
    reply::integer(out, removed as i64);
    Ok(())
}

fn hincrby(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let by = int(req.arg(3))?;
    let now = ctx.env.now_ms;
    let key = req.arg(1);
    let current = match typed!(ctx.server.db.get(key, now), Hash).and_then(|h| h.get(req.arg(2))) {
        Some(v) => parse_i64(v).ok_or("ERR hash value is not an integer")?,
        None => 0,
    };
    let new = current.checked_add(by).ok_or(reply::OVERFLOW)?;
    let entry = ctx.server.db.get_or_insert(key, now, || Value::Hash(Box::default())).map_err(no_room)?;
    let Value::Hash(hash) = &mut entry.value else { return Err(reply::WRONGTYPE) };
    hash.try_reserve(1).map_err(|_| reply::OOM)?;
    let mut text = Vec::new();
    reply::decimal(&mut text, new);
    hash.insert(req.arg(2).into(), text.into());
    reply::integer(ctx.out, new);
    Ok(())
}

// ---- Sets ----

fn sadd(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let now = ctx.env.now_ms;
    typed!(ctx.server.db.get(req.arg(1), now), Set);
    let entry =
        ctx.server.db.get_or_insert(req.arg(1), now, || Value::Set(Box::default())).map_err(no_room)?;
    let Value::Set(set) = &mut entry.value else { return Err(reply::WRONGTYPE) };
    set.try_reserve(req.len() - 2).map_err(|_| reply::OOM)?;
    let added = req.iter().skip(2).filter(|m| set.insert(Bytes::from(*m))).count();
    reply::integer(ctx.out, added as i64);
    Ok(())
}

fn srem(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let key = req.arg(1);
    let Ctx { server, out, env, .. } = ctx;
    let Some(set) = typed!(server.db.get(key, env.now_ms), Set) else {
        reply::integer(out, 0);
        return Ok(());
    };
    let removed = req.iter().skip(2).filter(|m| set.remove(*m)).count();
    if set.is_empty() {
        server.db.remove(key);
    }
    reply::integer(out, removed as i64);
    Ok(())
}

fn with_set(ctx: &mut Ctx<'_>, key: &[u8], f: impl FnOnce(Option<&HashSet<Bytes>>, &mut Vec<u8>)) -> Outcome {
    let Ctx { server, out, env, .. } = ctx;
    let set = typed!(server.db.get(key, env.now_ms), Set);
    f(set.map(|s| &**s), out);
    Ok(())
}

fn smembers(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    with_set(ctx, req.arg(1), |set, out| {
        reply::array(out, set.map_or(0, |s| s.len()));
        for member in set.into_iter().flatten() {
            reply::bulk(out, member);
        }
    })
}

fn sismember(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    with_set(ctx, req.arg(1), |set, out| {
        reply::integer(out, i64::from(set.is_some_and(|s| s.contains(req.arg(2)))))
    })
}

fn scard(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    with_set(ctx, req.arg(1), |set, out| reply::integer(out, set.map_or(0, |s| s.len()) as i64))
}

fn spop(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    if req.len() > 3 {
        let _ = write!(FmtVec(ctx.out), "-ERR wrong number of arguments for 'spop' command\r\n");
        return Ok(());
    }
    let wanted = if req.len() == 3 { Some(count(req.arg(2))?) } else { None };
    let key = req.arg(1);
    let Ctx { server, out, env, .. } = ctx;
    let Server { db, rng, .. } = &mut **server;
    let Some(set) = typed!(db.get(key, env.now_ms), Set) else {
        match wanted {
            Some(_) => reply::array(out, 0),
            None => reply::null(out),
        }
        return Ok(());
    };
    let n = wanted.unwrap_or(1).min(set.len());
    let mut popped = Vec::with_capacity(n);
    for _ in 0..n {
        // A random position in iteration order: linear, but sets popped from are small
        // in practice, and the pick needs no second structure.
        let at = rng.below(set.len());
        let Some(member) = set.iter().nth(at).cloned() else { break };
        set.remove(&member);
        popped.push(member);
    }
    match wanted {
        None => reply::bulk_or_null(out, popped.first().map(|m| &**m)),
        Some(_) => {
            reply::array(out, popped.len());
            for member in &popped {
                reply::bulk(out, member);
            }
        }
    }
    if set.is_empty() {
        db.remove(key);
    }
    Ok(())
}

// ---- Sorted sets ----

fn zadd(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) = (false, false, false, false, false, false);
    let mut i = 2;
    while i < req.len() {
        let a = req.arg(i);
        match () {
            _ if eq(a, "nx") => nx = true,
            _ if eq(a, "xx") => xx = true,
            _ if eq(a, "gt") => gt = true,
            _ if eq(a, "lt") => lt = true,
            _ if eq(a, "ch") => ch = true,
            _ if eq(a, "incr") => incr = true,
            _ => break,
        }
        i += 1;
    }
    let pairs = req.len() - i;
    if pairs == 0 || pairs % 2 == 1 {
        return Err(reply::SYNTAX);
    }
    if nx && xx {
        return Err("ERR XX and NX options at the same time are not compatible");
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if incr && pairs > 2 {
        return Err("ERR INCR option supports a single increment-element pair");
    }
    let mut scores = Vec::with_capacity(pairs / 2);
    for j in (i..req.len()).step_by(2) {
        scores.push(float(req.arg(j)).ok_or(reply::NOT_FLOAT)?);
    }
    let now = ctx.env.now_ms;
    let key = req.arg(1);
    let exists = typed!(ctx.server.db.get(key, now), ZSet).is_some();
    if xx && !exists {
        match incr {
            true => reply::null(ctx.out),
            false => reply::integer(ctx.out, 0),
        }
        return Ok(());
    }
    let entry = ctx.server.db.get_or_insert(key, now, || Value::ZSet(Box::default())).map_err(no_room)?;
    let Value::ZSet(zset) = &mut entry.value else { return Err(reply::WRONGTYPE) };
    zset.try_reserve((req.len() - i) / 2).map_err(|_| reply::OOM)?;
    let (mut added, mut changed) = (0, 0);
    let mut incr_result = None;
    for (n, j) in (i..req.len()).step_by(2).enumerate() {
        let member = req.arg(j + 1);
        let mut score = scores[n];
        match zset.score(member) {
            Some(old) => {
                if nx {
                    continue;
                }
                if incr {
                    score += old;
                    if score.is_nan() {
                        let emptied = zset.is_empty();
                        if emptied {
                            ctx.server.db.remove(key);
                        }
                        return Err("ERR resulting score is not a number (NaN)");
                    }
                }
                if (gt && score <= old) || (lt && score >= old) {
                    continue;
                }
                incr_result = Some(score);
                if score != old {
                    zset.insert(member, score);
                    changed += 1;
                }
            }
            None => {
                if xx {
                    continue;
                }
                zset.insert(member, score);
                added += 1;
                incr_result = Some(score);
            }
        }
    }
    let emptied = zset.is_empty();
    if emptied {
        ctx.server.db.remove(key);
    }
    if incr {
        match incr_result {
            Some(score) => {
                let mut text = Vec::new();
                reply::format_score(score, &mut text);
                reply::bulk(ctx.out, &text);
            }
            None => reply::null(ctx.out),
        }
    } else {
        reply::integer(ctx.out, added + if ch { changed } else { 0 });
    }
    Ok(())
}

fn score_reply(out: &mut Vec<u8>, score: f64) {
    let mut text = Vec::new();
    reply::format_score(score, &mut text);
    reply::bulk(out, &text);
}

fn with_zset(ctx: &mut Ctx<'_>, key: &[u8], f: impl FnOnce(Option<&ZSet>, &mut Vec<u8>)) -> Outcome {
    let Ctx { server, out, env, .. } = ctx;
    let zset = typed!(server.db.get(key, env.now_ms), ZSet);
    f(zset.map(|z| &**z), out);
    Ok(())
}

fn zscore(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    with_zset(ctx, req.arg(1), |z, out| match z.and_then(|z| z.score(req.arg(2))) {
        Some(score) => score_reply(out, score),
        None => reply::null(out),
    })
}

fn zcard(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    with_zset(ctx, req.arg(1), |z, out| reply::integer(out, z.map_or(0, |z| z.len()) as i64))
}

/// `ZRANGE key start stop [REV] [WITHSCORES]` (by index; the `BYSCORE`, `BYLEX` and
/// `LIMIT` forms are not offered and get a syntax error).
fn zrange(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let (mut rev, mut with_scores) = (false, false);
    for option in req.iter().skip(4) {
        if eq(option, "rev") {
            rev = true;
        } else if eq(option, "withscores") {
            with_scores = true;
        } else {
            return Err(reply::SYNTAX);
        }
    }
    let (start, stop) = (int(req.arg(2))?, int(req.arg(3))?);
    with_zset(ctx, req.arg(1), |z, out| {
        let Some((z, (from, to))) = z.and_then(|z| index_range(start, stop, z.len()).map(|r| (z, r))) else {
            reply::array(out, 0);
            return;
        };
        let n = to - from + 1;
        reply::array(out, if with_scores { 2 * n } else { n });
        let mut emit = |(member, score): (&[u8], f64)| {
            reply::bulk(out, member);
            if with_scores {
                score_reply(out, score);
            }
        };
        if rev {
            z.iter().rev().skip(from).take(n).for_each(&mut emit);
        } else {
            z.iter().skip(from).take(n).for_each(&mut emit);
        }
    })
}

fn zrem(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    let key = req.arg(1);
    let Ctx { server, out, env, .. } = ctx;
    let Some(zset) = typed!(server.db.get(key, env.now_ms), ZSet) else {
        reply::integer(out, 0);
        return Ok(());
    };
    let removed = req.iter().skip(2).filter(|m| zset.remove(m)).count();
    if zset.is_empty() {
        server.db.remove(key);
    }
    reply::integer(out, removed as i64);
    Ok(())
}

fn zpopmin(ctx: &mut Ctx<'_>, req: &Request<'_>) -> Outcome {
    if req.len() > 3 {
        return Err(reply::SYNTAX);
    }
    let wanted = if req.len() == 3 { count(req.arg(2))? } else { 1 };
    let key = req.arg(1);
    let Ctx { server, out, env, .. } = ctx;
    let Some(zset) = typed!(server.db.get(key, env.now_ms), ZSet) else {
        reply::array(out, 0);
        return Ok(());
    };
    let n = wanted.min(zset.len());
    reply::array(out, 2 * n);
    for _ in 0..n {
        if let Some((member, score)) = zset.pop_min() {
            reply::bulk(out, &member);
            score_reply(out, score);
        }
    }
    if zset.is_empty() {
        server.db.remove(key);
    }
    Ok(())
}
