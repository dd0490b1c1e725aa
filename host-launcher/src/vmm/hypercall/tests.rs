//! The hypercalls on guest memory built by `memory::map`, without KVM.

use super::*;
use crate::vmm::bus::Bus;
use crate::vmm::memory::{self, LateMemory};
use spacecore_abi::hypercall::MAX_KEYSTORE_PASSWORD;

const MEMORY: u64 = 4 << 20;
/// Where the tests put the `Buffer` record and the buffer (both in guest-owned memory).
const RECORD: u32 = 0x10_0000;
const BUFFER: u64 = 0x20_0000;
const FILL: u8 = 0xaa;

/// A guest's memory and run state, and the passwords of its boot.
struct Guest {
    mem: Memory,
    control: Control,
    log: Log,
    bus: Bus,
    late: LateMemory,
    passwords: Passwords,
}

impl Guest {
    /// A guest whose boot has `password` as the BLS key file's password, and no ECDSA one.
    fn new(password: Option<Arc<KeystorePassword>>) -> Self {
        Self::with(password, None)
    }

    fn with(keystore: Option<Arc<KeystorePassword>>, ecdsa: Option<Arc<KeystorePassword>>) -> Self {
        Guest {
            mem: memory::map(MEMORY).unwrap(),
            control: Control::new(2, Default::default()),
            log: Log::new("test"),
            bus: Bus::default(),
            late: LateMemory::new(MEMORY),
            passwords: Passwords {
                keystore: PasswordHandover::new(keystore),
                ecdsa: PasswordHandover::new(ecdsa),
            },
        }
    }

    fn ctx(&self, vcpu: u32) -> Context<'_> {
        self.ctx_at(vcpu, &super::super::snapshot::Point::Continue)
    }

    fn ctx_at<'a>(&'a self, vcpu: u32, point: &'a super::super::snapshot::Point) -> Context<'a> {
        Context {
            vcpu,
            mem: &self.mem,
            control: &self.control,
            log: &self.log,
            bus: &self.bus,
            late: &self.late,
            passwords: &self.passwords,
            point,
        }
    }

    /// Fills the buffer area, writes a `Buffer { addr, len }` record at `RECORD` and makes the
    /// `KeystorePassword` call from vCPU `vcpu`.
    fn call(&self, vcpu: u32, addr: u64, len: u64) -> Result<(), Outcome> {
        self.call_for(Hypercall::KeystorePassword, vcpu, addr, len)
    }

    /// [`Guest::call`] with the hypercall `call`.
    fn call_for(&self, call: Hypercall, vcpu: u32, addr: u64, len: u64) -> Result<(), Outcome> {
        self.mem.write_slice(&[FILL; 64], GuestAddress(BUFFER)).unwrap();
        self.mem.write_slice(&Buffer { addr, len }.encode(), GuestAddress(u64::from(RECORD))).unwrap();
        serve(&self.ctx(vcpu), call, RECORD)
    }

    /// The record as the launcher left it.
    fn record(&self) -> Buffer {
        let mut bytes = [0u8; Buffer::SIZE];
        self.mem.read_slice(&mut bytes, GuestAddress(u64::from(RECORD))).unwrap();
        Buffer::decode(&bytes).unwrap()
    }

    fn buffer(&self) -> [u8; 64] {
        let mut bytes = [0u8; 64];
        self.mem.read_slice(&mut bytes, GuestAddress(BUFFER)).unwrap();
        bytes
    }
}

fn password(text: &str) -> Arc<KeystorePassword> {
    let bytes = zeroize::Zeroizing::new(text.as_bytes().to_vec());
    Arc::new(KeystorePassword::from_file_bytes(bytes, false).unwrap())
}

#[track_caller]
fn expect_violation(result: Result<(), Outcome>, needle: &str) {
    match result {
        Err(Outcome::AbiViolation(what)) => {
            assert!(what.contains("keystore password: ") && what.contains(needle), "{what}")
        }
        other => panic!("expected an ABI violation about {needle:?}, got {other:?}"),
    }
}

