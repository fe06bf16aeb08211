//! The kernel command line: copied out of guest memory as PVH hands it over (checked
//! against the same rules applied directly to the bytes), then parsed into settings,
//! and the `virtio_mmio.device=` values it carries.
#![no_main]

use bootinfo::cmdline;
use bootinfo::pvh::{CMDLINE_MAX, CmdlineError, read_cmdline};
use chameleon_fuzz::GuestImage;
use drivers::virtio::mmio::parse_cmdline_device;
use libfuzzer_sys::fuzz_target;

/// What `read_cmdline` must make of `bytes` lying at the end of readable memory.
fn expected(bytes: &[u8]) -> Result<&str, CmdlineError> {
    match bytes.iter().position(|&b| b == 0) {
        Some(n) if n <= CMDLINE_MAX => std::str::from_utf8(&bytes[..n])
            .map_err(|e| CmdlineError::NotUtf8 { valid_up_to: e.valid_up_to() }),
        Some(_) => Err(CmdlineError::TooLong),
        None if bytes.len() > CMDLINE_MAX => Err(CmdlineError::TooLong),
        None => Err(CmdlineError::Unreadable(bootinfo::Unreadable { addr: 0, len: 1 })),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut buf = [0u8; CMDLINE_MAX];
    for at_top in [false, true] {
        let image = GuestImage::new(data, at_top);
        let got = read_cmdline(&image, image.base, &mut buf);
        if let Err(e) = &got {
            let _ = e.to_string();
        }
        match (got, expected(data)) {
            (Err(CmdlineError::Unreadable(_)), Err(CmdlineError::Unreadable(_))) => {}
            (got, want) => assert_eq!(got, want, "at_top {at_top}"),
        }
    }

    let Ok(text) = std::str::from_utf8(data) else { return };
    const BACKENDS: &[&str] = &["native", "kvm", "vmware", "xen_hvm", "xen_pv"];
    let settings = cmdline::parse(text, BACKENDS, |warning| {
        let _ = warning.to_string();
    });
    assert!(text.ends_with(settings.app_args), "app args {:?} are not the line's tail", settings.app_args);
    if let Some((_, prefix)) = settings.ip {
        assert!((1..=32).contains(&prefix));
    }
    for value in settings.virtio_mmio.iter().flatten() {
        if let Ok(device) = parse_cmdline_device(value) {
            assert!(device.size >= 0x100 && device.base.checked_add(device.size).is_some(), "{device:?}");
        }
    }
});
