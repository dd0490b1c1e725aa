//! An AVS cluster on one host, as an operator team would run it: operators with BLS key files
//! (BN254, EigenLayer's scheme and the default: eigensdk's key files; or BLS12-381: EIP-2335
//! keystores), one spacecore per operator booted from a spec with `[spec.avs]` naming the
//! scheme, the operator set naming each spacecore's published HTTP address, and the aggregator
//! sending them tasks. It all lives in one temporary directory, and every process is stopped on
//! drop.
//!
//! Used by `tests/avs.rs` and `cargo xtask demo`. Failures of the machinery (a build, a boot, a
//! CLI call) panic with what went wrong: the callers are a test and a demo.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use avs_protocol::encoding::{from_hex, to_hex};
use avs_protocol::{Scheme, TaskResponse, U256, bls, bn254};
use serde_json::{Value, json};

use crate::{Running, connect, http_json, published, spec_text};

/// Memory of each spacecore: the operator key is encrypted with PBKDF2 or light scrypt
/// (eigensdk's standard scrypt would need 256 MiB of its own).
pub const MEMORY: &str = "256Mi";
/// Stake of each operator in quorum 0, the only quorum.
pub const STAKE: u64 = 100;

/// The programs a cluster runs.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The unikernel image.
    pub image: PathBuf,
    /// `hac-launch`.
    pub launcher: PathBuf,
    /// `spacecore`, the operator's CLI.
    pub cli: PathBuf,
    /// `aggregator`.
    pub aggregator: PathBuf,
}

impl Tools {
    /// The programs of this build of the tests, built first where needed.
    pub fn for_tests() -> Tools {
        Tools {
            image: crate::image().to_path_buf(),
            launcher: crate::launcher().to_path_buf(),
            cli: crate::cli().to_path_buf(),
            aggregator: crate::aggregator().to_path_buf(),
        }
    }
}

/// What the operator set says of an operator's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The operator id: `keccak256(X ‖ Y)` of the G1 key (BN254), `keccak256(pubkey)`
    /// (BLS12-381).
    pub id: [u8; 32],
    /// The public key and its proof of possession.
    pub key: RegisteredKey,
}

/// An operator's public key and proof of possession, in its scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisteredKey {
    /// BN254: both halves of the key.
    Bn254 {
        /// The G1 key, `X ‖ Y`.
        g1: [u8; 64],
        /// The G2 key, `X.c1 ‖ X.c0 ‖ Y.c1 ‖ Y.c0`.
        g2: [u8; 128],
        /// `avs_protocol::bn254::pop_prove`.
        pop: [u8; 64],
    },
    /// BLS12-381.
    Bls12381 {
        /// The compressed G1 public key.
        pubkey: [u8; 48],
        /// `PopProve`.
        pop: [u8; 96],
    },
}

impl Registration {
    /// The operator id as `0x` hex, as the aggregator and the node write it.
    pub fn id_hex(&self) -> String {
        to_hex(&self.id)
    }

    /// The key's scheme.
    pub fn scheme(&self) -> Scheme {
        match self.key {
            RegisteredKey::Bn254 { .. } => Scheme::Bn254,
            RegisteredKey::Bls12381 { .. } => Scheme::Bls12381,
        }
    }

    /// The BLS12-381 public key; panics for a BN254 registration.
    pub fn bls_pubkey(&self) -> [u8; 48] {
        match self.key {
            RegisteredKey::Bls12381 { pubkey, .. } => pubkey,
            RegisteredKey::Bn254 { .. } => panic!("{} is a BN254 operator", self.id_hex()),
        }
    }

    /// The BN254 public key, checked; panics for a BLS12-381 registration.
    pub fn bn254_key(&self) -> bn254::PublicKey {
        match &self.key {
            RegisteredKey::Bn254 { g1, g2, .. } => bn254::PublicKey::new(
                bn254::G1Point::from_bytes(g1).expect("a valid G1 key"),
                bn254::G2Point::from_bytes(g2).expect("a valid G2 key"),
            )
            .expect("the G1 and G2 keys have one secret"),
            RegisteredKey::Bls12381 { .. } => panic!("{} is a BLS12-381 operator", self.id_hex()),
        }
    }

    /// A key of `scheme` that no key file of a cluster holds, derived from `seed`: registering
    /// it for an operator is the "wrong key" case.
    pub fn stranger(scheme: Scheme, seed: u8) -> Registration {
        match scheme {
            Scheme::Bn254 => {
                let mut bytes = [0u8; 32];
                bytes[0] = 0x2a;
                bytes[31] = seed;
                let secret = bn254::SecretKey::from_bytes(&bytes).expect("a scalar below r");
                let public = secret.public_key();
                Registration {
                    id: public.operator_id(),
                    key: RegisteredKey::Bn254 {
                        g1: public.g1().to_bytes(),
                        g2: public.g2().to_bytes(),
                        pop: bn254::pop_prove(&secret).to_bytes(),
                    },
                }
            }
            Scheme::Bls12381 => {
                let secret = bls::SecretKey::key_gen(&[seed; 32]).expect("KeyGen of a 32-byte seed");
                let public = secret.public_key();
                Registration {
                    id: public.operator_id(),
                    key: RegisteredKey::Bls12381 {
                        pubkey: public.to_bytes(),
                        pop: bls::pop_prove(&secret).to_bytes(),
                    },
                }
            }
        }
    }
}