#[test]
fn without_a_password_the_answer_is_none_and_nothing_else_is_written() {
    let guest = Guest::new(None);
    guest.call(0, BUFFER, 64).unwrap();
    assert_eq!(guest.record(), Buffer { addr: BUFFER, len: KEYSTORE_PASSWORD_NONE });
    assert_eq!(guest.buffer(), [FILL; 64]);
    // Even a buffer the launcher could not write to: nothing is written there.
    guest.call(0, 0x7000, 64).unwrap();
    assert_eq!(guest.record().len, KEYSTORE_PASSWORD_NONE);
}

#[test]
fn a_short_buffer_gets_the_length_and_keeps_the_password_for_a_retry() {
    let guest = Guest::new(Some(password("hunter2")));
    guest.call(0, BUFFER, 6).unwrap();
    assert_eq!(guest.record(), Buffer { addr: BUFFER, len: 7 });
    assert_eq!(guest.buffer(), [FILL; 64], "nothing is handed over");
    // A zero-length probe from anywhere is answered the same way.
    guest.call(0, 0, 0).unwrap();
    assert_eq!(guest.record(), Buffer { addr: 0, len: 7 });
    // The retry with room for it gets it.
    guest.call(0, BUFFER, 7).unwrap();
    assert_eq!(guest.record(), Buffer { addr: BUFFER, len: 7 });
    assert_eq!(&guest.buffer()[..7], b"hunter2");
}

#[test]
fn the_password_is_written_exactly_and_handed_over_once_per_boot() {
    let secret = password("correct horse battery staple");
    let guest = Guest::new(Some(secret.clone()));
    guest.call(0, BUFFER, 64).unwrap();
    assert_eq!(guest.record(), Buffer { addr: BUFFER, len: 28 });
    let buffer = guest.buffer();
    assert_eq!(&buffer[..28], b"correct horse battery staple");
    assert_eq!(buffer[28..], [FILL; 36], "nothing past the password is written");

    // Taken: any later call this boot, from any vCPU, gets NONE and an untouched buffer.
    for vcpu in [0, 1] {
        guest.call(vcpu, BUFFER, 64).unwrap();
        assert_eq!(guest.record().len, KEYSTORE_PASSWORD_NONE);
        assert_eq!(guest.buffer(), [FILL; 64]);
    }

    // The next boot holds the same password, not handed over yet.
    let reboot = Guest::new(Some(secret));
    reboot.call(0, BUFFER, 64).unwrap();
    assert_eq!(reboot.record().len, 28);
    assert_eq!(&reboot.buffer()[..28], b"correct horse battery staple");
}

#[test]
fn the_longest_password_fits_its_own_length() {
    let longest = "p".repeat(MAX_KEYSTORE_PASSWORD);
    let guest = Guest::new(Some(password(&longest)));
    guest.call(0, BUFFER, MAX_KEYSTORE_PASSWORD as u64 - 1).unwrap();
    assert_eq!(guest.record().len, MAX_KEYSTORE_PASSWORD as u64);
    guest.call(0, BUFFER, MAX_KEYSTORE_PASSWORD as u64).unwrap();
    assert_eq!(guest.record().len, MAX_KEYSTORE_PASSWORD as u64);
    let mut back = vec![0u8; MAX_KEYSTORE_PASSWORD];
    guest.mem.read_slice(&mut back, GuestAddress(BUFFER)).unwrap();
    assert_eq!(back, longest.as_bytes());
}

#[test]
fn bad_buffers_are_violations_and_hand_nothing_over() {
    let guest = Guest::new(Some(password("hunter2")));
    let cases = [
        (MEMORY - 4, 16, "is not all guest memory"),
        (MEMORY, 16, "is not all guest memory"),
        (BUFFER, MEMORY, "is not all guest memory"),
        (BUFFER, u64::MAX / 2, "is not all guest memory"),
        (u64::MAX - 2, 16, "wraps around"),
        (0x7000, 16, "starts in the launcher's region"),
        (0xcfff8, 16, "starts in the launcher's region"),
        (0, 64, "starts in the launcher's region"),
    ];
    for (addr, len, needle) in cases {
        expect_violation(guest.call(1, addr, len), needle);
        assert_eq!(guest.record().len, len, "the record is left alone");
    }
    // None of them took the password.
    guest.call(0, BUFFER, 64).unwrap();
    assert_eq!(guest.record().len, 7);
}

