use super::*;
use kvm_bindings::{kvm_regs, kvm_sregs};

const MIB: u64 = 1 << 20;

fn extent(addr: u64, offset: u64, len: u64) -> Extent {
    Extent { addr, offset, len }
}

#[test]
fn extents_must_be_whole_pages_in_order_inside_the_file_and_guest_memory() {
    let memory = 256 * MIB;
    let file = 64 * PAGE;
    let ok = [extent(l::GUEST_BASE, 0, 2 * PAGE), extent(l::IMAGE_ADDR, 2 * PAGE, PAGE)];
    check_extents(&ok, file, memory).unwrap();
    check_extents(&[], 0, memory).unwrap();
    let refused = |extents: &[Extent], expected: &str| {
        let e = check_extents(extents, file, memory).unwrap_err();
        assert!(e.contains(expected), "{e} (expected {expected})");
    };
    refused(&[extent(l::GUEST_BASE + 1, 0, PAGE)], "whole pages");
    refused(&[extent(l::GUEST_BASE, 0, 100)], "whole pages");
    refused(&[extent(l::GUEST_BASE, 7, PAGE)], "whole pages");
    refused(&[extent(l::GUEST_BASE, 0, 0)], "whole pages");
    // The launcher's region (page tables, boot information) is never taken from a snapshot.
    refused(&[extent(l::PAGE_TABLES_ADDR, 0, PAGE)], "below GUEST_BASE");
    refused(&[extent(0, 0, PAGE)], "below GUEST_BASE");
    refused(&[extent(l::IMAGE_ADDR, 0, PAGE), extent(l::GUEST_BASE, PAGE, PAGE)], "out of order");
    refused(
        &[extent(l::GUEST_BASE, 0, 2 * PAGE), extent(l::GUEST_BASE + PAGE, 0, PAGE)],
        "over the one before",
    );
    refused(&[extent(memory - PAGE, 0, 2 * PAGE)], "outside guest memory");
    refused(&[extent(memory, 0, PAGE)], "outside guest memory");
    refused(&[extent(u64::MAX - PAGE + 1, 0, PAGE)], "wraps around");
    refused(&[extent(l::GUEST_BASE, file - PAGE, 2 * PAGE)], "past the end of memory");
    refused(&[extent(l::GUEST_BASE, u64::MAX - PAGE + 1, PAGE)], "past the end of memory");
    // Across the split at EAGER_END, two host mappings: one extent cannot span them.
    let big = 2048 * MIB;
    let end = memory::EAGER_END;
    let e = check_extents(&[extent(end - PAGE, 0, 2 * PAGE)], file, big).unwrap_err();
    assert!(e.contains("across two of its ranges"), "{e}");
    let many: Vec<_> =
        (0..=MAX_EXTENTS as u64).map(|i| extent(l::GUEST_BASE + 2 * i * PAGE, 0, PAGE)).collect();
    refused(&many, "more than");
}

#[test]
fn only_written_pages_at_and_above_guest_base_are_saved_in_few_extents() {
    let memory = memory::map(64 * MIB).unwrap();
    let write = |addr: u64, byte: u8| memory.write_obj(byte, GuestAddress(addr)).unwrap();
    write(l::BOOT_INFO_ADDR, 1); // the launcher's region: never saved
    write(l::GUEST_BASE, 1);
    write(l::GUEST_BASE + 3 * PAGE, 2); // two zero pages between: bridged
    write(l::GUEST_BASE + 4 * PAGE + 100, 0); // touched, but all zeros: left out
    write(l::IMAGE_ADDR, 3); // far away: an extent of its own
    write(l::IMAGE_ADDR + PAGE, 4);
    write(60 * MIB, 5);
    let extents = written_extents(&memory);
    assert_eq!(
        extents,
        [
            extent(l::GUEST_BASE, 0, 4 * PAGE),
            extent(l::IMAGE_ADDR, 4 * PAGE, 2 * PAGE),
            extent(60 * MIB, 6 * PAGE, PAGE),
        ]
    );
    check_extents(&extents, 7 * PAGE, 64 * MIB).unwrap();
}

fn captured() -> Captured {
    let regs = kvm_regs { rip: l::IMAGE_ADDR + 0x40, rax: 7, ..Default::default() };
    Captured {
        vcpu: VcpuState::for_tests(regs, kvm_sregs::default()),
        devices: Vec::new(),
        entry: l::IMAGE_ADDR,
        vcpus: 2,
    }
}

/// An image file to name in snapshots.
fn image(dir: &Path) -> File {
    std::fs::write(dir.join("image.elf"), b"not really an image").unwrap();
    File::open(dir.join("image.elf")).unwrap()
}

