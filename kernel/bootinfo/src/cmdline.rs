//! The kernel command line: `key=value` settings for the kernel, then ` -- ` and the
//! app's own arguments.
//!
//! A bad setting never stops the boot: it is reported through the `warn` callback and
//! the default is kept.

/// How much the kernel logs (`log=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Typed kernel settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings<'a> {
    pub log: LogLevel,
    /// `selftest=NAME`: run a built-in kernel check instead of the app.
    pub selftest: Option<&'a str>,
    /// `pv=auto|BACKEND`: detect the hypervisor (`None`), or force the backend of that
    /// name (one of those [`parse`] was given).
    pub pv: Option<&'static str>,
    /// `pv.patch=on|off`: rewrite the pv-ops call sites at boot (off keeps the indirect
    /// calls, for comparison).
    pub pv_patch: bool,
    /// `ip=A.B.C.D/PREFIX`: static address (DHCP when absent).
    pub ip: Option<([u8; 4], u8)>,
    /// `gw=A.B.C.D`: default gateway for a static address.
    pub gateway: Option<[u8; 4]>,
    /// `virtio_mmio.device=<size>@<base>:<irq>` values (Linux syntax, repeatable),
    /// as microvm and Firecracker pass them; checked by the virtio-mmio code.
    pub virtio_mmio: [Option<&'a str>; 8],
    /// `haltpoll=USECS`: the longest the idle loop polls for work before halting
    /// (adaptive below that; 0: always halt at once). Default: [`DEFAULT_HALT_POLL_US`]
    /// where the hypervisor promises the vCPU a physical CPU of its own, else 0.
    pub halt_poll_us: Option<u32>,
    /// `max_conns=N`: the most TCP connections apps may hold at once (default: as many
    /// as memory holds at their worst; a larger value is cut down to that).
    pub max_conns: Option<usize>,
    /// `net.nic=BB:DD.F|MAC`: the card the network stack uses when there are several
    /// (default: the first found with its link up).
    pub nic: Option<NicChoice>,
    /// `net.irq=msix|msi|intx`: the most capable way a network card may interrupt
    /// (default: MSI-X; `msi` skips MSI-X, `intx` both, for cards or platforms where
    /// they misbehave, and to test the other paths).
    pub net_irq: IrqLimit,
    /// Everything after the first ` -- `, for the app.
    pub app_args: &'a str,
}

/// The poll window on a dedicated vCPU: longer than a client's round trip through
/// QEMU's device model (about 0.25 ms under TCG), short enough not to matter when idle,
/// since the window shrinks when polls do not pay. Where the vCPU shares a physical CPU
/// (no promise from the hypervisor), the spinning vCPU takes time from the device model
/// and the clients that would bring the work, and halting at once answers sooner.
pub const DEFAULT_HALT_POLL_US: u32 = 400;

impl Default for Settings<'_> {
    fn default() -> Self {
        Settings {
            log: LogLevel::Info,
            selftest: None,
            pv: None,
            pv_patch: true,
            ip: None,
            gateway: None,
            virtio_mmio: [None; 8],
            halt_poll_us: None,
            max_conns: None,
            nic: None,
            net_irq: IrqLimit::default(),
            app_args: "",
        }
    }
}

/// How a network card may interrupt, best first (`net.irq=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum IrqLimit {
    /// Its INTx line only.
    Intx,
    /// MSI, else INTx.
    Msi,
    /// MSI-X, else MSI, else INTx.
    #[default]
    Msix,
}

/// A network card named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicChoice {
    /// By PCI address: bus, device (0-31), function (0-7).
    Pci { bus: u8, device: u8, function: u8 },
    /// By its MAC address.
    Mac([u8; 6]),
}

impl core::fmt::Display for NicChoice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NicChoice::Pci { bus, device, function } => write!(f, "{bus:02x}:{device:02x}.{function}"),
            NicChoice::Mac([a, b, c, d, e, g]) => {
                write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
            }
        }
    }
}

impl NicChoice {
    /// `BB:DD.F` (with or without a `0000:` domain, hex as `lspci` writes it) or a MAC
    /// address `xx:xx:xx:xx:xx:xx`.
    fn parse(value: &str) -> Option<NicChoice> {
        let hex = |s: &str, max_len: usize| -> Option<u8> {
            if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u8::from_str_radix(s, 16).ok()
        };
        if let Some((rest, function)) = value.rsplit_once('.') {
            let rest = rest.strip_prefix("0000:").unwrap_or(rest);
            let (bus, device) = rest.split_once(':')?;
            let (bus, device, function) = (hex(bus, 2)?, hex(device, 2)?, hex(function, 1)?);
            return (device < 32 && function < 8).then_some(NicChoice::Pci { bus, device, function });
        }
        let mut mac = [0u8; 6];
        let mut parts = value.split(':');
        for byte in &mut mac {
            let part = parts.next()?;
            if part.len() != 2 {
                return None;
            }
            *byte = hex(part, 2)?;
        }
        parts.next().is_none().then_some(NicChoice::Mac(mac))
    }
}

