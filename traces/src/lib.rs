//! Span model, importers, tick aggregation, service graph, QoS labels and datasets.
