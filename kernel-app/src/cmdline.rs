//! The kernel command line: `key=value` words separated by spaces. The runtime reads the
//! `spacecore.*` keys; anything else is kept for the AVS logic.
//!
//! | key | value | default |
//! |-----|-------|---------|
//! | `spacecore.ip` | the guest's IPv4 address and prefix length, `10.0.0.2/30` | no IP stack |
//! | `spacecore.gw` | the default gateway (the host side), `10.0.0.1` | no default route |
//! | `spacecore.http` | the HTTP port, 1..=65535 | 80 |
//! | `spacecore.name` | the node's name: 1 to 63 of `A-Z a-z 0-9 . _ -` | `spacecore` |
//! | `spacecore.aggregator` | where signed responses go, `10.0.0.1:8090` (IPv4 and port) | none sent |
//! | `spacecore.endpoint.NAME` | where the named endpoint NAME is relayed, `10.0.0.1:8545`: `eth_rpc` (Ethereum JSON-RPC), `eth_ws` (its websocket endpoint); `aggregator` is the same as `spacecore.aggregator` | none |
//! | `spacecore.task_manager` | the AVS's TaskManager contract, `0x` and 40 hex digits: with `endpoint.eth_rpc`, tasks are read from its `NewTaskCreated` logs | none read |
//! | `spacecore.task_signer` | the task source, an Ethereum address (`0x` and 40 hex digits): a task pushed with `POST /task` must carry its signature (`avs_protocol::intake`) | every pushed task refused |
//! | `spacecore.confirmations` | blocks on top of a block before its tasks are read, 0..=10000 | 2 |
//! | `spacecore.scheme` | the operator key's scheme, `bn254` or `bls12-381` (also `sign-bench`'s) | `bn254` |
//! | `spacecore.selftest` | see [`SelfTest`] (`panic`, `fault`, `exit:N`, `bad-buffer`, `bad-port`, `console-flood:MIB`, `sign-bench:N`, `disk-bench:OPS:MIB`) | none |
//! | `spacecore.testhooks` | `on` or `off`: serve `POST /test/panic` and `POST /test/hang` | `off` |
//!
//! A key given twice takes its last value.

use avs_protocol::Scheme;
use core::net::{Ipv4Addr, SocketAddrV4};

/// Most confirmations `spacecore.confirmations` takes.
pub const MAX_CONFIRMATIONS: u32 = 10_000;

/// What the runtime takes from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Args<'a> {
    /// A self-test to run after boot instead of serving (`spacecore.selftest=...`).
    pub selftest: Option<SelfTest>,
    /// The network configuration; `None` without `spacecore.ip`.
    pub net: Option<NetConfig>,
    /// The port the HTTP server listens on.
    pub http_port: u16,
    /// The node's name.
    pub name: &'a str,
    /// The aggregator's JSON-RPC address, as the guest reaches it.
    pub aggregator: Option<SocketAddrV4>,
    /// Whether the HTTP test hooks (`POST /test/panic`, `POST /test/hang`) are served.
    pub test_hooks: bool,
    /// The scheme of the operator key (`spacecore.scheme=`, from `spec.avs.scheme`): which key
    /// file the disk must hold, and what `sign-bench` measures.
    pub scheme: Scheme,
    /// The Ethereum JSON-RPC endpoint (`spacecore.endpoint.eth_rpc=`, from `spec.avs.eth_rpc`),
    /// as the guest reaches it: the launcher's relay on the host side of the tap.
    pub eth_rpc: Option<SocketAddrV4>,
    /// The Ethereum websocket endpoint (`spacecore.endpoint.eth_ws=`, from `spec.avs.eth_ws`),
    /// as the guest reaches it.
    pub eth_ws: Option<SocketAddrV4>,
    /// The TaskManager whose tasks are read from the chain (`spacecore.task_manager=`, from
    /// `spec.avs.task_manager`).
    pub task_manager: Option<[u8; 20]>,
    /// The task source whose signature a pushed task must carry (`spacecore.task_signer=`,
    /// from `spec.avs.task_signer`).
    pub task_signer: Option<[u8; 20]>,
    /// Confirmations before a block is read (`spacecore.confirmations=`, from
    /// `spec.avs.confirmations`); `None`: the AVS's default.
    pub confirmations: Option<u32>,
}

impl Args<'_> {
    /// The named endpoints given, as `(name, address)` in a fixed order (aggregator, eth_rpc,
    /// eth_ws).
    pub fn endpoints(&self) -> impl Iterator<Item = (&'static str, SocketAddrV4)> {
        [("aggregator", self.aggregator), ("eth_rpc", self.eth_rpc), ("eth_ws", self.eth_ws)]
            .into_iter()
            .filter_map(|(name, address)| Some((name, address?)))
    }
}

