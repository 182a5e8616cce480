//! Opening an input file: gzip detected by its magic bytes, a byte counter for
//! progress, and the mapping from read errors to rejection reasons.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use flate2::bufread::MultiGzDecoder;

use super::ImportError;
use crate::span::RejectReason;

const BUF_BYTES: usize = 64 * 1024;

/// An opened input: a decompressed byte stream plus what the stats need.
pub(crate) struct Input {
    /// The file, shared by every rejection that names it.
    pub path: Arc<Path>,
    /// The decompressed stream.
    pub reader: Box<dyn BufRead + Send>,
    /// Bytes consumed from the file itself (compressed bytes for gzip).
    pub bytes: Arc<AtomicU64>,
    /// File size.
    pub total: u64,
}

impl Input {
    /// Opens `path`, decompressing when it starts with the gzip magic bytes.
    pub fn open(path: &Path) -> Result<Input, ImportError> {
        let err = |source| ImportError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(err)?;
        let total = file.metadata().map_err(err)?.len();
        Self::from_reader(path, file, total).map_err(err)
    }

    /// Wraps any byte source (a file, a test buffer) the same way as a file.
    pub fn from_reader(
        path: &Path,
        raw: impl Read + Send + 'static,
        total: u64,
    ) -> io::Result<Input> {
        let bytes = Arc::new(AtomicU64::new(0));
        let counted = Counting {
            inner: raw,
            bytes: Arc::clone(&bytes),
        };
        let mut buffered = BufReader::with_capacity(BUF_BYTES, counted);
        let head = buffered.fill_buf()?;
        let gzip = head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
        let reader: Box<dyn BufRead + Send> = if gzip {
            Box::new(BufReader::with_capacity(
                BUF_BYTES,
                MultiGzDecoder::new(buffered),
            ))
        } else {
            Box::new(buffered)
        };
        Ok(Input {
            path: Arc::from(path),
            reader,
            bytes,
            total,
        })
    }
}

/// Counts bytes read through it.
struct Counting<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The rejection reason for a read error: the stream ended early, or it is corrupt.
pub(crate) fn io_reason(e: &io::Error) -> RejectReason {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => RejectReason::Truncated,
        _ => RejectReason::Malformed,
    }
}

/// A reader over a `BufRead` that tracks the decompressed byte offset and the
/// line number, for JSON element locations. serde_json reads one byte at a time,
/// so the counts are exact; when `armed`, the next non-blank byte is recorded as
/// the start of an element.
pub(crate) struct Tracking<R> {
    inner: R,
    pub marks: Arc<Marks>,
    /// The first read error, kept so that a parse error can be classified.
    pub error: Option<io::ErrorKind>,
}

/// Positions shared between [`Tracking`] and the JSON visitors.
#[derive(Debug)]
pub(crate) struct Marks {
    /// Bytes read so far.
    pub pos: AtomicU64,
    /// Current 1-based line.
    pub line: AtomicU64,
    /// Whether the next non-blank byte starts an element.
    pub armed: AtomicBool,
    /// Byte offset of the last element start.
    pub start_pos: AtomicU64,
    /// Line of the last element start.
    pub start_line: AtomicU64,
}

impl<R: BufRead> Tracking<R> {
    pub fn new(inner: R) -> Self {
        Tracking {
            inner,
            marks: Arc::new(Marks {
                pos: AtomicU64::new(0),
                line: AtomicU64::new(1),
                armed: AtomicBool::new(false),
                start_pos: AtomicU64::new(0),
                start_line: AtomicU64::new(1),
            }),
            error: None,
        }
    }
}

impl<R: BufRead> Read for Tracking<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                self.error.get_or_insert(e.kind());
                return Err(e);
            }
        };
        let m = &self.marks;
        let mut pos = m.pos.load(Ordering::Relaxed);
        let mut line = m.line.load(Ordering::Relaxed);
        let mut armed = m.armed.load(Ordering::Relaxed);
        for &b in &buf[..n] {
            if armed && !b.is_ascii_whitespace() {
                m.start_pos.store(pos, Ordering::Relaxed);
                m.start_line.store(line, Ordering::Relaxed);
                armed = false;
                m.armed.store(false, Ordering::Relaxed);
            }
            if b == b'\n' {
                line += 1;
            }
            pos += 1;
        }
        m.pos.store(pos, Ordering::Relaxed);
        m.line.store(line, Ordering::Relaxed);
        Ok(n)
    }
}
