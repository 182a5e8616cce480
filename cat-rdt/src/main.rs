//! `seer-rdt`: look at and change resctrl (Intel CAT/MBA, AMD QoS) by hand,
//! a small, safe `pqos`. Every change is validated before it is written and
//! made under an exclusive lock on the resctrl root.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cat_rdt::emu::{EmulatorMount, MountOpts, Profile};
use cat_rdt::schemata::{self, Resource, SchemaLine, Schemata};
use cat_rdt::{Mode, Owned, Resctrl, cpulist, monitor, report};
use clap::{Parser, Subcommand, ValueEnum};

/// Look at and change the Linux resctrl filesystem (Intel CAT/MBA, AMD QoS).
#[derive(Debug, Parser)]
#[command(
    name = "seer-rdt",
    version,
    about,
    after_help = "Example:\n  seer-rdt info\n  seer-rdt create web && seer-rdt set web --l3 '0=0x0f0;1=0x0f0' --mb '0=50'\n  seer-rdt emulate --profile skylake-sp /tmp/resctrl   # no RDT hardware needed"
)]
struct Cli {
    /// resctrl root to use instead of the one in /proc/self/mountinfo.
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Output formats for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Show what this machine offers (like `pqos -D`).
    #[command(
        after_help = "pqos equivalent: pqos -D (detailed capabilities)\nExample: seer-rdt info --json"
    )]
    Info {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show groups, their masks as way bars, tasks and CPUs (like `pqos -s`).
    #[command(
        after_help = "pqos equivalent: pqos -s (show allocation configuration)\nExample: seer-rdt show web"
    )]
    Show {
        /// Groups to show (default: all, the default group `/` first).
        groups: Vec<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a control group (a class of service).
    #[command(
        after_help = "pqos equivalent: none (pqos uses fixed COS numbers); the group is a COS\nExample: seer-rdt create web"
    )]
    Create {
        /// Group name.
        name: String,
    },
    /// Change a group's schemata (only the domains listed) or mode (like `pqos -e`).
    #[command(
        after_help = "pqos equivalent: pqos -e \"llc:1=0x0f0;mba:1=50\"\nExample: seer-rdt set web --l3 '0=0xff0;1=0xff0' --mb '0=50' --mode exclusive"
    )]
    Set {
        /// Group (`/` is the default group).
        group: String,
        /// L3 masks, `ID=MASK;ID=MASK`.
        #[arg(long, value_name = "DOMAINS")]
        l3: Option<String>,
        /// L3 data masks under CDP.
        #[arg(long, value_name = "DOMAINS")]
        l3data: Option<String>,
        /// L3 code masks under CDP.
        #[arg(long, value_name = "DOMAINS")]
        l3code: Option<String>,
        /// L2 masks.
        #[arg(long, value_name = "DOMAINS")]
        l2: Option<String>,
        /// MB values, `ID=VALUE;ID=VALUE` (percent on Intel, 1/8 GB/s on AMD, MBps with mba_MBps).
        #[arg(long, value_name = "DOMAINS")]
        mb: Option<String>,
        /// New mode, applied after the masks.
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
    },
    /// Give a group N L3 ways exclusively, shrinking the default group.
    #[command(
        after_help = "pqos equivalent: none; like pqos -e \"llc:1=<mask>\" with a mask chosen for you, plus exclusive mode\nExample: seer-rdt ways web 4"
    )]
    Ways {
        /// Group.
        group: String,
        /// Ways.
        ways: u32,
        /// Other groups that may be shrunk: names starting with this prefix.
        #[arg(long, value_name = "PREFIX")]
        shrink_prefix: Option<String>,
    },
    /// Move processes (all their threads) or CPUs into a group (like `pqos -a`).
    #[command(
        after_help = "pqos equivalent: pqos -I -a \"pid:1=4242\" / pqos -a \"llc:1=0-3\"\nExample: seer-rdt assign web --pid 4242 --cpus 2-3"
    )]
    Assign {
        /// Group.
        group: String,
        /// Process ids (every thread is moved).
        #[arg(long, value_delimiter = ',')]
        pid: Vec<u32>,
        /// CPU list, `0-3,8`.
        #[arg(long)]
        cpus: Option<String>,
    },
    /// Print L3 occupancy and memory bandwidth per group and domain (like `pqos -m`).
    #[command(
        after_help = "pqos equivalent: pqos -m \"all:0-3\" (pqos -I -p for pids)\nExample: seer-rdt monitor --interval 1s --count 5 --csv"
    )]
    Monitor {
        /// Groups (default: all).
        groups: Vec<String>,
        /// Sampling interval.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Number of intervals (default: until interrupted).
        #[arg(long)]
        count: Option<u64>,
        /// JSON lines.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// CSV.
        #[arg(long)]
        csv: bool,
    },
    /// Delete a group; its tasks and CPUs return to the default group.
    #[command(
        after_help = "pqos equivalent: none (pqos -R resets everything)\nExample: seer-rdt delete web --force"
    )]
    Delete {
        /// Group.
        group: String,
        /// Delete even if the group holds tasks.
        #[arg(long)]
        force: bool,
    },
    /// Delete every group and give the default group all ways and bandwidth (like `pqos -R`).
    #[command(after_help = "pqos equivalent: pqos -R\nExample: seer-rdt reset --force")]
    Reset {
        /// Go on even if groups hold tasks.
        #[arg(long)]
        force: bool,
    },
    /// Mount a resctrl emulator (FUSE) for a CPU profile, until interrupted.
    #[command(
        after_help = "pqos equivalent: none\nProfiles: skylake-sp, icelake-sp, sapphire-rapids, epyc-milan, or a TOML file\nExample: seer-rdt emulate --profile icelake-sp --options cdp /tmp/resctrl &\n         seer-rdt --root /tmp/resctrl info"
    )]
    Emulate {
        /// Built-in profile name or TOML file.
        #[arg(long)]
        profile: String,
        /// resctrl mount options: cdp, cdpl2, mba_MBps.
        #[arg(long, default_value = "")]
        options: String,
        /// Where to mount.
        mountpoint: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Shareable,
    Exclusive,
}

