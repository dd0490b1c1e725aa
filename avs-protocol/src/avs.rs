//! The seams that let another AVS or another signature scheme be compiled in later: [`Avs`]
//! (what a task is and how to answer it) and [`SignatureScheme`] (how answers are signed).
//! Today there is one of each: [`IncredibleSquaring`] and [`Bls12381`].

use crate::Error;
use crate::bls::{self, PublicKey, SecretKey, Signature};
use crate::bn254;
use crate::types::{NewTask, TaskResponse};

/// The logic of one AVS: how an operator's node answers a task, and which 32-byte message over
/// the answer operators sign (the one the AVS's contracts check).
pub trait Avs {
    /// What the task generator publishes.
    type Task;
    /// What an operator returns.
    type Response;

    /// Computes this operator's response to `task`; an error means the task cannot be answered.
    fn respond(&self, task: &Self::Task) -> Result<Self::Response, Error>;

    /// The message signed over `response`.
    fn digest(response: &Self::Response) -> [u8; 32];
}

/// The incredible-squaring AVS: answer `number_to_be_squared²` (see [`crate::square`] for the
/// overflow rule) and sign `keccak256(abi.encode(TaskResponse))`.
#[derive(Debug, Clone, Copy, Default)]
pub struct IncredibleSquaring;

impl Avs for IncredibleSquaring {
    type Task = NewTask;
    type Response = TaskResponse;

    fn respond(&self, task: &NewTask) -> Result<TaskResponse, Error> {
        task.task.respond(task.task_index)
    }

    fn digest(response: &TaskResponse) -> [u8; 32] {
        response.digest()
    }
}

/// A signature scheme operators can sign responses with: [`Bn254`] or [`Bls12381`] (for the
/// choice at run time, see [`crate::scheme`]).
pub trait SignatureScheme {
    /// A short name for logs and configuration, such as `"bls12-381"`.
    const NAME: &'static str;
    /// The signer's secret.
    type SecretKey;
    /// What verifiers know the signer by.
    type PublicKey;
    /// A signature.
    type Signature;

    /// The public key of `secret_key`.
    fn public_key(secret_key: &Self::SecretKey) -> Self::PublicKey;
    /// Signs `msg`.
    fn sign(secret_key: &Self::SecretKey, msg: &[u8]) -> Self::Signature;
    /// Checks `signature` over `msg` by `public_key`.
    fn verify(public_key: &Self::PublicKey, msg: &[u8], signature: &Self::Signature) -> Result<(), Error>;
}

/// BLS12-381, min-pk, proof-of-possession ciphersuite (see [`crate::bls`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Bls12381;

impl SignatureScheme for Bls12381 {
    const NAME: &'static str = "bls12-381";
    type SecretKey = SecretKey;
    type PublicKey = PublicKey;
    type Signature = Signature;

    fn public_key(secret_key: &SecretKey) -> PublicKey {
        secret_key.public_key()
    }

    fn sign(secret_key: &SecretKey, msg: &[u8]) -> Signature {
        secret_key.sign(msg)
    }

    fn verify(public_key: &PublicKey, msg: &[u8], signature: &Signature) -> Result<(), Error> {
        bls::verify(public_key, msg, signature)
    }
}

/// BN254 as EigenLayer uses it (see [`crate::bn254`]). Messages are 32-byte digests; a
/// message of another length is hashed with keccak256 first.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bn254;

impl Bn254 {
    fn digest(msg: &[u8]) -> [u8; 32] {
        msg.try_into().unwrap_or_else(|_| crate::keccak256(msg))
    }
}

impl SignatureScheme for Bn254 {
    const NAME: &'static str = "bn254";
    type SecretKey = bn254::SecretKey;
    type PublicKey = bn254::PublicKey;
    type Signature = bn254::Signature;

    fn public_key(secret_key: &bn254::SecretKey) -> bn254::PublicKey {
        secret_key.public_key()
    }

    fn sign(secret_key: &bn254::SecretKey, msg: &[u8]) -> bn254::Signature {
        secret_key.sign(&Self::digest(msg))
    }

    fn verify(public_key: &bn254::PublicKey, msg: &[u8], signature: &bn254::Signature) -> Result<(), Error> {
        bn254::verify(&public_key.g2(), &Self::digest(msg), signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::U256;
    use crate::types::Task;

    /// Answers and signs through the two traits only, as a generic node would.
    fn answer<A: Avs, S: SignatureScheme>(avs: &A, sk: &S::SecretKey, task: &A::Task) -> S::Signature {
        let response = avs.respond(task).expect("valid task");
        S::sign(sk, &A::digest(&response))
    }

    #[test]
    fn generic_node_signs_what_the_aggregator_verifies() {
        let task = NewTask {
            task_index: 3,
            task: Task {
                number_to_be_squared: U256::from(12u32),
                task_created_block: 1,
                quorum_numbers: alloc::vec![0],
                quorum_threshold_percentage: 100,
            },
        };
        let sk = SecretKey::key_gen(&[42; 32]).unwrap();
        let signature = answer::<_, Bls12381>(&IncredibleSquaring, &sk, &task);
        let expected = TaskResponse { reference_task_index: 3, number_squared: U256::from(144u32) };
        assert_eq!(IncredibleSquaring.respond(&task), Ok(expected));
        let digest = IncredibleSquaring::digest(&expected);
        assert_eq!(Bls12381::verify(&Bls12381::public_key(&sk), &digest, &signature), Ok(()));
        assert_eq!(Bls12381::NAME, "bls12-381");
    }

    #[test]
    fn overflowing_task_is_refused() {
        let task = NewTask {
            task_index: 0,
            task: Task {
                number_to_be_squared: U256::from(1u8) << 128,
                task_created_block: 1,
                quorum_numbers: alloc::vec![0],
                quorum_threshold_percentage: 100,
            },
        };
        assert_eq!(IncredibleSquaring.respond(&task), Err(Error::SquareOverflow));
    }
}