/// An operator: a directory with a password file and a BLS key file made by
/// `spacecore keys generate`.
#[derive(Debug)]
pub struct Operator {
    /// Its name, also its spacecore's.
    pub name: String,
    /// Its directory: the key file, the password, the spec and the disk.
    pub dir: PathBuf,
    /// The key file: eigensdk's BLS key file (BN254) or an EIP-2335 keystore (BLS12-381).
    pub keystore: PathBuf,
    /// The key file's password, mode 0600.
    pub password_file: PathBuf,
    /// The key the key file holds.
    pub key: Registration,
}

/// The name of the password file in an operator's directory, as its spec names it.
const PASSWORD_FILE: &str = "operator.password";

impl Operator {
    /// [`Operator::create_with`] for a BN254 key, the default.
    pub fn create(cli: &Path, root: &Path, name: &str) -> Operator {
        Operator::create_with(cli, root, name, Scheme::Bn254)
    }

    /// Creates `<root>/<name>/` with a password file and a new key file of `scheme`, and reads
    /// the key's public key, operator id and proof of possession with the CLI (each checked).
    pub fn create_with(cli: &Path, root: &Path, name: &str, scheme: Scheme) -> Operator {
        use std::os::unix::fs::PermissionsExt;
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("create the operator's directory");
        let password_file = dir.join(PASSWORD_FILE);
        std::fs::write(&password_file, format!("{name} keystore password\n")).expect("write the password");
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let keystore = dir.join("keystore.json");
        let key = match scheme {
            Scheme::Bn254 => bn254_key_file(cli, &keystore, &password_file),
            Scheme::Bls12381 => bls_keystore(cli, &keystore, &password_file),
        };
        Operator { name: name.to_owned(), dir, keystore, password_file, key }
    }
}

impl Operator {
    /// The CLI's signature of `digest` with the operator's key file (`keys sign` with the key's
    /// scheme), as hex.
    pub fn cli_signature(&self, cli: &Path, digest: &[u8; 32]) -> String {
        let scheme = match self.key.scheme() {
            Scheme::Bn254 => "bn254",
            Scheme::Bls12381 => "bls12-381",
        };
        let message = to_hex(digest);
        self.run_keys(cli, &["keys", "sign", "--scheme", scheme, "--message-hex", &message]).trim().to_owned()
    }

    /// `cli ARGS --keystore KEY_FILE --password-file PASSWORD_FILE` with the operator's files:
    /// its standard output ([`run_cli`]).
    pub fn run_keys(&self, cli: &Path, args: &[&str]) -> String {
        let (keystore, password) = (self.keystore.to_str().unwrap(), self.password_file.to_str().unwrap());
        run_cli(cli, &[args, &["--keystore", keystore, "--password-file", password]].concat())
    }
}

/// The harness without VMs: the operator set of `operator` (stake 100) and a stranger of its
/// scheme (stake 50), both at an address where nothing listens, written to `dir`, must pass
/// `aggregator --check` with `expected` in its output; then an aggregator run on it for one
/// task must end (exit 0) with that task expired, no stake signed. Every decision of the run.
pub fn unanswered_task_run(
    aggregator: &Path,
    dir: &Path,
    operator: &Operator,
    expected: &str,
    limit: Duration,
) -> Vec<Value> {
    let nobody = format!("http://{}", free_port());
    let set = dir.join("operators.toml");
    let text = operator_toml("alpha", &operator.key, 100, &nobody)
        + &operator_toml("beta", &Registration::stranger(operator.key.scheme(), 7), 50, &nobody);
    std::fs::write(&set, text).unwrap();
    let check = Command::new(aggregator).arg("--operators").arg(&set).arg("--check").output().unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{out}{}", String::from_utf8_lossy(&check.stderr));
    assert!(out.contains(expected), "{out}");

    let options =
        AggregatorOptions { tasks: 1, expiry: Duration::from_millis(300), ..AggregatorOptions::default() };
    let mut run = Aggregator::start(aggregator, &set, free_port(), &options, dir);
    let decisions = run.finish_decided(1, limit);
    let expired = events(&decisions, "task_expired").next().expect("task_expired");
    assert_eq!(expired["quorums"], json!([{"quorum": 0, "signed_stake": 0, "total_stake": 150}]));
    decisions
}

/// Makes an EIP-2335 keystore (PBKDF2) and reads its registration with the CLI.
fn bls_keystore(cli: &Path, keystore: &Path, password_file: &Path) -> Registration {
    let (ks, pw) = (keystore.to_str().unwrap(), password_file.to_str().unwrap());
    let generated = run_cli(
        cli,
        &["keys", "generate", "--scheme", "bls12-381", "--kdf", "pbkdf2", "--out", ks, "--password-file", pw],
    );
    let field = |name: &str| -> Vec<u8> {
        let line = generated.lines().find_map(|l| l.strip_prefix(name));
        from_hex(line.unwrap_or_else(|| panic!("no `{name}` in {generated:?}")).trim()).expect("hex")
    };
    let pubkey: [u8; 48] = field("pubkey:").try_into().expect("48-byte public key");
    let id: [u8; 32] = field("operator_id:").try_into().expect("32-byte operator id");
    let public = bls::PublicKey::from_bytes(&pubkey).expect("the CLI printed a valid public key");
    assert_eq!(public.operator_id(), id, "the CLI's operator id is keccak256 of its public key");
    let args = ["keys", "pop", "--scheme", "bls12-381", "--keystore", ks, "--password-file", pw];
    let pop = run_cli(cli, &args);
    let pop: [u8; 96] = from_hex(pop.trim()).and_then(|p| p.try_into().ok()).expect("96-byte proof");
    bls::pop_verify(&public, &bls::Signature::from_bytes(&pop).expect("valid proof"))
        .expect("the proof of possession verifies");
    Registration { id, key: RegisteredKey::Bls12381 { pubkey, pop } }
}

