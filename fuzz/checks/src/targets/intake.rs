//! A pushed task's body (`avs_protocol::intake::AuthorizedTask`) on arbitrary bytes, as a node
//! parses and authenticates it: parsing never panics, whatever parses serialises and parses
//! back to the same value, and authenticating it against any task source never panics; when it
//! is accepted, re-signing the same task with the same key gives the same body.

use avs_protocol::intake::AuthorizedTask;

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    let Ok(request) = serde_json::from_slice::<AuthorizedTask>(data) else { return };
    let text = serde_json::to_vec(&request).expect("a parsed request serialises");
    let again: AuthorizedTask = serde_json::from_slice(&text).expect("what was written parses");
    assert_eq!(again, request);
    let source = avs_protocol::ecdsa::SecretKey::from_bytes(&[0x5c; 32]).expect("a valid key");
    if let Ok(task) = request.clone().verify(&source.address()) {
        // Low-s RFC 6979 signatures are unique: the only accepted signature is ours.
        assert_eq!(AuthorizedTask::sign(task, &source), request, "the source's signature");
    }
    let _ = request.verify(&[0u8; 20]);
}
