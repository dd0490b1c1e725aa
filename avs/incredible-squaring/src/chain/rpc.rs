//! The Ethereum JSON-RPC calls the watcher makes, and strict readers of their answers.
//!
//! Every answer comes from a node the guest does not trust: bodies are bounded by the HTTP
//! reader (see [`MAX_BODY`]), and every value is read strictly. Quantities are `0x` followed by
//! 1 to 16 hex digits without leading zeros (`0x0` for zero), as the JSON-RPC specification
//! writes them; byte strings are `0x` followed by an even number of hex digits, of exactly the
//! expected length for hashes and addresses. The answer's `jsonrpc` must be `"2.0"` and its `id`
//! the call's. Upper- and lower-case digits are both read.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use serde::Deserialize;

/// Longest answer body the watcher accepts (an `eth_getLogs` answer over a range of blocks).
pub const MAX_BODY: usize = spacecore_avs::MAX_REPLY;
/// Most logs one `eth_getLogs` answer may hold.
pub const MAX_LOGS: usize = 4096;
/// Most topics a log has (the EVM's `LOG4`).
pub const MAX_TOPICS: usize = 4;
/// Longest log data read, in bytes.
pub const MAX_LOG_DATA: usize = 16 * 1024;
/// Longest JSON-RPC error message kept.
const MAX_MESSAGE: usize = 160;

/// Why an answer is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcError {
    /// The node answered with a JSON-RPC error: its code and message (cut to 160 bytes).
    Node {
        /// The error code.
        code: i64,
        /// The message, cut.
        message: String,
    },
    /// The answer is not what the call asks for: what is wrong.
    Malformed(String),
}

impl core::fmt::Display for RpcError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RpcError::Node { code, message } => write!(f, "the node answered error {code}: {message}"),
            RpcError::Malformed(why) => write!(f, "unusable answer: {why}"),
        }
    }
}

fn malformed(why: impl Into<String>) -> RpcError {
    RpcError::Malformed(why.into())
}

/// A block number as a quantity: `0x1a`.
fn quantity(n: u64) -> String {
    format!("{n:#x}")
}

/// `0x` and the bytes in lower-case hex.
pub use avs_protocol::encoding::to_hex as hex;

/// The body of call `id` to `method` with `params` (a JSON array, written as given).
fn body(id: u64, method: &str, params: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#).into_bytes()
}

/// `eth_chainId`.
pub fn chain_id(id: u64) -> Vec<u8> {
    body(id, "eth_chainId", "[]")
}

/// `eth_blockNumber`.
pub fn block_number(id: u64) -> Vec<u8> {
    body(id, "eth_blockNumber", "[]")
}