/// `N` bytes of `0x` hex in the JSON string `value` (`what` names it in the panic).
fn json_hex<const N: usize>(value: &Value, what: &str) -> [u8; N] {
    value
        .as_str()
        .and_then(from_hex)
        .and_then(|b| b.try_into().ok())
        .unwrap_or_else(|| panic!("`{what}` is not {N} bytes of 0x hex: {value}"))
}

/// The 32-byte words of `parts` (JSON hex strings) concatenated: a point's encoding from the
/// coordinates `keys pubkey --json` prints.
fn json_words<const N: usize>(parts: &[&Value], what: &str) -> [u8; N] {
    let mut out = [0u8; N];
    assert_eq!(parts.len() * 32, N, "{what}");
    for (chunk, part) in out.chunks_mut(32).zip(parts) {
        chunk.copy_from_slice(&json_hex::<32>(part, what));
    }
    out
}

/// Makes eigensdk's BLS key file and reads its registration with the CLI: `keys pubkey --json`
/// for the G1 and G2 keys and the operator id, `keys pop` for the proof of possession.
fn bn254_key_file(cli: &Path, keyfile: &Path, password_file: &Path) -> Registration {
    let (kf, pw) = (keyfile.to_str().unwrap(), password_file.to_str().unwrap());
    run_cli(
        cli,
        &["keys", "generate", "--scheme", "bn254", "--kdf", "pbkdf2", "--out", kf, "--password-file", pw],
    );
    let args = ["keys", "pubkey", "--scheme", "bn254", "--json", "--keystore", kf, "--password-file", pw];
    let shown = run_cli(cli, &args);
    let shown: Value = serde_json::from_str(&shown).unwrap_or_else(|e| panic!("{e}: {shown}"));
    // {"g1": {"x", "y"}, "g2": {"x": [c1, c0], "y": [c1, c0]}}: the contracts' order.
    let g1: [u8; 64] = json_words(&[&shown["g1"]["x"], &shown["g1"]["y"]], "g1");
    let (x, y) = (&shown["g2"]["x"], &shown["g2"]["y"]);
    let g2: [u8; 128] = json_words(&[&x[0], &x[1], &y[0], &y[1]], "g2");
    let id: [u8; 32] = json_hex(&shown["operator_id"], "operator_id");
    let public = bn254::PublicKey::new(
        bn254::G1Point::from_bytes(&g1).expect("the CLI printed a valid G1 key"),
        bn254::G2Point::from_bytes(&g2).expect("the CLI printed a valid G2 key"),
    )
    .expect("the CLI's G1 and G2 keys have one secret");
    assert_eq!(public.operator_id(), id, "the CLI's operator id is keccak256(X ‖ Y)");
    let pop = run_cli(cli, &["keys", "pop", "--scheme", "bn254", "--keystore", kf, "--password-file", pw]);
    let pop: [u8; 64] = from_hex(pop.trim()).and_then(|p| p.try_into().ok()).expect("64-byte proof");
    bn254::pop_verify(&public, &bn254::Signature::from_bytes(&pop).expect("valid proof"))
        .expect("the proof of possession verifies");
    Registration { id, key: RegisteredKey::Bn254 { g1, g2, pop } }
}

/// Runs `spacecore ARGS` and returns its standard output; panics unless it exits 0.
pub fn run_cli(cli: &Path, args: &[&str]) -> String {
    let out = Command::new(cli).args(args).output().expect("run spacecore");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "spacecore {args:?}: {}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// One `[[operator]]` table of an operator set file (`docs/aggregator.md`), with `stake` in
/// quorum 0 and tasks sent to `address`: `g1`, `g2` and `pop` for BN254, `pubkey` and `pop` for
/// BLS12-381.
pub fn operator_toml(name: &str, key: &Registration, stake: u64, address: &str) -> String {
    let keys = match &key.key {
        RegisteredKey::Bn254 { g1, g2, pop } => {
            format!("g1 = \"{}\"\ng2 = \"{}\"\npop = \"{}\"\n", to_hex(g1), to_hex(g2), to_hex(pop))
        }
        RegisteredKey::Bls12381 { pubkey, pop } => {
            format!("pubkey = \"{}\"\npop = \"{}\"\n", to_hex(pubkey), to_hex(pop))
        }
    };
    format!(
        "[[operator]]\nname = \"{name}\"\nid = \"{}\"\n{keys}stake = {{ 0 = {stake} }}\naddress = \"{address}\"\n\n",
        to_hex(&key.id),
    )
}

/// A free TCP port on loopback: bound, read and released, for a server started right after.
pub fn free_port() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address")
}

