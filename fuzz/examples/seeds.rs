//! Writes the seed corpora, `corpus/<target>/<name>`: a few valid inputs per target (and a few
//! near misses), made with the project's own code where it has an encoder.
//!
//!     cargo +nightly run --example seeds        # from fuzz/
//!
//! Existing files of the same name are overwritten; others are left alone.

use std::path::Path;

use avs_protocol::bls::{self, SecretKey};
use avs_protocol::bn254;
use avs_protocol::rpc::{ErrorCode, ErrorObject, Request, Response};
use avs_protocol::{Avs, IncredibleSquaring, NewTask, SignedTaskResponse};
use eip2335::web3::{BlsKeyFile, EcdsaKeystore};
use eip2335::{Kdf, Keystore};
use spacecore_abi::hypercall::{Buffer, Hypercall, PORT_BASE, WAIT_FOREVER, Wait};
use spacecore_abi::layout::GUEST_BASE;
use spacecore_fuzz::disk::MemDisk;
use spacecore_fuzz::hypercalls::{Call, HypercallCase, Password};
use spacecore_fuzz::mmio_ops::{Access, MmioCase};
use spacecore_fuzz::ring::{RingImage, descriptor};
use spacecore_store::{NEEDED_SECTORS, RecordKey, SECTOR, Store};
use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut written = 0;
    let mut put = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).expect("creating the corpus directory");
        std::fs::write(dir.join(name), bytes).expect("writing a seed");
        written += 1;
    };
    spec(&mut put);
    block_request(&mut put);
    net_tx(&mut put);
    mmio(&mut put);
    store(&mut put);
    let signed = avs_json(&mut put);
    keystore(&mut put);
    bls_points(&mut put, &signed);
    bn254_points(&mut put);
    web3_keyfiles(&mut put);
    history(&mut put);
    intake(&mut put);
    hypercall(&mut put);
    net_rx(&mut put);
    http_request(&mut put);
    println!("wrote {written} seeds under {}", corpus.display());
}

type Put<'a> = dyn FnMut(&str, &str, &[u8]) + 'a;

fn spec(put: &mut Put<'_>) {
    put("spec", "sample", include_bytes!("../../hac/tests/sample.hac.toml"));
    put("spec", "example", include_bytes!("../../examples/spacecore.toml"));
    let smallest = "apiVersion = \"vistara.eigenlayer/v1\"\nkind = \"AVSSpaceCore\"\n\n[metadata]\n\
                    name = \"my-avs\"\n\n[spec.resources]\ncpu = 1\nmemory = \"512Mi\"\n\n\
                    [spec.deployment]\nimage = \"./build/my-avs.elf\"\n";
    put("spec", "smallest", smallest.as_bytes());
    let disk_and_ports = format!(
        "{}storage = \"10Gi\"\n\n[spec.storage]\npath = \"/var/lib/spacecore/my-avs/disk.img\"\n\
         resize = true\n\n[spec.networking]\nnetwork_type = \"private\"\n\
         guest_address = \"192.168.77.2/24\"\nhost_address = \"192.168.77.1\"\n\
         publish_address = \"0.0.0.0\"\n\n[spec.networking.inbound_ports]\nHTTP = 80\n\
         metrics = 9090\n\n[spec.networking.publish]\nHTTP = 8080\nmetrics = 0\n\n\
         [spec.deployment]\nimage = \"./build/my-avs.elf\"\n",
        &smallest[..smallest.find("[spec.deployment]").expect("a deployment table")]
    );
    put("spec", "disk-and-ports", disk_and_ports.as_bytes());
    put("spec", "bad-memory", smallest.replace("512Mi", "512Mx").as_bytes());
}

const NEXT: u16 = VRING_DESC_F_NEXT as u16;
const WRITE: u16 = VRING_DESC_F_WRITE as u16;
const INDIRECT: u16 = VRING_DESC_F_INDIRECT as u16;

/// A virtio-blk request header.
fn blk_header(kind: u32, sector: u64) -> [u8; 16] {
    let mut h = [0; 16];
    h[..4].copy_from_slice(&kind.to_le_bytes());
    h[8..].copy_from_slice(&sector.to_le_bytes());
    h
}

