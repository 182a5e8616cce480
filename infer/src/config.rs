//! The model description shared by training (tch) and inference (pure Rust):
//! architecture, output kind, sizes, and the names and shapes of every weight.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Errors in model configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An unknown architecture or output name.
    #[error("unknown {what} {value:?} (expected {expected})")]
    Unknown {
        /// What was being parsed.
        what: &'static str,
        /// The value given.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// A configuration that cannot make a network.
    #[error("invalid model configuration: {0}")]
    Invalid(String),
}

/// Network architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// Convolutions across services, then an LSTM over time (Seer).
    Hybrid,
    /// Convolutions over time and services only.
    Cnn,
    /// An LSTM over time only.
    Lstm,
}

impl Arch {
    /// All architectures.
    pub const ALL: [Arch; 3] = [Arch::Hybrid, Arch::Cnn, Arch::Lstm];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Hybrid => "hybrid",
            Arch::Cnn => "cnn",
            Arch::Lstm => "lstm",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| ConfigError::Unknown {
                what: "architecture",
                value: s.into(),
                expected: "hybrid, cnn or lstm",
            })
    }
}

/// How the outputs become probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// One softmax over the services plus "no violation" (the paper's choice).
    Softmax,
    /// An independent sigmoid per service; "no violation" = all of them off.
    Sigmoid,
}

impl OutputKind {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Softmax => "softmax",
            OutputKind::Sigmoid => "sigmoid",
        }
    }
}

impl FromStr for OutputKind {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "softmax" => Ok(OutputKind::Softmax),
            "sigmoid" => Ok(OutputKind::Sigmoid),
            _ => Err(ConfigError::Unknown {
                what: "output",
                value: s.into(),
                expected: "softmax or sigmoid",
            }),
        }
    }
}

/// Everything needed to build a network with the same variable names and shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Architecture.
    pub arch: Arch,
    /// Services (inputs and outputs).
    pub n_services: usize,
    /// Channels per service.
    pub n_channels: usize,
    /// Window length, ticks.
    pub window: usize,
    /// Output kind.
    pub output: OutputKind,
    /// Convolution channels (hybrid, cnn).
    pub conv_channels: usize,
    /// Convolution layers (hybrid, cnn).
    pub conv_layers: usize,
    /// LSTM hidden size (hybrid, lstm).
    pub hidden: usize,
    /// LSTM layers (hybrid, lstm).
    pub lstm_layers: usize,
    /// Dropout before the output layer while training.
    pub dropout: f64,
    /// Hybrid only: add to each service's logit a score computed from that
    /// service's own convolution features at the last tick, with weights shared by
    /// all services. The fully connected layer alone has to learn every service's
    /// culprit pattern separately and rarely sees each (service, fault) pair; the
    /// shared scorer carries what it learns on one service to all of them.
    #[serde(default)]
    pub service_head: bool,
    /// Ticks of each service's features the shared scorer reads (the last
    /// `head_ticks`, oldest first; 0 and older files: 1, the last tick alone).
    #[serde(default)]
    pub head_ticks: usize,
    /// Hidden units of the shared scorer (0 and older files: a linear scorer).
    #[serde(default)]
    pub head_hidden: usize,
    /// Culprits from the shared scorer alone: the fully connected layer gives only
    /// the "no violation" logit, so nothing in the network tells one service from
    /// another by its position (softmax hybrids with the scorer).
    #[serde(default)]
    pub shared_culprit: bool,
}

impl ModelConfig {
    /// Sizes near the paper's Table 2 (hybrid ≈ 80 k weights for 36 services,
    /// cnn ≈ 30 k, lstm ≈ 52 k).
    pub fn new(arch: Arch, n_services: usize, n_channels: usize, window: usize) -> ModelConfig {
        let (conv_channels, conv_layers, hidden, lstm_layers) = match arch {
            Arch::Hybrid => (8, 3, 48, 1),
            Arch::Cnn => (16, 3, 0, 0),
            Arch::Lstm => (0, 0, 64, 2),
        };
        ModelConfig {
            arch,
            n_services,
            n_channels,
            window,
            output: OutputKind::Softmax,
            conv_channels,
            conv_layers,
            hidden,
            lstm_layers,
            dropout: 0.1,
            service_head: arch == Arch::Hybrid,
            head_ticks: 1,
            head_hidden: 0,
            shared_culprit: false,
        }
    }

    /// Ticks the shared scorer reads (at least one).
    pub fn scorer_ticks(&self) -> usize {
        self.head_ticks.max(1)
    }

    /// Inputs per service of the shared scorer: its features at each tick read.
    pub fn scorer_inputs(&self) -> usize {
        self.scorer_ticks() * self.conv_channels
    }

    /// Columns of the fully connected output layer: every output, or the
    /// "no violation" logit alone when culprits come from the shared scorer.
    pub fn out_columns(&self) -> usize {
        if self.shared_culprit {
            1
        } else {
            self.n_outputs()
        }
    }