/// One operator's spacecore.
#[derive(Debug)]
pub struct Node {
    /// The operator.
    pub operator: Operator,
    /// Its spec, in the operator's directory.
    pub spec: PathBuf,
    /// Its disk, holding the imported keystore.
    pub disk: PathBuf,
    /// What the operator set registers for it: its own key, unless changed.
    pub registered: Registration,
    /// The running launcher, if it runs.
    pub run: Option<Running>,
    /// Its published HTTP address while it runs.
    pub http: Option<SocketAddr>,
    /// Extra launcher arguments of every boot after provisioning ([`NodeSetup::args`]).
    pub args: Vec<String>,
}

/// How the spacecores of a cluster differ from the default ones ([`Cluster::with_setup`]).
#[derive(Debug, Clone, Default)]
pub struct NodeSetup {
    /// Guest memory, such as `"128Mi"`; [`MEMORY`] when `None`.
    pub memory: Option<String>,
    /// TOML tables appended to every spec, such as a `[spec.failover]` table.
    pub tables: String,
    /// Extra `hac-launch` arguments of every boot after provisioning (not of the provisioning
    /// boot), such as `["--cmdline", "spacecore.testhooks=on"]`.
    pub args: Vec<String>,
}

impl Node {
    fn launcher(&self, tools: &Tools, state: &Path) -> Command {
        let mut cmd = Command::new(&tools.launcher);
        cmd.arg(&self.spec)
            .env("SPACECORE_STATE_DIR", state)
            .env("SPACECORE_IMAGE_STORE", state.join("image-store"));
        cmd
    }

    /// The launcher of a boot after provisioning: with [`Node::args`].
    fn boot(&self, tools: &Tools, state: &Path) -> Running {
        assert!(self.run.is_none(), "{} is already running", self.operator.name);
        let mut cmd = self.launcher(tools, state);
        cmd.args(&self.args);
        Running::spawn(cmd)
    }

    /// Boots the spacecore and waits (each step at most `limit`) for ready and for its operator
    /// key to be loaded.
    fn start(&mut self, tools: &Tools, state: &Path, limit: Duration) {
        let mut run = self.boot(tools, state);
        let name = &self.operator.name;
        assert!(
            run.find_where(limit, |l| l.is_event("ready")).is_some(),
            "{name} never ready: {:#?}",
            run.seen
        );
        let loaded = format!("avs: operator {} ready", to_hex(&self.operator.key.id));
        assert!(
            run.find_guest(&loaded, limit).is_some(),
            "{name}: no guest line `{loaded}`: {:#?}",
            run.seen
        );
        self.http = Some(published(&run.seen, "HTTP").expect("a published HTTP line"));
        self.run = Some(run);
    }
}

/// Options of an aggregator run (its command-line flags).
#[derive(Debug, Clone)]
pub struct AggregatorOptions {
    /// `--tasks`.
    pub tasks: u32,
    /// `--quorum-threshold`, percent.
    pub threshold: u32,
    /// `--task-interval`.
    pub interval: Duration,
    /// `--task-expiry`.
    pub expiry: Duration,
}

impl Default for AggregatorOptions {
    fn default() -> Self {
        AggregatorOptions {
            tasks: 5,
            threshold: 67,
            interval: Duration::from_millis(300),
            expiry: Duration::from_secs(5),
        }
    }
}

/// Operators, their spacecores, and where the aggregator is to listen.
#[derive(Debug)]
pub struct Cluster {
    tools: Tools,
    dir: tempfile::TempDir,
    /// The aggregator's JSON-RPC address, named by every spec's `[spec.avs]`.
    pub aggregator_addr: SocketAddr,
    /// The spacecores, in operator order.
    pub nodes: Vec<Node>,
    /// How long a boot, a key load or a stop may take.
    pub limit: Duration,
    /// The operators' signature scheme.
    pub scheme: Scheme,
}

impl Cluster {
    /// Creates `n` BN254 operators named `{prefix}-1`, `{prefix}-2`, ... and provisions their
    /// spacecores: writes each spec, boots it once (`--until-ready`) to create its disk, and
    /// imports the key file into the disk. Nothing runs afterwards.
    pub fn new(tools: Tools, prefix: &str, n: usize) -> Cluster {
        Cluster::with_setup(tools, prefix, n, &NodeSetup::default())
    }

    /// [`Cluster::new`] with operators of `scheme`.
    pub fn with_scheme(tools: Tools, prefix: &str, n: usize, scheme: Scheme) -> Cluster {
        Cluster::create(tools, prefix, n, scheme, &NodeSetup::default())
    }

    /// [`Cluster::new`] (BN254) with spacecores set up as `setup` says: their memory, more spec
    /// tables, and more launcher arguments for the boots after provisioning.
    pub fn with_setup(tools: Tools, prefix: &str, n: usize, setup: &NodeSetup) -> Cluster {
        Cluster::create(tools, prefix, n, Scheme::Bn254, setup)
    }

