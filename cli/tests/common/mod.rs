//! Running the `spacecore` binary, and the py_ecc vectors of `avs-protocol/tests/vectors.rs`.
#![allow(dead_code)] // each test file uses a different part

use avs_protocol::bls::SecretKey;
use eip2335::{Kdf, Keystore};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The (7, 81) task response digest, the message of the vectors.
pub const DIGEST_7_81: &str = "0x28b08f6abf7f06678e9af8f957a660fe6be44b778e4a7a5cfaff67468fdc6170";

/// (secret key, public key, signature over `DIGEST_7_81`, proof of possession), from py_ecc.
pub const KEYS: [(&str, &str, &str, &str); 3] = [
    (
        "0x08cdd5e62f85cdc1657d0098617910e2ea9d9242da057b5c58908e0c282cdeb8",
        "0xaa2c5516d436ca223d11841449e0747653214f3611bb76893c36e156e226b6f025268124000e671b4c7c7640da12d3ef",
        "0xafd4c16cb26221a4e7061d38157e0117ffdb1b1718075109f5c011f346bbd14df77e4f7700cedb650a152bade1c6f3b2173a06cd2f71e1cadb881e6f8965ee5b1a4040f8a329f4deb0b4558f391744f8ba72bf2857abf8f2fa75cc2c84aa8a90",
        "0x851cc461ad7938802bc24b5c807bf717fab6056f35c509f7ff3105446508e60ef689b42d5f90dbcfd4b18f0747ce9b3f0aa9d041e1ed1660d27f545e72921d837979ea60da5a56b0bef7fad34fe2b071196e793a8a6cec8d7567ac521c85508a",
    ),
    (
        "0x40d0152b5e849c7a9807682222e429ee753ffa1a4914ee37838440562915d8c0",
        "0xb0c4ba5dc91830ac8b9647a65065e11d51d780cfa67e8441017788b1d9908c3e4f2c905db09e3cae6a33a9408e5801a6",
        "0x8dd778cec1358cb66d7a0b87bb64656c6c1db92ffba403f0b5b29692515375c63bc856f0a458dd70fa4f85b870f07e9c154aa37edb2af016444194128066827f7e78208b28f71a61925b3f74ab4e2496af887c454f22fd4aa3d2422bdb7f04fe",
        "0xb4e8b633c4a106c5ce5570bb6d469a8360bbaef5cb8b2e79633f8ce122e5d327faf842de1e43a2384818f68ba6fd543418454c212736d75afe4e1d44560bc1888be514b718e5de2178b172882139837418545ffb13fd6b34087395ea4d2c241b",
    ),
    (
        "0x45861eb2f489f63ce00b743dcad86e5dd6daa23a5486289f27417425dd59885e",
        "0x809aa77146f515e827d96ca10c43ec9d8109268a403fcf9bc40faa42d3d7b6ae90bec076202d429ec20d1f8a4ac531e3",
        "0x941b5271fb6797710c626fc604fabb2e2c45d12acc7671d6d15b1b06a7f78a69350e87d8405239bc6cac41d97985951216c31d6715fbee28e3973e159a58f8272a0fe76e79b5ac9457bbf312b467828242cb38cfd2b78f9fde582bdc64e70afb",
        "0x844a58ed6be9cddb326e0e91308fb740beb3b71148172d293f568f091faf5fd3a61092c9a53d7341b10918dc426982240d4a49545f9c83c2a7c2d8be4e8bab2faeb744b5d559eb9eceea9af2814f0d39b87b7602d0996d77bb015fad6df43568",
    ),
];

pub const AGGREGATE_SIGNATURE: &str = "0x947e97d37e494a0036999532b577872deaf91ebcd64f5dfb5af1a269a2b7238a1cf6172013c60c5d1cf4dc16a6172d7504702e7bf350b1fb5d94b9c51b558a2f0e7b5b37b55548e42dc9bd1067454cb98d57920fa206887274fc64819876b0c6";
pub const AGGREGATE_PUBLIC_KEY: &str =
    "0xa6efd609ae1036f8f744f2cf340da4f80b90244540e7353befa91c4e90e1f2ddfe417b5a80045af1fe8fa37272c9985f";

/// What a run of the binary gave.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The only line of standard output; panics unless the run succeeded with one line.
    pub fn line(&self) -> &str {
        assert_eq!(self.code, Some(0), "{self:?}");
        let mut lines = self.stdout.lines();
        let line = lines.next().unwrap_or_else(|| panic!("no output: {self:?}"));
        assert_eq!(lines.next(), None, "{self:?}");
        line
    }

    /// Checks that the run failed with status 2 and `needle` in its error.
    pub fn fails_with(&self, needle: &str) {
        assert_eq!(self.code, Some(2), "{self:?}");
        assert!(self.stderr.contains(needle), "{needle:?} not in {self:?}");
    }
}

/// Runs `spacecore ARGS`.
pub fn spacecore<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_spacecore")).args(args).output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Writes a password file of mode 0600 holding `password` and a newline.
pub fn password_file(dir: &Path, name: &str, password: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A keystore of `secret_hex` under `password`, with a cheap KDF (PBKDF2, c = 16) so tests
/// stay fast; returns its path.
pub fn cheap_keystore(dir: &Path, name: &str, secret_hex: &str, password: &str) -> PathBuf {
    let secret: [u8; 32] = avs_protocol::encoding::from_hex(secret_hex).unwrap().try_into().unwrap();
    let pubkey = SecretKey::from_bytes(&secret).unwrap().public_key().to_bytes();
    let pubkey_hex: String = pubkey.iter().map(|b| format!("{b:02x}")).collect();
    let (salt, iv) = ([7; 32], [9; 16]);
    let uuid = "4f6b0c4e-9a9b-4c67-8f41-0d5b0c8e1c2a";
    let keystore =
        Keystore::encrypt(&secret, password, &pubkey_hex, "", Kdf::Pbkdf2 { c: 16 }, salt, iv, uuid).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, keystore.to_json()).unwrap();
    path
}
