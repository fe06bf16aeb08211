//! A writer of `newc` cpio archives, the format Linux unpacks as its initramfs. Linux
//! takes several archives one after the other and unpacks each over the last, which is
//! how the testbed adds a small per-boot overlay to its cached dom0 root.

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// An archive being written to `out`; [`Cpio::finish`] writes the trailer.
#[derive(Debug)]
pub(crate) struct Cpio<W: Write> {
    out: W,
    ino: u32,
    written: usize,
}

impl<W: Write> Cpio<W> {
    pub(crate) fn new(out: W) -> Cpio<W> {
        Cpio { out, ino: 1, written: 0 }
    }

    pub(crate) fn dir(&mut self, name: &str, perm: u32) -> io::Result<()> {
        self.entry(name, S_IFDIR | (perm & 0o7777), 2, &[])
    }

    pub(crate) fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, S_IFREG | (perm & 0o7777), 1, data)
    }

    pub(crate) fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.entry(name, S_IFLNK | 0o777, 1, target.as_bytes())
    }

    /// Adds everything under `root` (not `root` itself) as `prefix/...`, parents before
    /// children and in sorted order, so the same tree always gives the same bytes.
    pub(crate) fn tree(&mut self, root: &Path, prefix: &str) -> io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(root)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let meta = std::fs::symlink_metadata(&path)?;
            let perm = meta.permissions().mode();
            if meta.file_type().is_symlink() {
                self.symlink(&name, &std::fs::read_link(&path)?.to_string_lossy())?;
            } else if meta.is_dir() {
                self.dir(&name, perm)?;
                self.tree(&path, &format!("{name}/"))?;
            } else {
                self.file(&name, perm, &std::fs::read(&path)?)?;
            }
        }
        Ok(())
    }

    /// Writes the trailer and hands back the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, 1, &[])?;
        Ok(self.out)
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8]) -> io::Result<()> {
        let ino = if name == "TRAILER!!!" { 0 } else { self.ino };
        self.ino += 1;
        let size = u32::try_from(data.len()).map_err(|_| io::Error::other(format!("{name}: too big")))?;
        let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, name.len() as u32 + 1, 0];
        let mut header = String::from("070701");
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len();
        Ok(())
    }

    /// Headers and file data start on 4-byte boundaries.
    fn pad(&mut self) -> io::Result<()> {
        let zeros = [0u8; 3];
        self.put(&zeros[..(4 - self.written % 4) % 4])
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn newc_layout() {
        let mut cpio = Cpio::new(Vec::new());
        cpio.file("a", 0o644, b"xyz").unwrap();
        cpio.symlink("l", "a").unwrap();
        let bytes = cpio.finish().unwrap();
        // header (110) + "a\0" padded to 112, then "xyz" padded to 116
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(&bytes[6..14], b"00000001"); // inode
        assert_eq!(&bytes[14..22], b"000081a4"); // regular file, rw-r--r--
        assert_eq!(&bytes[54..62], b"00000003"); // size
        assert_eq!(&bytes[94..102], b"00000002"); // name length with its NUL
        assert_eq!(&bytes[110..112], b"a\0");
        assert_eq!(&bytes[112..116], b"xyz\0");
        assert_eq!(&bytes[116..122], b"070701");
        assert_eq!(&bytes[130..138], b"0000a1ff"); // symlink, 0o120777
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(bytes.len() % 4, 0);
    }
}