#[test]
fn a_saved_snapshot_opens_fits_only_its_spec_and_image_and_puts_its_memory_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    let image = image(tmp.path());
    let memory = memory::map(32 * MIB).unwrap();
    memory.write_slice(b"heap", GuestAddress(l::GUEST_BASE + PAGE)).unwrap();
    memory.write_slice(b"text", GuestAddress(l::IMAGE_ADDR)).unwrap();
    let mut target = Target::create(&dir, &image).unwrap();
    let saved = save(&mut target, &memory, captured()).unwrap();
    assert_eq!((saved.memory_bytes, saved.extents), (2 * PAGE, 2));
    drop(target);
    use std::os::unix::fs::PermissionsExt;
    for name in [STATE_FILE, MEMORY_FILE] {
        let mode = std::fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400, "{name}: read-only, so its pages may be shared");
    }
    let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);

    let snapshot = Snapshot::open(&dir).unwrap();
    let id = ImageId::of(&image).unwrap();
    snapshot.fits(32 * MIB, 2, &id).unwrap();
    let why = |r: Result<(), SnapshotError>| r.unwrap_err().to_string();
    assert!(
        why(snapshot.fits(64 * MIB, 2, &id))
            .contains("saved with 32 MiB of memory, the spec asks for 64 MiB")
    );
    assert!(why(snapshot.fits(32 * MIB, 1, &id)).contains("saved with 2 vCPUs, the spec asks for 1"));
    let other = tmp.path().join("other.elf");
    std::fs::write(&other, b"another image").unwrap();
    let other = ImageId::of(&File::open(other).unwrap()).unwrap();
    assert!(why(snapshot.fits(32 * MIB, 2, &other)).contains("another image file"));
    assert_eq!(snapshot.entry(), l::IMAGE_ADDR);

    let fresh = memory::map(32 * MIB).unwrap();
    let shared = snapshot.place(&fresh).unwrap();
    assert_eq!(shared, 2 * PAGE, "a read-only memory file is mapped, not copied");
    let mut got = [0u8; 4];
    fresh.read_slice(&mut got, GuestAddress(l::GUEST_BASE + PAGE)).unwrap();
    assert_eq!(&got, b"heap");
    fresh.read_slice(&mut got, GuestAddress(l::IMAGE_ADDR)).unwrap();
    assert_eq!(&got, b"text");
    // Copy-on-write: the guest's writes stay its own.
    fresh.write_slice(b"mine", GuestAddress(l::IMAGE_ADDR)).unwrap();
    let again = memory::map(32 * MIB).unwrap();
    snapshot.place(&again).unwrap();
    again.read_slice(&mut got, GuestAddress(l::IMAGE_ADDR)).unwrap();
    assert_eq!(&got, b"text");
    let wrong = memory::map(64 * MIB).unwrap();
    assert!(snapshot.place(&wrong).is_err(), "memory of another size");

    // Saving again replaces the files, and a writable memory file is copied, not mapped.
    let target = Target::create(&dir, &image).unwrap();
    drop(target);
    assert!(Snapshot::open(&dir).is_err(), "an empty state file is no snapshot");
    let mut target = Target::create(&dir, &image).unwrap();
    save(&mut target, &memory, captured()).unwrap();
    drop(target);
    std::fs::set_permissions(dir.join(MEMORY_FILE), std::fs::Permissions::from_mode(0o600)).unwrap();
    let copied = Snapshot::open(&dir).unwrap();
    let fresh = memory::map(32 * MIB).unwrap();
    assert_eq!(copied.place(&fresh).unwrap(), 0);
    fresh.read_slice(&mut got, GuestAddress(l::GUEST_BASE + PAGE)).unwrap();
    assert_eq!(&got, b"heap");
}

#[test]
fn a_damaged_or_hostile_snapshot_is_refused_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    let image = image(tmp.path());
    let memory = memory::map(32 * MIB).unwrap();
    memory.write_slice(b"heap", GuestAddress(l::GUEST_BASE)).unwrap();
    let mut target = Target::create(&dir, &image).unwrap();
    save(&mut target, &memory, captured()).unwrap();
    drop(target);
    let state_path = dir.join(STATE_FILE);
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&state_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let refused = |change: &dyn Fn(&mut serde_json::Value), expected: &str| {
        let mut state = original.clone();
        change(&mut state);
        std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
        let e = Snapshot::open(&dir).unwrap_err().to_string();
        assert!(e.contains(expected), "{e} (expected {expected})");
    };
    refused(&|s| s["format"] = 2.into(), "format 2");
    refused(&|s| s["abi_version"] = 99.into(), "ABI 99");
    refused(&|s| s["extents"][0]["addr"] = l::PAGE_TABLES_ADDR.into(), "below GUEST_BASE");
    refused(&|s| s["extents"][0]["len"] = (2 * PAGE).into(), "past the end of memory");
    refused(&|s| s["entry"] = 0x1000.into(), "entry point");
    refused(&|s| s["entry"] = (64 * MIB).into(), "entry point");
    refused(&|s| s["vcpu"] = "registers".into(), "not a snapshot's state");
    std::fs::write(&state_path, b"{").unwrap();
    assert!(Snapshot::open(&dir).unwrap_err().to_string().contains("not a snapshot's state"));
    std::fs::write(&state_path, vec![b' '; MAX_STATE_BYTES as usize + 1]).unwrap();
    assert!(Snapshot::open(&dir).unwrap_err().to_string().contains("larger than"));
    // Symbolic links are not followed.
    std::fs::remove_file(&state_path).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("image.elf"), &state_path).unwrap();
    assert!(Snapshot::open(&dir).unwrap_err().to_string().contains("cannot open snapshot.json"));
    let missing = Snapshot::open(&tmp.path().join("none")).unwrap_err().to_string();
    assert!(missing.contains("--save-snapshot"), "{missing}");
}