fn block_request(put: &mut Put<'_>) {
    use virtio_bindings::virtio_blk::{
        VIRTIO_BLK_T_FLUSH as FLUSH, VIRTIO_BLK_T_GET_ID as GET_ID, VIRTIO_BLK_T_IN as IN,
        VIRTIO_BLK_T_OUT as OUT,
    };
    const HDR: u64 = 0x400;
    const DATA: u64 = 0x600;
    const STATUS: u64 = 0xa00;
    // header, data..., status: a chain at descriptor `first`.
    let request =
        |ring: &mut RingImage, first: u16, hdr: u64, kind: u32, sector: u64, data: &[(u64, u32)]| {
            ring.poke(hdr, &blk_header(kind, sector));
            ring.desc(first, hdr, 16, NEXT, first + 1);
            let writable = if kind == OUT { 0 } else { WRITE };
            for (i, &(addr, len)) in data.iter().enumerate() {
                let i = i as u16;
                ring.desc(first + 1 + i, addr, len, writable | NEXT, first + 2 + i);
            }
            let last = first + 1 + data.len() as u16;
            ring.desc(last, STATUS + u64::from(first), 1, WRITE, 0).offer(first);
        };
    let one = |kind, sector, data: &[(u64, u32)], read_only| {
        let mut ring = RingImage::new(16, read_only);
        request(&mut ring, 0, HDR, kind, sector, data);
        ring.encode()
    };
    put("block_request", "read", &one(IN, 3, &[(DATA, 512)], false));
    put("block_request", "write-two-buffers", &one(OUT, 1, &[(DATA, 512), (DATA + 512, 512)], false));
    put("block_request", "write-read-only", &one(OUT, 1, &[(DATA, 512)], true));
    put("block_request", "flush", &one(FLUSH, 0, &[], false));
    put("block_request", "get-id", &one(GET_ID, 0, &[(DATA, 20)], false));
    put("block_request", "past-the-end", &one(IN, 32, &[(DATA, 512)], false));
    put("block_request", "unsupported", &one(0x99, 0, &[(DATA, 512)], false));

    let mut ring = RingImage::new(16, false);
    request(&mut ring, 0, HDR, OUT, 2, &[(DATA, 512)]);
    request(&mut ring, 3, HDR + 16, IN, 2, &[(DATA + 512, 512)]);
    request(&mut ring, 6, HDR + 32, FLUSH, 0, &[]);
    put("block_request", "three-requests", &ring.encode());

    // One descriptor pointing at an indirect table of three.
    let mut ring = RingImage::new(8, false);
    ring.poke(HDR, &blk_header(IN, 5));
    let table = 0xc00;
    ring.poke(table, &descriptor(HDR, 16, NEXT, 1));
    ring.poke(table + 16, &descriptor(DATA, 1024, WRITE | NEXT, 2));
    ring.poke(table + 32, &descriptor(STATUS, 1, WRITE, 0));
    ring.desc(0, table, 48, INDIRECT, 0).offer(0);
    put("block_request", "indirect", &ring.encode());

    // A chain that loops back to its head.
    let mut ring = RingImage::new(4, false);
    ring.poke(HDR, &blk_header(IN, 0));
    ring.desc(0, HDR, 16, NEXT, 1).desc(1, DATA, 512, WRITE | NEXT, 0).offer(0);
    put("block_request", "loop", &ring.encode());
}

/// A frame as the guest queues it: a junk virtio-net header, then an Ethernet frame.
fn frame(payload: usize, seed: u8) -> Vec<u8> {
    let mut f = vec![0xee; 12];
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend((0..payload).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)));
    f
}

