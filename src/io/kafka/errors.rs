//! Errors from the broker, classified where they arise (STYLE.md, "Streaming"): bad input (dead-letter
//! it, never retried), transient (the client retries, with back-off), or fatal (stop and say why).
//!
//! The classes follow the error codes of the Kafka protocol and librdkafka's local codes
//! (rdkafka `RDKafkaErrorCode`): a record the broker refuses for its size or form is bad input; a
//! refusal that no retry can change — authorisation, a topic that does not exist, a fenced or fatal
//! producer — is fatal; everything else (timeouts, leader elections, lost connections, not enough
//! in-sync replicas) is transient.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode as Code;

/// What to do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The record itself is at fault: send a dead letter that says so instead; never retry it.
    BadInput,
    /// Retry with back-off; it clears when the broker or the network recovers.
    Transient,
    /// Retrying cannot help: stop with the cause, exit non-zero.
    Fatal,
}

impl Class {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::BadInput => "bad_input",
            Class::Transient => "transient",
            Class::Fatal => "fatal",
        }
    }
}

/// The class of an error code.
pub fn classify_code(code: Code) -> Class {
    match code {
        Code::MessageSizeTooLarge | Code::InvalidMessageSize | Code::InvalidRecord | Code::InvalidMessage => {
            Class::BadInput
        }
        Code::TopicAuthorizationFailed
        | Code::ClusterAuthorizationFailed
        | Code::GroupAuthorizationFailed
        | Code::TransactionalIdAuthorizationFailed
        | Code::SaslAuthenticationFailed
        | Code::Authentication
        | Code::UnknownTopic
        | Code::UnknownPartition
        | Code::UnknownTopicOrPartition
        | Code::InvalidTopic
        | Code::Fatal
        | Code::Fenced
        | Code::ProducerFenced
        | Code::InvalidProducerEpoch
        | Code::InvalidProducerIdMapping
        | Code::InvalidTransactionTimeout
        | Code::UnsupportedForMessageFormat
        | Code::UnsupportedVersion
        | Code::InvalidConfig
        | Code::PolicyViolation
        | Code::InconsistentGroupProtocol
        | Code::InvalidRequiredAcks => Class::Fatal,
        _ => Class::Transient,
    }
}

/// The class of a client error; errors without a code (a bad configuration, a closed client) are
/// fatal.
pub fn classify(e: &KafkaError) -> Class {
    match e {
        KafkaError::Transaction(t) if t.is_fatal() => Class::Fatal,
        KafkaError::Transaction(t) if t.txn_requires_abort() => Class::Transient,
        _ => match e.rdkafka_error_code() {
            Some(code) => classify_code(code),
            None => Class::Fatal,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bad_input_authorisation_and_missing_topics_fatal_the_rest_transient() {
        assert_eq!(classify_code(Code::MessageSizeTooLarge), Class::BadInput);
        assert_eq!(classify_code(Code::TopicAuthorizationFailed), Class::Fatal);
        assert_eq!(classify_code(Code::UnknownTopic), Class::Fatal);
        // What a delivery report says for a topic deleted under the producer.
        assert_eq!(classify_code(Code::UnknownPartition), Class::Fatal);
        assert_eq!(classify_code(Code::ProducerFenced), Class::Fatal);
        assert_eq!(classify_code(Code::Fatal), Class::Fatal);
        for transient in [
            Code::MessageTimedOut,
            Code::NotLeaderForPartition,
            Code::NotEnoughReplicas,
            Code::NotEnoughReplicasAfterAppend,
            Code::AllBrokersDown,
            Code::BrokerTransportFailure,
            Code::RequestTimedOut,
            Code::LeaderNotAvailable,
        ] {
            assert_eq!(classify_code(transient), Class::Transient, "{transient:?}");
        }
        let produced = KafkaError::MessageProduction(Code::MessageSizeTooLarge);
        assert_eq!(classify(&produced), Class::BadInput);
    }
}
