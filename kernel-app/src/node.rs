//! The node: its devices, the store, the network stack and the main loop.
//!
//! # Main loop
//! Each round polls the interface (received frames, TCP timers, answers to send) and moves bytes
//! between the sockets and their HTTP connections. While rounds make progress they follow each
//! other at once; a stop request is seen in the launcher's event word, read each round without a
//! VM exit (`arch::event_word`). When a
//! round did nothing and no frame waits in the receive ring, the vCPU blocks in
//! `hypercall::wait` until the next TCP timer or idle timeout (at least [`MIN_WAIT`];
//! `WAIT_FOREVER` if there is none) or until the launcher reports a device event. Without a
//! network the loop only waits. On a stop request the server stops accepting, lets the answers
//! already made go out (for at most [`DRAIN_TIME`]), flushes the disk and exits with status 0.

use crate::app::App;
use crate::avs::Operator;
use crate::clock::Clock;
use crate::cmdline::Args;
use crate::http::{MAX_BODY, OUTPUT_HIGH_WATER};
use crate::netstack::{MAX_CONNECTIONS, NetStack, SOCKET_BUFFER};
use crate::sdk::Linked;
use crate::virtio::blk::BlkDevice;
use crate::virtio::hal::{NET_BUF, NET_QUEUE};
use crate::virtio::net::NetDevice;
use crate::{arch, hypercall, println};
use smoltcp::time::{Duration, Instant};
use spacecore_abi::boot::{BootInfo, device_kind};
use spacecore_abi::hypercall::WAIT_FOREVER;
use spacecore_store::{BlockIo, RecordKey, SECTOR, Store};

unsafe extern "Rust" {
    /// The image's AVS, exported by its crate with `spacecore_avs::export!`.
    safe fn __spacecore_avs() -> spacecore_avs::Exported;
}

fn avs_export() -> spacecore_avs::Exported {
    __spacecore_avs()
}

/// Shortest wait when idle: a timer due "now" that did nothing waits for the device.
const MIN_WAIT: Duration = Duration::from_millis(1);
/// Longest time given to connections to finish after a stop request.
const DRAIN_TIME: Duration = Duration::from_millis(1000);
/// Memory one connection may hold at worst: socket buffers, a whole body, pending output.
const CONNECTION_MEMORY: usize = 2 * SOCKET_BUFFER + MAX_BODY + OUTPUT_HIGH_WATER;

/// Connections the server holds with `memory` bytes of heap: as many as fit at worst (see
/// [`CONNECTION_MEMORY`]), at least 1, at most [`MAX_CONNECTIONS`].
pub fn connections_for(memory: u64) -> usize {
    (memory / CONNECTION_MEMORY as u64).clamp(1, MAX_CONNECTIONS as u64) as usize
}

/// Memory to set aside untouched for the network with `connections`: the socket buffers, and
/// buffers for a full receive and a full transmit queue.
pub fn untouched_for(connections: usize) -> u64 {
    (connections * 2 * SOCKET_BUFFER + 2 * NET_QUEUE * NET_BUF) as u64
}

/// Everything the main loop drives.
pub struct Node {
    clock: Clock,
    /// TSC at entry: time 0 of the network stack and of the uptime.
    epoch_tsc: u64,
    app: App<Store<BlkDevice>>,
    net: Option<NetStack>,
    /// The scheme of the operator key (`spacecore.scheme`).
    scheme: avs_protocol::Scheme,
    /// This boot's number, if the disk counts them.
    pub boot_count: Option<u64>,
}

