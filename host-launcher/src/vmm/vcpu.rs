//! vCPUs: their configuration before entry (CPUID, long mode at CPL3, registers) and the run
//! loop, the one place where every KVM exit is handled.

use super::{Outcome, VmmError, hypercall, tables};
use kvm_bindings::{
    CpuId, KVM_MAX_CPUID_ENTRIES, Msrs, kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, kvm_xsave,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use spacecore_abi::layout::{self as l, entry, selector};
use std::sync::atomic::Ordering::Relaxed;

const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const MSR_IA32_TSC: u32 = 0x10;
/// CPUID.1:ECX bit 24: the TSC-deadline timer, which this host's KVM drops silently.
const CPUID_TSC_DEADLINE: u32 = 1 << 24;
/// CPUID.1:ECX bit 31: running under a hypervisor.
const CPUID_HYPERVISOR: u32 = 1 << 31;

/// The CPUID table offered to every vCPU (patched per vCPU for its APIC id).
pub fn supported_cpuid(kvm: &Kvm) -> Result<CpuId, VmmError> {
    kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(|e| VmmError::Kvm("KVM_GET_SUPPORTED_CPUID", e))
}

/// Creates vCPU `index` and sets it up to enter the image at `entry_point` in ring 3.
pub fn create(
    vm: &VmFd,
    cpuid: &CpuId,
    index: u32,
    vcpus: u32,
    entry_point: u64,
) -> Result<VcpuFd, VmmError> {
    let setup = |what: &'static str| move |e| VmmError::VcpuSetup(index, what, e);
    let fd = vm.create_vcpu(u64::from(index)).map_err(setup("KVM_CREATE_VCPU"))?;
    fd.set_cpuid2(&vcpu_cpuid(cpuid, index)).map_err(setup("KVM_SET_CPUID2"))?;

    let mut sregs = fd.get_sregs().map_err(setup("KVM_GET_SREGS"))?;
    let code = segment(selector::USER_CODE, 0xb, true);
    let data = segment(selector::USER_DATA, 0x3, false);
    (sregs.cs, sregs.ss, sregs.ds, sregs.es) = (code, data, data, data);
    sregs.fs = kvm_segment { unusable: 1, ..data };
    sregs.gs = sregs.fs;
    sregs.tr = kvm_segment {
        base: tables::tss_addr(index),
        limit: tables::tss_limit(index),
        selector: selector::TSS_BASE + 16 * index as u16,
        type_: 0xb,
        present: 1,
        ..Default::default()
    };
    sregs.ldt = kvm_segment { unusable: 1, ..Default::default() };
    sregs.gdt.base = l::GDT_ADDR;
    sregs.gdt.limit = tables::gdt_limit(vcpus);
    sregs.idt.base = l::IDT_ADDR;
    sregs.idt.limit = tables::IDT_LIMIT;
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    sregs.cr3 = l::PAGE_TABLES_ADDR;
    sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    sregs.efer = EFER_LME | EFER_LMA;
    fd.set_sregs(&sregs).map_err(setup("KVM_SET_SREGS"))?;

    let (_, stack_top) = l::stack(index).ok_or(VmmError::TooManyVcpus(index + 1))?;
    let regs = kvm_regs {
        rip: entry_point,
        rsp: stack_top - 8,
        rdi: u64::from(index),
        rsi: l::BOOT_PARAMS_ADDR,
        rflags: entry::RFLAGS,
        ..Default::default()
    };
    fd.set_regs(&regs).map_err(setup("KVM_SET_REGS"))?;
    let fpu = kvm_fpu { fcw: 0x37f, mxcsr: 0x1f80, ..Default::default() };
    fd.set_fpu(&fpu).map_err(setup("KVM_SET_FPU"))?;
    Ok(fd)
}

/// A flat ring-3 segment; `long` for 64-bit code.
fn segment(selector: u16, type_: u8, long: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 3,
        db: u8::from(!long),
        s: 1,
        l: u8::from(long),
        g: 1,
        ..Default::default()
    }
}

