//! The one error type of the crate.

/// Everything that can go wrong in this crate: computing a response, parsing keys and
/// signatures, verifying them. The wire-level (JSON-RPC) errors are [`crate::rpc::ErrorCode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `number_to_be_squared²` does not fit in a uint256: the contract's checked arithmetic would
    /// revert, so the task cannot be answered.
    #[error("number_to_be_squared squared overflows uint256: the task is invalid")]
    SquareOverflow,
    /// A secret key that is not 32 big-endian bytes of a scalar in `1..r`.
    #[error("invalid BLS secret key: not a non-zero scalar below the group order")]
    InvalidSecretKey,
    /// `key_gen` was given fewer than 32 bytes of input key material.
    #[error("BLS key generation needs at least 32 bytes of input key material")]
    KeyMaterialTooShort,
    /// Bytes that do not encode a point: wrong flag bits, a coordinate not below the field
    /// modulus, or a non-canonical encoding of infinity.
    #[error("malformed point encoding")]
    BadEncoding,
    /// A well-formed x coordinate with no point on the curve.
    #[error("point is not on the curve")]
    NotOnCurve,
    /// A point on the curve but outside the prime-order subgroup.
    #[error("point is not in the prime-order subgroup")]
    NotInSubgroup,
    /// The identity element, rejected as a public key or signature.
    #[error("point is the identity (point at infinity)")]
    PointAtInfinity,
    /// The pairing check failed: wrong key, message or signature.
    #[error("signature verification failed")]
    VerificationFailed,
    /// A signature of one scheme checked against a key of the other.
    #[error("the signature's scheme is not the key's")]
    SchemeMismatch,
    /// Aggregation of an empty list.
    #[error("nothing to aggregate")]
    EmptyAggregate,
}

impl From<blst::BLST_ERROR> for Error {
    fn from(e: blst::BLST_ERROR) -> Self {
        use blst::BLST_ERROR as B;
        match e {
            B::BLST_BAD_ENCODING | B::BLST_BAD_SCALAR => Error::BadEncoding,
            B::BLST_POINT_NOT_ON_CURVE => Error::NotOnCurve,
            B::BLST_POINT_NOT_IN_GROUP => Error::NotInSubgroup,
            B::BLST_PK_IS_INFINITY => Error::PointAtInfinity,
            B::BLST_AGGR_TYPE_MISMATCH => Error::EmptyAggregate,
            // BLST_SUCCESS never reaches here; BLST_VERIFY_FAIL and anything else is a failure.
            _ => Error::VerificationFailed,
        }
    }
}
