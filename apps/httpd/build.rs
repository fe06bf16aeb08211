//! Embeds the site (`HTTPD_ROOT`, default `site/`) into the image: generates a table of
//! `(path, bytes)` with `include_bytes!`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("HTTPD_ROOT: cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            walk(&path, root, out);
        } else {
            let rel = path.strip_prefix(root).expect("inside the root");
            let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
            out.push((url, path.canonicalize().expect("canonical path")));
        }
    }
}

fn main() {
    linker::link_kernel_image();
    println!("cargo:rerun-if-env-changed=HTTPD_ROOT");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = match std::env::var("HTTPD_ROOT") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => manifest.join("site"),
    };
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    let mut code = String::from("pub static FILES: &[(&str, &[u8])] = &[\n");
    for (url, path) in &files {
        writeln!(code, "    ({url:?}, include_bytes!({:?})),", path.display().to_string()).unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("site.rs");
    std::fs::write(out, code).expect("write site.rs");
}