    /// `n` operators of `scheme` and their spacecores, set up as `setup` says.
    pub fn create(tools: Tools, prefix: &str, n: usize, scheme: Scheme, setup: &NodeSetup) -> Cluster {
        let dir =
            tempfile::Builder::new().prefix("spacecore-cluster-").tempdir().expect("temporary directory");
        let aggregator_addr = free_port();
        let limit = Duration::from_secs(30);
        let nodes = std::thread::scope(|s| {
            let provisions: Vec<_> = (1..=n)
                .map(|i| {
                    let (tools, dir, name) = (&tools, dir.path(), format!("{prefix}-{i}"));
                    s.spawn(move || provision(tools, dir, &name, aggregator_addr, scheme, setup))
                })
                .collect();
            provisions.into_iter().map(|p| p.join().expect("provisioning failed")).collect()
        });
        Cluster { tools, dir, aggregator_addr, nodes, limit, scheme }
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The programs the cluster runs.
    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    /// Adds `fields` (TOML `key = value` lines) to the `[spec.avs]` table of every node's spec:
    /// for settings known only once the nodes are provisioned, such as the address of a
    /// TaskManager deployed for their keys. Takes effect at each node's next boot. A node given
    /// a `task_manager` reads its tasks from the chain and takes none pushed, so its spec loses
    /// the `task_signer` line (`hac-launch` refuses the two together).
    pub fn add_avs_fields(&self, fields: &str) {
        let on_chain = fields.lines().any(|l| l.trim_start().starts_with("task_manager"));
        for node in &self.nodes {
            let mut text = std::fs::read_to_string(&node.spec).expect("read the spec");
            assert!(text.contains("[spec.avs]\n"), "{}: no [spec.avs] table", node.spec.display());
            if on_chain {
                text = text
                    .lines()
                    .filter(|l| !l.starts_with("task_signer = "))
                    .map(|l| format!("{l}\n"))
                    .collect();
            }
            let fields = if fields.ends_with('\n') { fields.to_owned() } else { format!("{fields}\n") };
            let text = text.replacen("[spec.avs]\n", &format!("[spec.avs]\n{fields}"), 1);
            std::fs::write(&node.spec, text).expect("write the spec");
        }
    }

    /// Keeps the directory after the cluster is dropped.
    pub fn keep(&mut self) {
        self.dir.disable_cleanup(true);
    }

    /// Registers node `i` with a key (of the cluster's scheme) its key file does not hold.
    pub fn register_wrong_key(&mut self, i: usize) {
        self.nodes[i].registered = Registration::stranger(self.scheme, 0x5a ^ i as u8);
    }

    /// `hac-launch` on node `i`'s spec with `args` before it, in the cluster's state directory
    /// and image store, not started.
    pub fn launcher(&self, i: usize, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.tools.launcher);
        cmd.args(args);
        let node = self.nodes[i].launcher(&self.tools, self.dir.path());
        cmd.arg(node.get_args().next().expect("the spec"));
        cmd.envs(node.get_envs().filter_map(|(k, v)| Some((k, v?))));
        cmd
    }

    /// Boots node `i` and waits until it has loaded its key.
    pub fn start(&mut self, i: usize) {
        let (tools, state, limit) = (&self.tools, self.dir.path(), self.limit);
        self.nodes[i].start(tools, state, limit);
    }

    /// Starts node `i`'s launcher and waits for nothing (not even ready): for boots that are
    /// meant to fail, or whose lines the test reads itself from the start. `http` stays
    /// `None`; [`Cluster::stop`] and [`Cluster::kill`] work as after [`Cluster::start`].
    pub fn spawn(&mut self, i: usize) -> &mut Running {
        let run = self.nodes[i].boot(&self.tools, self.dir.path());
        self.nodes[i].run.insert(run)
    }

    /// Boots every node that is not running, in parallel.
    pub fn start_all(&mut self) {
        let (tools, state, limit) = (&self.tools, self.dir.path(), self.limit);
        std::thread::scope(|s| {
            for node in self.nodes.iter_mut().filter(|n| n.run.is_none()) {
                s.spawn(move || node.start(tools, state, limit));
            }
        });
    }

    /// SIGKILLs node `i`'s launcher and returns its output.
    pub fn kill(&mut self, i: usize) -> String {
        let run = self.nodes[i].run.take().expect("the node runs");
        self.nodes[i].http = None;
        run.signal(libc::SIGKILL);
        run.finish(self.limit).1
    }

    /// Stops node `i` with SIGTERM and returns the launcher's exit status and output.
    pub fn stop(&mut self, i: usize) -> (Option<i32>, String) {
        let run = self.nodes[i].run.take().expect("the node runs");
        self.nodes[i].http = None;
        run.signal(libc::SIGTERM);
        run.finish(self.limit)
    }

    /// Writes `operators.toml`: the scheme, then every node with its registration, [`STAKE`] in
    /// quorum 0, and its published address (so every node must be running).
    pub fn write_operator_set(&self) -> PathBuf {
        let header = format!("scheme = \"{}\"\n\n", self.scheme);
        let entries: String = self
            .nodes
            .iter()
            .map(|n| {
                let http = n.http.unwrap_or_else(|| panic!("{} is not running", n.operator.name));
                operator_toml(&n.operator.name, &n.registered, STAKE, &format!("http://{http}"))
            })
            .collect();
        let path = self.dir().join("operators.toml");
        std::fs::write(&path, header + &entries).expect("write the operator set");
        path
    }

