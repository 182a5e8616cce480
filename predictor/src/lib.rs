//! The culprit predictor (issue "seer-predictor"): feature windows, CNN→LSTM
//! models on tch, linfa baselines, training, incremental retraining, checkpoints,
//! evaluation and the gRPC `Predictor` service. Not filled yet.
