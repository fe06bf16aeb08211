//! Embeds the site (`HTTPD_ROOT`, default `site/`) into the image: generates a table of
//! files (path, bytes through `include_bytes!`, content type and validators) and the
//! list of directories, so the server decides nothing per request that is known now.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

struct Entry {
    url: String,
    path: PathBuf,
}

fn walk(dir: &Path, root: &Path, files: &mut Vec<Entry>, dirs: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("HTTPD_ROOT: cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        println!("cargo:rerun-if-changed={}", path.display());
        let rel = path.strip_prefix(root).expect("inside the root");
        let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
        if path.is_dir() {
            dirs.push(url);
            walk(&path, root, files, dirs);
        } else {
            files.push(Entry { url, path: path.canonicalize().expect("canonical path") });
        }
    }
}

/// 64-bit FNV-1a: a fast hash whose only job is to change when the bytes do.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The file's modification time in seconds, no later than `SOURCE_DATE_EPOCH` when that
/// is set (reproducible builds clamp times to it).
fn modified(path: &Path, source_date: Option<u64>) -> u64 {
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    source_date.map_or(mtime, |limit| mtime.min(limit))
}

fn main() {
    linker::link_kernel_image();
    println!("cargo:rerun-if-env-changed=HTTPD_ROOT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = match std::env::var("HTTPD_ROOT") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => manifest.join("site"),
    };
    let source_date = std::env::var("SOURCE_DATE_EPOCH").ok().map(|v| {
        v.trim().parse::<u64>().unwrap_or_else(|_| panic!("SOURCE_DATE_EPOCH is not a number: {v:?}"))
    });
    println!("cargo:rerun-if-changed={}", root.display());
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    walk(&root, &root, &mut files, &mut dirs);
    let mut code = String::from("pub static FILES: &[File] = &[\n");
    for Entry { url, path } in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let modified = modified(path, source_date);
        let last_modified = String::from_utf8(http::http_date(modified).to_vec()).expect("ASCII");
        writeln!(
            code,
            "    File {{ path: {url:?}, body: include_bytes!({:?}), content_type: {:?}, \
             etag: \"\\\"{:016x}\\\"\", last_modified: *b{last_modified:?}, modified: {modified} }},",
            path.display().to_string(),
            http::content_type(url),
            fnv1a(&bytes),
        )
        .unwrap();
    }
    code.push_str("];\n\npub static DIRECTORIES: &[&str] = &[\n");
    for dir in &dirs {
        writeln!(code, "    {dir:?},").unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("site.rs");
    std::fs::write(out, code).expect("write site.rs");
}