fn open(root: &Option<PathBuf>) -> Result<Resctrl> {
    Ok(match root {
        Some(r) => Resctrl::at(r)?,
        None => Resctrl::discover()?,
    })
}

/// Build the schemata update from the `set` flags.
fn set_update(
    l3: &Option<String>,
    l3data: &Option<String>,
    l3code: &Option<String>,
    l2: &Option<String>,
    mb: &Option<String>,
) -> Result<Schemata> {
    let mut s = Schemata::default();
    for (r, v) in [
        (Resource::L3, l3),
        (Resource::L3Data, l3data),
        (Resource::L3Code, l3code),
        (Resource::L2, l2),
        (Resource::Mb, mb),
    ] {
        if let Some(text) = v {
            let domains = schemata::parse_domains(&r, text)
                .with_context(|| format!("bad --{} value {text:?}", r.name().to_lowercase()))?;
            if domains.is_empty() {
                bail!("--{} {text:?} lists no domain", r.name().to_lowercase());
            }
            s.lines.push(SchemaLine {
                resource: r,
                domains,
            });
        }
    }
    Ok(s)
}

fn all_groups(rc: &Resctrl, asked: &[String]) -> Result<Vec<String>> {
    if !asked.is_empty() {
        return Ok(asked.to_vec());
    }
    let mut v = vec!["/".to_string()];
    v.extend(rc.groups()?);
    Ok(v)
}

