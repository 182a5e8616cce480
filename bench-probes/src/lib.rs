//! Ten tunable contention microbenchmarks, hardware-counter reading and the
//! resource diagnosis procedure (issue "bench-probes"). Not filled yet.