#[test]
fn bad_records_are_violations() {
    let guest = Guest::new(Some(password("hunter2")));
    for (arg, needle) in [(0x7000, "launcher's region"), (MEMORY as u32 - 8, "outside guest memory")] {
        expect_violation(serve(&guest.ctx(0), Hypercall::KeystorePassword, arg), needle);
    }
}

#[test]
fn the_two_passwords_are_handed_over_independently() {
    let guest = Guest::with(Some(password("bls password")), Some(password("ecdsa password")));
    // The ECDSA one first: its own bytes, and the BLS one is still there.
    guest.call_for(Hypercall::EcdsaKeystorePassword, 0, BUFFER, 64).unwrap();
    assert_eq!(guest.record().len, 14);
    assert_eq!(&guest.buffer()[..14], b"ecdsa password");
    guest.call_for(Hypercall::EcdsaKeystorePassword, 0, BUFFER, 64).unwrap();
    assert_eq!(guest.record().len, KEYSTORE_PASSWORD_NONE, "once per boot");
    assert_eq!(guest.buffer(), [FILL; 64]);
    guest.call(0, BUFFER, 64).unwrap();
    assert_eq!(guest.record().len, 12);
    assert_eq!(&guest.buffer()[..12], b"bls password");

    // Without an ECDSA password file: NONE, whatever the BLS one does.
    let guest = Guest::new(Some(password("bls password")));
    guest.call_for(Hypercall::EcdsaKeystorePassword, 1, BUFFER, 64).unwrap();
    assert_eq!(guest.record().len, KEYSTORE_PASSWORD_NONE);
    assert_eq!(guest.buffer(), [FILL; 64]);
    // A short buffer gets the length only, as for the BLS password.
    let guest = Guest::with(None, Some(password("ecdsa password")));
    guest.call_for(Hypercall::EcdsaKeystorePassword, 0, BUFFER, 3).unwrap();
    assert_eq!(guest.record().len, 14);
    assert_eq!(guest.buffer(), [FILL; 64]);
    guest.call(0, BUFFER, 64).unwrap();
    assert_eq!(guest.record().len, KEYSTORE_PASSWORD_NONE, "no BLS password configured");
}

#[test]
fn bad_ecdsa_buffers_are_violations_naming_the_call() {
    let guest = Guest::with(None, Some(password("ecdsa password")));
    for (addr, len, needle) in
        [(0x7000, 16, "starts in the launcher's region"), (MEMORY - 4, 16, "is not all guest memory")]
    {
        match guest.call_for(Hypercall::EcdsaKeystorePassword, 0, addr, len) {
            Err(Outcome::AbiViolation(what)) => {
                assert!(what.contains("ECDSA keystore password: ") && what.contains(needle), "{what}")
            }
            other => panic!("expected an ABI violation, got {other:?}"),
        }
    }
    guest.call_for(Hypercall::EcdsaKeystorePassword, 0, BUFFER, 64).unwrap();
    assert_eq!(guest.record().len, 14, "nothing was handed over by the bad calls");
}

#[test]
fn messages_from_below_the_guests_memory_are_violations() {
    // The ring-0 region (tables, trap stacks, boot information) is not the guest's to print.
    let guest = Guest::new(None);
    for (call, prefix) in [(Hypercall::ConsoleWrite, "console write: "), (Hypercall::Panic, "panic: ")] {
        for addr in [0, 0x1000, 0x9000, GUEST_BASE - 8] {
            match guest.call_for(call, 0, addr, 16) {
                Err(Outcome::AbiViolation(what)) => assert!(
                    what.contains(prefix) && what.contains("starts in the launcher's region"),
                    "{what}"
                ),
                other => panic!("{call:?} from {addr:#x}: expected an ABI violation, got {other:?}"),
            }
        }
    }
    // From the guest's memory, and an empty one from anywhere, they are served.
    guest.call_for(Hypercall::ConsoleWrite, 0, BUFFER, 16).unwrap();
    guest.call_for(Hypercall::ConsoleWrite, 0, 0, 0).unwrap();
    assert_eq!(
        guest.call_for(Hypercall::Panic, 0, BUFFER, 2),
        Err(Outcome::Panicked("\u{fffd}\u{fffd}".into()))
    );
}

