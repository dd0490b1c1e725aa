#!/usr/bin/env python3
"""Makes the NewTaskCreated test vectors of `tests.rs` with an encoder independent of the guest's
(the Python `eth-abi` package, and `eth-hash` for keccak256):

    python3 -m venv /tmp/v && /tmp/v/bin/pip install 'eth-abi==5.2.0' 'eth-hash[pycryptodome]==0.7.1'
    /tmp/v/bin/python kernel-app/src/chain/vectors.py

Each line printed is one vector as the Rust source holds it: (task index, the 32-byte topic of
the index, the number to square in hex, the task's block, its quorum numbers in hex, its
threshold, the log's data in hex)."""
from eth_abi import encode
from eth_hash.auto import keccak

SIGNATURE = "NewTaskCreated(uint32,(uint256,uint32,bytes,uint32))"
TASK = "(uint256,uint32,bytes,uint32)"

print(f'// topic0 = keccak256("{SIGNATURE}")')
print(f'const TOPIC0: &str = "0x{keccak(SIGNATURE.encode()).hex()}";')
vectors = [
    (0, 9, 100, b"\x00", 100),
    (7, 3, 1, b"\x00\x01", 67),
    (4294967295, 2**128 - 1, 4294967295, b"", 0),
    (42, 2**256 - 1, 12345678, bytes(range(40)), 100),
]
print("const VECTORS: &[(u32, &str, &str, u32, &str, u32, &str)] = &[")
for index, number, block, quorums, threshold in vectors:
    topic = encode(["uint32"], [index]).hex()
    data = encode([TASK], [(number, block, quorums, threshold)]).hex()
    print(f'    ({index}, "0x{topic}", "0x{number:x}", {block}, "0x{quorums.hex()}", {threshold}, "0x{data}"),')
print("];")
