//! The `net` probe: bulk TCP sends to a sink, duty cycled. The sink is a
//! configured address, or by default a discard server this probe starts on
//! loopback and stops when dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{ProbeError, ProbeReport, duty_loop, report_from};

const CHUNK: usize = 64 << 10;

pub(crate) struct NetProbe {
    stream: TcpStream,
    peer: SocketAddr,
    sink: Option<JoinHandle<u64>>,
    buf: Vec<u8>,
}

/// Start a discard server on 127.0.0.1 that accepts one connection and reads
/// it to the end; returns its address and the thread (which yields the bytes read).
pub fn loopback_sink() -> Result<(SocketAddr, JoinHandle<u64>), ProbeError> {
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let l = TcpListener::bind(any).map_err(|source| ProbeError::Net {
        what: "bind discard sink on",
        addr: any,
        source,
    })?;
    let addr = l.local_addr().map_err(|source| ProbeError::Net {
        what: "read address of discard sink",
        addr: any,
        source,
    })?;
    let h = std::thread::spawn(move || {
        let mut total = 0u64;
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = vec![0u8; 256 << 10];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
        }
        total
    });
    Ok((addr, h))
}

impl NetProbe {
    pub(crate) fn new(sink: Option<SocketAddr>) -> Result<Self, ProbeError> {
        let (peer, handle) = match sink {
            Some(a) => (a, None),
            None => {
                let (a, h) = loopback_sink()?;
                (a, Some(h))
            }
        };
        let stream =
            TcpStream::connect_timeout(&peer, Duration::from_secs(2)).map_err(|source| {
                ProbeError::Net {
                    what: "connect to sink",
                    addr: peer,
                    source,
                }
            })?;
        // A small send buffer keeps the duty cycle meaningful: bytes queue in
        // the socket only briefly beyond the on-phase.
        let sndbuf: libc::c_int = 64 << 10;
        // SAFETY: setsockopt on our socket with a valid int option value.
        unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&sndbuf as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        stream
            .set_nonblocking(true)
            .map_err(|source| ProbeError::Net {
                what: "set non-blocking socket to",
                addr: peer,
                source,
            })?;
        Ok(NetProbe {
            stream,
            peer,
            sink: handle,
            buf: vec![0x5a; CHUNK],
        })
    }

    pub(crate) fn run(
        &mut self,
        intensity: u8,
        duration: Duration,
        period: Duration,
        stop: &AtomicBool,
    ) -> Result<ProbeReport, ProbeError> {
        let mut err = None;
        let stream = &mut self.stream;
        let buf = &self.buf;
        let fd = stream.as_raw_fd();
        let stats = duty_loop(intensity, duration, period, stop, |on_end| {
            if err.is_some() {
                return 0;
            }
            match stream.write(buf) {
                Ok(n) => n as u64,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let left = on_end.saturating_duration_since(Instant::now());
                    let ts = libc::timespec {
                        tv_sec: left.as_secs() as libc::time_t,
                        tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
                    };
                    let mut pfd = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd and a valid timespec, no signal mask.
                    unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
                    0
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => 0,
                Err(e) => {
                    err = Some(e);
                    0
                }
            }
        });
        if let Some(source) = err {
            return Err(ProbeError::Net {
                what: "send to sink",
                addr: self.peer,
                source,
            });
        }
        let mut r = report_from(stats, "byte-sent", 1.0, 0);
        r.note = Some(format!("sink {}", self.peer));
        Ok(r)
    }
}

impl Drop for NetProbe {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(h) = self.sink.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_the_loopback_sink_and_stops_it() {
        let mut p = NetProbe::new(None).unwrap();
        let stop = AtomicBool::new(false);
        let r = p
            .run(
                50,
                Duration::from_millis(10),
                super::super::DEFAULT_PERIOD,
                &stop,
            )
            .unwrap();
        assert!(r.ops > 0, "{r:?}");
        assert!(r.note.as_deref().unwrap_or("").contains("127.0.0.1"));
        drop(p); // joins the sink thread: must not hang
    }

    #[test]
    fn unreachable_sink_names_the_address() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        let err = NetProbe::new(Some(a)).err().unwrap().to_string();
        assert!(err.contains(&a.to_string()), "{err}");
    }
}