impl Default for Args<'_> {
    fn default() -> Self {
        Args {
            selftest: None,
            net: None,
            http_port: 80,
            name: "spacecore",
            aggregator: None,
            test_hooks: false,
            scheme: Scheme::Bn254,
            eth_rpc: None,
            eth_ws: None,
            task_manager: None,
            task_signer: None,
            confirmations: None,
        }
    }
}

/// The guest's IPv4 configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// The guest's address.
    pub addr: Ipv4Addr,
    /// Length of the network prefix, 0..=32.
    pub prefix: u8,
    /// The default gateway, if any.
    pub gateway: Option<Ipv4Addr>,
}

/// Diagnostics that exercise the launcher's crash handling, and the disk benchmark; never on by
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfTest {
    /// Panic with a known message.
    Panic,
    /// Take a page fault on the null page.
    Fault,
    /// Exit at once with this status.
    Exit(u8),
    /// Hand the launcher a console buffer that lies outside guest memory.
    BadBuffer,
    /// Write to a port that is not a hypercall port.
    BadPort,
    /// Write this many MiB to the console as fast as it can (`console-flood:MIB`), wait a
    /// quarter of a second, write one line and exit 0: the launcher's console budget must
    /// drop most of it.
    ConsoleFlood(u32),
    /// Benchmark BLS signing (`sign-bench:N`) in the scheme of `spacecore.scheme`: sign `N`
    /// digests, print the time, exit 0.
    SignBench(u32),
    /// Benchmark the raw disk, print the figures and exit (`disk-bench:OPS:MIB`, see
    /// `crate::diskbench`): `ops` random 4 KiB writes each followed by a flush, then a sequential
    /// read of `read_mib` MiB.
    DiskBench {
        /// Random writes, 1..=[`MAX_BENCH_OPS`].
        ops: u32,
        /// MiB read sequentially, 1..=[`MAX_BENCH_READ_MIB`].
        read_mib: u32,
    },
}

/// Most signatures `sign-bench` accepts.
pub const MAX_BENCH_SIGNATURES: u32 = 1_000_000;
/// Most writes `disk-bench` accepts.
pub const MAX_BENCH_OPS: u32 = 1_000_000;
/// Most MiB `disk-bench` reads.
pub const MAX_BENCH_READ_MIB: u32 = 65_536;

/// An unusable `spacecore.*` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadArg<'a>(pub &'a str);

/// Parses the command line; unknown `spacecore.*` keys and bad values are errors.
pub fn parse(line: &str) -> Result<Args<'_>, BadArg<'_>> {
    let mut args = Args::default();
    let mut gateway = None;
    for word in line.split_ascii_whitespace() {
        let Some(rest) = word.strip_prefix("spacecore.") else { continue };
        let (key, value) = rest.split_once('=').ok_or(BadArg(word))?;
        match key {
            "selftest" => {
                args.selftest = Some(match value {
                    "panic" => SelfTest::Panic,
                    "fault" => SelfTest::Fault,
                    "bad-buffer" => SelfTest::BadBuffer,
                    "bad-port" => SelfTest::BadPort,
                    v if v.starts_with("console-flood:") => v["console-flood:".len()..]
                        .parse()
                        .ok()
                        .filter(|n| (1..=1024).contains(n))
                        .map(SelfTest::ConsoleFlood)
                        .ok_or(BadArg(word))?,
                    v if v.starts_with("disk-bench:") => disk_bench(v).ok_or(BadArg(word))?,
                    v if v.starts_with("sign-bench:") => v["sign-bench:".len()..]
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_BENCH_SIGNATURES).contains(n))
                        .map(SelfTest::SignBench)
                        .ok_or(BadArg(word))?,
                    v => {
                        let code = v.strip_prefix("exit:").ok_or(BadArg(word))?;
                        SelfTest::Exit(code.parse().map_err(|_| BadArg(word))?)
                    }
                })
            }
            "ip" => {
                let (addr, prefix) = value.split_once('/').ok_or(BadArg(word))?;
                let addr = addr.parse().map_err(|_| BadArg(word))?;
                let prefix = prefix.parse().ok().filter(|&p| p <= 32).ok_or(BadArg(word))?;
                args.net = Some(NetConfig { addr, prefix, gateway: None });
            }
            "aggregator" | "endpoint.aggregator" => args.aggregator = Some(endpoint(value, word)?),
            "endpoint.eth_rpc" => args.eth_rpc = Some(endpoint(value, word)?),
            "endpoint.eth_ws" => args.eth_ws = Some(endpoint(value, word)?),
            "task_manager" => {
                // No allocation: the command line is read before the heap exists.
                let address = avs_protocol::encoding::from_hex_array::<20>(value).ok_or(BadArg(word))?;
                args.task_manager = Some(address);
            }
            "task_signer" => {
                let address = avs_protocol::encoding::from_hex_array::<20>(value).ok_or(BadArg(word))?;
                args.task_signer = Some(address);
            }
            "confirmations" => {
                let n = value.parse().ok().filter(|n| *n <= MAX_CONFIRMATIONS);
                args.confirmations = Some(n.ok_or(BadArg(word))?);
            }
            "gw" => gateway = Some(value.parse().map_err(|_| BadArg(word))?),
            "scheme" => args.scheme = value.parse().map_err(|_| BadArg(word))?,
            "testhooks" => {
                args.test_hooks = match value {
                    "on" => true,
                    "off" => false,
                    _ => return Err(BadArg(word)),
                }
            }
            "http" => args.http_port = value.parse().ok().filter(|&p| p != 0).ok_or(BadArg(word))?,
            "name" => {
                let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
                if value.is_empty() || value.len() > 63 || !value.chars().all(ok) {
                    return Err(BadArg(word));
                }
                args.name = value;
            }
            _ => return Err(BadArg(word)),
        }
    }
    if let Some(net) = &mut args.net {
        net.gateway = gateway;
    }
    Ok(args)
}

