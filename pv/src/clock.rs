//! Clock arithmetic: pvclock reads, TSC rates from CPUID, RTC dates. Pure functions,
//! tested on the host.
#![forbid(unsafe_code)]

use crate::ops::CpuidResult;

/// Where the TSC rate (or the clock) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TscSource {
    Assumed = 0,
    CpuidCrystal,
    CpuidBaseFrequency,
    HypervisorLeaf,
    VmwareBackdoor,
    Pit,
    Pvclock,
    PmTimer,
}

impl TscSource {
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::CpuidCrystal,
            2 => Self::CpuidBaseFrequency,
            3 => Self::HypervisorLeaf,
            4 => Self::VmwareBackdoor,
            5 => Self::Pit,
            6 => Self::Pvclock,
            7 => Self::PmTimer,
            _ => Self::Assumed,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Assumed => "assumed 1 GHz",
            Self::CpuidCrystal => "cpuid 0x15",
            Self::CpuidBaseFrequency => "cpuid 0x16",
            Self::HypervisorLeaf => "the hypervisor's CPUID timing leaf",
            Self::VmwareBackdoor => "vmware GETHZ",
            Self::Pit => "PIT calibration",
            Self::Pvclock => "pvclock",
            Self::PmTimer => "ACPI PM timer calibration",
        }
    }
}

/// The TSC rate in kHz from CPUID leaves 0x15, 0x16 and the hypervisor's 0x40000010,
/// in that order of trust, skipping leaves that are absent or read as zero.
pub fn tsc_khz_from_cpuid(
    leaf15: Option<CpuidResult>,
    leaf16: Option<CpuidResult>,
    hv_timing: Option<CpuidResult>,
) -> Option<(u64, TscSource)> {
    if let Some(r) = leaf15
        && r.eax != 0
        && r.ebx != 0
        && r.ecx != 0
    {
        return Some((
            u64::from(r.ecx) * u64::from(r.ebx) / u64::from(r.eax) / 1000,
            TscSource::CpuidCrystal,
        ));
    }
    if let Some(r) = leaf16
        && r.eax & 0xffff != 0
    {
        return Some((u64::from(r.eax & 0xffff) * 1000, TscSource::CpuidBaseFrequency));
    }
    if let Some(r) = hv_timing
        && r.eax != 0
        && r.eax != u32::MAX
    {
        return Some((u64::from(r.eax), TscSource::HypervisorLeaf));
    }
    None
}

/// A pvclock time record (`pvclock_vcpu_time_info`), as copied out under its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PvclockRecord {
    pub tsc_timestamp: u64,
    pub system_time: u64,
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
    pub flags: u8,
}

impl PvclockRecord {
    /// Nanoseconds at TSC value `tsc`.
    pub fn ns_at(&self, tsc: u64) -> u64 {
        let mut delta = tsc.wrapping_sub(self.tsc_timestamp);
        if self.tsc_shift >= 0 {
            delta <<= self.tsc_shift;
        } else {
            delta >>= -self.tsc_shift;
        }
        let scaled = ((u128::from(delta) * u128::from(self.tsc_to_system_mul)) >> 32) as u64;
        self.system_time.wrapping_add(scaled)
    }

    /// The TSC rate this record implies.
    pub fn tsc_khz(&self) -> u64 {
        if self.tsc_to_system_mul == 0 {
            return 0;
        }
        let mut khz = (1_000_000u64 << 32) / u64::from(self.tsc_to_system_mul);
        if self.tsc_shift >= 0 {
            khz >>= self.tsc_shift;
        } else {
            khz <<= -self.tsc_shift;
        }
        khz
    }
}

/// CMOS RTC registers as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rtc {
    pub second: u8,
    pub minute: u8,
    pub hour: u8,
    pub day: u8,
    pub month: u8,
    pub year: u8,
    pub century: u8,
    pub status_b: u8,
}