fn net_tx(put: &mut Put<'_>) {
    const BUF: u64 = 0x400;
    // A frame at `addr` queued as buffers of `parts` bytes from descriptor `first`.
    let send = |ring: &mut RingImage, first: u16, addr: u64, f: &[u8], parts: &[u32]| {
        ring.poke(addr, f);
        let mut at = addr;
        for (i, &len) in parts.iter().enumerate() {
            let i = i as u16;
            let flags = if usize::from(i) + 1 < parts.len() { NEXT } else { 0 };
            ring.desc(first + i, at, len, flags, first + i + 1);
            at += u64::from(len);
        }
        ring.offer(first);
    };
    let f = frame(46, 1);
    let mut ring = RingImage::new(16, false);
    send(&mut ring, 0, BUF, &f, &[f.len() as u32]);
    put("net_tx", "one-frame", &ring.encode());

    let mut ring = RingImage::new(16, false);
    send(&mut ring, 0, BUF, &f, &[12, 20, f.len() as u32 - 32]);
    put("net_tx", "three-buffers", &ring.encode());

    let g = frame(200, 9);
    let mut ring = RingImage::new(16, false);
    send(&mut ring, 0, BUF, &f, &[12, f.len() as u32 - 12]);
    send(&mut ring, 2, 0x800, &g, &[g.len() as u32]);
    let short = frame(0, 3);
    send(&mut ring, 3, 0xa00, &short[..20], &[20]);
    put("net_tx", "two-frames-and-a-runt", &ring.encode());

    let mut ring = RingImage::new(2, false);
    ring.poke(BUF, &f);
    ring.poke(0xc00, &descriptor(BUF, 12, NEXT, 1));
    ring.poke(0xc10, &descriptor(BUF + 12, f.len() as u32 - 12, 0, 0));
    ring.desc(0, 0xc00, 32, INDIRECT, 0).offer(0);
    put("net_tx", "indirect", &ring.encode());

    let mut ring = RingImage::new(4, false);
    ring.poke(BUF, &f);
    ring.desc(0, BUF, f.len() as u32, WRITE, 0).offer(0);
    put("net_tx", "writable-buffer", &ring.encode());
}

fn mmio(put: &mut Put<'_>) {
    use virtio_bindings::virtio_config::{
        VIRTIO_CONFIG_S_ACKNOWLEDGE as ACK, VIRTIO_CONFIG_S_DRIVER as DRIVER,
        VIRTIO_CONFIG_S_DRIVER_OK as DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK as FEATURES_OK,
    };
    const STATUS: u64 = virtio_bindings::virtio_mmio::VIRTIO_MMIO_STATUS as u64;
    let mut probe = MmioCase::default();
    for offset in [0x00, 0x04, 0x08, 0x0c, 0x10, 0x34, 0x44, 0x60, 0x70, 0xfc, 0x100, 0x104] {
        probe.read(offset, 4);
    }
    probe.read(0x100, 1).read(0x106, 2).read(0x00, 2).read(0x100, 8);
    put("mmio", "probe", &probe.encode());

    let mut driver = MmioCase::default();
    driver.write32(STATUS, ACK).write32(STATUS, ACK | DRIVER);
    driver.write32(0x14, 0).read(0x10, 4).write32(0x14, 1).read(0x10, 4);
    driver.write32(0x24, 0).write32(0x20, 1 << 5).write32(0x24, 1).write32(0x20, 1);
    driver.write32(STATUS, ACK | DRIVER | FEATURES_OK).read(STATUS, 4);
    for (queue, size, base) in [(0u32, 16u32, 0x1000u64), (1, 256, 0x4000)] {
        driver.write32(0x30, queue).read(0x34, 4).write32(0x38, size);
        for (reg, addr) in [(0x80, base), (0x90, base + 0x2000), (0xa0, base + 0x3000)] {
            driver.write32(reg, addr as u32).write32(reg + 4, (addr >> 32) as u32);
        }
        driver.write32(0x44, 1);
    }
    driver.write32(STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK).read(STATUS, 4);
    driver.write32(0x50, 0).write32(0x50, 1).read(0x60, 4).write32(0x64, 1).read(0x60, 4);
    driver.write32(0x30, 0).write32(0x38, 8);
    let mut config = driver.clone();
    config.accesses.push(Access::Write { offset: 0x100, data: vec![9] });
    config.read(0x100, 1).write32(STATUS, 0).read(STATUS, 4);
    put("mmio", "driver", &driver.encode());
    put("mmio", "driver-config-reset", &config.encode());
    driver.fail_activate = true;
    put("mmio", "driver-activation-fails", &driver.encode());
    config.fail_activate = false;
    config.fail_reset = true;
    put("mmio", "driver-reset-fails", &config.encode());
}

/// The sectors of `disk` that are not all zero, each with its trailing zeros cut, as patches.
fn patches(disk: &MemDisk) -> Vec<(u8, Vec<u8>)> {
    disk.bytes
        .chunks(SECTOR)
        .enumerate()
        .filter_map(|(i, sector)| {
            let len = sector.iter().rposition(|&b| b != 0)? + 1;
            Some((i as u8, sector[..len].to_vec()))
        })
        .collect()
}

