//! Crash reports for CPU exceptions taken by the guest.
//!
//! The ring-0 trap stub (see `tables.rs`) pushed the vector on top of the CPU's frame, so the
//! vCPU's stack pointer points at `[vector, error code, RIP, CS, RFLAGS, RSP, SS]`. The frame
//! is read with checked accessors: a guest that corrupted its trap stack gets a report that
//! says so.

use super::{Outcome, memory::Memory};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress};

const NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved 15",
    "#MF x87 error",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD error",
    "#VE virtualization",
    "#CP control protection",
    "reserved 22",
    "reserved 23",
    "reserved 24",
    "reserved 25",
    "reserved 26",
    "reserved 27",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved 31",
];

/// Name of an exception vector.
pub fn vector_name(vector: u32) -> &'static str {
    NAMES.get(vector as usize).copied().unwrap_or("unknown vector")
}

/// Builds the crash report for the fault the stub on `vcpu` announced with `vector`.
pub fn report(vcpu: u32, fd: &VcpuFd, mem: &Memory, vector: u32) -> Outcome {
    let (regs, sregs) = match (fd.get_regs(), fd.get_sregs()) {
        (Ok(r), Ok(s)) => (r, s),
        (Err(e), _) | (_, Err(e)) => {
            return Outcome::KvmError(format!("vCPU {vcpu}: cannot read registers after a fault: {e}"));
        }
    };
    if sregs.cs.dpl != 0 {
        return Outcome::AbiViolation(format!(
            "vCPU {vcpu}: wrote to the fault port from CPL{}",
            sregs.cs.dpl
        ));
    }
    let mut frame = [0u64; 7];
    for (i, word) in frame.iter_mut().enumerate() {
        let at = regs.rsp.checked_add(8 * i as u64);
        match at.and_then(|a| mem.read_obj::<u64>(GuestAddress(a)).ok()) {
            Some(w) => *word = w,
            None => {
                return Outcome::Fault(format!(
                    "vCPU {vcpu}: {} with an unreadable trap frame at {:#x}",
                    vector_name(vector),
                    regs.rsp
                ));
            }
        }
    }
    let [pushed_vector, error, rip, cs, rflags, rsp, _ss] = frame;
    Outcome::Fault(describe(vcpu, pushed_vector as u32, error, rip, cs, rflags, rsp, sregs.cr2))
}

/// One-line crash report.
#[allow(clippy::too_many_arguments)] // the fields of one trap frame
pub fn describe(
    vcpu: u32,
    vector: u32,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    cr2: u64,
) -> String {
    let mut s = format!(
        "vCPU {vcpu}: {} (vector {vector}) at RIP {rip:#x}, RSP {rsp:#x}, CPL{}",
        vector_name(vector),
        cs & 3
    );
    if vector == 14 {
        let access = if error & 16 != 0 {
            "instruction fetch"
        } else if error & 2 != 0 {
            "write"
        } else {
            "read"
        };
        let cause = if error & 1 != 0 { "protection violation" } else { "page not present" };
        s.push_str(&format!(", CR2 {cr2:#x} ({access}, {cause}), error code {error:#x}"));
    } else if matches!(vector, 8 | 10 | 11 | 12 | 13 | 17 | 21 | 29 | 30) {
        s.push_str(&format!(", error code {error:#x}"));
    }
    s.push_str(&format!(", RFLAGS {rflags:#x}"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_faults_name_the_address_and_the_access() {
        let s = describe(0, 14, 0x4, 0x20_1234, 0x23, 0x3202, 0x1f_fff0, 0x10);
        assert!(s.contains("#PF page fault"), "{s}");
        assert!(s.contains("RIP 0x201234"), "{s}");
        assert!(s.contains("CR2 0x10 (read, page not present)"), "{s}");
        assert!(s.contains("CPL3"), "{s}");
    }

    #[test]
    fn general_protection_shows_its_error_code_and_others_do_not() {
        assert!(describe(1, 13, 0x18, 1, 0x23, 2, 3, 0).contains("error code 0x18"));
        assert!(!describe(1, 6, 0, 1, 0x23, 2, 3, 0).contains("error code"));
        assert_eq!(vector_name(99), "unknown vector");
    }
}
