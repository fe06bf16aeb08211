//! Bootable disk and CD images: an app's kernel with GRUB, for firmware to boot.
//!
//! `grub-mkrescue` (Debian's `grub-common` with `grub-pc-bin`, `grub-efi-amd64-bin`,
//! `xorriso` and `mtools`) writes a hybrid image without loop devices or mounts: an
//! ISO 9660 file system with El Torito entries for BIOS and UEFI, and also an MBR whose
//! boot code and EFI system partition make the very same bytes a bootable hard disk on
//! both. So `raw` is the ISO's bytes and `qcow2` is `qemu-img convert` of them.
//!
//! GRUB's `multiboot2` command loads the kernel with the command line set at build
//! time; the menu (shown for the timeout, on the serial port and the screen) lets a
//! person edit it with `e`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;

/// An image's container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// A CD image (also a valid disk image; see the module comment).
    Iso,
    /// A raw disk image.
    Raw,
    /// A qcow2 disk image.
    Qcow2,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Iso => "iso",
            Format::Raw => "img",
            Format::Qcow2 => "qcow2",
        }
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "iso" => Ok(Format::Iso),
            "raw" => Ok(Format::Raw),
            "qcow2" => Ok(Format::Qcow2),
            other => Err(format!("unknown image format '{other}' (iso, raw or qcow2)")),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Iso => "iso",
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        })
    }
}

/// The firmware a VM boots an image with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// QEMU's default, legacy BIOS.
    SeaBios,
    /// UEFI: Debian's `ovmf` (/usr/share/ovmf/OVMF.fd).
    Ovmf,
}

/// Debian's OVMF build, code and variables in one file (fine for `-bios`).
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

/// What goes into an image.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// The kernel ELF (an app image).
    pub kernel: PathBuf,
    /// The menu entry's title.
    pub title: String,
    /// The kernel command line, as written; see [`grub_words`].
    pub cmdline: String,
    /// Seconds GRUB shows its menu before booting (0: at once; a key stops the count).
    pub menu_seconds: u32,
    /// Files GRUB loads beside the kernel (`module2`), in order: the kernel's boot
    /// modules.
    pub modules: Vec<PathBuf>,
}

/// The GRUB modules an image carries beyond those `grub-mkrescue` builds into its
/// boot images: what our grub.cfg uses, and the partition maps the EFI image's built-in
/// configuration loads.
const MODULES: &str = "multiboot2 normal serial terminal configfile echo iso9660 fat part_msdos part_gpt \
     part_acorn part_amiga part_apple part_bsd part_dfly part_dvh part_plan part_sun part_sunpc";

/// Splits a command line into the words GRUB will pass on unchanged. GRUB rebuilds the
/// kernel's command line from the words of its `multiboot2` line, joined by one space,
/// quoting a word with a space and backslash-escaping `"`, `'` and `\`: words with those
/// would not arrive as written, so they are refused here, as are control characters.
pub fn grub_words(cmdline: &str) -> Result<Vec<&str>, String> {
    let words: Vec<&str> = cmdline.split_ascii_whitespace().collect();
    for word in &words {
        if let Some(c) = word.chars().find(|c| matches!(c, '"' | '\'' | '\\') || c.is_control()) {
            return Err(format!(
                "the command line word `{}` holds {c:?}, which GRUB would pass on altered; \
                 an image's command line takes words without quotes, backslashes or control characters",
                word.escape_debug()
            ));
        }
    }
    Ok(words)
}

/// The grub.cfg of an image.
pub fn grub_cfg(spec: &ImageSpec) -> Result<String, String> {
    // Single quotes: GRUB takes everything inside literally ($, ;, # and all).
    let args: String = grub_words(&spec.cmdline)?.iter().map(|w| format!(" '{w}'")).collect();
    let modules: String = (0..spec.modules.len()).map(|i| format!("    module2 /boot/module{i}\n")).collect();
    if spec.title.contains(['"', '\\', '$', '\n']) {
        return Err(format!(
            "menu title {:?} has characters GRUB's double quotes would interpret",
            spec.title
        ));
    }
    Ok(format!(
        "# Written by `./run.sh image`. `e` in the menu edits the command line for one boot.\n\
         serial --unit=0 --speed=115200\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         set timeout={}\n\
         set default=0\n\
         menuentry \"{}\" {{\n\
         \x20   multiboot2 /boot/kernel{args}\n\
         {modules}\
         \x20   boot\n\
         }}\n",
        spec.menu_seconds, spec.title
    ))
}

/// Builds the image of `spec` at `out` (its format from `format`), in a staging
/// directory beside it; returns `out`.
pub fn build_image(spec: &ImageSpec, format: Format, out: &Path) -> Result<PathBuf, String> {
    write_image(grub_cfg(spec)?.as_bytes(), spec, format, out)
}