#[test]
fn a_restored_vcpu_keeps_the_launchers_rings_and_tables_whatever_the_snapshot_says() {
    if !test_support::kvm("a_restored_vcpu_keeps_the_launchers_rings_and_tables_whatever_the_snapshot_says") {
        return;
    }
    let kvm = kvm_ioctls::Kvm::new().unwrap();
    let vm = kvm.create_vm().unwrap();
    let cpuid = super::super::vcpu::supported_cpuid(&kvm).unwrap();
    let fd = super::super::vcpu::create(&vm, &cpuid, 0, 1, l::IMAGE_ADDR).unwrap();
    let fresh = fd.get_sregs().unwrap();
    // A hostile snapshot: ring 0 code, other tables, IOPL 3 and interrupts on, a ring-0 data
    // segment.
    let mut sregs = fresh;
    sregs.cs.dpl = 0;
    sregs.cs.selector = spacecore_abi::layout::selector::KERNEL_CODE;
    sregs.cr3 = 0x5000;
    sregs.cr0 &= !1;
    sregs.idt.base = 0x6000;
    sregs.ds.selector = spacecore_abi::layout::selector::KERNEL_DATA;
    sregs.ds.dpl = 0;
    sregs.cr2 = 0x1234_5000;
    let regs = kvm_regs { rip: l::IMAGE_ADDR + 0x99, rax: 42, rflags: 0x3202 | 1 << 0, ..Default::default() };
    let state = VcpuState::for_tests(regs, sregs);
    super::super::vcpu_state::restore(&fd, 0, &state).unwrap();
    let (got, got_regs) = (fd.get_sregs().unwrap(), fd.get_regs().unwrap());
    assert_eq!((got.cs, got.ss, got.tr), (fresh.cs, fresh.ss, fresh.tr));
    assert_eq!((got.cr0, got.cr3, got.cr4, got.efer), (fresh.cr0, fresh.cr3, fresh.cr4, fresh.efer));
    assert_eq!((got.gdt, got.idt), (fresh.gdt, fresh.idt));
    assert_eq!((got.ds.dpl, got.ds.selector & 3), (3, 3), "data segments stay ring 3");
    assert_eq!(got.cr2, 0x1234_5000);
    assert_eq!((got_regs.rip, got_regs.rax), (l::IMAGE_ADDR + 0x99, 42));
    assert_eq!(got_regs.rflags, 0x2 | 1, "IOPL and IF dropped, the carry kept");
}

#[test]
fn a_snapshot_others_may_write_or_own_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    let image = image(tmp.path());
    let memory = memory::map(16 * MIB).unwrap();
    let mut target = Target::create(&dir, &image).unwrap();
    save(&mut target, &memory, captured()).unwrap();
    drop(target);
    Snapshot::open(&dir).unwrap();
    let refused = |expected: &str| {
        let e = Snapshot::open(&dir).unwrap_err().to_string();
        assert!(e.contains(expected), "{e} (expected {expected})");
    };
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    mode(&dir, 0o777);
    refused("the directory may be written by its group or other users");
    let e = Target::create(&dir, &image).unwrap_err().to_string();
    assert!(e.contains("may be written by its group or other users"), "{e}");
    mode(&dir, 0o700);
    mode(&dir.join(MEMORY_FILE), 0o420);
    refused("memory may be written by its group");
    mode(&dir.join(MEMORY_FILE), 0o400);
    // A directory reached through a symbolic link is not the launcher's to trust.
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let e = Snapshot::open(&link).unwrap_err().to_string();
    assert!(e.contains("not a directory or a regular file"), "{e}");
    let e = Target::create(&link, &image).unwrap_err().to_string();
    assert!(e.contains("not a directory or a regular file"), "{e}");
    // Another user's file (as root only: only root can give a file away).
    // SAFETY: geteuid has no failure mode.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(dir.join(STATE_FILE), Some(65534), None).unwrap();
        refused("snapshot.json belongs to user 65534");
    }
}
