//! `seer-probe`: run Seer's contention probes by hand, sweep them, read
//! counters, and diagnose which shared resource a latency-sensitive target
//! is short of.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bench_probes::counters::{self, OsSnapshot, PerfScope, PerfSupport};
use bench_probes::diagnose::{DiagnoseConfig, Status, diagnose};
use bench_probes::probe::{self, Probe, ProbeKind, ProbeSettings, calibrate_llc, stream_triad};
use bench_probes::target::{CommandTarget, HttpTarget, Target, TcpTarget};
use bench_probes::victim::{self, Victim, VictimConfig, VictimKind};
use clap::{Args, Parser, Subcommand};

/// Contention probes and resource diagnosis (Seer §4.4).
#[derive(Debug, Parser)]
#[command(name = "seer-probe", version, about, long_about = None)]
struct Cli {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List the ten probes, what they stress and what intensity means.
    ///
    /// Example: seer-probe list
    List,
    /// Run one probe once and report what it achieved.
    ///
    /// Example: seer-probe run membw --intensity 70 --duration 10ms --cpu 1
    Run {
        /// The probe (see `list`).
        probe: String,
        /// Intensity, percent 0–100.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(0..=100))]
        intensity: u8,
        /// Length of the timed window.
        #[arg(long, default_value = "10ms", value_parser = parse_duration)]
        duration: Duration,
        /// CPU to pin to (default: the last online CPU).
        #[arg(long)]
        cpu: Option<usize>,
        #[command(flatten)]
        opts: ProbeOpts,
    },
    /// Run probes at several intensities and report each run.
    ///
    /// Example: seer-probe sweep --probes cpu,llc,membw --intensities 30,60,100
    Sweep {
        /// Probes, comma separated (default: all ten).
        #[arg(long, value_delimiter = ',')]
        probes: Vec<String>,
        /// Intensities, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "30,60,100")]
        intensities: Vec<u8>,
        /// Length of each run.
        #[arg(long, default_value = "10ms", value_parser = parse_duration)]
        duration: Duration,
        /// CPU to pin to (default: the last online CPU).
        #[arg(long)]
        cpu: Option<usize>,
        #[command(flatten)]
        opts: ProbeOpts,
    },
    /// Find which shared resource a target is short of.
    ///
    /// Example: seer-probe diagnose --target-tcp 127.0.0.1:7000 --target-cpu 0
    Diagnose {
        #[command(flatten)]
        target: TargetOpts,
        /// CPU the target runs on (commands are pinned there).
        #[arg(long, default_value_t = 0)]
        target_cpu: usize,
        /// Measurement budget.
        #[arg(long, default_value = "300ms", value_parser = parse_duration)]
        budget: Duration,
        /// Intensities, ascending, at least three.
        #[arg(long, value_delimiter = ',', default_value = "30,60,100")]
        intensities: Vec<u8>,
        /// Length of each probe window.
        #[arg(long, default_value = "10ms", value_parser = parse_duration)]
        duration: Duration,
        /// Length of each baseline window.
        #[arg(long, default_value = "3ms", value_parser = parse_duration)]
        baseline: Duration,
        /// Smallest slowdown (fraction) that counts as a response.
        #[arg(long, default_value_t = 0.25)]
        min_effect: f64,
        /// Repeat the interleaved sequence this many times per resource.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Resources to test, in order (default: cpu,fpu,l1i,l1d,l2,llc,membw,memcap,net,disk).
        #[arg(long, value_delimiter = ',')]
        order: Vec<String>,
        /// Measure every resource instead of stopping at the first response.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        opts: ProbeOpts,
    },
    /// Read hardware counters (where present) and network/disk/cgroup rates.
    ///
    /// Example: seer-probe counters --pid 1234 --interval 1s
    Counters {
        /// Process to count (default: this one).
        #[arg(long)]
        pid: Option<i32>,
        /// Cgroup directory to count instead of a pid.
        #[arg(long)]
        cgroup: Option<PathBuf>,
        /// Sampling interval.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
    },
    /// Measure the effective LLC size and this machine's STREAM triad.
    ///
    /// Example: seer-probe calibrate --cpu 1
    Calibrate {
        /// CPU to measure on (default: the last online CPU).
        #[arg(long)]
        cpu: Option<usize>,
        /// STREAM triad array size per thread.
        #[arg(long, default_value = "128MiB", value_parser = parse_bytes)]
        array: u64,
    },
    /// Serve a synthetic victim over TCP (one byte = one request).
    ///
    /// Example: seer-probe victim llc --listen 127.0.0.1:7000 --cpu 0
    Victim {
        /// cpu, llc, membw, memcap, disk or echo.
        kind: String,
        /// Address to listen on (port 0 picks one; the address is printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// CPU to pin to.
        #[arg(long)]
        cpu: Option<usize>,
        /// LLC size for the llc victim (default: sysfs).
        #[arg(long, value_parser = parse_bytes)]
        llc_size: Option<u64>,
        /// Directory for the disk and memcap victims' files.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Size of the memcap victim's file.
        #[arg(long, default_value = "16MiB", value_parser = parse_bytes)]
        file_size: u64,
    },
}