impl Node {
    /// Opens the store on the disk of `devices` ([`start_devices`]) and counts this boot there,
    /// and brings the network up on its NIC if the command line configures it, for up to `connections` connections. Prints one line per
    /// device and per service.
    pub fn start(
        args: &Args,
        clock: Clock,
        epoch_tsc: u64,
        connections: usize,
        (blk, net_dev): (Option<BlkDevice>, Option<NetDevice>),
    ) -> Self {
        let mut store =
            blk.and_then(|dev| Store::open(dev).map_err(|e| println!("store: unusable: {e:?}")).ok());
        let boot_count = store.as_mut().and_then(|s| {
            s.increment(RecordKey::BootCount)
                .map_err(|e| println!("store: cannot count this boot: {e:?}"))
                .ok()
        });
        let sends = args.aggregator.is_some() && args.net.is_some();
        let uptime = move || clock.ticks_to_ns(arch::rdtsc().wrapping_sub(epoch_tsc));
        let linked = {
            let exported = avs_export();
            println!("avs: {} {} linked", exported.name, exported.version);
            Linked::new(exported.name, exported.version, exported.avs)
        };
        let mut app = App::new(args.name, boot_count, store, sends)
            .with_avs(linked)
            .with_clock(alloc::boxed::Box::new(uptime))
            .with_task_source(args.task_signer)
            .with_test_hooks(args.test_hooks);
        app.settings = crate::sdk::Settings {
            task_manager: args.task_manager.map(|a| avs_protocol::encoding::to_hex(&a)),
            confirmations: args.confirmations.map(|c| alloc::format!("{c}")),
        };
        app.log = |avs, line| println!("{avs}: {line}");
        if args.test_hooks {
            println!("http: test hooks on (POST /test/panic, POST /test/hang)");
        }
        let mut node = Node { clock, epoch_tsc, app, net: None, scheme: args.scheme, boot_count };
        match (net_dev, &args.net) {
            (Some(dev), Some(config)) => {
                let mac = dev.mac();
                let seed = arch::rdtsc() ^ mac.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b));
                let endpoints: alloc::vec::Vec<_> = args.endpoints().collect();
                node.app.linked.outbound.set_endpoints(endpoints.iter().map(|&(name, _)| name).collect());
                let stack =
                    NetStack::new(dev, config, args.http_port, connections, &endpoints, seed, node.now());
                let gateway = config.gateway.map_or(0, u32::from);
                println!(
                    "http: listening on {}:{} (prefix /{}, gateway {}), up to {} connections",
                    config.addr,
                    args.http_port,
                    config.prefix,
                    core::net::Ipv4Addr::from(gateway),
                    stack.connections()
                );
                node.net = Some(stack);
                // The named endpoints the launcher relays.
                let endpoints: alloc::vec::Vec<alloc::string::String> =
                    args.endpoints().map(|(name, addr)| alloc::format!("{name} {addr}")).collect();
                if !endpoints.is_empty() {
                    println!("endpoints: {}", endpoints.join(", "));
                }
            }
            (Some(_), None) => println!("network: no spacecore.ip on the command line, virtio-net unused"),
            (None, Some(_)) => println!("network: spacecore.ip given but no usable virtio-net device"),
            (None, None) => {}
        }
        node
    }

    fn now(&self) -> Instant {
        let ns = self.clock.ticks_to_ns(arch::rdtsc().wrapping_sub(self.epoch_tsc));
        Instant::from_micros((ns / 1000) as i64)
    }

    /// Loads the operator key: the key file on the disk (of the command line's scheme),
    /// decrypted with the password the launcher hands over (its KDF takes from milliseconds to a
    /// second, so this runs once the node is ready and serving would otherwise start). Prints
    /// the outcome.
    fn load_operator(&mut self) {
        let start = self.now();
        let scheme = self.scheme;
        let operator = match self.app.records.as_mut().map(|r| r.get(spacecore_store::RecordKey::Keystore)) {
            None => Err("no disk, so no key file".into()),
            Some(Err(e)) => Err(alloc::format!("cannot read the keystore record: {e}")),
            Some(Ok(None)) => {
                Err("no operator key file on the disk (store one with `spacecore keys import`)".into())
            }
            Some(Ok(Some(json))) => match hypercall::keystore_password() {
                None => Err("the launcher has no keystore password (spec.avs.keystore_password_file)".into()),
                Some(password) => Operator::from_key_file(scheme, &json, &password),
            },
        };
        let ms = (self.now() - start).total_millis();
        match self.app.avs.set_operator(operator) {
            Ok(op) => {
                let (id, pubkey) = (avs_protocol::encoding::to_hex(&op.id), op.describe_public_key());
                let history = self.app.avs.history();
                let signed = if history.is_empty() {
                    alloc::string::String::from("nothing signed yet")
                } else if history.floor() == 0 {
                    alloc::format!("{} tasks recorded", history.len())
                } else {
                    alloc::format!(
                        "{} tasks recorded, tasks below {} refused",
                        history.len(),
                        history.floor()
                    )
                };
                println!(
                    "avs: operator {id} ready ({} public key {pubkey}, loaded in {ms} ms); signing history: {signed}",
                    scheme.name()
                );
            }
            Err(why) => println!("avs: not signing: {why}"),
        }
    }

    /// Loads the operator's ECDSA key, if the disk holds its keystore: decrypted with the
    /// password the launcher hands over, then the identity statement is signed. Without it the
    /// node still signs tasks; the reason goes to the console and `GET /spacecore/identity`.
    fn load_chain_key(&mut self) {
        let start = self.now();
        let key = match self.app.records.as_mut().map(|r| r.get(RecordKey::EcdsaKeystore)) {
            None => Err("no disk, so no ECDSA keystore".into()),
            Some(Err(e)) => Err(alloc::format!("cannot read the ECDSA keystore record: {e}")),
            Some(Ok(None)) => {
                Err("no ECDSA keystore on the disk (store one with `spacecore keys import --ecdsa-keystore`)"
                    .into())
            }
            Some(Ok(Some(json))) => match hypercall::ecdsa_keystore_password() {
                None => Err("the launcher has no ECDSA keystore password \
                             (spec.avs.ecdsa_keystore_password_file)"
                    .into()),
                Some(password) => crate::avs::ChainKey::from_keystore(&json, &password),
            },
        };
        let ms = (self.now() - start).total_millis();
        match self.app.avs.set_chain_key(key) {
            Ok(address) => println!(
                "avs: ECDSA address {} ready (loaded in {ms} ms); identity at GET /spacecore/identity",
                avs_protocol::encoding::to_hex(&address)
            ),
            Err(why) => println!("avs: no ECDSA key: {why}"),
        }
    }

    /// The main loop; ends the guest on a stop request.
    pub fn run(mut self) -> ! {
        self.load_operator();
        self.load_chain_key();
        self.app.start_avs();
        loop {
            if hypercall::stop_requested() {
                self.stop();
            }
            let now = self.now();
            let Some(net) = &mut self.net else {
                hypercall::wait(WAIT_FOREVER);
                continue;
            };
            let served = net.poll(now, &mut self.app);
            let called = net.call_avs(now, &mut self.app);
            if served || called || net.has_work() {
                continue;
            }
            // The AVS's timer: its periodic work may queue calls, to be made at once.
            let due = self.app.linked.due_ms;
            let next_avs = self.app.tick_avs(now.total_millis() as u64);
            if due.is_some_and(|d| d <= now.total_millis() as u64) && next_avs != due {
                continue;
            }
            let timeout = net
                .delay(now, next_avs.map(|ms| Instant::from_millis(ms as i64)))
                .map_or(WAIT_FOREVER, |d| d.max(MIN_WAIT).total_micros() * 1000);
            hypercall::wait(timeout);
        }
    }

    fn stop(&mut self) -> ! {
        let start = self.now();
        if let Some(net) = &mut self.net {
            net.begin_shutdown();
        }
        loop {
            let now = self.now();
            let Some(net) = &mut self.net else { break };
            let progressed = net.poll(now, &mut self.app);
            if net.drained() || now >= start + DRAIN_TIME {
                break;
            }
            if !progressed {
                let delay =
                    net.delay(now, None).unwrap_or(MIN_WAIT).clamp(MIN_WAIT, Duration::from_millis(10));
                hypercall::wait(delay.total_micros() * 1000);
            }
        }
        if let Some(store) = &mut self.app.records
            && let Err(e) = store.device().flush()
        {
            println!("store: final flush failed: {e:?}");
        }
        if let Some(evicted) = self.net.as_ref().map(NetStack::evicted).filter(|&n| n > 0) {
            println!("http: {evicted} connections were reset to make room for new ones");
        }
        let now = self.now();
        println!(
            "stop requested after {} ms up; drained and flushed in {} us: exiting",
            start.total_millis(),
            (now - start).total_micros()
        );
        hypercall::exit(0)
    }
}