    /// Outputs of the last layer.
    pub fn n_outputs(&self) -> usize {
        match self.output {
            OutputKind::Softmax => self.n_services + 1,
            OutputKind::Sigmoid => self.n_services,
        }
    }

    /// Features per tick fed to the recurrent part: hybrid, the convolutions
    /// across services (`conv_channels × services`); lstm, the raw tick
    /// (`channels × services`); cnn has none.
    pub fn features_per_tick(&self) -> usize {
        match self.arch {
            Arch::Hybrid => self.conv_channels * self.n_services,
            Arch::Lstm => self.n_channels * self.n_services,
            Arch::Cnn => 0,
        }
    }

    /// Every weight the network has, by name (the tch variable path), with its
    /// shape. Checkpoints must hold exactly these; the inference engine reads
    /// them by these names.
    pub fn weight_shapes(&self) -> BTreeMap<String, Vec<usize>> {
        let (ns, nc, cc, h) = (
            self.n_services,
            self.n_channels,
            self.conv_channels,
            self.hidden,
        );
        let mut m = BTreeMap::new();
        let mut put = |name: String, shape: Vec<usize>| {
            m.insert(name, shape);
        };
        let out_in = match self.arch {
            Arch::Hybrid | Arch::Cnn => {
                for l in 0..self.conv_layers {
                    let cin = if l == 0 { nc } else { cc };
                    let w = if self.arch == Arch::Hybrid {
                        vec![cc, cin, 3]
                    } else {
                        vec![cc, cin, 3, 3]
                    };
                    put(format!("conv{l}.weight"), w);
                    put(format!("conv{l}.bias"), vec![cc]);
                }
                if self.arch == Arch::Hybrid {
                    h
                } else {
                    cc * ns
                }
            }
            Arch::Lstm => h,
        };
        if matches!(self.arch, Arch::Hybrid | Arch::Lstm) {
            for l in 0..self.lstm_layers {
                let input = if l == 0 { self.features_per_tick() } else { h };
                put(format!("lstm.weight_ih_l{l}"), vec![4 * h, input]);
                put(format!("lstm.weight_hh_l{l}"), vec![4 * h, h]);
                put(format!("lstm.bias_ih_l{l}"), vec![4 * h]);
                put(format!("lstm.bias_hh_l{l}"), vec![4 * h]);
            }
        }
        put("out.weight".into(), vec![self.out_columns(), out_in]);
        put("out.bias".into(), vec![self.out_columns()]);
        if self.service_head {
            let mut head_in = self.scorer_inputs();
            if self.head_hidden > 0 {
                put("head0.weight".into(), vec![self.head_hidden, head_in, 1]);
                put("head0.bias".into(), vec![self.head_hidden]);
                head_in = self.head_hidden;
            }
            put("head.weight".into(), vec![1, head_in, 1]);
            put("head.bias".into(), vec![1]);
        }
        m
    }

    /// Checks the sizes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.n_services == 0 || self.n_channels == 0 || self.window == 0 {
            return bad(format!(
                "services {}, channels {}, window {} must all be positive",
                self.n_services, self.n_channels, self.window
            ));
        }
        if self.n_services > 100_000 || self.window > 10_000 || self.n_channels > 16 {
            return bad(format!(
                "services {}, channels {}, window {} are implausibly large",
                self.n_services, self.n_channels, self.window
            ));
        }
        let needs_conv = matches!(self.arch, Arch::Hybrid | Arch::Cnn);
        let needs_lstm = matches!(self.arch, Arch::Hybrid | Arch::Lstm);
        if needs_conv && (self.conv_channels == 0 || self.conv_layers == 0) {
            return bad(format!(
                "{} needs convolution channels and layers",
                self.arch
            ));
        }
        if needs_lstm && (self.hidden == 0 || self.lstm_layers == 0) {
            return bad(format!(
                "{} needs an LSTM hidden size and layers",
                self.arch
            ));
        }
        if self.service_head && self.arch != Arch::Hybrid {
            return bad(format!("{} has no shared service scorer", self.arch));
        }
        if !self.service_head && (self.head_ticks > 1 || self.head_hidden > 0) {
            return bad("scorer ticks or hidden units without a shared scorer".into());
        }
        if self.head_ticks > self.window {
            return bad(format!(
                "the shared scorer reads {} ticks of a {}-tick window",
                self.head_ticks, self.window
            ));
        }
        if self.head_hidden > 4096 {
            return bad(format!(
                "{} scorer hidden units are implausibly many",
                self.head_hidden
            ));
        }
        if self.shared_culprit && !(self.service_head && self.output == OutputKind::Softmax) {
            return bad(
                "culprits from the shared scorer alone need a softmax hybrid with the scorer"
                    .into(),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout {} is outside [0, 1)", self.dropout));
        }
        Ok(())
    }
}