/// [`build_image`] with `cfg` as its grub.cfg, byte for byte, instead of one made from
/// `spec` (whose kernel and modules still go in): for tests that hand the kernel what
/// no `ImageSpec` would.
pub fn write_image(cfg: &[u8], spec: &ImageSpec, format: Format, out: &Path) -> Result<PathBuf, String> {
    let dir = out.parent().ok_or_else(|| format!("{} has no directory", out.display()))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = dir.join(format!(".{name}.staging"));
    let _ = std::fs::remove_dir_all(&staging);
    let grub = staging.join("root/boot/grub");
    std::fs::create_dir_all(&grub).map_err(|e| format!("{}: {e}", grub.display()))?;
    std::fs::write(grub.join("grub.cfg"), cfg).map_err(|e| format!("grub.cfg: {e}"))?;
    // Debug sections are for the host's tools; GRUB loads only the segments.
    tool(
        Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(staging.join("root/boot/kernel"))
            .arg(&spec.kernel),
    )?;
    for (i, module) in spec.modules.iter().enumerate() {
        let to = staging.join(format!("root/boot/module{i}"));
        std::fs::copy(module, &to).map_err(|e| format!("{}: {e}", module.display()))?;
    }
    let iso = if format == Format::Iso { out.to_path_buf() } else { staging.join("image.iso") };
    tool(
        Command::new("grub-mkrescue")
            .args(["--locales=", "--fonts=", "--themes=", "--compress=xz"])
            .arg(format!("--install-modules={MODULES}"))
            .arg("-o")
            .arg(&iso)
            .arg(staging.join("root")),
    )?;
    if format != Format::Iso {
        from_iso(&iso, format, out)?;
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(out.to_path_buf())
}

/// Writes the disk image of `format` that holds the same bytes as the hybrid `iso`.
pub fn from_iso(iso: &Path, format: Format, out: &Path) -> Result<(), String> {
    match format {
        Format::Iso | Format::Raw => {
            std::fs::copy(iso, out).map(drop).map_err(|e| format!("{}: {e}", out.display()))
        }
        Format::Qcow2 => {
            tool(Command::new("qemu-img").args(["convert", "-f", "raw", "-O", "qcow2"]).arg(iso).arg(out))
        }
    }
}

/// An image of workspace app `app` with `cmdline` and `menu_seconds` of menu, built at
/// most once per process (tests share them: building one takes seconds) under
/// `target/images/tests/`.
pub fn test_image(app: &str, format: Format, cmdline: &str, menu_seconds: u32) -> PathBuf {
    use std::collections::HashMap;
    use std::hash::{DefaultHasher, Hash, Hasher};
    use std::sync::{Mutex, OnceLock};
    type Key = (String, Format, String, u32);
    static BUILT: OnceLock<Mutex<HashMap<Key, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let key = |format| (app.to_owned(), format, cmdline.to_owned(), menu_seconds);
    if let Some(path) = built.get(&key(format)) {
        return path.clone();
    }
    // Every format is the ISO's bytes: build that once, convert it for the others.
    let iso = match built.get(&key(Format::Iso)) {
        Some(iso) => iso.clone(),
        None => {
            let mut hasher = DefaultHasher::new();
            (cmdline, menu_seconds).hash(&mut hasher);
            let dir = crate::target_dir().join("images/tests");
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let iso = dir.join(format!("{app}-{:016x}.iso", hasher.finish()));
            let spec = ImageSpec {
                kernel: crate::build_app(app),
                title: format!("Chameleon {app}"),
                cmdline: cmdline.to_owned(),
                menu_seconds,
                modules: Vec::new(),
            };
            eprintln!("building {} (command line {cmdline:?})", iso.display());
            build_image(&spec, Format::Iso, &iso).unwrap_or_else(|e| panic!("{e}"));
            built.insert(key(Format::Iso), iso.clone());
            iso
        }
    };
    if format == Format::Iso {
        return iso;
    }
    let out = iso.with_extension(format.extension());
    from_iso(&iso, format, &out).unwrap_or_else(|e| panic!("{e}"));
    built.insert(key(format), out.clone());
    out
}

/// Runs a build tool quietly, returning its output as the error if it fails.
fn tool(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let output = cmd.stdin(Stdio::null()).output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{shown}: not found (apt-get install grub-common grub-pc-bin grub-efi-amd64-bin xorriso mtools qemu-utils binutils)"
        ),
        _ => format!("{shown}: {e}"),
    })?;
    if !output.status.success() {
        return Err(format!(
            "{shown} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_single_quoted_and_unsafe_ones_refused() {
        let spec = ImageSpec {
            kernel: PathBuf::from("k"),
            title: "Chameleon hello".into(),
            cmdline: "log=debug  --  a=$x;b #c".into(),
            menu_seconds: 3,
            modules: vec![PathBuf::from("a"), PathBuf::from("b")],
        };
        let cfg = grub_cfg(&spec).unwrap();
        assert!(cfg.contains("    multiboot2 /boot/kernel 'log=debug' '--' 'a=$x;b' '#c'\n"), "{cfg}");
        assert!(cfg.contains("set timeout=3\n"));
        assert!(
            cfg.contains("'#c'\n    module2 /boot/module0\n    module2 /boot/module1\n    boot\n"),
            "{cfg}"
        );
        for bad in ["x=\"y\"", "it's", "a\\b", "tab\u{7}"] {
            let err = grub_words(bad).unwrap_err();
            assert!(err.contains("GRUB would pass on altered"), "{err}");
        }
        assert_eq!(grub_words("").unwrap(), Vec::<&str>::new());
    }
}