/// Sets up the disk and the NIC the boot information lists (one of each at most).
pub fn start_devices(info: &BootInfo, clock: &Clock) -> (Option<BlkDevice>, Option<NetDevice>) {
    let (mut blk, mut net) = (None, None);
    for dev in info.devices.iter().filter(|d| d.kind != device_kind::NONE) {
        let (at, size) = (dev.mmio_base, dev.mmio_size);
        match dev.kind {
            device_kind::VIRTIO_BLOCK if blk.is_none() => match BlkDevice::new(at, size, clock) {
                Ok(mut disk) => {
                    let sectors = disk.sectors();
                    let ro = if disk.read_only() { ", read-only" } else { "" };
                    match disk.device_id() {
                        Ok(id) => println!(
                            "virtio-blk at {at:#x}: {sectors} sectors ({} MiB){ro}, id {id:?}",
                            (sectors * SECTOR as u64) >> 20
                        ),
                        Err(e) => println!(
                            "virtio-blk at {at:#x}: {sectors} sectors ({} MiB){ro}, no id ({e:?})",
                            (sectors * SECTOR as u64) >> 20
                        ),
                    }
                    blk = Some(disk);
                }
                Err(e) => println!("virtio-blk at {at:#x}: unusable: {e}"),
            },
            device_kind::VIRTIO_NET if net.is_none() => match NetDevice::new(at, size) {
                Ok(nic) => {
                    let m = nic.mac();
                    println!(
                        "virtio-net at {at:#x}: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                        m[0], m[1], m[2], m[3], m[4], m[5]
                    );
                    net = Some(nic);
                }
                Err(e) => println!("virtio-net at {at:#x}: unusable: {e}"),
            },
            device_kind::VIRTIO_BLOCK | device_kind::VIRTIO_NET => {
                println!("virtio device at {at:#x}: ignored, one device of each kind is used")
            }
            other => println!("device of kind {other} at {at:#x}: unknown, ignored"),
        }
    }
    (blk, net)
}