/// An endpoint's in-namespace address: IPv4 and a port other than 0.
fn endpoint<'a>(value: &str, word: &'a str) -> Result<SocketAddrV4, BadArg<'a>> {
    value.parse().ok().filter(|addr: &SocketAddrV4| addr.port() != 0).ok_or(BadArg(word))
}

/// `disk-bench:OPS:MIB`, both in range; `None` otherwise.
fn disk_bench(value: &str) -> Option<SelfTest> {
    let (ops, read_mib) = value.strip_prefix("disk-bench:")?.split_once(':')?;
    let in_range = |text: &str, max: u32| text.parse().ok().filter(|n| (1..=max).contains(n));
    Some(SelfTest::DiskBench {
        ops: in_range(ops, MAX_BENCH_OPS)?,
        read_mib: in_range(read_mib, MAX_BENCH_READ_MIB)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that `parse` refuses each of `words`, naming it.
    fn refuses_each(words: &[&str]) {
        for &bad in words {
            assert_eq!(parse(bad), Err(BadArg(bad)), "{bad}");
        }
    }

    #[test]
    fn parses_selftests_and_ignores_other_words() {
        assert_eq!(parse(""), Ok(Args::default()));
        assert_eq!(parse("quiet foo=bar").unwrap().selftest, None);
        assert_eq!(parse("spacecore.selftest=panic").unwrap().selftest, Some(SelfTest::Panic));
        assert_eq!(parse(" spacecore.selftest=fault ").unwrap().selftest, Some(SelfTest::Fault));
        assert_eq!(parse("spacecore.selftest=exit:7").unwrap().selftest, Some(SelfTest::Exit(7)));
        assert_eq!(parse("spacecore.selftest=bad-buffer").unwrap().selftest, Some(SelfTest::BadBuffer));
        assert_eq!(parse("spacecore.selftest=bad-port").unwrap().selftest, Some(SelfTest::BadPort));
        let flood = parse("spacecore.selftest=console-flood:16").unwrap().selftest;
        assert_eq!(flood, Some(SelfTest::ConsoleFlood(16)));
        for bad in ["console-flood:0", "console-flood:1025", "console-flood:x"] {
            assert!(parse(&format!("spacecore.selftest={bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_the_disk_bench() {
        fn bench(word: &str) -> Result<Option<SelfTest>, BadArg<'_>> {
            parse(word).map(|a| a.selftest)
        }
        assert_eq!(
            bench("spacecore.selftest=disk-bench:1000:64"),
            Ok(Some(SelfTest::DiskBench { ops: 1000, read_mib: 64 }))
        );
        let max = format!("spacecore.selftest=disk-bench:{MAX_BENCH_OPS}:{MAX_BENCH_READ_MIB}");
        assert_eq!(
            bench(&max),
            Ok(Some(SelfTest::DiskBench { ops: MAX_BENCH_OPS, read_mib: MAX_BENCH_READ_MIB }))
        );
        for bad in [
            "spacecore.selftest=disk-bench",
            "spacecore.selftest=disk-bench:",
            "spacecore.selftest=disk-bench:10",
            "spacecore.selftest=disk-bench:10:",
            "spacecore.selftest=disk-bench::64",
            "spacecore.selftest=disk-bench:0:64",
            "spacecore.selftest=disk-bench:10:0",
            "spacecore.selftest=disk-bench:-1:64",
            "spacecore.selftest=disk-bench:10:64:1",
            "spacecore.selftest=disk-bench:1000001:64",
            "spacecore.selftest=disk-bench:10:65537",
            "spacecore.selftest=disk-bench:x:64",
        ] {
            assert_eq!(bench(bad), Err(BadArg(bad)), "{bad}");
        }
    }

    #[test]
    fn parses_the_sign_bench_and_the_aggregator() {
        let args = parse("spacecore.selftest=sign-bench:500 spacecore.aggregator=10.0.0.1:8090").unwrap();
        assert_eq!(args.selftest, Some(SelfTest::SignBench(500)));
        assert_eq!(args.aggregator, Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 8090)));
        assert_eq!(parse("").unwrap().aggregator, None);
        refuses_each(&[
            "spacecore.selftest=sign-bench:",
            "spacecore.selftest=sign-bench:0",
            "spacecore.selftest=sign-bench:1000001",
            "spacecore.selftest=sign-bench:x",
            "spacecore.aggregator=10.0.0.1",
            "spacecore.aggregator=10.0.0.1:0",
            "spacecore.aggregator=10.0.0.1:65536",
            "spacecore.aggregator=[::1]:80",
            "spacecore.aggregator=host:80",
        ]);
    }

    #[test]
    fn parses_the_named_endpoints() {
        let addr = |a, b, c, d, port| SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), port);
        let args = parse(
            "spacecore.aggregator=10.0.0.1:8090 spacecore.endpoint.eth_rpc=10.0.0.1:8545 \
             spacecore.endpoint.eth_ws=10.0.0.1:8546",
        )
        .unwrap();
        assert_eq!(args.eth_rpc, Some(addr(10, 0, 0, 1, 8545)));
        assert_eq!(args.eth_ws, Some(addr(10, 0, 0, 1, 8546)));
        let all: alloc::vec::Vec<_> = args.endpoints().collect();
        assert_eq!(
            all,
            [
                ("aggregator", addr(10, 0, 0, 1, 8090)),
                ("eth_rpc", addr(10, 0, 0, 1, 8545)),
                ("eth_ws", addr(10, 0, 0, 1, 8546))
            ]
        );
        // The aggregator by its endpoint name too; none by default.
        let args = parse("spacecore.endpoint.aggregator=192.168.77.1:9000").unwrap();
        assert_eq!(args.aggregator, Some(addr(192, 168, 77, 1, 9000)));
        assert_eq!(args.endpoints().count(), 1);
        let none = parse("").unwrap();
        assert_eq!((none.eth_rpc, none.eth_ws, none.endpoints().count()), (None, None, 0));
        refuses_each(&[
            "spacecore.endpoint.eth_rpc=",
            "spacecore.endpoint.eth_rpc=10.0.0.1",
            "spacecore.endpoint.eth_rpc=10.0.0.1:0",
            "spacecore.endpoint.eth_rpc=10.0.0.1:65536",
            "spacecore.endpoint.eth_rpc=[::1]:8545",
            "spacecore.endpoint.eth_rpc=node:8545",
            "spacecore.endpoint.eth_ws=10.0.0.1:x",
            "spacecore.endpoint.other=10.0.0.1:1",
            "spacecore.endpoint.=10.0.0.1:1",
            "spacecore.endpoint=10.0.0.1:1",
            "spacecore.endpoint.ETH_RPC=10.0.0.1:8545",
        ]);
    }

    #[test]
    fn parses_the_network_and_the_name() {
        let args = parse("console=x spacecore.ip=10.0.0.2/30 spacecore.gw=10.0.0.1 spacecore.http=8080 spacecore.name=node-1.a_b").unwrap();
        let net = NetConfig {
            addr: Ipv4Addr::new(10, 0, 0, 2),
            prefix: 30,
            gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
        };
        assert_eq!(args, Args { net: Some(net), http_port: 8080, name: "node-1.a_b", ..Args::default() });
        // The gateway may come first; the port and name have defaults.
        let args = parse("spacecore.gw=10.0.0.1 spacecore.ip=192.168.1.7/24").unwrap();
        assert_eq!(args.net.unwrap().gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!((args.http_port, args.name), (80, "spacecore"));
        // Without an address there is no network, whatever else is given.
        assert_eq!(parse("spacecore.gw=10.0.0.1 spacecore.http=81").unwrap().net, None);
        let no_gw = parse("spacecore.ip=10.1.2.3/32").unwrap().net.unwrap();
        assert_eq!((no_gw.prefix, no_gw.gateway), (32, None));
    }

    #[test]
    fn parses_the_scheme() {
        assert_eq!(parse("").unwrap().scheme, Scheme::Bn254, "EigenLayer's scheme by default");
        assert_eq!(parse("spacecore.scheme=bn254").unwrap().scheme, Scheme::Bn254);
        assert_eq!(parse("spacecore.scheme=bls12-381").unwrap().scheme, Scheme::Bls12381);
        let both = parse("spacecore.scheme=bls12-381 spacecore.selftest=sign-bench:10").unwrap();
        assert_eq!((both.scheme, both.selftest), (Scheme::Bls12381, Some(SelfTest::SignBench(10))));
        refuses_each(&[
            "spacecore.scheme",
            "spacecore.scheme=",
            "spacecore.scheme=BN254",
            "spacecore.scheme=bls",
        ]);
    }

    #[test]
    fn test_hooks_are_off_unless_turned_on() {
        assert!(!parse("").unwrap().test_hooks);
        assert!(parse("spacecore.testhooks=on").unwrap().test_hooks);
        assert!(!parse("spacecore.testhooks=off").unwrap().test_hooks);
        assert!(!parse("spacecore.testhooks=on spacecore.testhooks=off").unwrap().test_hooks, "last wins");
        refuses_each(&[
            "spacecore.testhooks",
            "spacecore.testhooks=",
            "spacecore.testhooks=1",
            "spacecore.testhooks=ON",
        ]);
    }

    #[test]
    fn parses_the_task_signer() {
        let args = parse("spacecore.task_signer=0x5FbDB2315678afecb367f032d93F642f64180aa3").unwrap();
        assert_eq!(args.task_signer.map(|a| a[0]), Some(0x5f));
        assert!(parse("spacecore.task_signer=0x5FbDB2315678afecb367f032d93F642f64180a").is_err());
        assert!(parse("spacecore.task_signer=nobody").is_err());
    }

    #[test]
    fn parses_the_task_manager_and_confirmations() {
        let args = parse(
            "spacecore.task_manager=0x5FbDB2315678afecb367f032d93F642f64180aa3 spacecore.confirmations=0",
        )
        .unwrap();
        let mut expected = [0u8; 20];
        for (i, b) in expected.iter_mut().enumerate() {
            *b = u8::from_str_radix(&"5fbdb2315678afecb367f032d93f642f64180aa3"[2 * i..2 * i + 2], 16)
                .unwrap();
        }
        assert_eq!((args.task_manager, args.confirmations), (Some(expected), Some(0)));
        assert_eq!(parse("spacecore.confirmations=10000").unwrap().confirmations, Some(10_000));
        assert_eq!((parse("").unwrap().task_manager, parse("").unwrap().confirmations), (None, None));
        refuses_each(&[
            "spacecore.task_manager=",
            "spacecore.task_manager=5fbdb2315678afecb367f032d93f642f64180aa3",
            "spacecore.task_manager=0x5fbdb2315678afecb367f032d93f642f64180aa",
            "spacecore.task_manager=0x5fbdb2315678afecb367f032d93f642f64180aa300",
            "spacecore.task_manager=0x5fbdb2315678afecb367f032d93f642f64180ag3",
            "spacecore.confirmations=",
            "spacecore.confirmations=-1",
            "spacecore.confirmations=10001",
            "spacecore.confirmations=two",
        ]);
    }

    #[test]
    fn rejects_bad_spacecore_words() {
        refuses_each(&[
            "spacecore.selftest",
            "spacecore.selftest=boom",
            "spacecore.selftest=exit:300",
            "spacecore.nope=1",
            "spacecore.ip=10.0.0.2",
            "spacecore.ip=10.0.0.2/33",
            "spacecore.ip=10.0.0/24",
            "spacecore.ip=host/24",
            "spacecore.gw=10.0.0.256",
            "spacecore.http=0",
            "spacecore.http=65536",
            "spacecore.http=http",
            "spacecore.name=",
            "spacecore.name=a/b",
            "spacecore.name=\"q\"",
        ]);
        let longest = format!("spacecore.name={}", "n".repeat(63));
        assert_eq!(parse(&longest).unwrap().name.len(), 63);
        let too_long = format!("spacecore.name={}", "n".repeat(64));
        assert_eq!(parse(&too_long), Err(BadArg(too_long.as_str())));
    }
}
