//! `hac-floor`: the floor for boot benchmarks. It does the least any KVM launcher must do:
//! create a VM with 2 MiB of memory, enter a vCPU in 64-bit mode on a few instructions that end
//! in `hlt`, and tear everything down. `cargo xtask bench boot` compares `hac-launch` with it.

use kvm_bindings::{kvm_segment, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuExit};
use std::process::ExitCode;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

const MEMORY: usize = 2 << 20;
const PML4: u64 = 0x1000;
const CODE: u64 = 0x10_0000;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hac-floor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let kvm = Kvm::new().map_err(|e| format!("cannot open /dev/kvm: {e}"))?;
    let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEMORY)]).map_err(|e| e.to_string())?;
    let host = mem.get_host_address(GuestAddress(0)).map_err(|e| e.to_string())?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: MEMORY as u64,
        userspace_addr: host as u64,
    };
    // SAFETY: the region is `mem`'s live mapping, which outlives the VM (dropped after it).
    unsafe { vm.set_user_memory_region(region) }.map_err(|e| format!("set memory: {e}"))?;
    // One 2 MiB identity page: PML4 -> PDPT -> PD with a large page.
    let entries = [(PML4, 0x2003u64), (0x2000, 0x3003), (0x3000, 0x83)];
    for (addr, entry) in entries {
        mem.write_obj(entry, GuestAddress(addr)).map_err(|e| e.to_string())?;
    }
    // mov eax, 1; hlt
    mem.write_slice(&[0xb8, 1, 0, 0, 0, 0xf4], GuestAddress(CODE)).map_err(|e| e.to_string())?;

    let mut vcpu = vm.create_vcpu(0).map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    let mut sregs = vcpu.get_sregs().map_err(|e| e.to_string())?;
    let code = kvm_segment {
        limit: 0xffff_ffff,
        selector: 8,
        type_: 0xb,
        present: 1,
        s: 1,
        l: 1,
        g: 1,
        ..Default::default()
    };
    let data = kvm_segment { selector: 0x10, type_: 0x3, db: 1, l: 0, ..code };
    (sregs.cs, sregs.ds, sregs.es, sregs.ss) = (code, data, data, data);
    sregs.cr3 = PML4;
    sregs.cr4 = 1 << 5;
    sregs.cr0 = 0x8000_0033;
    sregs.efer = 0x500;
    vcpu.set_sregs(&sregs).map_err(|e| e.to_string())?;
    let regs = kvm_bindings::kvm_regs { rip: CODE, rflags: 2, ..Default::default() };
    vcpu.set_regs(&regs).map_err(|e| e.to_string())?;
    match vcpu.run() {
        Ok(VcpuExit::Hlt) => Ok(()),
        Ok(other) => Err(format!("unexpected exit {other:?}")),
        Err(e) => Err(format!("KVM_RUN: {e}")),
    }
}