/// CPUID for vCPU `index`: its APIC id, the hypervisor bit, and no TSC-deadline timer.
fn vcpu_cpuid(base: &CpuId, index: u32) -> CpuId {
    let mut cpuid = base.clone();
    for e in cpuid.as_mut_slice() {
        match e.function {
            1 => {
                e.ecx = (e.ecx & !CPUID_TSC_DEADLINE) | CPUID_HYPERVISOR;
                e.ebx = (e.ebx & 0x00ff_ffff) | (index << 24);
            }
            0xb | 0x1f => e.edx = index,
            _ => {}
        }
    }
    cpuid
}

/// Reads the guest's TSC, to relate it to host time.
pub fn guest_tsc(fd: &VcpuFd) -> Result<u64, VmmError> {
    let mut msrs = Msrs::from_entries(&[kvm_msr_entry { index: MSR_IA32_TSC, ..Default::default() }])
        .map_err(|_| VmmError::Kvm("KVM_GET_MSRS", kvm_ioctls::Error::new(libc::EINVAL)))?;
    fd.get_msrs(&mut msrs).map_err(|e| VmmError::Kvm("KVM_GET_MSRS", e))?;
    Ok(msrs.as_slice()[0].data)
}

/// Runs the vCPU until the guest ends; the outcome goes to the shared control.
pub fn run(mut fd: VcpuFd, ctx: &hypercall::Context) {
    let outcome = loop {
        if ctx.control.finished() {
            return;
        }
        let result = match fd.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                ctx.control.exits.hypercalls.fetch_add(1, Relaxed);
                // Port writes are 1, 2 or 4 bytes; copy them out of the shared run page.
                let mut value = [0u8; 4];
                let len = data.len().min(4);
                value[..len].copy_from_slice(&data[..len]);
                hypercall::handle(ctx, &mut fd, port, &value[..len])
            }
            Ok(VcpuExit::IoIn(port, _)) => {
                Err(hypercall::violation(ctx, format!("read from port {port:#x}")))
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                match count(&ctx.control.exits.mmio)
                    && (ctx.bus.read(addr, data, ctx.log) || ctx.late.read(ctx.mem, addr, data))
                {
                    true => Ok(()),
                    false => Err(hypercall::violation(ctx, format!("read of unmapped address {addr:#x}"))),
                }
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                match count(&ctx.control.exits.mmio)
                    && (ctx.bus.write(addr, data, ctx.log) || ctx.late.write(ctx.mem, addr, data))
                {
                    true => Ok(()),
                    false => Err(hypercall::violation(ctx, format!("write to unmapped address {addr:#x}"))),
                }
            }
            Ok(VcpuExit::Hlt) => Err(hypercall::violation(ctx, "halted outside a trap stub".into())),
            Ok(VcpuExit::Shutdown) => Err(kvm_error(ctx, &fd, "triple fault (shutdown)")),
            Ok(VcpuExit::InternalError) => Err(kvm_error(ctx, &fd, "KVM internal error (emulation failure)")),
            Ok(VcpuExit::FailEntry(reason, _)) => {
                Err(kvm_error(ctx, &fd, &format!("VM entry failed, reason {reason:#x}")))
            }
            Ok(other) => {
                let what = format!("unexpected exit {other:?}");
                Err(kvm_error(ctx, &fd, &what))
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Ok(()),
            Err(e) => Err(Outcome::KvmError(format!("vCPU {}: KVM_RUN failed: {e}", ctx.vcpu))),
        };
        if let Err(outcome) = result {
            break outcome;
        }
    };
    ctx.control.finish(outcome);
}

/// Counts one exit; always true, so it can lead a condition.
fn count(counter: &std::sync::atomic::AtomicU64) -> bool {
    counter.fetch_add(1, Relaxed);
    true
}

fn kvm_error(ctx: &hypercall::Context, fd: &VcpuFd, what: &str) -> Outcome {
    let rip = fd.get_regs().map(|r| format!("{:#x}", r.rip)).unwrap_or_else(|_| "unknown".into());
    Outcome::KvmError(format!("vCPU {}: {what} at RIP {rip}", ctx.vcpu))
}

/// What a snapshot keeps of the first vCPU (see `super::snapshot`): its registers, its FPU and
/// vector registers, and its TSC. The other vCPUs are not kept: they start again from the
/// entry point.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct VcpuState {
    regs: kvm_regs,
    sregs: kvm_sregs,
    xsave: kvm_xsave,
    tsc: u64,
}