fn store(put: &mut Put<'_>) {
    let encode = |disk: &MemDisk| {
        let p = patches(disk);
        let refs: Vec<(u8, &[u8])> = p.iter().map(|(s, b)| (*s, b.as_slice())).collect();
        MemDisk::encode(0, false, &refs)
    };
    let blank = MemDisk { bytes: vec![0; NEEDED_SECTORS as usize * SECTOR] };
    put("store", "blank", &encode(&blank));
    put("store", "too-small", &[0]);

    let mut s = Store::open(blank.clone()).expect("a large enough disk");
    s.increment(RecordKey::BootCount).expect("in memory");
    put("store", "boot-count-1", &encode(s.device()));
    s.increment(RecordKey::BootCount).expect("in memory");
    s.put(RecordKey::Keystore, keystore_json(Kdf::Pbkdf2 { c: 16 }).as_bytes()).expect("in memory");
    s.put(RecordKey::SigningHistory, b"history").expect("in memory");
    let full = s.into_device();
    put("store", "three-keys-both-slots", &encode(&full));

    // Slot B of the boot count torn: its value no longer matches its checksum.
    let mut torn = full;
    let b = (RecordKey::BootCount.first_sector() as usize + 8) * SECTOR;
    torn.bytes[b + 24] ^= 0x55;
    put("store", "torn-slot", &encode(&torn));

    // The same torn slot, sealed again: now it is valid, and newer than slot A.
    let p = patches(&torn);
    let refs: Vec<(u8, &[u8])> = p.iter().map(|(s, b)| (*s, b.as_slice())).collect();
    put("store", "torn-slot-sealed", &MemDisk::encode(2, true, &refs));
}

fn avs_json(put: &mut Put<'_>) -> SignedTaskResponse {
    // The task of the wire format's documentation, as avs-protocol's tests pin its encoding.
    let task: NewTask = serde_json::from_str(include_str!("../../avs-protocol/tests/wire/new-task.json"))
        .expect("the documented task");
    let key = SecretKey::key_gen(&[1; 32]).expect("32 bytes of key material");
    let response = IncredibleSquaring.respond(&task).expect("9 squares");
    let signed = SignedTaskResponse::sign(response, &key);
    put("avs_json", "new-task", json(&task).as_bytes());
    put("avs_json", "signed-response", json(&signed).as_bytes());
    put("avs_json", "signed-response-pretty", serde_json::to_string_pretty(&signed).unwrap().as_bytes());
    let request = Request::process_signed_task_response(1, signed);
    put("avs_json", "request", json(&request).as_bytes());
    put("avs_json", "response-success", json(&Response::success(1, true)).as_bytes());
    let failure: Response<bool> = Response::failure(None, ErrorObject::new(ErrorCode::TaskNotFound));
    put("avs_json", "response-failure", json(&failure).as_bytes());
    let hex = json(&signed).replace("\"81\"", "\"0x51\"");
    put("avs_json", "signed-response-hex-number", hex.as_bytes());
    signed
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("serialising a seed")
}

fn keystore_json(kdf: Kdf) -> String {
    let key = SecretKey::key_gen(&[2; 32]).expect("32 bytes of key material");
    let pubkey: String = key.public_key().to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let uuid = "1d85ae20-35c5-4611-98e8-aa14a633906f";
    let ks = Keystore::encrypt(
        &key.to_bytes(),
        "fuzz",
        &pubkey,
        "m/12381/3600/0/0/0",
        kdf,
        [3; 32],
        [4; 16],
        uuid,
    )
    .expect("a cheap KDF within the limits");
    ks.to_json()
}

fn keystore(put: &mut Put<'_>) {
    let pbkdf2 = keystore_json(Kdf::Pbkdf2 { c: 16 });
    put("keystore", "pbkdf2", pbkdf2.as_bytes());
    put("keystore", "scrypt", keystore_json(Kdf::Scrypt { n: 16, r: 1, p: 1 }).as_bytes());
    put("keystore", "unknown-kdf", pbkdf2.replace("\"pbkdf2\"", "\"argon2id\"").as_bytes());
}

