//! Gzip on every core, the way pigz does it: the input is cut into fixed-size blocks, each
//! compressed on its own with the 32 KiB before it as dictionary and ended with a sync flush,
//! and the pieces are written in order as one deflate stream. Block boundaries depend on the
//! input alone, so the output is the same byte for byte whatever the number of threads.
//! Queues are bounded: memory stays a few blocks per thread however large the input.

use std::io::{self, Write};
use std::mem;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::{anyhow, bail, Context as _, Result};
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// pigz's default block size: large enough that the 5-byte sync marker and the lost matches
/// across boundaries cost well under 1%, small enough to spread over cores.
pub const BLOCK: usize = 128 * 1024;
/// Deflate's window: the most a match can reach back, so all a block needs of the previous one.
const WINDOW: usize = 32 * 1024;

/// A block of input on its way to a compression thread.
struct Job {
    data: Arc<Vec<u8>>,
    previous: Option<Arc<Vec<u8>>>,
    last: bool,
    reply: SyncSender<Result<Packed>>,
}

/// A compressed block, with what the gzip trailer needs to know of its input.
struct Packed {
    data: Vec<u8>,
    crc: Crc,
    last: bool,
}

/// Sizes of one compressed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Compresses everything `produce` writes into one gzip member on `sink`, using `jobs`
/// threads at `level` (1-9). The header has no name and mtime 0, as `gzip -n` writes it.
pub fn compress<W, F>(sink: W, level: u32, jobs: usize, produce: F) -> Result<Totals>
where
    W: Write + Send,
    F: FnOnce(&mut dyn Write) -> Result<()>,
{
    let (job_tx, job_rx) = sync_channel::<Job>(jobs);
    let job_rx = Mutex::new(job_rx);
    // Blocks in flight: queued, being compressed, or waiting their turn to be written.
    let (order_tx, order_rx) = sync_channel::<Receiver<Result<Packed>>>(2 * jobs + 2);
    thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| work(&job_rx, Compression::new(level)));
        }
        let writer = scope.spawn(move || write_member(sink, level, order_rx));
        let mut blocks = Blocks {
            data: Vec::with_capacity(BLOCK),
            previous: None,
            jobs: job_tx,
            order: order_tx,
            bytes_in: 0,
            closed: false,
        };
        let produced = produce(&mut blocks).and_then(|()| blocks.finish());
        let closed = blocks.closed;
        drop(blocks);
        let written = writer.join().unwrap_or_else(|_| Err(anyhow!("the gzip writer thread panicked")));
        match (produced, written) {
            (Ok(bytes_in), Ok(bytes_out)) => Ok(Totals { bytes_in, bytes_out }),
            // A failed write stops the producer with a closed-queue error: report the cause.
            (Err(e), _) if !closed => Err(e),
            (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
        }
    })
}

/// The `Write` end that `produce` sees: it cuts the stream into blocks and queues them.
struct Blocks {
    data: Vec<u8>,
    previous: Option<Arc<Vec<u8>>>,
    jobs: SyncSender<Job>,
    order: SyncSender<Receiver<Result<Packed>>>,
    bytes_in: u64,
    /// Set when the writer is gone, so its own error is the one to report.
    closed: bool,
}

impl Blocks {
    fn send(&mut self, last: bool) -> io::Result<()> {
        let data = Arc::new(mem::replace(&mut self.data, Vec::with_capacity(BLOCK)));
        self.bytes_in += data.len() as u64;
        let (reply, done) = sync_channel(1);
        let previous = self.previous.replace(Arc::clone(&data));
        let sent = self.order.send(done).is_ok() && self.jobs.send(Job { data, previous, last, reply }).is_ok();
        self.closed = !sent;
        if sent {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "the compressed output was closed"))
        }
    }

    /// Sends the final block (possibly empty) and returns the length of the input.
    fn finish(&mut self) -> Result<u64> {
        self.send(true)?;
        Ok(self.bytes_in)
    }
}