impl std::fmt::Debug for VcpuState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VcpuState")
            .field("rip", &self.regs.rip)
            .field("tsc", &self.tsc)
            .finish_non_exhaustive()
    }
}

/// Bits of RFLAGS a ring-3 program can change (CF, PF, AF, ZF, SF, TF, DF, OF, AC, ID); the
/// rest is the launcher's ([`entry::RFLAGS`]).
const RFLAGS_USER: u64 = 0x0024_0dd5;

/// Takes the state of a vCPU stopped in a port-I/O exit (a hypercall). KVM finishes the
/// instruction only when it runs the vCPU again, so it is run once with `immediate_exit`,
/// which completes the exit without entering the guest; the state is then that of the
/// instruction after the hypercall.
pub fn capture(fd: &mut VcpuFd) -> Result<VcpuState, String> {
    fd.set_kvm_immediate_exit(1);
    let completed = fd.run().map(|_| ());
    fd.set_kvm_immediate_exit(0);
    match completed {
        Err(e) if e.errno() == libc::EINTR => {}
        Err(e) => return Err(format!("KVM_RUN to complete the hypercall failed: {e}")),
        Ok(()) => return Err("KVM entered the guest instead of completing the hypercall".into()),
    }
    let failed = |what: &'static str| move |e: kvm_ioctls::Error| format!("{what} failed: {e}");
    Ok(VcpuState {
        regs: fd.get_regs().map_err(failed("KVM_GET_REGS"))?,
        sregs: fd.get_sregs().map_err(failed("KVM_GET_SREGS"))?,
        xsave: fd.get_xsave().map_err(failed("KVM_GET_XSAVE"))?,
        tsc: guest_tsc(fd).map_err(|e| e.to_string())?,
    })
}

/// Sets a vCPU made by [`create`] to `state`, as far as a ring-3 program could have changed
/// it: general registers, the arithmetic flags, FPU and vector registers, the data segment
/// registers and CR2; code and stack segments, control registers, descriptor tables and the
/// task register stay those [`create`] set, whatever the snapshot says.
pub fn restore(fd: &VcpuFd, index: u32, state: &VcpuState) -> Result<(), VmmError> {
    let setup = |what: &'static str| move |e| VmmError::VcpuSetup(index, what, e);
    let mut sregs = fd.get_sregs().map_err(setup("KVM_GET_SREGS"))?;
    let user_data = |s: kvm_segment| kvm_segment { selector: s.selector & !7 | 3, dpl: 3, ..s };
    if index == 0 {
        let saved = &state.sregs;
        (sregs.ds, sregs.es, sregs.fs, sregs.gs) =
            (user_data(saved.ds), user_data(saved.es), user_data(saved.fs), user_data(saved.gs));
        sregs.cr2 = saved.cr2;
        fd.set_sregs(&sregs).map_err(setup("KVM_SET_SREGS"))?;
        let regs = kvm_regs { rflags: state.regs.rflags & RFLAGS_USER | entry::RFLAGS, ..state.regs };
        fd.set_regs(&regs).map_err(setup("KVM_SET_REGS"))?;
        // SAFETY: `kvm_xsave` is the legacy 4 KiB area, the size KVM_SET_XSAVE reads; KVM checks
        // its contents against what the vCPU supports.
        unsafe { fd.set_xsave(&state.xsave) }.map_err(setup("KVM_SET_XSAVE"))?;
    }
    // Every vCPU's clock goes on from the snapshot's: the guest's earlier readings stay behind.
    let msrs =
        Msrs::from_entries(&[kvm_msr_entry { index: MSR_IA32_TSC, data: state.tsc, ..Default::default() }])
            .map_err(|_| VmmError::VcpuSetup(index, "KVM_SET_MSRS", kvm_ioctls::Error::new(libc::EINVAL)))?;
    fd.set_msrs(&msrs).map_err(setup("KVM_SET_MSRS"))?;
    Ok(())
}

#[cfg(test)]
impl VcpuState {
    /// A state with `regs` and `sregs` and no FPU state, for tests.
    pub fn for_tests(regs: kvm_regs, sregs: kvm_sregs) -> Self {
        VcpuState { regs, sregs, xsave: kvm_xsave::default(), tsc: 1 << 40 }
    }
}
