//! The `seer.v1` protobuf files and their generated tonic code. Not filled yet:
//! the `Predictor` and `NodeAgent` services land with the predictor and agent.