/// `eth_getBlockByNumber(block, false)`: the block's header and its transactions' hashes.
pub fn block_by_number(id: u64, block: u64) -> Vec<u8> {
    body(id, "eth_getBlockByNumber", &format!(r#"["{}",false]"#, quantity(block)))
}

/// `eth_getLogs` of `address` with `topic0`, blocks `from..=to`.
pub fn get_logs(id: u64, address: &[u8; 20], topic0: &[u8; 32], from: u64, to: u64) -> Vec<u8> {
    let params = format!(
        r#"[{{"address":"{}","topics":["{}"],"fromBlock":"{}","toBlock":"{}"}}]"#,
        hex(address),
        hex(topic0),
        quantity(from),
        quantity(to)
    );
    body(id, "eth_getLogs", &params)
}

/// A JSON-RPC answer with a result of type `T` (members other than these are ignored).
#[derive(Deserialize)]
struct Answer<'a, T> {
    #[serde(borrow)]
    jsonrpc: &'a str,
    id: Option<u64>,
    #[serde(default = "Option::default")]
    result: Option<T>,
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: i64,
    message: String,
}

/// Reads the answer to call `id`: its result (`None` for a `null` result), or why there is none.
fn answer<'a, T: Deserialize<'a>>(body: &'a [u8], id: u64) -> Result<Option<T>, RpcError> {
    let answer: Answer<'a, T> = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("not a JSON-RPC answer of the expected shape ({e})")))?;
    if answer.jsonrpc != "2.0" {
        return Err(malformed("jsonrpc is not \"2.0\""));
    }
    if let Some(error) = answer.error {
        let mut message = error.message;
        let mut end = message.len().min(MAX_MESSAGE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        return Err(RpcError::Node { code: error.code, message });
    }
    if answer.id != Some(id) {
        return Err(malformed(format!("the answer's id is {:?}, not the call's {id}", answer.id)));
    }
    Ok(answer.result)
}

/// A quantity: `0x` and 1 to 16 hex digits, no leading zero (but `0x0`).
pub fn parse_quantity(text: &str) -> Result<u64, RpcError> {
    let digits = text.strip_prefix("0x").ok_or_else(|| malformed("a quantity without 0x"))?;
    if digits.is_empty() || digits.len() > 16 || (digits.len() > 1 && digits.starts_with('0')) {
        return Err(malformed("a quantity of 0 or more than 16 digits, or with a leading zero"));
    }
    u64::from_str_radix(digits, 16)
        .ok()
        .filter(|_| digits.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| malformed("a quantity with a character that is not a hex digit"))
}

/// Bytes: `0x` and an even number of hex digits, at most `max` bytes.
pub fn parse_bytes(text: &str, max: usize) -> Result<Vec<u8>, RpcError> {
    let digits = text.strip_prefix("0x").ok_or_else(|| malformed("bytes without 0x"))?;
    if digits.len() % 2 != 0 {
        return Err(malformed("bytes with an odd number of hex digits"));
    }
    if digits.len() / 2 > max {
        return Err(malformed(format!("more than {max} bytes")));
    }
    avs_protocol::encoding::from_hex(text)
        .ok_or_else(|| malformed("bytes with a character that is not a hex digit"))
}

/// Exactly `N` bytes in hex (a hash, an address).
pub fn parse_fixed<const N: usize>(text: &str) -> Result<[u8; N], RpcError> {
    hex_array(text).ok_or_else(|| malformed(format!("not 0x and exactly {N} bytes of hex")))
}

/// `0x` and exactly `2N` hex digits as `N` bytes, allocating nothing (the command line is read
/// before the heap exists).
pub use avs_protocol::encoding::from_hex_array as hex_array;

/// The answer to `eth_chainId` or `eth_blockNumber`: a quantity.
pub fn read_quantity(body: &[u8], id: u64) -> Result<u64, RpcError> {
    let text: &str = answer(body, id)?.ok_or_else(|| malformed("the result is null"))?;
    parse_quantity(text)
}

#[derive(Deserialize)]
struct BlockHeader<'a> {
    #[serde(borrow)]
    number: &'a str,
    #[serde(borrow)]
    hash: &'a str,
}

/// The answer to `eth_getBlockByNumber(block)`: the block's hash, `None` when the node does not
/// have the block. A block of another number is an error.
pub fn read_block_hash(body: &[u8], id: u64, block: u64) -> Result<Option<[u8; 32]>, RpcError> {
    let Some(header) = answer::<BlockHeader<'_>>(body, id)? else { return Ok(None) };
    let number = parse_quantity(header.number)?;
    if number != block {
        return Err(malformed(format!("asked for block {block}, got block {number}")));
    }
    parse_fixed(header.hash).map(Some)
}

/// A log as `eth_getLogs` gives it (other members ignored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog<'a> {
    #[serde(borrow)]
    address: &'a str,
    #[serde(borrow)]
    topics: Vec<&'a str>,
    #[serde(borrow)]
    data: &'a str,
    #[serde(borrow)]
    block_number: Option<&'a str>,
    #[serde(borrow)]
    block_hash: Option<&'a str>,
    #[serde(borrow)]
    log_index: Option<&'a str>,
    #[serde(default)]
    removed: bool,
}

/// A log, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// The emitting contract.
    pub address: [u8; 20],
    /// Its topics (at most [`MAX_TOPICS`]).
    pub topics: Vec<[u8; 32]>,
    /// Its data (at most [`MAX_LOG_DATA`] bytes).
    pub data: Vec<u8>,
    /// The block it is in.
    pub block: u64,
    /// That block's hash.
    pub block_hash: [u8; 32],
    /// Its index in the block.
    pub index: u64,
    /// Whether the node says a reorganisation removed it.
    pub removed: bool,
}

/// A member a mined log has (null for a pending one).
fn required<'a>(field: Option<&'a str>, name: &str) -> Result<&'a str, RpcError> {
    field.ok_or_else(|| malformed(format!("a log without {name} (pending?)")))
}

/// The answer to `eth_getLogs` over blocks `from..=to`: its logs, each read strictly and lying
/// in the range. More than [`MAX_LOGS`] logs, a log without a block (pending), or outside the
/// range, is an error.
pub fn read_logs(body: &[u8], id: u64, from: u64, to: u64) -> Result<Vec<Log>, RpcError> {
    let raw: Vec<RawLog<'_>> = answer(body, id)?.ok_or_else(|| malformed("the result is null"))?;
    if raw.len() > MAX_LOGS {
        return Err(malformed(format!("{} logs, more than {MAX_LOGS}", raw.len())));
    }
    raw.into_iter()
        .map(|log| {
            if log.topics.len() > MAX_TOPICS {
                return Err(malformed(format!("a log with {} topics", log.topics.len())));
            }
            let block = parse_quantity(required(log.block_number, "blockNumber")?)?;
            if !(from..=to).contains(&block) {
                return Err(malformed(format!("a log of block {block}, outside the range {from}..={to}")));
            }
            Ok(Log {
                address: parse_fixed(log.address)?,
                topics: log.topics.iter().map(|t| parse_fixed(t)).collect::<Result<_, _>>()?,
                data: parse_bytes(log.data, MAX_LOG_DATA)?,
                block,
                block_hash: parse_fixed(required(log.block_hash, "blockHash")?)?,
                index: parse_quantity(required(log.log_index, "logIndex")?)?,
                removed: log.removed,
            })
        })
        .collect()
}