/// Where the diagnosis target is.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct TargetOpts {
    /// A shell command; one run is one sample.
    #[arg(long)]
    target_cmd: Option<String>,
    /// An http:// URL sampled with GET.
    #[arg(long)]
    target_url: Option<String>,
    /// A TCP host:port sampled by a request/response exchange.
    #[arg(long)]
    target_tcp: Option<String>,
}

/// Probe sizes and safety bounds.
#[derive(Debug, Args, Clone)]
struct ProbeOpts {
    /// LLC size to use instead of sysfs: a size, or `auto` to measure it.
    #[arg(long)]
    llc_size: Option<String>,
    /// Duty-cycle period.
    #[arg(long, default_value = "500us", value_parser = parse_duration)]
    period: Duration,
    /// Directory under which `disk` creates and removes its file.
    #[arg(long)]
    disk_dir: Option<PathBuf>,
    /// Most bytes `disk` writes to its file.
    #[arg(long, default_value = "64MiB", value_parser = parse_bytes)]
    disk_cap: u64,
    /// Where `net` sends (default: a discard sink on loopback).
    #[arg(long)]
    net_sink: Option<SocketAddr>,
    /// Largest share of MemAvailable or of the cgroup limit `memcap` takes.
    #[arg(long, default_value_t = 0.5)]
    mem_share: f64,
    /// Absolute bound on `memcap`.
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes)]
    mem_max: u64,
    /// Charge `memcap` to this cgroup (e.g. the target's).
    #[arg(long)]
    mem_cgroup: Option<PathBuf>,
    /// Run the disk and net probes under SCHED_FIFO at this priority so they
    /// issue IO on time on a loaded machine (root or CAP_SYS_NICE).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=99))]
    realtime: Option<i32>,
    /// Bytes the TCP target sends per sample.
    #[arg(long, default_value = "r")]
    tcp_request: String,
    /// Bytes to read back per TCP sample (default: whatever one read returns).
    #[arg(long)]
    tcp_response_len: Option<usize>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("bad duration {s:?}: {e}"))
}

/// Parse `64MiB`, `1GiB`, `512K`, `4M`, `100` into bytes (K/M/G are binary).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => return Err(format!("bad size unit {u:?} in {s:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} overflows"))
}

impl ProbeOpts {
    fn settings(&self, cpu_for_calibration: usize) -> Result<ProbeSettings> {
        let mut s = ProbeSettings::discover().context("failed to read the cpu topology")?;
        s.period = self.period;
        if let Some(d) = &self.disk_dir {
            s.disk_dir = d.clone();
        }
        s.disk_cap = self.disk_cap;
        s.net_sink = self.net_sink;
        if !(self.mem_share > 0.0 && self.mem_share <= 1.0) {
            bail!("--mem-share {} is not in (0, 1]", self.mem_share);
        }
        s.mem_share = self.mem_share;
        s.mem_max = self.mem_max;
        s.mem_cgroup = self.mem_cgroup.clone();
        s.realtime = self.realtime;
        s.llc_bytes = match self.llc_size.as_deref() {
            None => None,
            Some("auto") => {
                let topo = &s.topology;
                let l2 = topo.data_cache(cpu_for_calibration, 2).unwrap_or(512 << 10);
                let llc = topo.llc(cpu_for_calibration).unwrap_or(8 << 20);
                Some(calibrate_llc(l2, llc, Duration::from_millis(20))?.effective_bytes)
            }
            Some(v) => Some(parse_bytes(v).map_err(|e| anyhow!("--llc-size: {e}"))?),
        };
        Ok(s)
    }
}