fn run(cli: Cli) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match cli.cmd {
        Cmd::Emulate {
            profile,
            options,
            mountpoint,
        } => {
            let p = Profile::load(&profile)?;
            let opts = MountOpts::parse(&options).map_err(anyhow::Error::msg)?;
            // Block SIGINT/SIGTERM here (threads inherit the mask) and wait for them.
            let mut set = nix::sys::signal::SigSet::empty();
            set.add(nix::sys::signal::Signal::SIGINT);
            set.add(nix::sys::signal::Signal::SIGTERM);
            set.thread_block().context("failed to block signals")?;
            let desc = p.description.clone();
            let m = EmulatorMount::mount(p, opts, &mountpoint, Some(PathBuf::from("/proc")))?;
            writeln!(
                out,
                "resctrl emulator ({desc}) mounted on {}; Ctrl-C or umount to stop",
                m.path().display()
            )?;
            out.flush()?;
            drop(out);
            let sig = std::thread::spawn(move || set.wait());
            // Whichever comes first: a signal unmounts (and removes a mountpoint
            // this command created); an outside umount ends the session.
            while m.is_running() {
                if sig.is_finished() {
                    drop(m);
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            return Ok(());
        }
        Cmd::Info { json } => {
            let rc = open(&cli.root)?;
            if json {
                serde_json::to_writer_pretty(&mut out, rc.layout())?;
                writeln!(out)?;
            } else {
                write!(
                    out,
                    "{}",
                    report::info(rc.layout(), &rc.root().display().to_string())
                )?;
            }
        }
        Cmd::Show { groups, json } => {
            let rc = open(&cli.root)?;
            let states = all_groups(&rc, &groups)?
                .iter()
                .map(|g| rc.state(g))
                .collect::<Result<Vec<_>, _>>()?;
            if json {
                serde_json::to_writer_pretty(&mut out, &states)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", report::show(rc.layout(), &states))?;
            }
        }
        Cmd::Create { name } => {
            let rc = open(&cli.root)?;
            rc.create_group(&name)?;
            writeln!(
                out,
                "created group {name}: {}",
                rc.schemata(&name)?
                    .to_write_string()
                    .trim_end()
                    .replace('\n', "  ")
            )?;
        }
        Cmd::Set {
            group,
            l3,
            l3data,
            l3code,
            l2,
            mb,
            mode,
        } => {
            let rc = open(&cli.root)?;
            let upd = set_update(&l3, &l3data, &l3code, &l2, &mb)?;
            if upd.lines.is_empty() && mode.is_none() {
                bail!("nothing to set: give --l3, --l3data, --l3code, --l2, --mb or --mode");
            }
            rc.update_schemata(&group, &upd)?;
            if let Some(m) = mode {
                rc.set_mode(
                    &group,
                    if m == ModeArg::Exclusive {
                        Mode::Exclusive
                    } else {
                        Mode::Shareable
                    },
                )?;
            }
            write!(out, "{}", report::show(rc.layout(), &[rc.state(&group)?]))?;
        }
        Cmd::Ways {
            group,
            ways,
            shrink_prefix,
        } => {
            let rc = open(&cli.root)?;
            let owned = shrink_prefix.map_or(Owned::None, Owned::Prefix);
            let ch = rc.give_ways(&group, ways, &owned)?;
            for (n, _, _) in ch.before.iter().filter(|(n, _, _)| *n != ch.group) {
                writeln!(out, "shrank {n}")?;
            }
            if !ch.exclusive {
                writeln!(
                    out,
                    "note: {group} stays shareable (its other cache masks overlap other groups); no other group holds its L3 ways"
                )?;
            }
            write!(out, "{}", report::show(rc.layout(), &[rc.state(&group)?]))?;
        }
        Cmd::Assign { group, pid, cpus } => {
            let rc = open(&cli.root)?;
            if pid.is_empty() && cpus.is_none() {
                bail!("nothing to assign: give --pid or --cpus");
            }
            if let Some(c) = cpus {
                let set = cpulist::parse_list(&c)?;
                rc.assign_cpus(&group, &set)?;
                writeln!(
                    out,
                    "group {group} now runs CPUs {}",
                    cpulist::format_list(&rc.cpus(&group)?)
                )?;
            }
            for p in pid {
                let tids = rc.assign_pid(&group, p)?;
                writeln!(
                    out,
                    "moved process {p} ({} thread(s)) to group {group}",
                    tids.len()
                )?;
            }
        }
        Cmd::Monitor {
            groups,
            interval,
            count,
            json,
            csv,
        } => {
            let rc = open(&cli.root)?;
            if rc.layout().mon.is_none() {
                bail!("this machine has no resctrl monitoring (no info/L3_MON)");
            }
            let groups = all_groups(&rc, &groups)?;
            let fmt = if json {
                Format::Json
            } else if csv {
                Format::Csv
            } else {
                Format::Text
            };
            let start = Instant::now();
            let mut prev: Vec<_> = groups
                .iter()
                .map(|g| rc.sample(g, None))
                .collect::<Result<_, _>>()?;
            let mut t_prev = Instant::now();
            if fmt == Format::Csv {
                writeln!(
                    out,
                    "time_s,group,domain,llc_occupancy_bytes,mbm_total_bytes_per_s,mbm_local_bytes_per_s"
                )?;
            }
            let mut n = 0u64;
            while count.is_none_or(|c| n < c) {
                std::thread::sleep(interval);
                let now = Instant::now();
                let t = now.duration_since(start).as_secs_f64();
                let mut rows = Vec::new();
                for (i, g) in groups.iter().enumerate() {
                    let s = rc.sample(g, None)?;
                    for (d, r) in monitor::rates(&prev[i], &s, now.duration_since(t_prev)) {
                        match fmt {
                            Format::Json => writeln!(
                                out,
                                "{}",
                                serde_json::json!({"time_s": t, "group": g, "domain": d, "llc_occupancy_bytes": r.llc_occupancy, "mbm_total_bytes_per_s": r.mbm_total_bps, "mbm_local_bytes_per_s": r.mbm_local_bps})
                            )?,
                            Format::Csv => {
                                let o =
                                    |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.0}"));
                                writeln!(
                                    out,
                                    "{t:.3},{g},{d},{},{},{}",
                                    r.llc_occupancy.map_or(String::new(), |x| x.to_string()),
                                    o(r.mbm_total_bps),
                                    o(r.mbm_local_bps)
                                )?
                            }
                            Format::Text => rows.push(report::monitor_row(t, g, d, &r)),
                        }
                    }
                    prev[i] = s;
                }
                if fmt == Format::Text {
                    write!(out, "{}", report::table(&report::MONITOR_HEADER, &rows))?;
                }
                out.flush()?;
                t_prev = now;
                n += 1;
            }
        }
        Cmd::Delete { group, force } => {
            let rc = open(&cli.root)?;
            let d = rc.delete_group(&group, force)?;
            writeln!(
                out,
                "deleted group {group}; {} task(s) and CPUs [{}] returned to the default group",
                d.tasks.len(),
                cpulist::format_list(&d.cpus.into_iter().collect())
            )?;
        }
        Cmd::Reset { force } => {
            let rc = open(&cli.root)?;
            let gone = rc.reset(force)?;
            let moved: usize = gone.iter().map(|(_, d)| d.tasks.len()).sum();
            writeln!(
                out,
                "deleted {} group(s); {moved} task(s) returned to the default group, which now has every way and full bandwidth",
                gone.len()
            )?;
        }
    }
    Ok(())
}