fn bls_points(put: &mut Put<'_>, signed: &SignedTaskResponse) {
    let key = SecretKey::key_gen(&[1; 32]).expect("32 bytes of key material");
    put("bls", "public-key", &key.public_key().to_bytes());
    put("bls", "signature", signed.signature.as_bytes());
    put("bls", "proof-of-possession", &bls::pop_prove(&key).to_bytes());
    let mut identity = [0u8; 96];
    identity[0] = 0xc0;
    put("bls", "identity", &identity);
}

fn bn254_points(put: &mut Put<'_>) {
    let key = bn254::SecretKey::from_bytes(&[7; 32]).expect("a scalar below r");
    let public = key.public_key();
    put("bn254", "g1-key", &public.g1().to_bytes());
    put("bn254", "g2-key", &public.g2().to_bytes());
    put("bn254", "signature", &key.sign(&[1; 32]).to_bytes());
    put("bn254", "identity", &[0; 128]);
}

fn web3_keyfiles(put: &mut Put<'_>) {
    let kdf = Kdf::Scrypt { n: 16, r: 1, p: 1 };
    let key = bn254::SecretKey::from_bytes(&[7; 32]).expect("a scalar below r");
    let g1 = key.public_key().g1().to_bytes();
    let bls =
        BlsKeyFile::encrypt(&key.to_bytes(), b"password", &g1, kdf, [1; 32], [2; 16]).expect("cheap KDF");
    put("web3_keyfile", "bls-key-file", bls.to_json().as_bytes());
    let ecdsa = EcdsaKeystore::encrypt(
        &[7; 32],
        b"password",
        Some([3; 20]),
        Kdf::Pbkdf2 { c: 16 },
        [1; 32],
        [2; 16],
        "6db0cfb6-6438-43c0-a2f8-5dace3ab2cd2",
    )
    .expect("cheap KDF");
    put("web3_keyfile", "ecdsa-keystore", ecdsa.to_json().as_bytes());
}

fn history(put: &mut Put<'_>) {
    use avs_protocol::history::History;
    put("history", "empty", &History::new().encode());
    let mut some = History::new();
    for (index, byte) in [(1u32, 0x11u8), (2, 0x22), (9, 0x99)] {
        some.record(index, [byte; 32]).expect("new indices");
    }
    put("history", "three", &some.encode());
    let mut full = History::new();
    for index in 0..101u32 {
        full.record(index * 3, [index as u8; 32]).expect("increasing indices");
    }
    put("history", "full-with-floor", &full.encode());
    // The target splits its input in two halves: two histories of one length each.
    let other =
        History::from_parts(2, vec![(2, [0x22; 32]), (5, [0x55; 32]), (11, [0xbb; 32])]).expect("valid");
    put("history", "pair-merging", &[some.encode(), other.encode()].concat());
    let one = History::from_parts(0, vec![(2, [0x22; 32])]).expect("valid");
    let conflicting = History::from_parts(0, vec![(2, [0x23; 32])]).expect("valid");
    put("history", "pair-conflicting", &[one.encode(), conflicting.encode()].concat());
}

fn intake(put: &mut Put<'_>) {
    use avs_protocol::intake::AuthorizedTask;
    use avs_protocol::{NewTask, Task, U256};
    let task = NewTask {
        task_index: 4,
        task: Task {
            number_to_be_squared: U256::from(12u8),
            task_created_block: 9,
            quorum_numbers: vec![0],
            quorum_threshold_percentage: 67,
        },
    };
    let source = avs_protocol::ecdsa::SecretKey::from_bytes(&[0x5c; 32]).expect("a valid key");
    let other = avs_protocol::ecdsa::SecretKey::from_bytes(&[0x11; 32]).expect("a valid key");
    let json = |a: &AuthorizedTask| serde_json::to_string(a).expect("serialises");
    put("intake", "signed", json(&AuthorizedTask::sign(task.clone(), &source)).as_bytes());
    put("intake", "another-signer", json(&AuthorizedTask::sign(task.clone(), &other)).as_bytes());
    put("intake", "unsigned", json(&AuthorizedTask::unsigned(task)).as_bytes());
}

