//! vCPUs: their configuration before entry (CPUID, long mode at CPL3, registers) and the run
//! loop, the one place where every KVM exit is handled.

use super::{Outcome, VmmError, hypercall, tables};
use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, kvm_fpu, kvm_regs, kvm_segment};
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