fn parse_probes(names: &[String]) -> Result<Vec<ProbeKind>> {
    if names.is_empty() {
        return Ok(ProbeKind::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| n.parse::<ProbeKind>().map_err(Into::into))
        .collect()
}

fn default_cpu(s: &ProbeSettings) -> usize {
    s.topology.online().last().copied().unwrap_or(0)
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn fmt_rate(r: &probe::ProbeReport) -> String {
    let mut s = format!(
        "{:<7} {:>3}% cpu{} wall {:>6.2} ms busy {:>3.0}%  {:>10.3e} {}/s",
        r.probe.name(),
        r.intensity,
        r.cpu,
        r.wall_ms,
        r.busy_fraction * 100.0,
        r.ops_per_sec,
        r.op_unit
    );
    if r.bytes_per_sec > 0.0 {
        s += &format!("  {:>8.2} GB/s", r.bytes_per_sec / 1e9);
    }
    if r.footprint_bytes > 0 {
        s += &format!("  footprint {} KiB", r.footprint_bytes >> 10);
    }
    if r.setup_ms > 0.5 {
        s += &format!("  setup {:.1} ms", r.setup_ms);
    }
    if let Some(n) = &r.note {
        s += &format!("  ({n})");
    }
    s
}

extern "C" fn on_signal(_: libc::c_int) {
    probe::request_global_stop();
}

fn install_signal_handlers() -> Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    // No SA_RESTART: blocking calls return EINTR so loops see the stop flag.
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only performs an atomic store, which is async-signal-safe.
        unsafe { sigaction(sig, &act) }
            .with_context(|| format!("failed to install a handler for {sig}"))?;
    }
    Ok(())
}

fn make_target(t: &TargetOpts, opts: &ProbeOpts, cpu: usize) -> Result<Box<dyn Target>> {
    if let Some(c) = &t.target_cmd {
        return Ok(Box::new(CommandTarget::new(c.clone(), Some(cpu))));
    }
    if let Some(u) = &t.target_url {
        return Ok(Box::new(HttpTarget::new(u)?));
    }
    if let Some(a) = &t.target_tcp {
        return Ok(Box::new(TcpTarget::new(
            a,
            opts.tcp_request.clone().into_bytes(),
            opts.tcp_response_len,
        )?));
    }
    bail!("one of --target-cmd, --target-url, --target-tcp is required")
}

fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    match cli.cmd {
        Cmd::List => {
            #[derive(serde::Serialize)]
            struct Row {
                name: &'static str,
                scope: probe::Scope,
                stresses: &'static str,
                intensity: &'static str,
            }
            let rows: Vec<Row> = ProbeKind::ALL
                .iter()
                .map(|k| Row {
                    name: k.name(),
                    scope: k.scope(),
                    stresses: k.description(),
                    intensity: k.intensity_meaning(),
                })
                .collect();
            if json {
                return print_json(&rows);
            }
            for r in rows {
                println!(
                    "{:<7} {:<7} {}\n{:16}intensity = {}",
                    r.name,
                    format!("{:?}", r.scope).to_lowercase(),
                    r.stresses,
                    "",
                    r.intensity
                );
            }
        }
        Cmd::Run {
            probe,
            intensity,
            duration,
            cpu,
            opts,
        } => {
            let kind: ProbeKind = probe.parse()?;
            let s0 = ProbeSettings::discover()?;
            let cpu = cpu.unwrap_or_else(|| default_cpu(&s0));
            let s = opts.settings(cpu)?;
            let mut p = Probe::prepare(kind, &s, cpu)?;
            let r = p.run(intensity, duration, &AtomicBool::new(false))?;
            if json {
                print_json(&r)?;
            } else {
                println!("{}", fmt_rate(&r));
            }
        }
        Cmd::Sweep {
            probes,
            intensities,
            duration,
            cpu,
            opts,
        } => {
            let kinds = parse_probes(&probes)?;
            if let Some(i) = intensities.iter().find(|&&i| i > 100) {
                bail!("intensity {i} is above 100");
            }
            let s0 = ProbeSettings::discover()?;
            let cpu = cpu.unwrap_or_else(|| default_cpu(&s0));
            let s = opts.settings(cpu)?;
            let mut out = Vec::new();
            for k in kinds {
                if probe::global_stop_requested() {
                    break;
                }
                let mut p = match Probe::prepare(k, &s, cpu) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("{k}: {e:#}");
                        continue;
                    }
                };
                for &i in &intensities {
                    let r = p.run(i, duration, &AtomicBool::new(false))?;
                    if !json {
                        println!("{}", fmt_rate(&r));
                    }
                    out.push(r);
                }
            }
            if json {
                print_json(&out)?;
            }
        }
        Cmd::Diagnose {
            target,
            target_cpu,
            budget,
            intensities,
            duration,
            baseline,
            min_effect,
            rounds,
            order,
            all,
            opts,
        } => {
            let s = opts.settings(target_cpu)?;
            if let PerfSupport::NotSupported(why) = counters::perf_support() {
                eprintln!("hardware counters: not supported ({why}); using contention probes");
            }
            let mut t = make_target(&target, &opts, target_cpu)?;
            let cfg = DiagnoseConfig {
                order: if order.is_empty() {
                    DiagnoseConfig::default().order
                } else {
                    parse_probes(&order)?
                },
                intensities,
                duration,
                baseline,
                budget,
                min_effect,
                target_cpu,
                rounds,
                stop_early: !all,
                ..DiagnoseConfig::default()
            };
            let d = diagnose(t.as_mut(), &s, &cfg)?;
            if json {
                print_json(&d)?;
            } else {
                println!("target: {}", d.target);
                println!(
                    "placement: target cpu{}, core probes cpu{}{}, shared-resource probes cpu{}",
                    d.placement.target_cpu,
                    d.placement.core_cpu,
                    if d.placement.smt {
                        " (SMT sibling)"
                    } else {
                        " (time-shared: no SMT)"
                    },
                    d.placement.uncore_cpu
                );
                for e in &d.evidence {
                    match &e.status {
                        Status::Significant | Status::NotSignificant => {
                            let lv: Vec<String> = e
                                .levels
                                .iter()
                                .map(|l| {
                                    format!("{}%:x{:.2}(n={})", l.intensity, l.slowdown, l.samples)
                                })
                                .collect();
                            println!(
                                "  {:<7} {:<15} base {:>9.1} us (n={}, noise {:>3.0}%)  {}{}",
                                e.probe.name(),
                                if e.status == Status::Significant {
                                    "SIGNIFICANT"
                                } else {
                                    "no response"
                                },
                                e.baseline_us,
                                e.baseline_samples,
                                e.noise * 100.0,
                                lv.join(" "),
                                if e.specific { "" } else { "  [not specific]" }
                            );
                        }
                        Status::Skipped(r) => println!("  {:<7} skipped: {r}", e.probe.name()),
                        Status::NotReached(r) => {
                            println!("  {:<7} not reached: {r}", e.probe.name())
                        }
                        Status::Failed(r) => println!("  {:<7} failed: {r}", e.probe.name()),
                    }
                }
                println!(
                    "verdict: {}\nmeasured {:.0} ms of a {:.0} ms budget (+{:.0} ms setup)",
                    d.verdict, d.measure_ms, d.budget_ms, d.setup_ms
                );
            }
        }
        Cmd::Counters {
            pid,
            cgroup,
            interval,
        } => {
            let support = counters::perf_support();
            let scope = match (&cgroup, pid) {
                (Some(c), _) => {
                    PerfScope::Cgroup(c.clone(), ProbeSettings::discover()?.topology.online())
                }
                (None, p) => PerfScope::Pid(p.unwrap_or(0)),
            };
            let set = match support {
                PerfSupport::Available => Some(counters::CounterSet::open(&scope)?),
                PerfSupport::NotSupported(why) => {
                    eprintln!("hardware counters: not supported ({why})");
                    None
                }
            };
            let proc_root = PathBuf::from("/proc");
            let a = OsSnapshot::read(&proc_root, cgroup.as_deref())?;
            let ra = set.as_ref().map(|s| s.read()).transpose()?;
            let t0 = Instant::now();
            while t0.elapsed() < interval && !probe::global_stop_requested() {
                std::thread::sleep(Duration::from_millis(10).min(interval));
            }
            let b = OsSnapshot::read(&proc_root, cgroup.as_deref())?;
            let rb = set.as_ref().map(|s| s.read()).transpose()?;
            let rates = counters::os_rates(&a, &b, t0.elapsed());
            let util = match (&ra, &rb) {
                (Some(x), Some(y)) => Some(counters::utilisation(x, y)),
                _ => None,
            };
            if json {
                print_json(
                    &serde_json::json!({"perf": support, "utilisation": util, "os": rates}),
                )?;
            } else {
                if let Some(u) = util {
                    println!("counters: {}", serde_json::to_string(&u)?);
                }
                for (k, (rx, tx)) in &rates.net {
                    println!(
                        "net  {k:<12} rx {:>10.1} KB/s  tx {:>10.1} KB/s",
                        rx / 1e3,
                        tx / 1e3
                    );
                }
                for (k, (r, w)) in &rates.disks {
                    println!(
                        "disk {k:<12} rd {:>10.1} KB/s  wr {:>10.1} KB/s",
                        r / 1e3,
                        w / 1e3
                    );
                }
                if let Some((r, w)) = rates.cgroup_io {
                    println!(
                        "cgroup io      rd {:>10.1} KB/s  wr {:>10.1} KB/s",
                        r / 1e3,
                        w / 1e3
                    );
                }
                if let Some(c) = rates.cgroup_cpus {
                    println!("cgroup cpu     {c:.2} CPUs busy");
                }
            }
        }
        Cmd::Calibrate { cpu, array } => {
            let s = ProbeSettings::discover()?;
            let cpu = cpu.unwrap_or_else(|| default_cpu(&s));
            let topo = &s.topology;
            let l2 = topo.data_cache(cpu, 2).unwrap_or(512 << 10);
            let llc = topo.llc(cpu).unwrap_or(8 << 20);
            let cal = {
                let _pin = pin(cpu)?;
                calibrate_llc(l2, llc, Duration::from_millis(20))?
            };
            let one = stream_triad(&[cpu], array, 5)?;
            let all = stream_triad(&topo.online(), array, 5)?;
            if json {
                print_json(
                    &serde_json::json!({"llc": cal, "triad_one_cpu": one, "triad_all_cpus": all}),
                )?;
            } else {
                println!(
                    "LLC: sysfs {} KiB, effective {} KiB (hit {:.1} ns, miss {:.1} ns)",
                    cal.sysfs_bytes >> 10,
                    cal.effective_bytes >> 10,
                    cal.hit_ns,
                    cal.miss_ns
                );
                for (b, ns) in &cal.points {
                    println!("  {:>8} KiB {:>7.1} ns", b >> 10, ns);
                }
                println!(
                    "STREAM triad cpu{cpu}: best {:.2} GB/s",
                    one.best_bytes_per_sec / 1e9
                );
                println!(
                    "STREAM triad cpus {:?}: best {:.2} GB/s",
                    all.cpus,
                    all.best_bytes_per_sec / 1e9
                );
            }
        }
        Cmd::Victim {
            kind,
            listen,
            cpu,
            llc_size,
            dir,
            file_size,
        } => {
            let kind: VictimKind = kind.parse().map_err(|e: String| anyhow!(e))?;
            let s = ProbeSettings::discover()?;
            let _pin = cpu.map(pin).transpose()?;
            let cfg = VictimConfig {
                llc_bytes: llc_size.unwrap_or_else(|| s.llc_size(cpu.unwrap_or(0))),
                dir: dir.unwrap_or_else(std::env::temp_dir),
                file_bytes: file_size,
            };
            let mut v = Victim::new(kind, &cfg)
                .map_err(|e| anyhow!("failed to prepare victim {}: {e}", kind.name()))?;
            let l = std::net::TcpListener::bind(listen)
                .with_context(|| format!("failed to listen on {listen}"))?;
            println!("listening on {}", l.local_addr()?);
            use std::io::Write;
            std::io::stdout().flush()?;
            match victim::serve(l, &mut v) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("victim server failed"),
            }
        }
    }
    Ok(())
}

