//! The state of a vCPU as the launcher reads and sets it beyond its creation: the guest's TSC,
//! and what a snapshot keeps of the first vCPU (`super::snapshot`), taken at the snapshot point
//! and given back, as far as ring 3 could have changed it, to a vCPU made by `super::vcpu`.

use super::VmmError;
use kvm_bindings::{Msrs, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, kvm_xsave};
use kvm_ioctls::VcpuFd;
use spacecore_abi::layout::entry;

const MSR_IA32_TSC: u32 = 0x10;

/// Reads the guest's TSC, to relate it to host time.
pub fn guest_tsc(fd: &VcpuFd) -> Result<u64, VmmError> {
    let mut msrs = Msrs::from_entries(&[kvm_msr_entry { index: MSR_IA32_TSC, ..Default::default() }])
        .map_err(|_| VmmError::Kvm("KVM_GET_MSRS", kvm_ioctls::Error::new(libc::EINVAL)))?;
    fd.get_msrs(&mut msrs).map_err(|e| VmmError::Kvm("KVM_GET_MSRS", e))?;
    Ok(msrs.as_slice()[0].data)
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

/// Sets a vCPU made by [`super::vcpu::create`] to `state`, as far as a ring-3 program could have changed
/// it: general registers, the arithmetic flags, FPU and vector registers, the data segment
/// registers and CR2; code and stack segments, control registers, descriptor tables and the
/// task register stay those it set, whatever the snapshot says.
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