#[test]
fn a_detached_guest_is_served_as_a_vm_is_but_for_fault_reports() {
    let mem = memory::map(MEMORY).unwrap();
    let guest = Detached::new(2, MEMORY, Log::new("test"), Some(password("pw")), None);
    mem.write_slice(&Buffer { addr: BUFFER, len: 64 }.encode(), GuestAddress(u64::from(RECORD))).unwrap();
    let record = RECORD.to_le_bytes();
    guest.port_write(&mem, 1, Hypercall::KeystorePassword.port(), &record).unwrap();
    let mut pw = [0u8; 2];
    mem.read_slice(&mut pw, GuestAddress(BUFFER)).unwrap();
    assert_eq!(&pw, b"pw");
    guest.post(spacecore_abi::hypercall::events::DEVICE);
    mem.write_slice(&Wait { timeout_ns: WAIT_FOREVER, events: 0 }.encode(), GuestAddress(u64::from(RECORD)))
        .unwrap();
    guest.port_write(&mem, 0, Hypercall::Wait.port(), &record).unwrap();
    assert_eq!(guest.port_write(&mem, 0, Hypercall::Exit.port(), &[7, 0, 0, 0]), Err(Outcome::Exited(7)));
    for (port, data) in
        [(Hypercall::Fault.port(), &[14u8][..]), (0x3f8, &record[..]), (Hypercall::Ready.port(), &[1])]
    {
        assert!(matches!(guest.port_write(&mem, 0, port, data), Err(Outcome::AbiViolation(_))), "{port:#x}");
    }
}

#[test]
fn the_snapshot_point_answers_fresh_and_saves_only_an_idle_guest() {
    use super::super::snapshot::Point;
    use spacecore_abi::hypercall::SNAPSHOT_IDLE;
    let guest = Guest::new(None);
    let record = GuestAddress(u64::from(RECORD));
    // A boot that saves nothing: "fresh", whatever the guest says, from any vCPU.
    for (vcpu, said) in [(0, SNAPSHOT_IDLE), (1, 0)] {
        guest.mem.write_obj(said, record).unwrap();
        snapshot_point(&guest.ctx(vcpu), None, RECORD).unwrap();
        assert_eq!(guest.mem.read_obj::<u64>(record).unwrap(), SNAPSHOT_FRESH);
    }
    // Records in the launcher's region or past memory are refused.
    for bad in [0x8000u32, MEMORY as u32 - 4] {
        let e = snapshot_point(&guest.ctx(0), None, bad).unwrap_err();
        assert!(matches!(e, Outcome::AbiViolation(ref what) if what.contains("snapshot point")), "{e:?}");
    }
    // A boot that saves: a guest whose other vCPUs are busy is not saved, and the record is
    // left as it was.
    let saving = Point::Save(Default::default());
    guest.mem.write_obj(0u64, record).unwrap();
    assert_eq!(snapshot_point(&guest.ctx_at(0, &saving), None, RECORD), Err(Outcome::Saved));
    let Point::Save(slot) = &saving else { unreachable!() };
    let taken = slot.lock().unwrap().take().unwrap().unwrap_err();
    assert!(taken.contains("not idle"), "{taken}");
    assert_eq!(guest.mem.read_obj::<u64>(record).unwrap(), 0);
    // Only the first vCPU may be saved.
    guest.mem.write_obj(SNAPSHOT_IDLE, record).unwrap();
    let e = snapshot_point(&guest.ctx_at(1, &saving), None, RECORD).unwrap_err();
    assert!(matches!(e, Outcome::AbiViolation(ref what) if what.contains("only the first vCPU")), "{e:?}");
}