    /// Writes the operator set and starts the aggregator on [`Cluster::aggregator_addr`], its
    /// files in the cluster's directory.
    pub fn start_aggregator(&self, options: &AggregatorOptions) -> Aggregator {
        let operators = self.write_operator_set();
        Aggregator::start(&self.tools.aggregator, &operators, self.aggregator_addr, options, self.dir())
    }

    /// [`Cluster::start_aggregator`] for `tasks` tasks at `threshold` percent (the other options
    /// the defaults), run to its end with [`Aggregator::finish_decided`]; its decisions.
    pub fn run_aggregator(&self, tasks: u32, threshold: u32, limit: Duration) -> Vec<Value> {
        let options = AggregatorOptions { tasks, threshold, ..AggregatorOptions::default() };
        self.start_aggregator(&options).finish_decided(tasks as usize, limit)
    }
}

/// The task source of every cluster and test: the key the aggregator signs pushed tasks with
/// (`--task-signer-keystore`), whose address every node's spec names (`spec.avs.task_signer`).
pub fn task_source() -> avs_protocol::ecdsa::SecretKey {
    avs_protocol::ecdsa::SecretKey::from_bytes(&[0x7a; 32]).expect("a valid secp256k1 key")
}

/// [`task_source`]'s address, `0x` and 40 hex digits, as a spec names it.
pub fn task_source_address() -> String {
    to_hex(&task_source().address())
}

/// Writes [`task_source`]'s Ethereum v3 keystore (cheap PBKDF2) and its password file into
/// `dir`; returns their paths.
pub fn write_task_source(dir: &Path) -> (PathBuf, PathBuf) {
    const PASSWORD: &str = "task source of the tests";
    let secret = task_source().to_bytes();
    let keystore = eip2335::web3::EcdsaKeystore::encrypt(
        &secret,
        PASSWORD.as_bytes(),
        Some(task_source().address()),
        eip2335::Kdf::Pbkdf2 { c: 16 },
        [7; 32],
        [8; 16],
        "5a0c2b8e-6d1f-4f3a-9b7e-2c4d6e8f0a1b",
    )
    .expect("encrypt the task source's key");
    let (path, password) = (dir.join("task-source.json"), dir.join("task-source.password"));
    std::fs::write(&path, keystore.to_json()).expect("write the task source's keystore");
    std::fs::write(&password, PASSWORD).expect("write its password");
    (path, password)
}

/// `body` signed by [`task_source`] when it is a task (as the aggregator sends it); any other
/// body as it is.
pub fn authorize(body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<avs_protocol::NewTask>(body) {
        Ok(task) => serde_json::to_vec(&avs_protocol::intake::AuthorizedTask::sign(task, &task_source()))
            .expect("encode"),
        Err(_) => body.to_vec(),
    }
}

/// Makes the operator `name` and its spacecore's spec and disk, the key file imported.
fn provision(
    tools: &Tools,
    root: &Path,
    name: &str,
    aggregator: SocketAddr,
    scheme: Scheme,
    setup: &NodeSetup,
) -> Node {
    let operator = Operator::create_with(&tools.cli, root, name, scheme);
    // A node that reads its tasks from the chain takes none pushed: no task source.
    let task_signer = if setup.tables.contains("task_manager") {
        String::new()
    } else {
        format!("task_signer = \"{}\"\n", task_source_address())
    };
    let tables = format!(
        "[spec.storage]\npath = \"disk.img\"\n\
         [spec.networking.inbound_ports]\nHTTP = 80\n[spec.networking.publish]\nHTTP = 0\n\
         [spec.avs]\naggregator = \"{aggregator}\"\nscheme = \"{}\"\n\
         keystore_password_file = \"{PASSWORD_FILE}\"\n{task_signer}{}",
        scheme, setup.tables
    );
    let memory = setup.memory.as_deref().unwrap_or(MEMORY);
    let resources = format!("cpu = 1\nmemory = \"{memory}\"\nstorage = \"16Mi\"");
    let spec = operator.dir.join("spacecore.toml");
    let text = spec_text(name, &resources, &tables, &tools.image.display().to_string());
    std::fs::write(&spec, text).expect("write the spec");
    let node = Node {
        disk: operator.dir.join("disk.img"),
        registered: operator.key.clone(),
        operator,
        spec,
        run: None,
        http: None,
        args: setup.args.clone(),
    };
    let first = node.launcher(tools, root).arg("--until-ready").output().expect("run hac-launch");
    assert!(first.status.success(), "first boot of {name}: {}\n{}", first.status, crate::text(&first));
    let (keystore, disk) = (node.operator.keystore.to_str().unwrap(), node.disk.to_str().unwrap());
    run_cli(&tools.cli, &["keys", "import", "--keystore", keystore, "--disk", disk]);
    node
}

/// An Ethereum v3 keystore made by `spacecore keys generate --scheme ecdsa` as
/// `<dir>/<name>.json`, with its password file.
#[derive(Debug, Clone)]
pub struct EcdsaKey {
    /// The keystore.
    pub keystore: PathBuf,
    /// Its password file, mode 0600.
    pub password_file: PathBuf,
    /// The key's account, as the CLI printed it (`0x` and 40 lowercase hex digits).
    pub address: String,
}

