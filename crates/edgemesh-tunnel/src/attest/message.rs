//! The two messages of the attestation protocol: a leaf that the prover (`credential.rs`), the
//! verifier (`verify.rs`) and the exchange (`exchange.rs`) share.

/// The verifier's request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttestationRequest {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub nonce: Option<Vec<u8>>,
}

/// The prover's answer; every field empty when it has no credential.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Attestation {
    #[prost(string, optional, tag = "1")]
    pub node_name: Option<String>,
    /// The prover's peer id (bytes), as signed.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub peer_id: Option<Vec<u8>>,
    /// DER certificates, the node's first, then any intermediates.
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub cert_chain: Vec<Vec<u8>>,
    #[prost(uint64, optional, tag = "4")]
    pub timestamp_ms: Option<u64>,
    /// TLS SignatureScheme code of the signature.
    #[prost(uint32, optional, tag = "5")]
    pub scheme: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "6")]
    pub signature: Option<Vec<u8>>,
    /// The verifier's nonce, as signed.
    #[prost(bytes = "vec", optional, tag = "7")]
    pub nonce: Option<Vec<u8>>,
}