/// Pin the calling thread (restored when the guard drops).
fn pin(cpu: usize) -> Result<impl Drop> {
    struct G(nix::sched::CpuSet);
    impl Drop for G {
        fn drop(&mut self) {
            let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &self.0);
        }
    }
    let pid = nix::unistd::Pid::from_raw(0);
    let old = nix::sched::sched_getaffinity(pid)?;
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)
        .with_context(|| format!("cpu {cpu} is out of range"))?;
    nix::sched::sched_setaffinity(pid, &set)
        .with_context(|| format!("failed to pin to cpu {cpu}"))?;
    Ok(G(old))
}

fn main() {
    // SAFETY: called first, before any thread exists; it only restores the
    // default action of SIGPIPE, so writing to a closed pipe (`... | head`)
    // ends the process quietly, as other command-line tools do, instead of
    // making `println!` panic.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    if let Err(e) = install_signal_handlers() {
        eprintln!("seer-probe: {e:#}");
    }
    let r = run(cli);
    let interrupted = probe::global_stop_requested();
    match r {
        Ok(()) if interrupted => {
            eprintln!("seer-probe: interrupted; probes stopped and cleaned up");
            std::process::exit(130);
        }
        Ok(()) => {}
        Err(e) => {
            eprintln!("seer-probe: {e:#}");
            std::process::exit(if interrupted { 130 } else { 1 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("seer-probe").chain(args.iter().copied()))
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("512K"), Ok(512 << 10));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("1TiB").is_err());
        assert!(parse_bytes("MiB").is_err());
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert!(parse_duration("ten").is_err());
    }

    #[test]
    fn run_flags() {
        let c = parse(&[
            "run",
            "membw",
            "--intensity",
            "70",
            "--duration",
            "10ms",
            "--cpu",
            "1",
        ])
        .unwrap();
        match c.cmd {
            Cmd::Run {
                probe,
                intensity,
                duration,
                cpu,
                opts,
            } => {
                assert_eq!(
                    (probe.as_str(), intensity, duration, cpu),
                    ("membw", 70, Duration::from_millis(10), Some(1))
                );
                assert_eq!(opts.disk_cap, 64 << 20);
                assert_eq!(opts.period, Duration::from_micros(500));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["run", "cpu", "--intensity", "101"]).is_err());
        assert!(parse(&["run"]).is_err());
    }

    #[test]
    fn probe_option_flags() {
        let c = parse(&[
            "--json",
            "run",
            "disk",
            "--disk-dir",
            "/tmp/x",
            "--disk-cap",
            "8MiB",
            "--net-sink",
            "10.0.0.2:9",
            "--mem-share",
            "0.25",
            "--mem-max",
            "256MiB",
            "--mem-cgroup",
            "/sys/fs/cgroup/memory/t",
            "--llc-size",
            "4MiB",
            "--period",
            "250us",
            "--tcp-request",
            "ping",
            "--tcp-response-len",
            "4",
            "--realtime",
            "10",
        ])
        .unwrap();
        assert!(c.json);
        let Cmd::Run { opts, .. } = c.cmd else {
            panic!()
        };
        assert_eq!(opts.disk_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(opts.disk_cap, 8 << 20);
        assert_eq!(opts.net_sink, Some("10.0.0.2:9".parse().unwrap()));
        assert_eq!(opts.mem_share, 0.25);
        assert_eq!(opts.mem_max, 256 << 20);
        assert_eq!(
            opts.mem_cgroup,
            Some(PathBuf::from("/sys/fs/cgroup/memory/t"))
        );
        assert_eq!(opts.llc_size.as_deref(), Some("4MiB"));
        assert_eq!(opts.period, Duration::from_micros(250));
        assert_eq!(opts.tcp_request, "ping");
        assert_eq!(opts.tcp_response_len, Some(4));
        assert_eq!(opts.realtime, Some(10));
        assert!(parse(&["run", "cpu", "--realtime", "0"]).is_err());
    }

    #[test]
    fn sweep_flags() {
        let c = parse(&["sweep", "--probes", "cpu,llc", "--intensities", "10,50"]).unwrap();
        let Cmd::Sweep {
            probes,
            intensities,
            ..
        } = c.cmd
        else {
            panic!()
        };
        assert_eq!(probes, vec!["cpu", "llc"]);
        assert_eq!(intensities, vec![10, 50]);
        assert_eq!(
            parse_probes(&probes).unwrap(),
            vec![ProbeKind::Cpu, ProbeKind::Llc]
        );
        assert!(parse_probes(&["gpu".into()]).is_err());
        assert_eq!(parse_probes(&[]).unwrap().len(), 10);
    }

    #[test]
    fn diagnose_flags() {
        let c = parse(&[
            "diagnose",
            "--target-tcp",
            "127.0.0.1:7000",
            "--target-cpu",
            "1",
            "--budget",
            "500ms",
            "--intensities",
            "20,50,90",
            "--duration",
            "5ms",
            "--baseline",
            "2ms",
            "--min-effect",
            "0.3",
            "--rounds",
            "2",
            "--order",
            "llc,membw",
            "--all",
        ])
        .unwrap();
        let Cmd::Diagnose {
            target,
            target_cpu,
            budget,
            intensities,
            duration,
            baseline,
            min_effect,
            rounds,
            order,
            all,
            ..
        } = c.cmd
        else {
            panic!()
        };
        assert_eq!(target.target_tcp.as_deref(), Some("127.0.0.1:7000"));
        assert_eq!(
            (target_cpu, budget, duration, baseline),
            (
                1,
                Duration::from_millis(500),
                Duration::from_millis(5),
                Duration::from_millis(2)
            )
        );
        assert_eq!(intensities, vec![20, 50, 90]);
        assert_eq!((min_effect, rounds, all), (0.3, 2, true));
        assert_eq!(order, vec!["llc", "membw"]);
        // exactly one target
        assert!(parse(&["diagnose"]).is_err());
        assert!(
            parse(&[
                "diagnose",
                "--target-cmd",
                "true",
                "--target-url",
                "http://x/"
            ])
            .is_err()
        );
        let c = parse(&["diagnose", "--target-url", "http://127.0.0.1:80/"]).unwrap();
        let Cmd::Diagnose {
            budget,
            intensities,
            ..
        } = c.cmd
        else {
            panic!()
        };
        assert_eq!(budget, Duration::from_millis(300));
        assert_eq!(intensities, vec![30, 60, 100]);
    }

    #[test]
    fn other_verbs() {
        assert!(matches!(parse(&["list"]).unwrap().cmd, Cmd::List));
        let Cmd::Counters { pid, interval, .. } =
            parse(&["counters", "--pid", "1", "--interval", "2s"])
                .unwrap()
                .cmd
        else {
            panic!()
        };
        assert_eq!((pid, interval), (Some(1), Duration::from_secs(2)));
        let Cmd::Calibrate { cpu, array } = parse(&["calibrate", "--cpu", "0", "--array", "32MiB"])
            .unwrap()
            .cmd
        else {
            panic!()
        };
        assert_eq!((cpu, array), (Some(0), 32 << 20));
        let Cmd::Victim {
            kind,
            listen,
            file_size,
            ..
        } = parse(&[
            "victim",
            "llc",
            "--listen",
            "127.0.0.1:7000",
            "--file-size",
            "8MiB",
        ])
        .unwrap()
        .cmd
        else {
            panic!()
        };
        assert_eq!(
            (kind.as_str(), listen, file_size),
            ("llc", "127.0.0.1:7000".parse().unwrap(), 8 << 20)
        );
    }
}