impl EcdsaKey {
    /// Generates a key with the CLI (PBKDF2, so reading it is quick).
    pub fn generate(cli: &Path, dir: &Path, name: &str) -> EcdsaKey {
        use std::os::unix::fs::PermissionsExt;
        let keystore = dir.join(format!("{name}.json"));
        let password_file = dir.join(format!("{name}.password"));
        std::fs::write(&password_file, format!("{name} keystore password\n")).expect("write the password");
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (ks, pw) = (keystore.to_str().unwrap(), password_file.to_str().unwrap());
        let printed = run_cli(
            cli,
            &["keys", "generate", "--scheme", "ecdsa", "--kdf", "pbkdf2", "--out", ks, "--password-file", pw],
        );
        let address = printed
            .lines()
            .find_map(|l| l.strip_prefix("address:"))
            .map(|a| a.trim().to_ascii_lowercase())
            .unwrap_or_else(|| panic!("no `address:` in {printed:?}"));
        assert!(
            address.len() == 42 && address.starts_with("0x") && from_hex(&address).is_some(),
            "not an address: {address}"
        );
        EcdsaKey { keystore, password_file, address }
    }
}

/// Where the aggregator's chain mode finds the AVS and its keys (`docs/aggregator.md`).
#[derive(Debug, Clone)]
pub struct ChainSetup {
    /// `--eth-rpc`: `http://127.0.0.1:PORT`.
    pub eth_rpc: String,
    /// `--task-manager`.
    pub task_manager: String,
    /// `--operator-state-retriever`.
    pub operator_state_retriever: String,
    /// `--registry-coordinator`.
    pub registry_coordinator: String,
    /// `--task-generator-keystore` and `--task-generator-password`.
    pub task_generator: EcdsaKey,
    /// `--aggregator-keystore` and `--aggregator-password`.
    pub aggregator: EcdsaKey,
}

/// A running aggregator; killed on drop.
#[derive(Debug)]
pub struct Aggregator {
    child: Child,
    /// Its decision log, one JSON object per line.
    pub decision_log: PathBuf,
    /// Its standard error.
    pub log: PathBuf,
}

impl Aggregator {
    /// Starts `program` (the aggregator) with the operator set `operators`, JSON-RPC on
    /// `listen`, metrics on any free loopback port, and `options`; its decisions go to
    /// `<dir>/decisions.jsonl` and its standard error to `<dir>/aggregator.log`.
    pub fn start(
        program: &Path,
        operators: &Path,
        listen: SocketAddr,
        options: &AggregatorOptions,
        dir: &Path,
    ) -> Aggregator {
        let mut cmd = Command::new(program);
        let (keystore, password) = write_task_source(dir);
        cmd.arg("--operators").arg(operators);
        cmd.arg("--task-signer-keystore").arg(keystore).arg("--task-signer-password").arg(password);
        Aggregator::spawn(cmd, listen, options, dir)
    }

    /// Starts `program` (the aggregator) in chain mode on the deployment `chain`: it creates
    /// the tasks on chain and answers them with `respondToTask`; otherwise as
    /// [`Aggregator::start`].
    pub fn start_chain(
        program: &Path,
        chain: &ChainSetup,
        listen: SocketAddr,
        options: &AggregatorOptions,
        dir: &Path,
    ) -> Aggregator {
        let mut cmd = Command::new(program);
        cmd.args(["--eth-rpc", &chain.eth_rpc, "--task-manager", &chain.task_manager])
            .args(["--operator-state-retriever", &chain.operator_state_retriever])
            .args(["--registry-coordinator", &chain.registry_coordinator])
            .arg("--task-generator-keystore")
            .arg(&chain.task_generator.keystore)
            .arg("--task-generator-password")
            .arg(&chain.task_generator.password_file)
            .arg("--aggregator-keystore")
            .arg(&chain.aggregator.keystore)
            .arg("--aggregator-password")
            .arg(&chain.aggregator.password_file);
        Aggregator::spawn(cmd, listen, options, dir)
    }

    fn spawn(mut cmd: Command, listen: SocketAddr, options: &AggregatorOptions, dir: &Path) -> Aggregator {
        let decision_log = dir.join("decisions.jsonl");
        let log = dir.join("aggregator.log");
        let _ = std::fs::remove_file(&decision_log);
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let child = cmd
            .args(["--listen", &listen.to_string(), "--metrics", "127.0.0.1:0"])
            .args([
                "--quorum-threshold",
                &options.threshold.to_string(),
                "--tasks",
                &options.tasks.to_string(),
            ])
            .args(["--task-interval", &ms(options.interval), "--task-expiry", &ms(options.expiry)])
            .arg("--decision-log")
            .arg(&decision_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the aggregator's log"))
            .spawn()
            .expect("start the aggregator");
        Aggregator { child, decision_log, log }
    }

    /// Every complete line of the decision log so far, parsed.
    pub fn decisions(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.decision_log).unwrap_or_default();
        // A line is complete once its newline is written.
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        complete.lines().map(|l| serde_json::from_str(l).expect("a decision line is JSON")).collect()
    }