fn from_bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0x0f)
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The RTC's time as seconds since the Unix epoch, or `None` if the registers make no
/// sense (no RTC, or garbage).
pub fn rtc_to_unix_seconds(rtc: &Rtc) -> Option<u64> {
    let binary = rtc.status_b & 0x04 != 0;
    let h24 = rtc.status_b & 0x02 != 0;
    let conv = |v: u8| if binary { v } else { from_bcd(v) };
    let pm = !h24 && rtc.hour & 0x80 != 0;
    let mut hour = conv(rtc.hour & 0x7f);
    if !h24 {
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let (second, minute, day, month) = (conv(rtc.second), conv(rtc.minute), conv(rtc.day), conv(rtc.month));
    let century = match conv(rtc.century) {
        c @ 19..=21 => u32::from(c),
        _ => 20,
    };
    let year = century * 100 + u32::from(conv(rtc.year));
    if second > 59 || minute > 59 || hour > 23 || !(1..=31).contains(&day) || !(1..=12).contains(&month) {
        return None;
    }
    let days = days_from_civil(i64::from(year), u32::from(month), u32::from(day));
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    u64::try_from(secs).ok()
}

/// The TSC rate from repeated timed runs (`run` gives kHz, or `None` when the timer is
/// missing or gave up). A run can only come out too high: a vCPU descheduled while it
/// polls the timer notices the end late and counts the extra ticks. So the answer is
/// the lower of the first two consecutive runs that agree within 0.5 %, or the lowest
/// of five.
pub fn settle_khz(mut run: impl FnMut() -> Option<u64>) -> Option<u64> {
    let mut lowest: Option<u64> = None;
    let mut previous: Option<u64> = None;
    for _ in 0..5 {
        let Some(khz) = run() else { return lowest };
        if let Some(p) = previous
            && p.abs_diff(khz) * 200 <= p.min(khz)
        {
            return Some(p.min(khz));
        }
        lowest = Some(lowest.map_or(khz, |l| l.min(khz)));
        previous = Some(khz);
    }
    lowest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(eax: u32, ebx: u32, ecx: u32) -> Option<CpuidResult> {
        Some(CpuidResult { eax, ebx, ecx, edx: 0 })
    }

    #[test]
    fn tsc_rate_sources_in_order() {
        // Skylake-style 0x15: 24 MHz crystal, ratio 216/2 -> 2592 MHz.
        assert_eq!(
            tsc_khz_from_cpuid(r(2, 216, 24_000_000), r(2600, 0, 0), None),
            Some((2_592_000, TscSource::CpuidCrystal))
        );
        // 0x15 without a crystal frequency falls through to 0x16.
        assert_eq!(
            tsc_khz_from_cpuid(r(2, 216, 0), r(2600, 0, 0), None),
            Some((2_600_000, TscSource::CpuidBaseFrequency))
        );
        // QEMU/KVM's timing leaf.
        assert_eq!(
            tsc_khz_from_cpuid(None, None, r(2_400_000, 1_000_000, 0)),
            Some((2_400_000, TscSource::HypervisorLeaf))
        );
        // Garbage and absence give nothing.
        assert_eq!(tsc_khz_from_cpuid(r(0, 0, 0), r(0, 0, 0), r(u32::MAX, 0, 0)), None);
        assert_eq!(tsc_khz_from_cpuid(None, None, None), None);
    }

    #[test]
    fn pvclock_read_and_rate() {
        // A 2.5 GHz TSC: mul = 2^32 * 0.4 ns/tick, shift 0.
        let rec = PvclockRecord {
            tsc_timestamp: 1_000_000,
            system_time: 5_000,
            tsc_to_system_mul: 1_717_986_918,
            tsc_shift: 0,
            flags: 1,
        };
        assert_eq!(rec.ns_at(1_000_000), 5_000);
        assert_eq!(rec.ns_at(3_500_000), 5_000 + 999_999);
        assert_eq!(rec.tsc_khz(), 2_500_000);
        // The same rate with shift -1 and a doubled multiplier.
        let halved = PvclockRecord { tsc_to_system_mul: 3_435_973_836, tsc_shift: -1, ..rec };
        assert_eq!(halved.ns_at(3_500_000), 5_000 + 999_999);
        assert_eq!(halved.tsc_khz(), 2_500_000);
        // A positive shift (slow TSC, 500 MHz): mul 2^31 * 2ns... shift 1.
        let slow = PvclockRecord {
            tsc_timestamp: 0,
            system_time: 0,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 2,
            flags: 0,
        };
        assert_eq!(slow.ns_at(1000), 2000);
        assert_eq!(slow.tsc_khz(), 500_000);
        assert_eq!(PvclockRecord::default().tsc_khz(), 0);
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 25), 20_782);
    }

    #[test]
    fn rtc_bcd_and_binary() {
        // 2026-11-25 22:37:30 in BCD, 24-hour mode.
        let bcd = Rtc {
            second: 0x30,
            minute: 0x37,
            hour: 0x22,
            day: 0x25,
            month: 0x11,
            year: 0x26,
            century: 0x20,
            status_b: 0x02,
        };
        assert_eq!(rtc_to_unix_seconds(&bcd), Some(20_782 * 86_400 + 22 * 3600 + 37 * 60 + 30));
        let bin = Rtc {
            second: 30,
            minute: 37,
            hour: 22,
            day: 25,
            month: 11,
            year: 26,
            century: 20,
            status_b: 0x06,
        };
        assert_eq!(rtc_to_unix_seconds(&bin), rtc_to_unix_seconds(&bcd));
        // 12-hour mode, 10 PM.
        let pm = Rtc { hour: 0x80 | 0x10, status_b: 0x00, ..bcd };
        assert_eq!(rtc_to_unix_seconds(&pm), rtc_to_unix_seconds(&bcd));
        // No RTC: all ones.
        let none = Rtc {
            second: 0xff,
            minute: 0xff,
            hour: 0xff,
            day: 0xff,
            month: 0xff,
            year: 0xff,
            century: 0xff,
            status_b: 0xff,
        };
        assert_eq!(rtc_to_unix_seconds(&none), None);
    }

    #[test]
    fn settling_the_tsc_rate() {
        let runs = |list: &'static [Option<u64>]| {
            let mut it = list.iter().copied();
            move || it.next().flatten()
        };
        // Two agreeing runs: the lower.
        assert_eq!(settle_khz(runs(&[Some(2_400_000), Some(2_401_000)])), Some(2_400_000));
        // A descheduled run (4x) is passed over.
        assert_eq!(settle_khz(runs(&[Some(9_600_000), Some(2_400_500), Some(2_400_000)])), Some(2_400_000));
        // Nothing agrees: the lowest of five.
        let wild = &[Some(3_000_000), Some(2_500_000), Some(9_000_000), Some(2_450_000), Some(5_000_000)];
        assert_eq!(settle_khz(runs(wild)), Some(2_450_000));
        // No timer; or a timer that gave up after a good run.
        assert_eq!(settle_khz(runs(&[None])), None);
        assert_eq!(settle_khz(runs(&[Some(2_400_000), None])), Some(2_400_000));
    }
}
