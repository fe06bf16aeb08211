//! Links an app binary as a Chameleon kernel image.
//!
//! Every app's `build.rs` calls [`link_kernel_image`]; the linker script next to this
//! file (`kernel.ld`) decides the image layout, so all apps share one layout.
#![forbid(unsafe_code)]

use std::path::Path;

/// Tells cargo to link the calling package's binaries with `kernel.ld`, and to relink
/// them when the script changes.
pub fn link_kernel_image() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernel.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    // Only the bare-metal target gets the kernel layout; a host `cargo check` of the
    // workspace must still link normally.
    if std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    }
}