/// A setting that was ignored, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Warning<'a> {
    UnknownKey(&'a str),
    BadValue {
        key: &'a str,
        value: &'a str,
        expected: &'static str,
    },
    /// `pv=` named no backend this kernel has.
    UnknownBackend {
        value: &'a str,
        known: &'static [&'static str],
    },
    MissingValue(&'a str),
}

impl core::fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Warning::UnknownKey(k) => write!(f, "unknown setting `{k}` ignored"),
            Warning::BadValue { key, value, expected } => {
                write!(f, "`{key}={value}` ignored: expected {expected}")
            }
            Warning::UnknownBackend { value, known } => write!(f, "`pv={value}` ignored: expected auto")
                .and_then(|()| {
                    known.iter().enumerate().try_for_each(|(i, name)| {
                        let sep = if i + 1 == known.len() { " or " } else { ", " };
                        write!(f, "{sep}{name}")
                    })
                }),
            Warning::MissingValue(k) => write!(f, "`{k}` ignored: expected `{k}=value`"),
        }
    }
}

/// Splits the command line at the first `--` word: kernel part, app part.
fn split_app_args(cmdline: &str) -> (&str, &str) {
    let mut offset = 0;
    for word in cmdline.split(' ') {
        if word == "--" {
            let rest = &cmdline[offset + word.len()..];
            return (&cmdline[..offset], rest.trim_start());
        }
        offset += word.len() + 1;
    }
    (cmdline, "")
}

/// Parses the command line into [`Settings`], reporting every ignored word to `warn`.
/// `backends` are the names `pv=` accepts besides `auto`.
pub fn parse<'a>(
    cmdline: &'a str,
    backends: &'static [&'static str],
    mut warn: impl FnMut(Warning<'a>),
) -> Settings<'a> {
    let (kernel, app_args) = split_app_args(cmdline);
    let mut settings = Settings { app_args, ..Settings::default() };
    for word in kernel.split_ascii_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            match word {
                "log" | "selftest" | "pv" | "pv.patch" | "ip" | "gw" | "haltpoll" | "max_conns"
                | "net.nic" => warn(Warning::MissingValue(word)),
                _ => warn(Warning::UnknownKey(word)),
            }
            continue;
        };
        match key {
            "log" => match parse_level(value) {
                Some(level) => settings.log = level,
                None => warn(Warning::BadValue { key, value, expected: "error, warn, info, debug or trace" }),
            },
            "pv" => match backends.iter().find(|&&name| name == value) {
                Some(name) => settings.pv = Some(name),
                None if value == "auto" => settings.pv = None,
                None => warn(Warning::UnknownBackend { value, known: backends }),
            },
            "pv.patch" => match value {
                "on" => settings.pv_patch = true,
                "off" => settings.pv_patch = false,
                _ => warn(Warning::BadValue { key, value, expected: "on or off" }),
            },
            "ip" => {
                match value.split_once('/').and_then(|(a, p)| Some((parse_ipv4(a)?, p.parse::<u8>().ok()?))) {
                    Some((addr, prefix)) if (1..=32).contains(&prefix) => settings.ip = Some((addr, prefix)),
                    _ => warn(Warning::BadValue {
                        key,
                        value,
                        expected: "an IPv4 address with a prefix, like 10.0.2.15/24",
                    }),
                }
            }
            "gw" => match parse_ipv4(value) {
                Some(addr) => settings.gateway = Some(addr),
                None => warn(Warning::BadValue { key, value, expected: "an IPv4 address, like 10.0.2.2" }),
            },
            "virtio_mmio.device" => match settings.virtio_mmio.iter_mut().find(|slot| slot.is_none()) {
                Some(slot) => *slot = Some(value),
                None => {
                    warn(Warning::BadValue { key, value, expected: "at most 8 virtio_mmio.device entries" })
                }
            },
            "haltpoll" => match value.parse::<u32>() {
                Ok(us) if us <= 1_000_000 => settings.halt_poll_us = Some(us),
                _ => warn(Warning::BadValue { key, value, expected: "microseconds, 0 to 1000000" }),
            },
            "max_conns" => match value.parse::<usize>() {
                Ok(n) if (1..=65_536).contains(&n) => settings.max_conns = Some(n),
                _ => warn(Warning::BadValue { key, value, expected: "a number of connections, 1 to 65536" }),
            },
            "net.nic" => match NicChoice::parse(value) {
                Some(choice) => settings.nic = Some(choice),
                None => warn(Warning::BadValue {
                    key,
                    value,
                    expected: "a PCI address like 00:04.0 or a MAC address like 52:54:00:12:34:56",
                }),
            },
            "net.irq" => match value {
                "msix" => settings.net_irq = IrqLimit::Msix,
                "msi" => settings.net_irq = IrqLimit::Msi,
                "intx" => settings.net_irq = IrqLimit::Intx,
                _ => warn(Warning::BadValue { key, value, expected: "msix, msi or intx" }),
            },
            "selftest" if !value.is_empty() => settings.selftest = Some(value),
            "selftest" => warn(Warning::MissingValue(key)),
            _ => warn(Warning::UnknownKey(key)),
        }
    }
    settings
}

fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for byte in &mut out {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *byte = part.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn parse_level(value: &str) -> Option<LogLevel> {
    Some(match value {
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::ToString;
    use std::vec::Vec;

    const BACKENDS: &[&str] = &["native", "kvm", "vmware", "xen_hvm", "xen_pv"];

    fn parse_all(s: &str) -> (Settings<'_>, Vec<Warning<'_>>) {
        let mut warnings = Vec::new();
        let settings = parse(s, BACKENDS, |w| warnings.push(w));
        (settings, warnings)
    }

    #[test]
    fn empty_gives_defaults() {
        assert_eq!(parse_all(""), (Settings::default(), Vec::new()));
    }

    #[test]
    fn log_levels() {
        for (s, level) in [
            ("log=debug", LogLevel::Debug),
            ("log=warn", LogLevel::Warn),
            ("log=info", LogLevel::Info),
            ("log=trace", LogLevel::Trace),
            ("log=error", LogLevel::Error),
        ] {
            assert_eq!(parse_all(s).0.log, level);
        }
    }

    #[test]
    fn last_setting_wins() {
        assert_eq!(parse_all("log=debug log=warn").0.log, LogLevel::Warn);
    }

    #[test]
    fn bad_words_warn_and_keep_defaults() {
        let (settings, warnings) = parse_all("log=loud bogus=1 flag log selftest= =x");
        assert_eq!(settings, Settings::default());
        assert_eq!(
            warnings,
            [
                Warning::BadValue {
                    key: "log",
                    value: "loud",
                    expected: "error, warn, info, debug or trace"
                },
                Warning::UnknownKey("bogus"),
                Warning::UnknownKey("flag"),
                Warning::MissingValue("log"),
                Warning::MissingValue("selftest"),
                Warning::UnknownKey(""),
            ]
        );
    }

    #[test]
    fn app_args_follow_double_dash() {
        let (s, w) = parse_all("log=debug -- --port 80 log=x");
        assert_eq!(s.log, LogLevel::Debug);
        assert_eq!(s.app_args, "--port 80 log=x");
        assert!(w.is_empty());
        assert_eq!(parse_all("-- a").0.app_args, "a");
        assert_eq!(parse_all("log=info --").0.app_args, "");
        // `--x` is not the separator.
        assert_eq!(parse_all("--x").1, [Warning::UnknownKey("--x")]);
    }

    #[test]
    fn extra_spaces_are_fine() {
        let (s, w) = parse_all("  log=warn   selftest=heap  ");
        assert_eq!(s.log, LogLevel::Warn);
        assert_eq!(s.selftest, Some("heap"));
        assert!(w.is_empty());
    }

    #[test]
    fn pv_settings() {
        let (s, w) = parse_all("pv=vmware pv.patch=off");
        assert_eq!(s.pv, Some("vmware"));
        assert!(!s.pv_patch);
        assert!(w.is_empty());
        assert_eq!(parse_all("pv=kvm pv=auto").0.pv, None);
        let (s, w) = parse_all("pv=xen pv.patch=maybe");
        assert_eq!((s.pv, s.pv_patch), (None, true));
        assert_eq!(
            w,
            [
                Warning::UnknownBackend { value: "xen", known: BACKENDS },
                Warning::BadValue { key: "pv.patch", value: "maybe", expected: "on or off" },
            ]
        );
        assert_eq!(
            w[0].to_string(),
            "`pv=xen` ignored: expected auto, native, kvm, vmware, xen_hvm or xen_pv"
        );
    }

    #[test]
    fn network_settings() {
        let (s, w) = parse_all("ip=10.0.2.15/24 gw=10.0.2.2");
        assert_eq!(s.ip, Some(([10, 0, 2, 15], 24)));
        assert_eq!(s.gateway, Some([10, 0, 2, 2]));
        assert!(w.is_empty());
        for bad in [
            "ip=10.0.2.15",
            "ip=10.0.2/24",
            "ip=10.0.2.256/24",
            "ip=1.2.3.4/33",
            "ip=1.2.3.4/0",
            "ip=a.b.c.d/8",
            "ip=1.2.3.4.5/8",
        ] {
            let (s, w) = parse_all(bad);
            assert_eq!(s.ip, None, "{bad}");
            assert_eq!(w.len(), 1, "{bad}");
        }
        assert_eq!(parse_all("gw=1.2.3").0.gateway, None);
    }

    #[test]
    fn virtio_mmio_devices_collect() {
        let (s, w) = parse_all("virtio_mmio.device=512@0xfeb00000:12 virtio_mmio.device=512@0xfeb00200:13");
        assert_eq!(s.virtio_mmio[..3], [Some("512@0xfeb00000:12"), Some("512@0xfeb00200:13"), None]);
        assert!(w.is_empty());
    }

    #[test]
    fn halt_poll_window() {
        // Unset: the platform decides.
        assert_eq!(parse_all("").0.halt_poll_us, None);
        assert_eq!(parse_all("haltpoll=0").0.halt_poll_us, Some(0));
        assert_eq!(parse_all("haltpoll=1000000").0.halt_poll_us, Some(1_000_000));
        for bad in ["haltpoll=1000001", "haltpoll=-1", "haltpoll=fast", "haltpoll="] {
            let (s, w) = parse_all(bad);
            assert_eq!(s.halt_poll_us, None, "{bad}");
            assert_eq!(w.len(), 1, "{bad}");
        }
    }

    #[test]
    fn connection_cap() {
        assert_eq!(parse_all("max_conns=100").0.max_conns, Some(100));
        assert_eq!(parse_all("").0.max_conns, None);
        for bad in
            ["max_conns=0", "max_conns=65537", "max_conns=-1", "max_conns=many", "max_conns=", "max_conns"]
        {
            let (s, w) = parse_all(bad);
            assert_eq!((s.max_conns, w.len()), (None, 1), "{bad}");
        }
    }

    #[test]
    fn nic_choice() {
        let pci = |bus, device, function| Some(NicChoice::Pci { bus, device, function });
        assert_eq!(parse_all("").0.nic, None);
        assert_eq!(parse_all("net.nic=00:04.0").0.nic, pci(0, 4, 0));
        assert_eq!(parse_all("net.nic=0000:01:1f.7").0.nic, pci(1, 31, 7));
        assert_eq!(parse_all("net.nic=ff:0a.1").0.nic, pci(255, 10, 1));
        let (s, w) = parse_all("net.nic=52:54:00:AB:cd:01");
        assert_eq!((s.nic, w.len()), (Some(NicChoice::Mac([0x52, 0x54, 0, 0xab, 0xcd, 1])), 0));
        assert_eq!(s.nic.unwrap().to_string(), "52:54:00:ab:cd:01");
        assert_eq!(pci(0, 4, 0).unwrap().to_string(), "00:04.0");
        for bad in [
            "net.nic=00:20.0",
            "net.nic=00:04.8",
            "net.nic=100:04.0",
            "net.nic=00:04",
            "net.nic=0001:00:04.0",
            "net.nic=00:04.0.1",
            "net.nic=52:54:00:12:34",
            "net.nic=52:54:00:12:34:56:78",
            "net.nic=52:54:00:12:34:5",
            "net.nic=52:54:00:12:34:5g",
            "net.nic=eth0",
            "net.nic=",
            "net.nic",
        ] {
            let (s, w) = parse_all(bad);
            assert_eq!((s.nic, w.len()), (None, 1), "{bad}");
        }
        assert_eq!(
            parse_all("net.nic=eth1").1[0].to_string(),
            "`net.nic=eth1` ignored: expected a PCI address like 00:04.0 or a MAC address like 52:54:00:12:34:56"
        );
    }

    #[test]
    fn net_irq_limit() {
        assert_eq!(parse_all("").0.net_irq, IrqLimit::Msix);
        assert_eq!(parse_all("net.irq=msi").0.net_irq, IrqLimit::Msi);
        assert_eq!(parse_all("net.irq=intx").0.net_irq, IrqLimit::Intx);
        assert_eq!(parse_all("net.irq=intx net.irq=msix").0.net_irq, IrqLimit::Msix);
        assert!(IrqLimit::Intx < IrqLimit::Msi && IrqLimit::Msi < IrqLimit::Msix);
        for bad in ["net.irq=MSI", "net.irq=legacy", "net.irq=", "net.irq"] {
            let (s, w) = parse_all(bad);
            assert_eq!((s.net_irq, w.len()), (IrqLimit::Msix, 1), "{bad}");
        }
    }

    #[test]
    fn selftest_value() {
        assert_eq!(parse_all("selftest=panic").0.selftest, Some("panic"));
    }
}