impl Write for Blocks {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.data.len());
        self.data.extend_from_slice(&buf[..n]);
        if self.data.len() == BLOCK {
            self.send(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A compression thread: takes blocks until the queue closes.
fn work(jobs: &Mutex<Receiver<Job>>, level: Compression) {
    loop {
        let job = match jobs.lock().map(|queue| queue.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        // The writer may have given up already; then nobody needs this block.
        let _ = job.reply.send(pack(level, &job));
    }
}

/// A new compressor for every block: `reset` keeps the old window bytes, which sway the
/// choice between equally long matches, so a reused one makes the output depend on which
/// blocks the thread compressed before. A fresh one costs less than 1% of the time.
fn pack(level: Compression, job: &Job) -> Result<Packed> {
    let mut deflate = Compress::new(level, false);
    if let Some(previous) = &job.previous {
        deflate.set_dictionary(&previous[previous.len().saturating_sub(WINDOW)..])?;
    }
    let flush = if job.last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(job.data.len() + job.data.len() / 16 + 64);
    let mut input = &job.data[..];
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(BLOCK / 4);
        }
        let before = deflate.total_in();
        let status = deflate.compress_vec(input, &mut out, flush)?;
        input = &input[(deflate.total_in() - before) as usize..];
        // A flush is complete once deflate stops short of filling the output.
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            _ => input.is_empty() && out.len() < out.capacity(),
        };
        if done {
            break;
        }
    }
    let mut crc = Crc::new();
    crc.update(&job.data);
    Ok(Packed { data: out, crc, last: job.last })
}

/// Writes the gzip header, the blocks in input order, and the trailer; returns bytes written.
fn write_member<W: Write>(mut sink: W, level: u32, order: Receiver<Receiver<Result<Packed>>>) -> Result<u64> {
    let header = header(level);
    sink.write_all(&header).context("cannot write the compressed output")?;
    let mut written = header.len() as u64;
    let mut crc = Crc::new();
    let mut ended = false;
    for done in order {
        let packed = done.recv().map_err(|_| anyhow!("a compression thread stopped"))??;
        sink.write_all(&packed.data).context("cannot write the compressed output")?;
        written += packed.data.len() as u64;
        crc.combine(&packed.crc);
        ended = packed.last;
    }
    if !ended {
        bail!("the input stopped before its end");
    }
    let mut trailer = crc.sum().to_le_bytes().to_vec();
    // ISIZE: the input length modulo 2^32, as the format defines it.
    trailer.extend_from_slice(&crc.amount().to_le_bytes());
    sink.write_all(&trailer).context("cannot write the compressed output")?;
    Ok(written + trailer.len() as u64)
}

/// The 10-byte gzip header `gzip -n` writes: no name, mtime 0, Unix, and the same
/// extra-flags byte (2 for the slowest level, 4 for the fastest).
pub fn header(level: u32) -> [u8; 10] {
    let xfl = match level {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3]
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;

    use super::*;

    /// Input that compresses somewhat, with matches across block boundaries.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 12345u32;
        (0..len)
            .map(|i| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 7 == 0 {
                    (state >> 24) as u8
                } else {
                    b"static/admin/css/base.css "[i % 26]
                }
            })
            .collect()
    }

    fn gzip(input: &[u8], jobs: usize) -> (Vec<u8>, Totals) {
        let mut out = Vec::new();
        let totals = compress(&mut out, 6, jobs, |w| Ok(w.write_all(input)?)).unwrap();
        (out, totals)
    }

    #[test]
    fn output_decompresses_to_the_input_and_does_not_depend_on_threads() {
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 777] {
            let input = sample(len);
            let (one, totals) = gzip(&input, 1);
            assert_eq!(totals, Totals { bytes_in: len as u64, bytes_out: one.len() as u64 });
            assert_eq!(gzip(&input, 3).0, one, "len {len}");
            let mut back = Vec::new();
            GzDecoder::new(&one[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, input, "len {len}");
        }
    }

    #[test]
    fn blocks_do_not_depend_on_what_a_thread_compressed_before() {
        // Machine code varies enough for a reused compressor's leftover state to change its
        // choice of matches; text from a generator does not show it.
        let input = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let one = gzip(&input, 1).0;
        for jobs in [2, 3, 5, 2, 3, 5] {
            assert!(gzip(&input, jobs).0 == one, "{jobs} threads");
        }
    }

    #[test]
    fn the_header_has_no_name_and_no_time() {
        let (out, _) = gzip(b"x", 2);
        assert_eq!(out[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(header(9)[8], 2);
    }

    #[test]
    fn a_failing_producer_fails_the_stream() {
        let error = compress(Vec::new(), 6, 2, |w| {
            w.write_all(&sample(BLOCK * 2))?;
            bail!("cannot read x")
        })
        .unwrap_err();
        assert_eq!(error.to_string(), "cannot read x");
    }
}