fn main() {
    // SAFETY: called first, before any thread exists; it only restores the
    // default action of SIGPIPE, so writing to a closed pipe (`... | head`)
    // ends the process quietly, as other command-line tools do, instead of
    // making `println!` panic.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("seer-rdt: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("seer-rdt").chain(args.iter().copied()))
            .expect("valid arguments")
    }

    #[test]
    fn flags_parse() {
        let c = parse(&[
            "--root",
            "/x",
            "set",
            "web",
            "--l3",
            "0=0xff0;1=0xff0",
            "--mb",
            "0=50",
            "--mode",
            "exclusive",
        ]);
        assert_eq!(c.root, Some(PathBuf::from("/x")));
        let Cmd::Set {
            group,
            l3,
            l3data,
            l3code,
            l2,
            mb,
            mode,
        } = c.cmd
        else {
            panic!("set")
        };
        assert_eq!(group, "web");
        assert_eq!(mode, Some(ModeArg::Exclusive));
        let u = set_update(&l3, &l3data, &l3code, &l2, &mb).expect("valid");
        assert_eq!(u.to_write_string(), "L3:0=ff0;1=ff0\nMB:0=50\n");
        assert!(set_update(&Some("0=zz".into()), &None, &None, &None, &None).is_err());
        assert!(set_update(&Some("".into()), &None, &None, &None, &None).is_err());

        let Cmd::Set { l3data, l3code, .. } =
            parse(&["set", "g", "--l3data", "0=f", "--l3code", "0=f0"]).cmd
        else {
            panic!("set")
        };
        assert_eq!(
            set_update(&None, &l3data, &l3code, &None, &None)
                .expect("valid")
                .to_write_string(),
            "L3DATA:0=f\nL3CODE:0=f0\n"
        );

        let Cmd::Assign { pid, cpus, .. } =
            parse(&["assign", "g", "--pid", "1,2", "--pid", "3", "--cpus", "0-3"]).cmd
        else {
            panic!("assign")
        };
        assert_eq!(pid, vec![1, 2, 3]);
        assert_eq!(cpus.as_deref(), Some("0-3"));

        let Cmd::Monitor {
            interval,
            count,
            csv,
            json,
            ..
        } = parse(&["monitor", "--interval", "250ms", "--count", "2", "--csv"]).cmd
        else {
            panic!("monitor")
        };
        assert_eq!(
            (interval, count, csv, json),
            (Duration::from_millis(250), Some(2), true, false)
        );
        assert!(Cli::try_parse_from(["seer-rdt", "monitor", "--csv", "--json"]).is_err());

        let Cmd::Delete { force, .. } = parse(&["delete", "g", "--force"]).cmd else {
            panic!("delete")
        };
        assert!(force);
        let Cmd::Reset { force } = parse(&["reset"]).cmd else {
            panic!("reset")
        };
        assert!(!force);
        let Cmd::Emulate {
            profile,
            options,
            mountpoint,
        } = parse(&[
            "emulate",
            "--profile",
            "icelake-sp",
            "--options",
            "cdp",
            "/m",
        ])
        .cmd
        else {
            panic!("emulate")
        };
        assert_eq!(
            (profile.as_str(), options.as_str(), mountpoint),
            ("icelake-sp", "cdp", PathBuf::from("/m"))
        );
        let Cmd::Ways {
            ways,
            shrink_prefix,
            ..
        } = parse(&["ways", "g", "4", "--shrink-prefix", "seer-"]).cmd
        else {
            panic!("ways")
        };
        assert_eq!((ways, shrink_prefix.as_deref()), (4, Some("seer-")));
        assert!(matches!(
            parse(&["info", "--json"]).cmd,
            Cmd::Info { json: true }
        ));
        assert!(
            matches!(parse(&["show", "a", "b"]).cmd, Cmd::Show { ref groups, json: false } if groups.len() == 2)
        );
        assert!(matches!(parse(&["create", "x"]).cmd, Cmd::Create { .. }));
    }
}