fn hypercall(put: &mut Put<'_>) {
    const RECORD: u64 = GUEST_BASE + 0x100;
    const RECORD2: u64 = GUEST_BASE + 0x180;
    const TEXT: u64 = GUEST_BASE + 0x1000;
    let arg = RECORD as u32;
    let arg2 = RECORD2 as u32;
    let case = |calls: Vec<Call>| HypercallCase {
        vcpus: 2,
        keystore: Password::Short,
        ecdsa: Password::Longest,
        calls,
        image: Vec::new(),
    };
    // A console write or a panic of `len` bytes of text at TEXT (a record at RECORD).
    let message = |call: Hypercall, addr: u64, len: u64| {
        let mut c = case(vec![Call::new(call, arg)]);
        c.poke(RECORD, &Buffer { addr, len }.encode());
        let text: Vec<u8> = b"hello from the guest\n".iter().copied().cycle().take(5000).collect();
        c.poke(TEXT, &text);
        c.encode()
    };
    put("hypercall", "console-write", &message(Hypercall::ConsoleWrite, TEXT, 21));
    put("hypercall", "console-write-cut", &message(Hypercall::ConsoleWrite, TEXT, 5000));
    put("hypercall", "console-write-ring0", &message(Hypercall::ConsoleWrite, 0x9000, 64));
    put("hypercall", "console-write-past-the-end", &message(Hypercall::ConsoleWrite, (4 << 20) - 8, 16));
    put("hypercall", "panic", &message(Hypercall::Panic, TEXT, 20));
    put(
        "hypercall",
        "exit",
        &case(vec![Call::new(Hypercall::Ready, 0), Call::new(Hypercall::Exit, 7)]).encode(),
    );
    put("hypercall", "exit-reserved", &case(vec![Call::new(Hypercall::Exit, 100)]).encode());

    let mut wait =
        case(vec![Call::new(Hypercall::Wait, arg), Call { vcpu: 1, ..Call::new(Hypercall::Wait, arg2) }]);
    wait.poke(RECORD, &Wait { timeout_ns: WAIT_FOREVER, events: 0 }.encode());
    wait.poke(RECORD2, &Wait { timeout_ns: 1_000_000, events: 0 }.encode());
    put("hypercall", "wait", &wait.encode());

    // The BLS password into a buffer, asked again; the ECDSA one probed with a short buffer, then
    // into a buffer below GUEST_BASE.
    let mut passwords = case(vec![
        Call::new(Hypercall::KeystorePassword, arg),
        Call::new(Hypercall::KeystorePassword, arg),
        Call::new(Hypercall::EcdsaKeystorePassword, arg2),
    ]);
    passwords.poke(RECORD, &Buffer { addr: TEXT, len: 64 }.encode());
    passwords.poke(RECORD2, &Buffer { addr: TEXT, len: 16 }.encode());
    put("hypercall", "passwords", &passwords.encode());
    let mut low = case(vec![Call::new(Hypercall::EcdsaKeystorePassword, arg)]);
    low.poke(RECORD, &Buffer { addr: 0x7000, len: 8192 }.encode());
    put("hypercall", "password-ring0", &low.encode());
    let mut overlap = case(vec![Call::new(Hypercall::KeystorePassword, arg)]);
    overlap.poke(RECORD, &Buffer { addr: RECORD + 4, len: 64 }.encode());
    put("hypercall", "password-over-its-record", &overlap.encode());

    // The snapshot point, on both vCPUs, then with its record in the launcher's region.
    let snapshot = case(vec![
        Call::new(Hypercall::Snapshot, arg),
        Call { vcpu: 1, ..Call::new(Hypercall::Snapshot, arg2) },
        Call::new(Hypercall::Snapshot, 0x8000),
    ]);
    put("hypercall", "snapshot-point", &snapshot.encode());

    let odd = vec![
        Call { data: vec![1, 2], ..Call::new(Hypercall::ConsoleWrite, 0) },
        Call { port: PORT_BASE + 9, ..Call::new(Hypercall::Ready, 0) },
        Call { data: vec![14], ..Call::new(Hypercall::Fault, 0) },
    ];
    for (i, call) in odd.into_iter().enumerate() {
        put("hypercall", &format!("odd-write-{i}"), &case(vec![call]).encode());
    }
    put("hypercall", "record-ring0", &case(vec![Call::new(Hypercall::Wait, 0x8000)]).encode());
}