    /// Waits (at most `limit`, polling) until `done` holds for the decisions, and returns them;
    /// `Err` with them if it never did.
    pub fn wait_until(
        &self,
        limit: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Result<Vec<Value>, Vec<Value>> {
        let deadline = Instant::now() + limit;
        loop {
            let decisions = self.decisions();
            if done(&decisions) {
                return Ok(decisions);
            }
            if Instant::now() >= deadline {
                return Err(decisions);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most `limit`) until `n` tasks are decided (completed or expired) and returns
    /// every decision; panics with the decisions and the aggregator's log otherwise.
    pub fn wait_decided(&self, n: usize, limit: Duration) -> Vec<Value> {
        self.wait_until(limit, |d| decided(d).count() >= n).unwrap_or_else(|d| {
            panic!("{} of {n} tasks decided in {limit:?}: {d:#?}\n{}", decided(&d).count(), self.log_text())
        })
    }

    /// [`Aggregator::wait_decided`], then [`Aggregator::finish`], which must be exit code 0
    /// (the aggregator's log otherwise); the decisions.
    pub fn finish_decided(&mut self, n: usize, limit: Duration) -> Vec<Value> {
        let decisions = self.wait_decided(n, limit);
        assert_eq!(self.finish(limit), Some(0), "{}", self.log_text());
        decisions
    }

    /// Waits (at most `limit`) for the first response signed by `operator_id` (accepted or
    /// not); its task index. Panics with the decisions and the aggregator's log otherwise.
    pub fn first_response_from(&self, operator_id: &str, limit: Duration) -> u32 {
        let sent = |d: &[Value]| events(d, "response").find(|r| r["operator_id"] == operator_id).cloned();
        let early = self.wait_until(limit, |d| sent(d).is_some()).unwrap_or_else(|d| {
            panic!("the victim never answered: {d:#?}\n{}", self.log_text());
        });
        sent(&early).unwrap()["task_index"].as_u64().unwrap() as u32
    }

    /// The aggregator's standard error so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the aggregator has exited (it does once its `--tasks` are decided).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits (at most `limit`, then kills it) for the aggregator to exit; its exit code.
    pub fn finish(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the aggregator") {
                return status.code();
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                return self.child.wait().expect("reap the aggregator").code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The decisions of one `event`.
pub fn events<'a>(decisions: &'a [Value], event: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    decisions.iter().filter(move |d| d["event"] == event)
}

/// The `task_completed` decisions.
pub fn completed(decisions: &[Value]) -> Vec<&Value> {
    events(decisions, "task_completed").collect()
}

/// The digest of the response to task `index` with `number`, computed by `avs-protocol`.
pub fn response_digest(index: u32, number: u64) -> [u8; 32] {
    let number = U256::from(number);
    TaskResponse { reference_task_index: index, number_squared: number * number }.digest()
}

/// The `task_completed` and `task_expired` decisions.
pub fn decided(decisions: &[Value]) -> impl Iterator<Item = &Value> {
    decisions.iter().filter(|d| d["event"] == "task_completed" || d["event"] == "task_expired")
}

/// `N` bytes from a `0x` hex JSON string.
pub fn hex_field<const N: usize>(value: &Value) -> [u8; N] {
    let text = value.as_str().unwrap_or_else(|| panic!("not a hex string: {value}"));
    from_hex(text).and_then(|b| b.try_into().ok()).unwrap_or_else(|| panic!("not {N} bytes of hex: {text}"))
}

/// The `NewTask` JSON the task generator sent for a `task_created` decision.
pub fn new_task(created: &Value) -> Value {
    let quorums: Vec<u8> = created["quorum_numbers"]
        .as_array()
        .expect("quorum_numbers")
        .iter()
        .map(|q| q.as_u64().and_then(|q| u8::try_from(q).ok()).expect("a quorum number"))
        .collect();
    json!({
        "task_index": created["task_index"],
        "task": {
            "number_to_be_squared": created["number_to_be_squared"],
            "task_created_block": created["task_created_block"],
            "quorum_numbers": to_hex(&quorums),
            "quorum_threshold_percentage": created["quorum_threshold_percentage"],
        }
    })
}

/// A pushed `NewTask`: task `index`, squaring `number`, of quorum 0 at 67 %, created at block 1.
pub fn pushed_task(index: u32, number: u64) -> Value {
    json!({"task_index": index, "task": {"number_to_be_squared": number.to_string(),
           "task_created_block": 1, "quorum_numbers": "0x00", "quorum_threshold_percentage": 67}})
}

/// POSTs `body` to `addr`'s `/task`, signed by the task source if it is a task
/// ([`authorize`]); the status and the answer (`Value::Null` if not JSON).
pub fn post_task(addr: SocketAddr, body: &[u8]) -> (u16, Value) {
    post_unsigned_task(addr, &authorize(body))
}

/// POSTs `body` to `addr`'s `/task` as it is; the status and the answer.
pub fn post_unsigned_task(addr: SocketAddr, body: &[u8]) -> (u16, Value) {
    let (status, answer) = http_json(&mut connect(addr), "POST", "/task", body);
    (status, serde_json::from_slice(&answer).unwrap_or(Value::Null))
}

/// `GET /` of `addr`: the status and the JSON answer.
pub fn status(addr: SocketAddr) -> (u16, Value) {
    let (status, answer) = crate::http(&mut connect(addr), "GET", "/", b"");
    (status, serde_json::from_slice(&answer).unwrap_or(Value::Null))
}