fn net_rx(put: &mut Put<'_>) {
    use spacecore_fuzz::targets::net_rx::encode;
    const BUF: u64 = 0x400;
    // A chain of writable buffers of these lengths from descriptor `first`, from `addr` on.
    let post = |ring: &mut RingImage, first: u16, addr: u64, parts: &[u32]| {
        let mut at = addr;
        for (i, &len) in parts.iter().enumerate() {
            let i = i as u16;
            let last = i as usize + 1 == parts.len();
            let flags = if last { WRITE } else { WRITE | NEXT };
            ring.desc(first + i, at, len, flags, first + i + 1);
            at += u64::from(len);
        }
        ring.offer(first);
    };
    let mut one = RingImage::new(8, false);
    post(&mut one, 0, BUF, &[1526]);
    put("net_rx", "one-frame", &encode(&one, &[72]));
    put("net_rx", "more-frames-than-buffers", &encode(&one, &[72, 1514, 60]));
    put("net_rx", "runt-then-frame", &encode(&one, &[5, 72]));
    put("net_rx", "too-long-then-frame", &encode(&one, &[4000, 72]));
    put("net_rx", "empty-read", &encode(&one, &[0, 72]));

    let mut two = RingImage::new(8, false);
    post(&mut two, 0, BUF, &[12, 600, 1000]);
    post(&mut two, 3, 0x1000, &[2048]);
    put("net_rx", "two-chains", &encode(&two, &[1514, 300, 72]));

    let mut indirect = RingImage::new(4, false);
    let table = 0x3000;
    indirect.poke(table, &descriptor(BUF, 100, WRITE | NEXT, 1));
    indirect.poke(table + 16, &descriptor(BUF + 100, 1500, WRITE, 0));
    indirect.desc(0, table, 32, INDIRECT, 0).offer(0);
    put("net_rx", "indirect", &encode(&indirect, &[1514]));

    let mut read_only = RingImage::new(4, false);
    read_only.desc(0, BUF, 1526, 0, 0).offer(0);
    post(&mut read_only, 1, 0x1000, &[1526]);
    put("net_rx", "read-only-buffer", &encode(&read_only, &[72, 80]));

    let mut outside = RingImage::new(4, false);
    outside.desc(0, 0xfff0, 0x100, WRITE, 0).offer(0);
    outside.desc(1, 0x10800, 0x100, WRITE, 0).offer(1);
    put("net_rx", "outside-memory", &encode(&outside, &[72, 72]));

    let mut looping = RingImage::new(4, false);
    looping.desc(0, BUF, 64, WRITE | NEXT, 1).desc(1, BUF + 64, 64, WRITE | NEXT, 0).offer(0);
    put("net_rx", "loop", &encode(&looping, &[72]));
}

fn http_request(put: &mut Put<'_>) {
    let post = |target: &str, extra: &str, body: &str| {
        format!("POST {target} HTTP/1.1\r\nHost: node\r\n{extra}Content-Length: {}\r\n\r\n{body}", body.len())
    };
    let task = r#"{"task":{"number":7,"quorum_threshold_percentage":67}}"#;
    put("http_request", "get", b"GET /health HTTP/1.1\r\nHost: node\r\nUser-Agent: curl/8\r\n\r\n");
    put("http_request", "post", post("/task", "Content-Type: application/json\r\n", task).as_bytes());
    put("http_request", "expect-continue", post("/task", "Expect: 100-continue\r\n", task).as_bytes());
    let pipelined = format!(
        "GET /metrics HTTP/1.1\r\nHost: node\r\n\r\n{}GET /status?x=1 HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        post("/task", "", task)
    );
    put("http_request", "pipelined", pipelined.as_bytes());
    put(
        "http_request",
        "http-1.0-keep-alive",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    );
    put(
        "http_request",
        "refused-with-body",
        format!("{}GET / HTTP/1.1\r\n\r\n", post("/x", "", task)).as_bytes(),
    );
    put("http_request", "put-refused", b"PUT /task HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
    put(
        "http_request",
        "chunked",
        b"POST /task HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    );
    put(
        "http_request",
        "two-lengths",
        b"POST /task HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    );
    put("http_request", "body-too-large", b"POST /task HTTP/1.1\r\nContent-Length: 4194305\r\n\r\n");
    let many: String = (0..65).map(|i| format!("X-{i}: {i}\r\n")).collect();
    put("http_request", "too-many-headers", format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes());
    let long = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(8200));
    put("http_request", "head-too-large", long.as_bytes());
    put("http_request", "incomplete", b"GET /health HTTP/1.1\r\nHost: no");
    put("http_request", "malformed", b"GET /\x00 HTTP/1.1\r\n\r\n");
}
